/*
 * Code ranges replaced in place (docs/livepatch.md, "Ranges"): the
 * entries of .livepatch.ranges (struct livepatch_range) found in the
 * running image and checked, and the bytes apply will write.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "livepatch/internal.h"

int lp_ranges_read(struct payload *p, const void *sec, size_t size,
		   struct lp_err *e)
{
	const struct livepatch_range *r = sec;
	unsigned i;

	if (p->ranges)
		return lp_fail(e, CTL_EINVAL, "%s", "two .livepatch.ranges "
			       "sections");
	if (!size || size % sizeof(*r))
		return lp_fail(e, CTL_EINVAL, "%s", ".livepatch.ranges: bad "
			       "size (not an array of struct livepatch_range)");
	p->nranges = size / sizeof(*r);
	p->ranges = calloc(p->nranges, sizeof(*p->ranges));
	if (!p->ranges)
		return lp_fail(e, CTL_ENORES, "%s", "out of memory");
	for (i = 0; i < p->nranges; i++)
		p->ranges[i].r = &r[i];
	return 0;
}

static bool in_text(const struct payload *p, uint64_t a)
{
	return a >= (uint64_t)p->mem && a < (uint64_t)p->mem + p->text_size;
}

static bool fits32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

/* The function the range lies in, and where the range is. */
static int locate(const struct payload *p, struct lp_range *lr, unsigned i,
		  struct lp_err *e)
{
	const struct livepatch_range *r = lr->r;
	const char *name = r->name;
	const struct img_sym *is;
	uint64_t end = (uint64_t)p->mem + p->mem_size;
	int ret;

	if ((uint64_t)name < (uint64_t)p->mem || (uint64_t)name >= end ||
	    !memchr(name, 0, end - (uint64_t)name))
		return lp_fail(e, CTL_EINVAL, "range %u: bad name", i);
	snprintf(lr->label, sizeof(lr->label), "%s+%#x", name, r->offset);
	if (r->flags & ~LIVEPATCH_RANGE_JMP || r->reserved)
		return lp_fail(e, CTL_EINVAL, "%s: unknown flags", lr->label);
	if (!r->len || r->len > LIVEPATCH_RANGE_MAX ||
	    ((r->flags & LIVEPATCH_RANGE_JMP) && r->len < LIVEPATCH_JMP_SIZE))
		return lp_fail(e, CTL_EINVAL, "%s: %u bytes (1-%d, at least "
			       "%d with a jump)", lr->label, r->len,
			       LIVEPATCH_RANGE_MAX, LIVEPATCH_JMP_SIZE);
	ret = lp_image_lookup(name, &is);
	if (ret)
		return lp_fail(e, CTL_EINVAL, "%s: %s in the daemon", lr->label,
			       ret == -2 ? "ambiguous" : "no such function");
	if (is->type != STT_FUNC || is->addr < lp_img.text_lo ||
	    is->addr + is->size > lp_img.text_hi)
		return lp_fail(e, CTL_EINVAL, "%s: %s is not a function in the "
			       "daemon's text", lr->label, name);
	if ((uint64_t)r->offset + r->len > is->size)
		return lp_fail(e, CTL_EINVAL, "%s: %u bytes run past the end of "
			       "%s (%" PRIu64 " bytes)", lr->label, r->len, name,
			       (uint64_t)is->size);
	lr->addr = (uint8_t *)(uintptr_t)(is->addr + r->offset);
	lr->len = r->len;
	return 0;
}

/* What apply writes: new_bytes, or a jmp to payload code and the rest. */
static int make_bytes(const struct payload *p, struct lp_range *lr,
		      struct lp_err *e)
{
	const struct livepatch_range *r = lr->r;
	int64_t rel = (int64_t)(uint64_t)r->new_addr -
		      (int64_t)((uint64_t)lr->addr + LIVEPATCH_JMP_SIZE);
	int32_t rel32 = (int32_t)rel;

	memcpy(lr->bytes, r->new_bytes, lr->len);
	if (!(r->flags & LIVEPATCH_RANGE_JMP))
		return 0;
	if (!in_text(p, (uint64_t)r->new_addr))
		return lp_fail(e, CTL_EINVAL, "%s: its jump does not go to the "
			       "payload's code", lr->label);
	if (!fits32(rel))
		return lp_fail(e, CTL_EINVAL, "%s: the payload's code is out "
			       "of jmp rel32 range", lr->label);
	lr->bytes[0] = 0xe9;
	memcpy(lr->bytes + 1, &rel32, 4);
	return 0;
}

static bool overlap(const uint8_t *a, uint32_t al, const uint8_t *b,
		    uint32_t bl)
{
	return a < b + bl && b < a + al;
}

/* Within one payload no two writes may touch the same byte. */
static int check_overlaps(const struct payload *p, unsigned i,
			  struct lp_err *e)
{
	const struct lp_range *lr = &p->ranges[i];
	struct lp_span s;
	unsigned k;

	for (k = 0; k < p->nfuncs + i; k++) {
		lp_span_at(p, k, &s);
		if (overlap(lr->addr, lr->len, s.addr, s.len))
			return lp_fail(e, CTL_EINVAL, "%s overlaps %s in the "
				       "same payload", lr->label, s.what);
	}
	return 0;
}

int lp_ranges_resolve(struct payload *p, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nranges; i++) {
		struct lp_range *lr = &p->ranges[i];

		if (locate(p, lr, i, e) || make_bytes(p, lr, e) ||
		    check_overlaps(p, i, e))
			return -1;
	}
	return 0;
}

json_t *lp_ranges_json(const struct payload *p)
{
	json_t *arr = json_array();
	unsigned i;

	for (i = 0; i < p->nranges; i++) {
		const struct lp_range *lr = &p->ranges[i];

		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:i, s:i, s:b}", "range", lr->label,
			"function", lr->r->name, "offset", lr->r->offset,
			"len", lr->len,
			"jump", !!(lr->r->flags & LIVEPATCH_RANGE_JMP)));
	}
	return arr;
}
