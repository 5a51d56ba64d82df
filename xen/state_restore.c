/*
 * Building a domain from the state stream.  Records are applied as they
 * arrive into a domain that is not listed and not running; any error
 * discards it, so a bad stream never touches the daemon's other domains.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpuid.h"
#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "memory.h"
#include "pagepipe.h"
#include "rec_table.h"
#include "state.h"

struct state_restoring {
	struct stream_reader *r;
	struct stream_check check;	/* the record table's checks */
	struct domain *dom;
	/* Both made at the first PAGE_BATCH: a live update's stream has
	 * none, and starting (then joining) threads and mapping a batch
	 * buffer per domain would cost its blackout for nothing. */
	uint8_t *pages;			/* one decoded batch */
	struct page_store *store;	/* the storer threads, or NULL */
	bool pages_ready;		/* the two above were tried */
	uint32_t refuse_type;		/* fault injection: refuse it */
	char *err;
	size_t errlen;
};

#define RFAIL(x, ...) do { \
	snprintf((x)->err, (x)->errlen, __VA_ARGS__); \
	return -1; \
} while (0)

static const char *offset_of(struct state_restoring *x, char *buf, size_t len)
{
	snprintf(buf, len, "offset %llu", (unsigned long long)x->r->rec_offset);
	return buf;
}

/* The record table's checks of the current record, before any loading. */
static int check(struct state_restoring *x)
{
	if (check_record(&x->check, x->r->rec_offset, &x->r->rec,
			 x->r->body) < 0)
		RFAIL(x, "%s", x->check.err);
	return 0;
}

static int next_expect(struct state_restoring *x, uint32_t type)
{
	int got = stream_next(x->r);

	if (got < 0)
		RFAIL(x, "%s", x->r->err);
	if (got == 0 || x->r->rec.type != type)
		RFAIL(x, "offset %llu: expected a %s record, found %s",
		      (unsigned long long)x->r->rec_offset, rec_type_name(type),
		      got ? (rec_type_name(x->r->rec.type) ?: "an unknown one")
			  : "END");
	return check(x);
}

