// SPDX-License-Identifier: GPL-2.0
/*
 * Detached Ed25519 signatures (signature.h): parsing, key ids, trusted
 * keys, verification.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "openfile.h"
#include "signature.h"

#define KEY_FILE_MAX	(64 << 10)
#define SHOW		"%.300s"	/* bound a path in a message */

const char *sig_purpose_name(unsigned purpose)
{
	switch (purpose) {
	case SIG_PURPOSE_IMAGE: return "live-update image";
	case SIG_PURPOSE_LIVEPATCH: return "livepatch payload";
	default: return "unknown purpose";
	}
}

void sig_key_id_hex(const uint8_t id[SIG_KEY_ID_LEN],
		    char out[SIG_KEY_ID_HEX])
{
	unsigned i;

	for (i = 0; i < SIG_KEY_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

int sig_parse(const void *buf, size_t len, struct sig_file *s, char *err,
	      size_t errlen)
{
	if (len != SIG_FILE_SIZE) {
		snprintf(err, errlen, "a signature file is %zu bytes, not %zu",
			 SIG_FILE_SIZE, len);
		return -1;
	}
	memcpy(s, buf, sizeof(*s));
	if (memcmp(s->magic, SIG_MAGIC, sizeof(s->magic))) {
		snprintf(err, errlen, "%s", "not a signature file (bad magic)");
		return -1;
	}
	if (s->version != SIG_VERSION) {
		snprintf(err, errlen, "signature format version %u (this "
			 "build reads %u)", s->version, SIG_VERSION);
		return -1;
	}
	if (s->purpose != SIG_PURPOSE_IMAGE &&
	    s->purpose != SIG_PURPOSE_LIVEPATCH) {
		snprintf(err, errlen, "unknown signature purpose %u",
			 s->purpose);
		return -1;
	}
	if (s->reserved) {
		snprintf(err, errlen, "%s", "reserved signature bits set");
		return -1;
	}
	return 0;
}

static int digest(const EVP_MD *md, const void *data, size_t len,
		  uint8_t *out)
{
	unsigned n;

	return EVP_Digest(data, len, out, &n, md, NULL) == 1 ? 0 : -1;
}

int sig_message(const struct sig_file *s, const void *data, size_t len,
		uint8_t msg[SIG_MESSAGE_LEN])
{
	memcpy(msg, s, offsetof(struct sig_file, signature));
	return digest(EVP_sha512(), data, len, msg + 32);
}

int sig_key_id(void *pkey, uint8_t id[SIG_KEY_ID_LEN])
{
	uint8_t raw[32], md[32];
	size_t n = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1 || n != 32 ||
	    digest(EVP_sha256(), raw, n, md) < 0)
		return -1;
	memcpy(id, md, SIG_KEY_ID_LEN);
	return 0;
}

/* Root's or ours, and writable by no one else. */
static int owned_safely(const struct stat *st, const char *path,
			const char *what, char *err, size_t errlen)
{
	if ((st->st_uid == 0 || st->st_uid == geteuid()) &&
	    !(st->st_mode & 022))
		return 0;
	snprintf(err, errlen, SHOW ": the %s must belong to root or uid %u "
		 "and be writable by no one else (it is mode %04o, uid %u)",
		 path, what, (unsigned)geteuid(),
		 (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid);
	return -1;
}

int sig_key_load(const char *path, struct sig_key *k, char *err,
		 size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	struct stat st;
	FILE *f = NULL;
	int fd;

	err[0] = '\0';
	fd = open_regular(path, KEY_FILE_MAX, NULL, err, errlen);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 ||
	    owned_safely(&st, path, "key file", err, errlen) < 0 ||
	    !(f = fdopen(fd, "r")))
		goto fail;
	pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, SHOW ": not a PEM Ed25519 public key",
			 path);
		goto fail;
	}
	if (sig_key_id(pkey, k->id) < 0) {
		snprintf(err, errlen, SHOW ": cannot read the key", path);
		goto fail;
	}
	fclose(f);
	k->pkey = pkey;
	return 0;
fail:
	EVP_PKEY_free(pkey);
	if (f)
		fclose(f);
	else
		close(fd);
	if (!*err)
		snprintf(err, errlen, SHOW ": %s", path, strerror(errno));
	return -1;
}

