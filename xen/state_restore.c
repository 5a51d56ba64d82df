/*
 * Building a domain from the state stream.  Records are applied as they
 * arrive into a domain that is not listed and not running; any error
 * discards it, so a bad stream never touches the daemon's other domains.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpuid.h"
#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "memory.h"
#include "rec_table.h"
#include "state.h"

struct restore {
	struct stream_reader r;
	struct stream_check check;	/* the record table's checks */
	struct domain *dom;
	uint8_t *pages;			/* one decoded batch */
	char *err;
	size_t errlen;
};

#define RFAIL(x, ...) do { \
	snprintf((x)->err, (x)->errlen, __VA_ARGS__); \
	return -1; \
} while (0)

static const char *offset_of(struct restore *x, char *buf, size_t len)
{
	snprintf(buf, len, "offset %llu", (unsigned long long)x->r.rec_offset);
	return buf;
}

/* The record table's checks of the current record, before any loading. */
static int check(struct restore *x)
{
	if (check_record(&x->check, x->r.rec_offset, &x->r.rec,
			 x->r.body) < 0)
		RFAIL(x, "%s", x->check.err);
	return 0;
}

static int next_expect(struct restore *x, uint32_t type)
{
	int got = stream_next(&x->r);

	if (got < 0)
		RFAIL(x, "%s", x->r.err);
	if (got == 0 || x->r.rec.type != type)
		RFAIL(x, "offset %llu: expected a %s record, found %s",
		      (unsigned long long)x->r.rec_offset, rec_type_name(type),
		      got ? (rec_type_name(x->r.rec.type) ?: "an unknown one")
			  : "END");
	return check(x);
}

/* DOMAIN_CONFIG then MEMORY_LAYOUT, and the domain shell from them. */
static int read_prologue(struct restore *x, const struct restore_opts *o)
{
	const char *name;

	if (next_expect(x, REC_DOMAIN_CONFIG) < 0 ||
	    next_expect(x, REC_MEMORY_LAYOUT) < 0)
		return -EINVAL;
	int code;

	name = o->rename ? o->rename : x->check.cfg.name;
	code = domain_prepare(&x->check.cfg, name, o->ram_fd, o->inherit_fds,
			      o->domid, &x->dom, x->err, x->errlen);
	if (!code)
		x->dom->restore_clock = o->clock;
	return code;
}

