/*
 * The payloads loaded and the stack of applied ones, with the checks
 * that decide what may go on top of it.
 */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "livepatch/internal.h"
#include "log.h"

/* ------------------------------------------------------------ errors */

int lp_fail(struct lp_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return -1;
}

struct payload *lp_loaded[LP_MAX_PAYLOADS];	/* upload order */
unsigned lp_nloaded;
struct payload *lp_applied[LP_MAX_PAYLOADS];	/* bottom first */
unsigned lp_napplied;
bool lp_membarrier_ok;

struct payload *lp_find_payload(const char *name)
{
	unsigned i;

	for (i = 0; i < lp_nloaded; i++)
		if (!strcmp(lp_loaded[i]->name, name))
			return lp_loaded[i];
	return NULL;
}

void lp_hex(char *out, const uint8_t *b, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

/* ------------------------------------------------------------ checks */

bool lp_build_id_eq(const uint8_t *a, unsigned al, const uint8_t *b,
			unsigned bl)
{
	return al == bl && !memcmp(a, b, al);
}

/* What the next payload applied must depend on: the top, or the daemon. */
static unsigned top_build_id(uint8_t *buf)
{
	if (lp_napplied) {
		memcpy(buf, lp_applied[lp_napplied - 1]->id,
		       lp_applied[lp_napplied - 1]->id_len);
		return lp_applied[lp_napplied - 1]->id_len;
	}
	return build_id_bytes(buf, LP_BUILD_ID_MAX);
}

int lp_check_depends(const struct payload *p, bool on_daemon,
			 struct lp_err *e)
{
	uint8_t want[LP_BUILD_ID_MAX];
	unsigned wl = on_daemon ? build_id_bytes(want, sizeof(want)) :
		      top_build_id(want);
	char h1[2 * LP_BUILD_ID_MAX + 1], h2[2 * LP_BUILD_ID_MAX + 1];

	if (lp_build_id_eq(p->dep, p->dep_len, want, wl))
		return 0;
	lp_hex(h1, p->dep, p->dep_len);
	lp_hex(h2, want, wl);
	return lp_fail(e, CTL_EINVAL, "build-id mismatch: %s depends on %s, "
		    "but %s is %s", p->name, h1, on_daemon || !lp_napplied ?
		    "the running daemon" : lp_applied[lp_napplied - 1]->name, h2);
}

int lp_check_expect(const struct payload *p, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nfuncs; i++) {
		const struct lp_func *lf = &p->funcs[i];

		if (lf->f->expect_len &&
		    memcmp(lf->old, lf->f->expect, lf->f->expect_len))
			return lp_fail(e, CTL_EINVAL, "%s: expected bytes "
				    "differ: the running code is not what "
				    "the payload was built against", lf->name);
	}
	return 0;
}
