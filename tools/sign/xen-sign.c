// SPDX-License-Identifier: GPL-2.0
/*
 * xen-sign: Ed25519 keys and detached signatures of live-update images
 * and livepatch payloads (common/signature.h for the format).
 *
 *   xen-sign keygen [--force] NAME        NAME.key (private, 0600), NAME.pem
 *   xen-sign sign --key NAME.key [--purpose image|livepatch]
 *                 [--sig OUT] FILE        FILE.sig (or OUT)
 *   xen-sign verify (--keys DIR | --pubkey PEM) [--purpose P]
 *                 [--sig SIG] FILE
 *   xen-sign id PEM                       the key id of a public key
 *
 * Exit status: 0 done (verify: a good signature), 1 refused (verify: a
 * bad, missing or unknown-key signature), 2 usage.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "openfile.h"
#include "signature.h"

#define EXIT_REFUSED	1
#define EXIT_USAGE	2

struct opts {
	const char *key, *pubkey, *keys, *sig, *purpose;
	int force;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: xen-sign keygen [--force] NAME\n"
		"       xen-sign sign --key NAME.key [--purpose image|livepatch]\n"
		"                     [--sig OUT] FILE\n"
		"       xen-sign verify (--keys DIR | --pubkey PEM) [--purpose P]\n"
		"                       [--sig SIG] FILE\n"
		"       xen-sign id PEM\n");
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "xen-sign: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_REFUSED;
}

/* The whole file, mapped; NULL with the reason said. */
static void *map_file(const char *path, size_t *len)
{
	char err[512];
	off_t size;
	void *p;
	int fd;

	fd = open_regular(path, 0, &size, err, sizeof(err));
	if (fd < 0) {
		fail("%s", err);
		return NULL;
	}
	if (size == 0) {
		close(fd);
		fail("%s: empty file", path);
		return NULL;
	}
	p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fail("%s: %s", path, strerror(errno));
		return NULL;
	}
	*len = size;
	return p;
}

/* image or livepatch, from --purpose or the ELF type; 0 if neither. */
static unsigned purpose_of(const char *name, const void *data, size_t len)
{
	const Elf64_Ehdr *eh = data;

	if (name)
		return !strcmp(name, "image") ? SIG_PURPOSE_IMAGE :
		       !strcmp(name, "livepatch") ? SIG_PURPOSE_LIVEPATCH : 0;
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return 0;
	if (eh->e_type == ET_REL)
		return SIG_PURPOSE_LIVEPATCH;
	if (eh->e_type == ET_EXEC || eh->e_type == ET_DYN)
		return SIG_PURPOSE_IMAGE;
	return 0;
}

static int write_file(const char *path, const void *buf, size_t len,
		      mode_t mode, int force)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		      (force ? O_TRUNC : O_EXCL), mode);

	if (fd < 0)
		return fail("%s: %s", path, strerror(errno));
	if (fchmod(fd, mode) < 0 || write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		return fail("%s: %s", path, strerror(errno));
	}
	if (close(fd) < 0)
		return fail("%s: %s", path, strerror(errno));
	return 0;
}

/* A PEM encoding of pkey (private or public) into path. */
static int write_pem(const char *path, EVP_PKEY *pkey, int priv,
		     mode_t mode, int force)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int ret;

	if (!b || !(priv ? PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0,
						   NULL, NULL) :
		    PEM_write_bio_PUBKEY(b, pkey))) {
		BIO_free(b);
		return fail("%s: cannot encode the key", path);
	}
	len = BIO_get_mem_data(b, &data);
	ret = write_file(path, data, len, mode, force);
	BIO_free(b);
	return ret;
}

static int cmd_keygen(const struct opts *o, const char *name)
{
	char priv[4096], pub[4096], hex[SIG_KEY_ID_HEX];
	uint8_t id[SIG_KEY_ID_LEN];
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int ret;

	if (!pkey || sig_key_id(pkey, id) < 0) {
		EVP_PKEY_free(pkey);
		return fail("cannot make an Ed25519 key");
	}
	snprintf(priv, sizeof(priv), "%s.key", name);
	snprintf(pub, sizeof(pub), "%s.pem", name);
	ret = write_pem(priv, pkey, 1, 0600, o->force);
	if (!ret)
		ret = write_pem(pub, pkey, 0, 0644, o->force);
	EVP_PKEY_free(pkey);
	if (ret)
		return ret;
	sig_key_id_hex(id, hex);
	printf("%s: key id %s (private key %s: keep it secret; put %s in "
	       "the daemon's --trusted-keys directory)\n", name, hex, priv,
	       pub);
	return 0;
}

static EVP_PKEY *read_private(const char *path)
{
	char err[512];
	EVP_PKEY *pkey;
	FILE *f;
	int fd = open_regular(path, 1 << 16, NULL, err, sizeof(err));

	if (fd < 0) {
		fail("%s", err);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		fail("%s: %s", path, strerror(errno));
		return NULL;
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		fail("%s: not a PEM Ed25519 private key", path);
		return NULL;
	}
	return pkey;
}

