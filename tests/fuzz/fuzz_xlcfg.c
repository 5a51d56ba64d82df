/*
 * libFuzzer target for xl's config parser (common/xlcfg.c) and the
 * domain config checks it shares with the daemon (common/domcfg*.c).
 *
 * An input is a config file, optionally followed by a NUL byte and
 * NUL-separated KEY=VALUE overrides (as `xl create CFG KEY=VALUE...`
 * gives them).  What must hold:
 *   - a refused file is refused as "FILE:LINE: reason";
 *   - a refused override leaves the config as it was;
 *   - a config xl accepts, sent as `create` sends it (domcfg_to_json),
 *     is accepted by the daemon's check (domcfg_from_json) and comes
 *     back the same; a copy (domcfg_copy) is the same too.
 * Input that is itself a JSON object also goes through the daemon's
 * check directly.
 *
 * The file "lives" in a directory that does not exist, so relative
 * kernel, disk and fw_cfg paths name nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domcfg.h"
#include "xlcfg.h"

#define CFG_NAME	"/nonexistent-fuzz/guest.cfg"
#define OVERRIDES_MAX	4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why, const char *detail)
{
	fprintf(stderr, "%s: %.1000s\n", why, detail);
	abort();
}

static char *dump(const struct domcfg *cfg)
{
	json_t *j = domcfg_to_json(cfg);
	char *s;

	if (!j)
		fail("domcfg_to_json", "NULL");
	s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	if (!s)
		fail("json_dumps", "NULL");
	return s;
}

static void same(const struct domcfg *a, const struct domcfg *b,
		 const char *what)
{
	char *sa = dump(a), *sb = dump(b);

	if (strcmp(sa, sb)) {
		fprintf(stderr, "%s changed the config:\n%s\n%s\n", what, sa,
			sb);
		abort();
	}
	free(sa);
	free(sb);
}

/* What the daemon does with the config xl sends. */
static void daemon_check(const struct domcfg *cfg)
{
	struct domcfg back, copy;
	json_t *j = domcfg_to_json(cfg);
	char err[512];

	if (domcfg_from_json(j, &back, err, sizeof(err)) < 0) {
		char *s = json_dumps(j, JSON_COMPACT);

		fprintf(stderr, "the daemon refuses what xl accepts: %s\n%s\n",
			err, s ? s : "");
		abort();
	}
	json_decref(j);
	same(cfg, &back, "domcfg_from_json");
	domcfg_free(&back);
	if (domcfg_copy(&copy, cfg) < 0)
		fail("domcfg_copy", "out of memory");
	same(cfg, &copy, "domcfg_copy");
	domcfg_free(&copy);
}

static void apply_overrides(struct domcfg *cfg, const char *p,
			    const char *end)
{
	char err[512], *before, *after;
	unsigned n;

	for (n = 0; p < end && n < OVERRIDES_MAX; n++, p += strlen(p) + 1) {
		before = dump(cfg);
		if (xlcfg_apply_override(cfg, p, err, sizeof(err))) {
			after = dump(cfg);
			if (strcmp(before, after))
				fail("a refused override changed the config",
				     p);
			if (strncmp(err, "<command line>: ", 16))
				fail("override error without its origin", err);
			free(after);
		}
		free(before);
	}
}

/* Anything that is a JSON object: the daemon's check of `create`. */
static void json_config(const char *text)
{
	struct domcfg cfg;
	char err[512];
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

	if (json_is_object(j)) {
		if (!domcfg_from_json(j, &cfg, err, sizeof(err)))
			daemon_check(&cfg);
		domcfg_free(&cfg);
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct domcfg cfg;
	char *text, err[512];
	int rc;

	/* The file ends at the first NUL; overrides follow, NUL-ended. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = xlcfg_parse_buffer(CFG_NAME, text, &cfg, err, sizeof(err));
	if (rc == XLCFG_OK) {
		apply_overrides(&cfg, text + strlen(text) + 1, text + size);
		daemon_check(&cfg);
		domcfg_free(&cfg);
	} else if (rc != XLCFG_ERR_CONFIG ||
		   strncmp(err, CFG_NAME ":", strlen(CFG_NAME) + 1)) {
		fail("refused without FILE:LINE", err);
	} else if (getenv("FUZZ_VERBOSE")) {
		fprintf(stderr, "refused: %s\n", err);
	}
	json_config(text);
	free(text);
	return 0;
}
