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

unsigned lp_nspans(const struct payload *p)
{
	return p->nfuncs + p->nranges;
}

/* Span i: the function entries first, then the ranges. */
void lp_span_at(const struct payload *p, unsigned i, struct lp_span *s)
{
	if (i < p->nfuncs) {
		struct lp_func *lf = &p->funcs[i];

		*s = (struct lp_span){ lf->name, lf->old, LIVEPATCH_JMP_SIZE,
				       lf->jmp, lf->saved };
	} else {
		struct lp_range *lr = &p->ranges[i - p->nfuncs];

		*s = (struct lp_span){ lr->label, lr->addr, lr->len,
				       lr->bytes, lr->saved };
	}
}

static const uint8_t *expected(const struct payload *p, unsigned i,
			       unsigned *len)
{
	if (i < p->nfuncs) {
		*len = p->funcs[i].f->expect_len;
		return p->funcs[i].f->expect;
	}
	*len = p->ranges[i - p->nfuncs].len;
	return p->ranges[i - p->nfuncs].r->expect;
}

int lp_check_expect(const struct payload *p, struct lp_err *e)
{
	struct lp_span s;
	const uint8_t *want;
	unsigned i, n;

	for (i = 0; i < lp_nspans(p); i++) {
		lp_span_at(p, i, &s);
		want = expected(p, i, &n);
		if (n && memcmp(s.addr, want, n))
			return lp_fail(e, CTL_EINVAL, "%s: expected bytes "
				    "differ: the running code is not what "
				    "the payload was built against", s.what);
	}
	return 0;
}

/*
 * Reverting the stack top first restores, byte by byte, what the lowest
 * payload that wrote a byte found there: walk it that way and let the
 * lower payloads' saved bytes win.
 */
void lp_unpatched_bytes(const uint8_t *addr, size_t len, uint8_t *out)
{
	struct lp_span s;
	unsigned k, i;
	size_t b;

	memcpy(out, addr, len);
	for (k = lp_napplied; k-- > 0;) {
		for (i = 0; i < lp_nspans(lp_applied[k]); i++) {
			lp_span_at(lp_applied[k], i, &s);
			for (b = 0; b < len; b++)
				if (addr + b >= s.addr &&
				    addr + b < s.addr + s.len)
					out[b] = s.saved[addr + b - s.addr];
		}
	}
}

/* Against the code as it will be once the whole stack is reverted. */
int lp_check_expect_unpatched(const struct payload *p, struct lp_err *e)
{
	uint8_t now[LIVEPATCH_RANGE_MAX];
	struct lp_span s;
	const uint8_t *want;
	unsigned i, n;

	for (i = 0; i < lp_nspans(p); i++) {
		lp_span_at(p, i, &s);
		want = expected(p, i, &n);
		lp_unpatched_bytes(s.addr, n, now);
		if (n && memcmp(now, want, n))
			return lp_fail(e, CTL_EINVAL, "%s: expected bytes "
				       "differ", s.what);
	}
	return 0;
}