/* Refused here when this host cannot offer it: nothing has run yet. */
static int load_cpuid(struct restore *x, const struct rec_desc *d)
{
	char why[256], at[40];

	if (cpuid_load(x->dom, x->r.body, x->r.rec.length, why,
		       sizeof(why)) < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	return 0;
}

static int load_pages(struct restore *x, const struct rec_desc *d)
{
	const uint64_t *pfns;
	unsigned n, i;

	if (stream_decode_pages(&x->r, &pfns, &n, x->pages,
				STREAM_BATCH_PAGES * STREAM_PAGE_SIZE) < 0)
		RFAIL(x, "%s", x->r.err);
	if (check_pages(&x->check, x->r.rec_offset, pfns, n) < 0)
		RFAIL(x, "%s", x->check.err);
	for (i = 0; i < n; i++) {
		uint64_t pfn;
		void *dst;

		memcpy(&pfn, &pfns[i], sizeof(pfn));
		dst = gpa_to_hva(&x->dom->mem, pfn * STREAM_PAGE_SIZE,
				 STREAM_PAGE_SIZE);
		if (!dst)	/* check_pages() saw it is RAM */
			RFAIL(x, "offset %llu: page %#llx has no memory",
			      (unsigned long long)x->r.rec_offset,
			      (unsigned long long)pfn);
		memcpy(dst, x->pages + (size_t)i * STREAM_PAGE_SIZE,
		       STREAM_PAGE_SIZE);
	}
	return 0;
}

static int load_vcpu(struct restore *x, const struct rec_desc *d)
{
	struct rec_vcpu_head h;
	char why[256], at[40];

	memcpy(&h, x->r.body, sizeof(h));
	if (vcpu_state_load(&x->dom->vcpus[h.vcpu], d->type, x->r.body,
			    x->r.rec.length, why, sizeof(why)) < 0)
		RFAIL(x, "%s: vCPU %u: %s", offset_of(x, at, sizeof(at)),
		      h.vcpu, why);
	return 0;
}

static int load_vm(struct restore *x, const struct rec_desc *d)
{
	char why[256], at[40];

	if (vm_state_load(x->dom, d->type, x->r.body, x->r.rec.length, why,
			  sizeof(why)) < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	return 0;
}

static int load_device(struct restore *x, const struct rec_desc *d)
{
	char why[256], at[40];
	int ret;

	ret = devices_load(x->dom, d->type, x->r.body, x->r.rec.length, why,
			   sizeof(why));
	if (ret < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	/* Written by a device this build lacks: skip it if optional. */
	if (ret == 0 && !(x->r.rec.flags & REC_F_OPTIONAL))
		RFAIL(x, "%s: %s: this build has no such device",
		      offset_of(x, at, sizeof(at)), d->name);
	return 0;
}

static int load_console(struct restore *x, const struct rec_desc *d)
{
	struct rec_console_head h;
	size_t n = x->r.rec.length - sizeof(h);

	memcpy(&h, x->r.body, sizeof(h));
	ring_restore(&x->dom->console, h.total, x->r.body + sizeof(h), n);
	return 0;
}

/* What loads each part of a domain's stream into the domain. */
static int (*const loaders[])(struct restore *x, const struct rec_desc *d) = {
	[PH_CPUID] = load_cpuid,
	[PH_PAGES] = load_pages,
	[PH_VCPUS] = load_vcpu,
	[PH_VM] = load_vm,
	[PH_DEVICES] = load_device,
	[PH_CONSOLE] = load_console,
};

#define NR_LOADERS (sizeof(loaders) / sizeof(loaders[0]))

static int load_record(struct restore *x)
{
	const struct rec_desc *d = rec_desc(x->r.rec.type);

	if (check(x) < 0)
		return -1;
	if (!d || d->phase >= NR_LOADERS || !loaders[d->phase])
		return 0;	/* optional, and the check let it pass */
	return loaders[d->phase](x, d);
}

int state_restore_domain(struct stream_reader *r,
			 const struct restore_opts *o, struct domain **out,
			 char *err, size_t errlen)
{
	struct restore x = { .err = err, .errlen = errlen };
	int code, got;

	x.r = *r;
	check_init(&x.check);
	code = read_prologue(&x, o);
	if (code)
		goto out;
	code = -EINVAL;
	x.pages = malloc(STREAM_BATCH_PAGES * STREAM_PAGE_SIZE);
	if (!x.pages) {
		snprintf(err, errlen, "out of memory");
		code = -ENOMEM;
		goto out;
	}
	while ((got = stream_next(&x.r)) > 0 &&
	       x.r.rec.type != REC_DOMAIN_END)
		if (load_record(&x) < 0)
			goto out;
	if (got < 0) {
		snprintf(err, errlen, "%s", x.r.err);
		goto out;
	}
	if (check_end(&x.check, x.r.rec_offset) < 0) {
		snprintf(err, errlen, "%s", x.check.err);
		goto out;
	}
	code = o->no_start ? 0 : domain_commit(x.dom, o->paused, err, errlen);
	if (!code) {
		*out = x.dom;
		x.dom = NULL;
	}
out:
	if (x.dom)
		domain_discard(x.dom);
	free(x.pages);
	check_free(&x.check);
	*r = x.r;		/* the reader moved on (and may own a new body) */
	return code;
}

int state_restore(struct stream_source src, const struct restore_opts *o,
		  struct domain **out, char *err, size_t errlen)
{
	struct restore_opts prepared;
	struct stream_reader r;
	struct domain *dom;
	uint8_t extra;
	int code;

	if (stream_reader_open(&r, src) < 0) {
		snprintf(err, errlen, "%s", r.err);
		stream_reader_close(&r);
		return -EINVAL;
	}
	/* Build it stopped; it starts only once the whole stream checked out. */
	prepared = *o;
	prepared.no_start = true;
	code = state_restore_domain(&r, &prepared, &dom, err, errlen);
	if (code)
		goto out;
	if (!r.ended) {
		snprintf(err, errlen, "offset %llu: records after the domain's end",
			 (unsigned long long)r.rec_offset);
		code = -EINVAL;
	} else if (src.read(src.opaque, &extra, 1) == 0) {
		snprintf(err, errlen, "offset %llu: data after the END record",
			 (unsigned long long)r.offset);
		code = -EINVAL;
	} else if (!o->no_start) {
		code = domain_commit(dom, o->paused, err, errlen);
	}
	if (code)
		domain_discard(dom);
	else
		*out = dom;
out:
	stream_reader_close(&r);
	return code;
}
