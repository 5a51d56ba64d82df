/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks shared by the unit tests of the domain config (test_xlcfg.c,
 * test_domcfg_disk.c, test_domcfg_vif.c): parse an xl.cfg text or a JSON
 * config and compare the result or the error message.
 */
#ifndef TESTS_UNIT_CFG_CHECK_H
#define TESTS_UNIT_CFG_CHECK_H

#include <string.h>

#include "domcfg.h"
#include "xlcfg.h"
#include "unit.h"

#define CFG_NAME "/etc/xen/t.cfg"
#define MIN_CFG "name = \"t\"\nkernel = \"/boot/k\"\n"
#define J_MIN "\"name\": \"j\", \"kernel\": \"/k\""

#define CHECK_STR(a, b) do {						\
	const char *a_ = (a), *b_ = (b);				\
	unit_check(a_ && b_ ? !strcmp(a_, b_) : a_ == b_, __FILE__, __LINE__, \
	      "%s == \"%s\", want \"%s\"", #a, a_ ? a_ : "(null)",	\
	      b_ ? b_ : "(null)");					\
} while (0)

/* Parse @text as CFG_NAME; a failure is reported at @line. */
static inline int parse_ok_at(int line, const char *text, struct domcfg *cfg)
{
	char err[512] = "";
	int rc = xlcfg_parse_buffer(CFG_NAME, text, cfg, err, sizeof(err));

	unit_check(rc == XLCFG_OK, __FILE__, line, "parse failed: %s", err);
	return rc;
}
#define PARSE_OK(text, cfg) parse_ok_at(__LINE__, text, cfg)

/* @text must fail with exactly @want (or containing it, if @exact is 0). */
static inline void parse_err_at(int line, const char *text,
				const char *want, int exact)
{
	char err[512] = "";
	struct domcfg cfg;
	int rc = xlcfg_parse_buffer(CFG_NAME, text, &cfg, err, sizeof(err));

	unit_check(rc == XLCFG_ERR_CONFIG, __FILE__, line,
		   "parse of \"%s\" returned %d", text, rc);
	unit_check(exact ? !strcmp(err, want) : strstr(err, want) != NULL,
		   __FILE__, line, "error \"%s\", want %s\"%s\"", err,
		   exact ? "" : "...", want);
	unit_check(cfg.kernel == NULL && cfg.name[0] == '\0', __FILE__, line,
		   "config not reset after an error");
	domcfg_free(&cfg);
}
#define PARSE_ERR(text, want) parse_err_at(__LINE__, text, want, 1)
#define PARSE_ERR_SUB(text, want) parse_err_at(__LINE__, text, want, 0)

/* domcfg_from_json(@json) must fail with @want. */
static inline void json_err_at(int line, const char *json, const char *want)
{
	char err[512] = "";
	json_error_t jerr;
	struct domcfg cfg;
	json_t *obj = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				 &jerr);
	int rc;

	unit_check(obj != NULL, __FILE__, line, "bad test JSON: %s",
		   jerr.text);
	rc = domcfg_from_json(obj, &cfg, err, sizeof(err));
	unit_check(rc == -1, __FILE__, line, "from_json(%s) returned %d",
		   json, rc);
	unit_check(!strcmp(err, want), __FILE__, line,
		   "error \"%s\", want \"%s\"", err, want);
	unit_check(cfg.kernel == NULL, __FILE__, line,
		   "config not reset after an error");
	domcfg_free(&cfg);
	json_decref(obj);
}
#define JSON_ERR(json, want) json_err_at(__LINE__, json, want)

/* domcfg_from_json(@json) must succeed, into @cfg. */
static inline int json_ok_at(int line, const char *json, struct domcfg *cfg)
{
	char err[512] = "";
	json_error_t jerr;
	json_t *obj = json_loads(json, 0, &jerr);
	int rc;

	unit_check(obj != NULL, __FILE__, line, "bad test JSON: %s",
		   jerr.text);
	rc = domcfg_from_json(obj, cfg, err, sizeof(err));
	unit_check(rc == 0, __FILE__, line, "from_json(%s): %s", json, err);
	json_decref(obj);
	return rc;
}
#define JSON_OK(json, cfg) json_ok_at(__LINE__, json, cfg)

#endif