void sig_key_free(struct sig_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

static int is_pem(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 4 && d->d_name[0] != '.' &&
	       !strcmp(d->d_name + n - 4, ".pem");
}

static int dir_ok(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, SHOW ": %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, SHOW ": not a directory", dir);
		return -1;
	}
	return owned_safely(&st, dir, "trusted-keys directory", err, errlen);
}

/* Add one key file; a key listed twice counts once. */
static int add_key(struct sig_keyring *kr, const char *dir,
		   const char *name, char *err, size_t errlen)
{
	struct sig_key *k = &kr->keys[kr->n];
	char path[4096];

	if (kr->n == SIG_KEYS_MAX) {
		snprintf(err, errlen, SHOW ": more than %d keys", dir,
			 SIG_KEYS_MAX);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(k, 0, sizeof(*k));
	if (sig_key_load(path, k, err, errlen) < 0)
		return -1;
	snprintf(k->file, sizeof(k->file), "%s", name);
	if (sig_keyring_find(kr, k->id))
		sig_key_free(k);
	else
		kr->n++;
	return 0;
}

int sig_keyring_load(struct sig_keyring *kr, const char *dir, char *err,
		     size_t errlen)
{
	struct dirent **names = NULL;
	int i, n, ret = 0;

	memset(kr, 0, sizeof(*kr));
	if (dir_ok(dir, err, errlen) < 0)
		return -1;
	n = scandir(dir, &names, is_pem, alphasort);
	if (n < 0) {
		snprintf(err, errlen, SHOW ": %s", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!ret && add_key(kr, dir, names[i]->d_name, err,
				    errlen) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	if (ret)
		sig_keyring_free(kr);
	return ret;
}

void sig_keyring_free(struct sig_keyring *kr)
{
	unsigned i;

	for (i = 0; i < kr->n; i++)
		sig_key_free(&kr->keys[i]);
	kr->n = 0;
}

const struct sig_key *sig_keyring_find(const struct sig_keyring *kr,
				       const uint8_t id[SIG_KEY_ID_LEN])
{
	unsigned i;

	for (i = 0; i < kr->n; i++)
		if (!memcmp(kr->keys[i].id, id, SIG_KEY_ID_LEN))
			return &kr->keys[i];
	return NULL;
}

void sig_keyring_ids(const struct sig_keyring *kr, char *buf, size_t len)
{
	char hex[SIG_KEY_ID_HEX];
	size_t used = 0;
	unsigned i;

	snprintf(buf, len, "%s", kr->n ? "" : "none");
	for (i = 0; i < kr->n && used < len; i++) {
		sig_key_id_hex(kr->keys[i].id, hex);
		used += snprintf(buf + used, len - used, "%s%s",
				 i ? ", " : "", hex);
	}
}

static int ed25519_ok(void *pkey, const uint8_t *sig, const uint8_t *msg)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -1;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, SIG_ED25519_LEN, msg,
			      SIG_MESSAGE_LEN) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int sig_verify(const struct sig_keyring *kr, const struct sig_file *s,
	       unsigned purpose, const void *data, size_t len,
	       const struct sig_key **by, char *err, size_t errlen)
{
	uint8_t msg[SIG_MESSAGE_LEN];
	char hex[SIG_KEY_ID_HEX], ids[SIG_KEYS_MAX * 18];
	const struct sig_key *k;

	sig_key_id_hex(s->key_id, hex);
	k = sig_keyring_find(kr, s->key_id);
	if (!k) {
		sig_keyring_ids(kr, ids, sizeof(ids));
		snprintf(err, errlen, "signed by key %s, which is not a "
			 "trusted key (trusted: %s)", hex, ids);
		return -1;
	}
	if (s->purpose != purpose) {
		snprintf(err, errlen, "key %s signed it as a %s, not as a %s",
			 hex, sig_purpose_name(s->purpose),
			 sig_purpose_name(purpose));
		return -1;
	}
	if (s->data_len != len) {
		snprintf(err, errlen, "key %s signed %llu bytes, the file has "
			 "%zu: bad signature", hex,
			 (unsigned long long)s->data_len, len);
		return -1;
	}
	if (sig_message(s, data, len, msg) < 0 ||
	    ed25519_ok(k->pkey, s->signature, msg) < 0) {
		snprintf(err, errlen, "bad signature by key %s (%s): the file "
			 "or its signature was changed", hex, k->file);
		return -1;
	}
	if (by)
		*by = k;
	return 0;
}
