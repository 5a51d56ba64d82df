/*
 * Signature enforcement (trust.h): the --trusted-keys option, the keys
 * read at start, the checks, and what `info` and the log say about them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libelf.h>

#include "commands.h"
#include "elfnote.h"
#include "feature.h"
#include "log.h"
#include "openfile.h"
#include "trust/trust.h"

static struct {
	const char *dir;		/* NULL: enforcement off */
	struct sig_keyring keys;
	/* A taking-over image that could not read the keys: it keeps the
	 * guests, enforcing with no key at all (everything is refused). */
	char load_err[600];
} trust;

/* This image checks signatures: staging an update to it keeps them on. */
struct trust_note {
	uint32_t namesz, descsz, type;
	char name[8];
	uint32_t version;
};

__attribute__((section(".note.xkvm.sig"), aligned(4), used))
static const struct trust_note trust_note = {
	.namesz = sizeof(TRUST_NOTE_NAME),
	.descsz = 4,
	.type = TRUST_NOTE_SIGNATURE,
	.name = TRUST_NOTE_NAME,
	.version = SIG_VERSION,
};

int trust_sig_arg(json_t *args, const char **sig_path, struct ctl_reply *r)
{
	json_t *v = json_object_get(args, "signature");

	*sig_path = json_string_value(v);
	if (v && (!*sig_path || (*sig_path)[0] != '/'))
		return ctl_fail(r, CTL_EINVAL, "%s", "'signature' must be "
				"an absolute file name");
	return CTL_OK;
}

/* The signature file, parsed; CTL_OK or CTL_ESIG with why. */
static int read_sig(const char *sig_path, struct sig_file *s, char *err,
		    size_t errlen)
{
	char buf[SIG_FILE_SIZE + 1], why[400], ids[SIG_KEYS_MAX * 18];
	ssize_t n;
	int fd;

	fd = open_regular(sig_path, 4096, NULL, why, sizeof(why));
	if (fd < 0) {
		sig_keyring_ids(&trust.keys, ids, sizeof(ids));
		snprintf(err, errlen, "no signature: %.300s (signature "
			 "enforcement is on; trusted keys: %.200s)", why,
			 ids);
		return CTL_ESIG;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (sig_parse(buf, n < 0 ? 0 : n, s, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%.300s: %.200s", sig_path, why);
		return CTL_ESIG;
	}
	return CTL_OK;
}

int trust_check(unsigned purpose, const void *data, size_t len,
		const char *path, const char *sig_path, char *err,
		size_t errlen)
{
	char def[4096 + sizeof(SIG_SUFFIX)], why[600], hex[SIG_KEY_ID_HEX];
	const struct sig_key *by;
	struct sig_file s;
	int code;

	if (!trust.dir)
		return CTL_OK;
	if (!sig_path) {
		snprintf(def, sizeof(def), "%s%s", path, SIG_SUFFIX);
		sig_path = def;
	}
	code = read_sig(sig_path, &s, why, sizeof(why));
	if (!code && sig_verify(&trust.keys, &s, purpose, data, len, &by,
				why, sizeof(why)) < 0)
		code = CTL_ESIG;
	if (code) {
		snprintf(err, errlen, "%.300s: %s", path, why);
		log_warn("signature: %s refused: %s", sig_purpose_name(purpose),
			 err);
		return code;
	}
	sig_key_id_hex(by->id, hex);
	log_info("signature: %s %s: good signature by key %s (%s)",
		 sig_purpose_name(purpose), path, hex, by->file);
	return CTL_OK;
}

static int find_note(const GElf_Nhdr *nh, const char *name,
		     const void *desc, void *ctx)
{
	return nh->n_type == TRUST_NOTE_SIGNATURE &&
	       nh->n_namesz == sizeof(TRUST_NOTE_NAME) &&
	       !memcmp(name, TRUST_NOTE_NAME, sizeof(TRUST_NOTE_NAME)) &&
	       nh->n_descsz == 4;
}

static bool image_enforces(int fd)
{
	Elf *e;
	bool yes;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return false;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	yes = e && elf_for_each_note(e, find_note, NULL) == 1;
	if (e)
		elf_end(e);
	return yes;
}

int trust_check_image(int fd, const char *path, const char *sig_path,
		      char *err, size_t errlen)
{
	struct stat st;
	void *map;
	int code;

	if (!trust.dir)
		return CTL_OK;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
		return CTL_ESIG;
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%.300s: cannot map the staged copy: %s",
			 path, strerror(errno));
		return CTL_ESIG;
	}
	code = trust_check(SIG_PURPOSE_IMAGE, map, st.st_size, path,
			   sig_path, err, errlen);
	munmap(map, st.st_size);
	if (code)
		return code;
	if (!image_enforces(fd)) {
		snprintf(err, errlen, "%.300s: this image does not check "
			 "signatures (built without CONFIG_SIGNATURE, or "
			 "older): updating to it would end signature "
			 "enforcement", path);
		return CTL_EKERNEL;
	}
	return CTL_OK;
}