static int ed25519_sign(EVP_PKEY *pkey, const uint8_t *msg, uint8_t *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = SIG_ED25519_LEN;
	int ok;

	ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &n, msg, SIG_MESSAGE_LEN) == 1 &&
	     n == SIG_ED25519_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int cmd_sign(const struct opts *o, const char *file)
{
	char out[4096], hex[SIG_KEY_ID_HEX];
	uint8_t msg[SIG_MESSAGE_LEN];
	struct sig_file s = { .magic = SIG_MAGIC, .version = SIG_VERSION };
	EVP_PKEY *pkey;
	size_t len;
	void *data;
	int ret = EXIT_REFUSED;

	if (!o->key)
		return usage();
	pkey = read_private(o->key);
	if (!pkey)
		return EXIT_REFUSED;
	data = map_file(file, &len);
	if (!data)
		goto out_key;
	s.purpose = purpose_of(o->purpose, data, len);
	if (!s.purpose) {
		fail("%s: not an ELF executable or relocatable object: say "
		     "--purpose image or --purpose livepatch", file);
		goto out_map;
	}
	s.data_len = len;
	if (sig_key_id(pkey, s.key_id) < 0 ||
	    sig_message(&s, data, len, msg) < 0 ||
	    ed25519_sign(pkey, msg, s.signature) < 0) {
		fail("%s: signing failed", file);
		goto out_map;
	}
	snprintf(out, sizeof(out), "%s%s", file, SIG_SUFFIX);
	ret = write_file(o->sig ? o->sig : out, &s, sizeof(s), 0644, 1);
	if (!ret) {
		sig_key_id_hex(s.key_id, hex);
		printf("%s: signed as a %s by key %s -> %s\n", file,
		       sig_purpose_name(s.purpose), hex, o->sig ? o->sig : out);
	}
out_map:
	munmap(data, len);
out_key:
	EVP_PKEY_free(pkey);
	return ret;
}

static int load_keys(const struct opts *o, struct sig_keyring *kr)
{
	char err[600];

	if (o->keys) {
		if (sig_keyring_load(kr, o->keys, err, sizeof(err)) < 0)
			return fail("%s", err);
		return 0;
	}
	memset(kr, 0, sizeof(*kr));
	if (sig_key_load(o->pubkey, &kr->keys[0], err, sizeof(err)) < 0)
		return fail("%s", err);
	snprintf(kr->keys[0].file, sizeof(kr->keys[0].file), "%s", o->pubkey);
	kr->n = 1;
	return 0;
}

static int cmd_verify(const struct opts *o, const char *file)
{
	char sigpath[4096], err[700], hex[SIG_KEY_ID_HEX];
	const struct sig_key *by;
	struct sig_keyring kr;
	struct sig_file s;
	size_t len, slen;
	void *data, *sig;
	unsigned purpose;
	int ret = EXIT_REFUSED;

	if (!o->keys == !o->pubkey)
		return usage();
	if (load_keys(o, &kr))
		return EXIT_REFUSED;
	snprintf(sigpath, sizeof(sigpath), "%s%s", file, SIG_SUFFIX);
	data = map_file(file, &len);
	if (!data)
		goto out_keys;
	sig = map_file(o->sig ? o->sig : sigpath, &slen);
	if (!sig)
		goto out_data;
	if (sig_parse(sig, slen, &s, err, sizeof(err)) < 0) {
		fail("%s: %s", o->sig ? o->sig : sigpath, err);
		goto out_sig;
	}
	purpose = o->purpose ? purpose_of(o->purpose, data, len) : s.purpose;
	if (!purpose) {
		fail("--purpose is image or livepatch");
		goto out_sig;
	}
	if (sig_verify(&kr, &s, purpose, data, len, &by, err,
		       sizeof(err)) < 0) {
		fail("%s: %s", file, err);
		goto out_sig;
	}
	sig_key_id_hex(by->id, hex);
	printf("%s: good signature as a %s by key %s (%s)\n", file,
	       sig_purpose_name(purpose), hex, by->file);
	ret = 0;
out_sig:
	munmap(sig, slen);
out_data:
	munmap(data, len);
out_keys:
	sig_keyring_free(&kr);
	return ret;
}

static int cmd_id(const char *pem)
{
	char err[600], hex[SIG_KEY_ID_HEX];
	struct sig_key k = { 0 };

	if (sig_key_load(pem, &k, err, sizeof(err)) < 0)
		return fail("%s", err);
	sig_key_id_hex(k.id, hex);
	printf("%s\n", hex);
	sig_key_free(&k);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "pubkey", required_argument, NULL, 'p' },
		{ "keys", required_argument, NULL, 'K' },
		{ "sig", required_argument, NULL, 's' },
		{ "purpose", required_argument, NULL, 'P' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	const char *cmd;
	int c;

	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage();
			return 0;
		}
		return usage();
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind];
	optind++;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': o.key = optarg; break;
		case 'p': o.pubkey = optarg; break;
		case 'K': o.keys = optarg; break;
		case 's': o.sig = optarg; break;
		case 'P': o.purpose = optarg; break;
		case 'f': o.force = 1; break;
		default: return usage();
		}
	}
	if (optind != argc - 1)
		return usage();
	if (o.purpose && strcmp(o.purpose, "image") &&
	    strcmp(o.purpose, "livepatch"))
		return usage();
	if (!strcmp(cmd, "keygen"))
		return cmd_keygen(&o, argv[optind]);
	if (!strcmp(cmd, "sign"))
		return cmd_sign(&o, argv[optind]);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(&o, argv[optind]);
	if (!strcmp(cmd, "id"))
		return cmd_id(argv[optind]);
	return usage();
}