/* DOMAIN_CONFIG then MEMORY_LAYOUT, and the domain shell from them. */
static int read_prologue(struct state_restoring *x, const struct restore_opts *o)
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
static int load_cpuid(struct state_restoring *x, const struct rec_desc *d)
{
	char why[256], at[40];

	if (cpuid_load(x->dom, x->r->body, x->r->rec.length, why,
		       sizeof(why)) < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	return 0;
}

/* The page pipeline's view of the restoring domain (pagepipe.h). */
static int target_check(void *opaque, const uint64_t *pfns, unsigned n)
{
	struct state_restoring *x = opaque;

	return check_pages(&x->check, x->r->rec_offset, pfns, n);
}

static uint8_t *target_map(void *opaque, uint64_t pfn)
{
	struct state_restoring *x = opaque;

	/* check_pages() saw it is RAM. */
	return gpa_to_hva(&x->dom->mem, pfn * STREAM_PAGE_SIZE,
			  STREAM_PAGE_SIZE);
}

/*
 * Pages written into the RAM memfd rather than through the mapping: a
 * page not allocated yet is allocated by the write itself, not by a page
 * fault, and not zeroed first (docs/page-pipeline.md, "Reading").
 */
static int target_store(void *opaque, uint8_t *hva, const void *src,
			size_t len)
{
	struct state_restoring *x = opaque;
	struct guest_mem *mem = &x->dom->mem;
	off_t at = hva - mem->base;
	const uint8_t *p = src;
	ssize_t n;

	while (len) {
		n = pwrite(mem->fd, p, len, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n < 0 ? errno : ENOSPC;
			return -1;
		}
		p += n;
		at += n;
		len -= n;
	}
	return 0;
}

/*
 * At the first PAGE_BATCH: the batch buffer, and the storer threads, as
 * many as the CPUs this thread may use (at most PAGE_STORE_MAX_THREADS);
 * without them (none could be started) pages are stored by this thread.
 */
static int prepare_pages(struct state_restoring *x)
{
	struct page_target t = { target_check, target_map, x, target_store };

	if (x->pages_ready)
		return 0;
	x->pages_ready = true;
	x->pages = malloc(STREAM_BATCH_PAGES * STREAM_PAGE_SIZE);
	if (!x->pages)
		RFAIL(x, "out of memory");
	x->store = page_store_open(&t, state_default_workers());
	return 0;
}

/*
 * A PAGE_BATCH whose record header alone was read: checked against the
 * record order, then its pages read (raw ones straight into RAM).
 */
static int load_pages(struct state_restoring *x)
{
	struct page_target t = { target_check, target_map, x, target_store };
	bool t_failed;
	int ret;

	if (check_record(&x->check, x->r->rec_offset, &x->r->rec, NULL) < 0)
		RFAIL(x, "%s", x->check.err);
	if (prepare_pages(x) < 0)
		return -1;
	if (x->store)
		ret = page_batch_read_queued(x->r, x->store, &t_failed);
	else
		ret = page_batch_read(x->r, &t, x->pages, &t_failed);
	if (ret < 0)
		RFAIL(x, "%s", t_failed ? x->check.err : x->r->err);
	return 0;
}

/* Every page read so far in RAM: before anything else reads it. */
static int pages_stored(struct state_restoring *x)
{
	if (x->store && page_store_drain(x->store, x->err, x->errlen) < 0)
		return -1;
	return 0;
}

static int load_vcpu(struct state_restoring *x, const struct rec_desc *d)
{
	struct rec_vcpu_head h;
	char why[256], at[40];

	memcpy(&h, x->r->body, sizeof(h));
	if (vcpu_state_load(&x->dom->vcpus[h.vcpu], d->type, x->r->body,
			    x->r->rec.length, why, sizeof(why)) < 0)
		RFAIL(x, "%s: vCPU %u: %s", offset_of(x, at, sizeof(at)),
		      h.vcpu, why);
	return 0;
}

static int load_vm(struct state_restoring *x, const struct rec_desc *d)
{
	char why[256], at[40];

	if (vm_state_load(x->dom, d->type, x->r->body, x->r->rec.length, why,
			  sizeof(why)) < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	return 0;
}

static int load_device(struct state_restoring *x, const struct rec_desc *d)
{
	char why[256], at[40];
	int ret;

	ret = devices_load(x->dom, d->type, x->r->body, x->r->rec.length, why,
			   sizeof(why));
	if (ret < 0)
		RFAIL(x, "%s: %s", offset_of(x, at, sizeof(at)), why);
	/* Written by a device this build lacks: skip it if optional. */
	if (ret == 0 && !(x->r->rec.flags & REC_F_OPTIONAL))
		RFAIL(x, "%s: %s: this build has no such device",
		      offset_of(x, at, sizeof(at)), d->name);
	return 0;
}

static int load_console(struct state_restoring *x, const struct rec_desc *d)
{
	struct rec_console_head h;
	size_t n = x->r->rec.length - sizeof(h);

	memcpy(&h, x->r->body, sizeof(h));
	ring_restore(&x->dom->console, h.total, x->r->body + sizeof(h), n);
	return 0;
}

/* What loads each part of a domain's stream into the domain. */
static int (*const loaders[])(struct state_restoring *x, const struct rec_desc *d) = {
	[PH_CPUID] = load_cpuid,
	[PH_VCPUS] = load_vcpu,
	[PH_VM] = load_vm,
	[PH_DEVICES] = load_device,
	[PH_CONSOLE] = load_console,
};

#define NR_LOADERS (sizeof(loaders) / sizeof(loaders[0]))

static int load_record(struct state_restoring *x)
{
	const struct rec_desc *d = rec_desc(x->r->rec.type);

	if (check(x) < 0)
		return -1;
	if (!d || d->phase >= NR_LOADERS || !loaders[d->phase])
		return 0;	/* optional, and the check let it pass */
	return loaders[d->phase](x, d);
}

#define GOT_PAGES	2

/*
 * The next record: 1 read whole, GOT_PAGES a PAGE_BATCH of which only
 * the record header is read (load_pages() reads the rest), 0 END, -1.
 */
static int next_record(struct state_restoring *x)
{
	if (stream_next_head(x->r) < 0)
		return -1;
	if (x->r->rec.type == REC_PAGE_BATCH)
		return GOT_PAGES;
	return stream_read_rest(x->r, 0);
}

/* Load records into x->dom up to DOMAIN_END (or END). */
static int load_until_end(struct state_restoring *x)
{
	int got;

	while ((got = next_record(x)) > 0 &&
	       x->r->rec.type != REC_DOMAIN_END) {
		if (x->refuse_type && x->r->rec.type == x->refuse_type) {
			char at[40];

			RFAIL(x, "%s: %s: KVM refused it (injected failure in "
			      "phase record)",
			      offset_of(x, at, sizeof(at)),
			      rec_type_name(x->refuse_type));
		}
		if (got != GOT_PAGES && pages_stored(x) < 0)
			return -1;
		if ((got == GOT_PAGES ? load_pages(x) : load_record(x)) < 0)
			return -1;
	}
	if (pages_stored(x) < 0)
		return -1;
	if (got < 0)
		RFAIL(x, "%s", x->r->err);
	return 0;
}

static void set_reader(struct state_restoring *x, struct stream_reader *r,
		       char *err, size_t errlen)
{
	x->r = r;
	x->err = err;
	x->errlen = errlen;
}

int state_restore_begin(struct stream_reader *r, const struct restore_opts *o,
			struct state_restoring **out, char *err, size_t errlen)
{
	struct state_restoring *x = calloc(1, sizeof(*x));
	int code;

	if (!x) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	set_reader(x, r, err, errlen);
	x->refuse_type = o->refuse_type;
	check_init(&x->check);
	code = read_prologue(x, o);
	if (code)
		goto fail;
	if (o->prepared)
		o->prepared(x->dom, o->opaque);
	code = -EINVAL;
	if (load_until_end(x) < 0)
		goto fail;
	*out = x;
	return 0;
fail:
	state_restore_abort(x);
	return code;
}

int state_restore_finish(struct stream_reader *r, struct state_restoring *x,
			 char *err, size_t errlen)
{
	set_reader(x, r, err, errlen);
	if (load_until_end(x) < 0)
		return -EINVAL;
	if (check_end(&x->check, x->r->rec_offset) < 0) {
		snprintf(err, errlen, "%s", x->check.err);
		return -EINVAL;
	}
	return 0;
}

struct domain *state_restore_domain_of(struct state_restoring *x)
{
	return x->dom;
}

struct domain *state_restore_done(struct state_restoring *x)
{
	struct domain *dom = x->dom;

	x->dom = NULL;
	state_restore_abort(x);
	return dom;
}

void state_restore_abort(struct state_restoring *x)
{
	if (!x)
		return;
	page_store_close(x->store);	/* it writes into x->dom's RAM */
	if (x->dom)
		domain_discard(x->dom);
	free(x->pages);
	check_free(&x->check);
	free(x);
}

int state_restore_domain(struct stream_reader *r,
			 const struct restore_opts *o, struct domain **out,
			 char *err, size_t errlen)
{
	struct state_restoring *x;
	int code;

	/* A domain's records are one part: begin reads them all. */
	code = state_restore_begin(r, o, &x, err, errlen);
	if (code)
		return code;
	if (check_end(&x->check, x->r->rec_offset) < 0) {
		snprintf(err, errlen, "%s", x->check.err);
		state_restore_abort(x);
		return -EINVAL;
	}
	code = o->no_start ? 0 : domain_commit(x->dom, o->paused, err, errlen);
	if (code) {
		state_restore_abort(x);
		return code;
	}
	*out = state_restore_done(x);
	return 0;
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