/* ------------------------------------------------------------ feature */

static const struct option trust_options[] = {
	{ "trusted-keys", required_argument, NULL, 0 },
	{ NULL, 0, NULL, 0 },
};

static int trust_parse_option(unsigned index, const char *arg)
{
	if (arg[0] != '/') {
		fprintf(stderr, "xen: --trusted-keys %s: an absolute directory "
			"is needed\n", arg);
		return -1;
	}
	trust.dir = arg;
	return 0;
}

/*
 * The keys, read before the daemon serves.  A start that cannot read them
 * stops (status 1); an image taking over guests from a live update keeps
 * them and refuses every image and payload instead.
 */
static int trust_run(void)
{
	char err[sizeof(trust.load_err)];

	if (!trust.dir)
		return -1;
	if (sig_keyring_load(&trust.keys, trust.dir, err, sizeof(err)) == 0)
		return -1;
	if (feature_taking_over()) {
		snprintf(trust.load_err, sizeof(trust.load_err), "%s", err);
		return -1;
	}
	fprintf(stderr, "xen: --trusted-keys: %s\n", err);
	return 1;
}

static int trust_started(void)
{
	char ids[SIG_KEYS_MAX * 18];

	if (!trust.dir) {
		log_warn("signature enforcement: OFF: live-update images and "
			 "livepatch payloads are run without any signature "
			 "check (start the daemon with --trusted-keys DIR)");
		return 0;
	}
	if (trust.load_err[0]) {
		log_err("signature enforcement: on, but the trusted keys "
			"cannot be read (%s): every image and payload is "
			"refused", trust.load_err);
		return 0;
	}
	sig_keyring_ids(&trust.keys, ids, sizeof(ids));
	log_info("signature enforcement: on, %u trusted key%s from %s: %s",
		 trust.keys.n, trust.keys.n == 1 ? "" : "s", trust.dir, ids);
	return 0;
}

static void trust_info(json_t *result)
{
	json_t *keys = json_array(), *o;
	char hex[SIG_KEY_ID_HEX];
	unsigned i;

	for (i = 0; i < trust.keys.n; i++) {
		sig_key_id_hex(trust.keys.keys[i].id, hex);
		json_array_append_new(keys, json_pack("{s:s, s:s}", "id", hex,
						      "file",
						      trust.keys.keys[i].file));
	}
	o = json_pack("{s:b, s:s?, s:o}", "enforcement", trust.dir != NULL,
		      "dir", trust.dir, "keys", keys);
	if (trust.load_err[0])
		json_object_set_new(o, "error", json_string(trust.load_err));
	json_object_set_new(result, "signatures", o);
}

/* A live update's new image (and a rollback) reads the same keys. */
static unsigned trust_carry(char **argv, unsigned max)
{
	if (!trust.dir || max < 2)
		return 0;
	argv[0] = "--trusted-keys";
	argv[1] = (char *)trust.dir;
	return 2;
}

static struct feature trust_feature = {
	.name = "signatures",
	.flag = "SIGNATURE",
	.info = trust_info,
	.options = trust_options,
	.parse_option = trust_parse_option,
	.run = trust_run,
	.started = trust_started,
	.carry_options = trust_carry,
};
FEATURE_REGISTER(trust_feature)
