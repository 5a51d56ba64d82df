/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Detached Ed25519 signatures of live-update images and livepatch
 * payloads (docs/live-update.md, "Signed images"): the signature file's
 * layout, key ids, trusted-key directories and the check itself.  The
 * daemon (trust/) and xen-sign (tools/sign/) both use this one
 * definition.  OpenSSL 3's EVP API does the cryptography.
 */
#ifndef COMMON_SIGNATURE_H
#define COMMON_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_MAGIC		"XKVMSIG"	/* 8 bytes, NUL included */
#define SIG_VERSION		1
#define SIG_KEY_ID_LEN		8	/* SHA-256 of the raw key, first 8 */
#define SIG_KEY_ID_HEX		(2 * SIG_KEY_ID_LEN + 1)
#define SIG_ED25519_LEN		64
#define SIG_KEYS_MAX		64	/* keys in one directory */
#define SIG_SUFFIX		".sig"	/* FILE.sig beside FILE */

/* What a signature is for: an image cannot pass for a payload. */
enum sig_purpose {
	SIG_PURPOSE_IMAGE = 1,		/* a live-update image */
	SIG_PURPOSE_LIVEPATCH = 2,	/* a livepatch payload */
};

/*
 * FILE.sig: exactly these 96 bytes, little-endian.  The Ed25519
 * signature (RFC 8032, pure) is over a 96-byte message: bytes 0..31 of
 * this header (everything before `signature`) followed by SHA-512 of the
 * signed file's bytes.  So it binds the purpose, the key id and the
 * file's length as well as its contents.
 */
struct sig_file {
	char magic[8];			/* SIG_MAGIC, NUL-terminated */
	uint16_t version;		/* SIG_VERSION */
	uint16_t purpose;		/* enum sig_purpose */
	uint32_t reserved;		/* 0 */
	uint8_t key_id[SIG_KEY_ID_LEN];
	uint64_t data_len;		/* bytes of the signed file */
	uint8_t signature[SIG_ED25519_LEN];
};
_Static_assert(sizeof(struct sig_file) == 96, "sig_file is 96 bytes");
_Static_assert(offsetof(struct sig_file, signature) == 32,
	       "the signed header is bytes 0..31");

#define SIG_FILE_SIZE		sizeof(struct sig_file)
#define SIG_MESSAGE_LEN		(32 + 64)	/* header + SHA-512 */

/* One trusted public key. */
struct sig_key {
	uint8_t id[SIG_KEY_ID_LEN];
	char file[256];			/* its name in the directory */
	void *pkey;			/* EVP_PKEY */
};

/* The keys of a trusted-keys directory: every *.pem file in it. */
struct sig_keyring {
	unsigned n;
	struct sig_key keys[SIG_KEYS_MAX];
};

const char *sig_purpose_name(unsigned purpose);
void sig_key_id_hex(const uint8_t id[SIG_KEY_ID_LEN],
		    char out[SIG_KEY_ID_HEX]);

/*
 * The bytes of a signature file: 0, or -1 with the reason in err
 * (wrong size, magic, version, purpose, reserved bits).
 */
int sig_parse(const void *buf, size_t len, struct sig_file *s, char *err,
	      size_t errlen);
/* The message the signature is over (see struct sig_file); 0 or -1. */
int sig_message(const struct sig_file *s, const void *data, size_t len,
		uint8_t msg[SIG_MESSAGE_LEN]);

/*
 * An Ed25519 public key from a PEM file (SubjectPublicKeyInfo, as
 * `openssl pkey -pubout` and `xen-sign keygen` write it), its id
 * computed.  0, or -1 with "FILE: reason" in err.
 */
int sig_key_load(const char *path, struct sig_key *k, char *err,
		 size_t errlen);
/* The id of a key (EVP_PKEY *): SHA-256 of its 32 raw bytes, first 8. */
int sig_key_id(void *pkey, uint8_t id[SIG_KEY_ID_LEN]);
void sig_key_free(struct sig_key *k);

/*
 * Every *.pem file of dir, each an Ed25519 public key.  The directory and
 * each key file must belong to root or to us and be writable by no one
 * else (whoever can add a key can run code in the daemon).  0, or -1
 * with the reason in err, nothing loaded.
 */
int sig_keyring_load(struct sig_keyring *kr, const char *dir, char *err,
		     size_t errlen);
void sig_keyring_free(struct sig_keyring *kr);
const struct sig_key *sig_keyring_find(const struct sig_keyring *kr,
				       const uint8_t id[SIG_KEY_ID_LEN]);
/* "id1, id2, ..." (or "none") into buf. */
void sig_keyring_ids(const struct sig_keyring *kr, char *buf, size_t len);

/*
 * Is s a good signature of data for purpose by a key of kr?  0 (with the
 * key in *by if by is not NULL), or -1 with why in err, always naming the
 * key id the signature claims.
 */
int sig_verify(const struct sig_keyring *kr, const struct sig_file *s,
	       unsigned purpose, const void *data, size_t len,
	       const struct sig_key **by, char *err, size_t errlen);

#endif /* COMMON_SIGNATURE_H */
