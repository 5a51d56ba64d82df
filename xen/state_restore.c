/*
 * Building a domain from the state stream.  Records are applied as they
 * arrive into a domain that is not listed and not running; any error
 * discards it, so a bad stream never touches the daemon's other domains.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "memory.h"
#include "state.h"

#define VCPU_NEED ((1u << (REC_VCPU_REGS - 0x10)) | \
		   (1u << (REC_VCPU_SREGS - 0x10)))

struct restore {
	struct stream_reader r;
	struct domain *dom;
	uint8_t *pages;			/* one decoded batch */
	uint32_t *vcpu_seen;		/* bit per vCPU record type */
	unsigned devices_seen;		/* bit per device type */
	char *err;
	size_t errlen;
};

#define RFAIL(x, ...) do { \
	snprintf((x)->err, (x)->errlen, __VA_ARGS__); \
	return -1; \
} while (0)

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
	return 0;
}

/* DOMAIN_CONFIG then MEMORY_LAYOUT, and the domain shell from them. */
static int read_prologue(struct restore *x, const struct restore_opts *o,
			 int *code)
{
	struct rec_memory_layout l;
	struct domcfg cfg;
	json_error_t jerr;
	json_t *j;
	const char *name;
	int ret = -1;

	*code = -EINVAL;
	if (next_expect(x, REC_DOMAIN_CONFIG) < 0)
		return -1;
	j = json_loadb((const char *)x->r.body, x->r.rec.length, 0, &jerr);
	domcfg_init(&cfg);
	if (!j || domcfg_from_json(j, &cfg, x->err, x->errlen) < 0) {
		if (!j)
			snprintf(x->err, x->errlen, "DOMAIN_CONFIG: %s", jerr.text);
		goto out;
	}
	name = o->rename ? o->rename : json_string_value(json_object_get(j, "name"));
	if (!name)
		name = cfg.name;
	if (next_expect(x, REC_MEMORY_LAYOUT) < 0)
		goto out;
	if (x->r.rec.length != sizeof(l)) {
		snprintf(x->err, x->errlen, "MEMORY_LAYOUT: %u bytes, expected %zu",
			 x->r.rec.length, sizeof(l));
		goto out;
	}
	memcpy(&l, x->r.body, sizeof(l));
	if (l.ram_bytes != (uint64_t)cfg.memory_mib << 20 ||
	    l.page_size != STREAM_PAGE_SIZE || l.hole_start != MEM_HOLE_START) {
		snprintf(x->err, x->errlen,
			 "MEMORY_LAYOUT: %llu bytes of RAM (page %u, hole %#llx) do not match the config's %u MiB",
			 (unsigned long long)l.ram_bytes, l.page_size,
			 (unsigned long long)l.hole_start, cfg.memory_mib);
		goto out;
	}
	*code = domain_prepare(&cfg, name, o->ram_fd, o->domid, &x->dom,
			       x->err, x->errlen);
	if (*code)
		goto out;
	*code = -EINVAL;
	ret = 0;
out:
	json_decref(j);
	domcfg_free(&cfg);
	return ret;
}

static int load_pages(struct restore *x)
{
	const uint64_t *pfns;
	unsigned n, i;

	if (stream_decode_pages(&x->r, &pfns, &n, x->pages,
				STREAM_BATCH_PAGES * STREAM_PAGE_SIZE) < 0)
		RFAIL(x, "%s", x->r.err);
	for (i = 0; i < n; i++) {
		uint64_t pfn;
		void *dst;

		memcpy(&pfn, &pfns[i], sizeof(pfn));
		dst = pfn < (1ULL << 52) ?
		      gpa_to_hva(&x->dom->mem, pfn * STREAM_PAGE_SIZE,
				 STREAM_PAGE_SIZE) : NULL;
		if (!dst)
			RFAIL(x, "offset %llu: page %#llx is outside the domain's %u MiB of RAM",
			      (unsigned long long)x->r.rec_offset,
			      (unsigned long long)pfn,
			      x->dom->cfg.memory_mib);
		memcpy(dst, x->pages + (size_t)i * STREAM_PAGE_SIZE,
		       STREAM_PAGE_SIZE);
	}
	return 0;
}

static int load_vcpu(struct restore *x)
{
	struct rec_vcpu_head h;
	uint32_t type = x->r.rec.type;
	char why[256];

	if (x->r.rec.length < sizeof(h))
		RFAIL(x, "offset %llu: %s record too short",
		      (unsigned long long)x->r.rec_offset, rec_type_name(type));
	memcpy(&h, x->r.body, sizeof(h));
	if (h.vcpu >= x->dom->nr_vcpus || h.size != x->r.rec.length - sizeof(h))
		RFAIL(x, "offset %llu: %s for vCPU %u of %u, %u bytes in a %u-byte record",
		      (unsigned long long)x->r.rec_offset, rec_type_name(type),
		      h.vcpu, x->dom->nr_vcpus, h.size, x->r.rec.length);
	if (vcpu_state_load(&x->dom->vcpus[h.vcpu], type, x->r.body,
			    x->r.rec.length, why, sizeof(why)) < 0)
		RFAIL(x, "offset %llu: vCPU %u: %s",
		      (unsigned long long)x->r.rec_offset, h.vcpu, why);
	x->vcpu_seen[h.vcpu] |= 1u << (type - 0x10);
	return 0;
}

static int load_console(struct restore *x)
{
	uint64_t total;
	size_t n = x->r.rec.length;

	if (n < sizeof(total))
		RFAIL(x, "offset %llu: CONSOLE_HISTORY too short",
		      (unsigned long long)x->r.rec_offset);
	memcpy(&total, x->r.body, sizeof(total));
	n -= sizeof(total);
	if (total < n)
		RFAIL(x, "offset %llu: CONSOLE_HISTORY holds more than its total",
		      (unsigned long long)x->r.rec_offset);
	ring_restore(&x->dom->console, total, x->r.body + sizeof(total), n);
	return 0;
}

static int load_record(struct restore *x)
{
	uint32_t type = x->r.rec.type;
	char why[256];
	int ret;

	if (type == REC_PAGE_BATCH)
		return load_pages(x);
	if (type >= REC_VCPU_REGS && type <= REC_VCPU_DEBUGREGS)
		return load_vcpu(x);
	if (type >= REC_VM_IRQCHIP && type <= REC_VM_CLOCK) {
		if (vm_state_load(x->dom, type, x->r.body, x->r.rec.length,
				  why, sizeof(why)) < 0)
			RFAIL(x, "offset %llu: %s",
			      (unsigned long long)x->r.rec_offset, why);
		return 0;
	}
	if (type == REC_CONSOLE_HISTORY)
		return load_console(x);
	ret = devices_load(x->dom, type, x->r.body, x->r.rec.length, why,
			   sizeof(why));
	if (ret < 0)
		RFAIL(x, "offset %llu: %s", (unsigned long long)x->r.rec_offset,
		      why);
	if (ret > 0) {
		unsigned bit = devices_index(type);

		if (x->devices_seen & (1u << bit))
			RFAIL(x, "offset %llu: second %s record",
			      (unsigned long long)x->r.rec_offset,
			      rec_type_name(type));
		x->devices_seen |= 1u << bit;
		return 0;
	}
	if (x->r.rec.flags & REC_F_OPTIONAL)
		return 0;		/* known to the format, not to us */
	RFAIL(x, "offset %llu: %s record out of place",
	      (unsigned long long)x->r.rec_offset,
	      rec_type_name(type) ?: "unknown");
}

static int check_complete(struct restore *x)
{
	unsigned i, nr_devices = 0;

	for (i = 0; i < x->dom->nr_vcpus; i++)
		if ((x->vcpu_seen[i] & VCPU_NEED) != VCPU_NEED)
			RFAIL(x, "stream ends without the registers of vCPU %u",
			      i);
	while (device_type_name(nr_devices))
		nr_devices++;
	for (i = 0; i < nr_devices; i++)
		if (!(x->devices_seen & (1u << i)))
			RFAIL(x, "stream has no state for device %s",
			      device_type_name(i));
	return 0;
}

int state_restore_domain(struct stream_reader *r,
			 const struct restore_opts *o, struct domain **out,
			 char *err, size_t errlen)
{
	struct restore x = { .err = err, .errlen = errlen };
	int code = -EINVAL, got;

	x.r = *r;
	if (read_prologue(&x, o, &code) < 0)
		goto out;
	x.pages = malloc(STREAM_BATCH_PAGES * STREAM_PAGE_SIZE);
	x.vcpu_seen = calloc(x.dom->nr_vcpus, sizeof(*x.vcpu_seen));
	if (!x.pages || !x.vcpu_seen) {
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
	if (check_complete(&x) < 0)
		goto out;
	code = o->no_start ? 0 : domain_commit(x.dom, o->paused, err, errlen);
	if (!code) {
		*out = x.dom;
		x.dom = NULL;
	}
out:
	if (x.dom)
		domain_discard(x.dom);
	free(x.pages);
	free(x.vcpu_seen);
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
