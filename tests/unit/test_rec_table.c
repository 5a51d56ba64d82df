// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the record table (common/rec_table.c): a domain's stream
 * with every record the table knows round-trips through the stream
 * writer and reader and passes the checks; a record of the wrong size, an
 * unknown mandatory record, a record out of place and a missing required
 * record are refused, naming the record.  One line per failed check, then
 * "N passed, M failed"; exits 1 when anything failed.
 */
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rec_table.h"
#include "stream.h"
#include "unit.h"

#define CHECK_HAS(s, sub) \
	unit_check(strstr((s), (sub)) != NULL, __FILE__, __LINE__, \
		   "\"%s\" does not say \"%s\"", (s), (sub))

#define MAX_RECS	40
#define BODY_MAX	8192

struct rec {
	uint32_t type, flags, len;
	uint8_t body[BODY_MAX];
};

struct recs {
	unsigned n;
	struct rec r[MAX_RECS];
};

static struct rec *add(struct recs *s, uint32_t type, const void *body,
		       uint32_t len)
{
	struct rec *r = &s->r[s->n++];

	r->type = type;
	r->flags = 0;
	r->len = len;
	memset(r->body, 0, sizeof(r->body));
	if (body)
		memcpy(r->body, body, len);
	return r;
}

/* A vCPU record of vCPU 0: the head, then `size` bytes of structure. */
static void add_vcpu(struct recs *s, const struct rec_desc *d)
{
	struct rec_vcpu_head h = { .vcpu = 0, .size = d->size };
	struct rec *r = add(s, d->type, NULL, sizeof(h) + d->size);

	memcpy(r->body, &h, sizeof(h));		/* then zeroes */
	if (d->type == REC_VCPU_MSRS) {
		struct kvm_msrs m = { .nmsrs = 1 };

		h.size = sizeof(m) + sizeof(struct kvm_msr_entry);
		memcpy(r->body, &h, sizeof(h));
		memcpy(r->body + sizeof(h), &m, sizeof(m));
		r->len = sizeof(h) + h.size;
	}
}

/* A DEV_VIRTIO record of a virtio-rng at `slot` with one queue of `qsize`. */
static struct rec *add_virtio(struct recs *s, unsigned slot, unsigned qsize)
{
	struct rec_dev_virtio v = {
		.slot = slot, .device_id = 4, .nr_queues = 1,
		.msix_entries = 2, .backend_fd = -1,
	};
	struct rec_virtq q = { .size = qsize, .enabled = 1 };
	struct rec *r = add(s, REC_DEV_VIRTIO, NULL, rec_virtio_size(1, 2));

	memcpy(r->body, &v, sizeof(v));
	memcpy(r->body + sizeof(v), &q, sizeof(q));
	return r;
}

/* A CPUID record: leaf 0, leaf 1 and two subleaves of leaf 0xb. */
static struct rec *add_cpuid(struct recs *s)
{
	const struct rec_cpuid_entry e[] = {
		{ .function = 0, .eax = 0xb, .ebx = 0x68747541 },
		{ .function = 1, .ebx = 0x00010800, .ecx = 1u << 31 },
		{ .function = 0xb, .index = 0, .flags = REC_CPUID_F_INDEX,
		  .ebx = 1, .ecx = 0x100 },
		{ .function = 0xb, .index = 1, .flags = REC_CPUID_F_INDEX,
		  .ebx = 1, .ecx = 0x201 },
	};
	struct rec_cpuid h = { .nent = 4 };
	struct rec *r = add(s, REC_CPUID, NULL, rec_cpuid_size(4));

	memcpy(r->body, &h, sizeof(h));
	memcpy(r->body + sizeof(h), e, sizeof(e));
	return r;
}

static void add_fixed(struct recs *s, const struct rec_desc *d)
{
	struct rec_memory_layout l = {
		.ram_bytes = 16 << 20, .low_bytes = 16 << 20,
		.hole_start = REC_RAM_HOLE_START, .page_size = STREAM_PAGE_SIZE,
	};
	struct kvm_irqchip chip = { .chip_id = 0 };

	if (d->type == REC_MEMORY_LAYOUT)
		add(s, d->type, &l, sizeof(l));
	else if (d->type == REC_VM_IRQCHIP)
		add(s, d->type, &chip, sizeof(chip));
	else if (d->type == REC_DEV_VIRTIO)
		add_virtio(s, 25, 1);
	else if (d->type == REC_CPUID)
		add_cpuid(s);
	else
		add(s, d->type, NULL, d->size);
}

/* Every record a domain's stream may hold, in table order. */
static void valid_stream(struct recs *s)
{
	static const char cfg[] =
		"{\"name\":\"t\",\"memory\":16,\"vcpus\":1,"
		"\"kernel\":\"/boot/t.elf\"}";
	const struct rec_desc *d;
	unsigned i;

	s->n = 0;
	for (i = 0; (d = rec_desc_at(i)); i++) {
		if (d->phase >= PH_UNUSED || d->type == REC_PAGE_BATCH)
			continue;
		if (d->type == REC_DOMAIN_CONFIG)
			add(s, d->type, cfg, sizeof(cfg) - 1);
		else if (d->phase == PH_VCPUS)
			add_vcpu(s, d);
		else
			add_fixed(s, d);
	}
}

/* Check every record, then the end: 0, or -1 with the message in c. */
static int check_all(struct stream_check *c, const struct recs *s)
{
	unsigned i;
	int ret = 0;

	check_init(c);
	for (i = 0; i < s->n && !ret; i++) {
		struct rec_header rh = {
			.type = s->r[i].type, .flags = s->r[i].flags,
			.length = s->r[i].len,
		};

		ret = check_record(c, i * 64, &rh, s->r[i].body);
	}
	if (!ret)
		ret = check_end(c, s->n * 64);
	check_free(c);
	return ret;
}

static void test_round_trip(void)
{
	struct stream_writer w;
	struct stream_reader r;
	struct mem_source m;
	struct stream_check c;
	static struct recs s;
	uint8_t *data;
	unsigned i;
	off_t size;
	int fd = memfd_create("rec-table", 0), got;

	valid_stream(&s);
	CHECK(check_all(&c, &s) == 0);
	CHECK(stream_writer_open(&w, fd, STREAM_VERSION, "unit", NULL, 0) == 0);
	for (i = 0; i < s.n; i++)
		CHECK(stream_write_record(&w, s.r[i].type, 0, s.r[i].body,
					  s.r[i].len) == 0);
	CHECK(stream_writer_finish(&w) == 0);
	size = lseek(fd, 0, SEEK_END);
	data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	m = (struct mem_source){ .data = data, .len = size };
	CHECK(stream_reader_open(&r, (struct stream_source){
				 stream_mem_read, &m }) == 0);
	check_init(&c);
	for (i = 0; (got = stream_next(&r)) > 0; i++) {
		CHECK(i < s.n && r.rec.type == s.r[i].type &&
		      r.rec.length == s.r[i].len &&
		      !memcmp(r.body, s.r[i].body, s.r[i].len));
		CHECK(check_record(&c, r.rec_offset, &r.rec, r.body) == 0);
	}
	CHECK(got == 0 && i == s.n);
	CHECK(check_end(&c, r.rec_offset) == 0);
	check_free(&c);
	stream_reader_close(&r);
	munmap(data, size);
	close(fd);
}

/* Each fixed-size record one byte short, then one byte long. */
static void test_wrong_sizes(void)
{
	static struct recs s;
	struct stream_check c;
	unsigned i, tried = 0;
	int delta;

	for (delta = -1; delta <= 1; delta += 2) {
		valid_stream(&s);
		for (i = 0; i < s.n; i++) {
			const struct rec_desc *d = rec_desc(s.r[i].type);

			if (d->size_rule != RS_EXACT ||
			    (delta < 0 && !s.r[i].len))
				continue;
			valid_stream(&s);
			s.r[i].len += delta;
			CHECK(check_all(&c, &s) < 0);
			CHECK_HAS(c.err, d->name);
			tried++;
		}
	}
	CHECK(tried > 20);
}

static void test_refused_records(void)
{
	static struct recs s;
	struct stream_check c;
	struct rec *r;

	valid_stream(&s);
	add(&s, 0x7777, "x", 1);
	CHECK(check_all(&c, &s) < 0);
	CHECK_HAS(c.err, "unknown mandatory record type 0x7777");

	valid_stream(&s);
	r = add(&s, 0x7777, "x", 1);
	r->flags = REC_F_OPTIONAL;
	CHECK(check_all(&c, &s) == 0);

	valid_stream(&s);
	add(&s, REC_DOMAIN_STATUS, "{}", 2);
	CHECK(check_all(&c, &s) < 0);
	CHECK_HAS(c.err, "mandatory DOMAIN_STATUS record");

	valid_stream(&s);
	add(&s, REC_CLIENT, NULL, sizeof(struct rec_client));
	CHECK(check_all(&c, &s) < 0);
	CHECK_HAS(c.err, "CLIENT record (0x53): only live-update handover");
}

static void test_place_and_completeness(void)
{
	static struct recs s;
	struct stream_check c;
	unsigned i;

	/* A vCPU record after the device records. */
	valid_stream(&s);
	for (i = 0; s.r[i].type != REC_VCPU_REGS; i++)
		;
	s.r[s.n] = s.r[i];
	s.n++;
	CHECK(check_all(&c, &s) < 0);
	CHECK_HAS(c.err, "VCPU_REGS record after the");

	/* Each required record missing in turn. */
	for (i = 0; i < s.n; i++) {
		const struct rec_desc *d;

		valid_stream(&s);
		d = rec_desc(s.r[i].type);
		if (!(d->flags & REC_REQUIRED) || d->phase == PH_PROLOGUE)
			continue;
		memmove(&s.r[i], &s.r[i + 1], (s.n - i - 1) * sizeof(s.r[0]));
		s.n--;
		CHECK(check_all(&c, &s) < 0);
		CHECK_HAS(c.err, d->name);
		CHECK_HAS(c.err, "stream ends without");
	}

	/* A second DEV_RTC. */
	valid_stream(&s);
	for (i = 0; s.r[i].type != REC_DEV_RTC; i++)
		;
	memmove(&s.r[i + 1], &s.r[i], (s.n - i) * sizeof(s.r[0]));
	s.n++;
	CHECK(check_all(&c, &s) < 0);
	CHECK_HAS(c.err, "a second DEV_RTC record");
}

static void test_table(void)
{
	const struct rec_desc *d;
	unsigned i, j;

	for (i = 0; (d = rec_desc_at(i)); i++) {
		CHECK(rec_desc(d->type) == d);
		CHECK(!strcmp(rec_type_name(d->type), d->name));
		for (j = 0; j < i; j++)
			CHECK(rec_desc_at(j)->type != d->type);
	}
	CHECK(rec_desc(0x7777) == NULL && rec_type_name(0x7777) == NULL);
}

/* The stream with its DEV_VIRTIO record replaced by the last one added. */
static struct rec *virtio_rec(struct recs *s)
{
	unsigned i;

	valid_stream(s);
	for (i = 0; s->r[i].type != REC_DEV_VIRTIO; i++)
		;
	return &s->r[i];
}

static void expect_refused(struct recs *s, const char *why)
{
	struct stream_check c;

	CHECK(check_all(&c, s) < 0);
	CHECK_HAS(c.err, why);
}

static void test_virtio_records(void)
{
	struct stream_check c;
	struct recs s;
	struct rec *r;
	struct rec_dev_virtio v;

	/* A second device in another slot is fine, in the same one not. */
	r = virtio_rec(&s);
	memmove(r + 1, r, (&s.r[s.n] - r) * sizeof(*r));
	s.n++;
	memcpy(&v, r->body, sizeof(v));
	v.slot = 3;
	memcpy(r->body, &v, sizeof(v));
	CHECK(check_all(&c, &s) == 0);
	v.slot = 25;
	memcpy(r->body, &v, sizeof(v));
	expect_refused(&s, "a second DEV_VIRTIO record for slot 25");

	r = virtio_rec(&s);
	memcpy(&v, r->body, sizeof(v));
	v.slot = 0;
	memcpy(r->body, &v, sizeof(v));
	expect_refused(&s, "DEV_VIRTIO: PCI slot 0");

	r = virtio_rec(&s);
	v.slot = 25;
	v.device_id = 3;
	memcpy(r->body, &v, sizeof(v));
	expect_refused(&s, "device type 3");

	r = virtio_rec(&s);
	r->len -= 8;
	expect_refused(&s, "bytes for 1 queues and 2 MSI-X entries");

	r = virtio_rec(&s);
	v.device_id = 4;
	v.nr_queues = 17;
	memcpy(r->body, &v, sizeof(v));
	expect_refused(&s, "17 queues");

	virtio_rec(&s);
	for (r = s.r; r->type != REC_DEV_VIRTIO; r++)
		;
	{
		struct rec_virtq q = { .size = 48, .enabled = 1 };

		memcpy(r->body + sizeof(v), &q, sizeof(q));
	}
	expect_refused(&s, "queue 0 has size 48");
}

/* The stream's CPUID record, and its entry i. */
static struct rec *cpuid_rec(struct recs *s)
{
	unsigned i;

	valid_stream(s);
	for (i = 0; s->r[i].type != REC_CPUID; i++)
		;
	return &s->r[i];
}

static struct rec_cpuid_entry *cpuid_entry(struct rec *r, unsigned i)
{
	return (struct rec_cpuid_entry *)(r->body + sizeof(struct rec_cpuid) +
					  i * sizeof(struct rec_cpuid_entry));
}

static void test_cpuid_records(void)
{
	struct stream_check c;
	struct recs s;
	struct rec *r;
	struct rec_cpuid h;

	/* Optional: a stream without one is complete. */
	r = cpuid_rec(&s);
	memmove(r, r + 1, (&s.r[s.n - 1] - r) * sizeof(*r));
	s.n--;
	CHECK(check_all(&c, &s) == 0);

	/* Right after MEMORY_LAYOUT, before the pages and the vCPUs. */
	r = cpuid_rec(&s);
	CHECK(r == &s.r[2]);
	s.r[s.n++] = *r;
	expect_refused(&s, "CPUID record after the console history");
	r = cpuid_rec(&s);
	memmove(r + 1, r, (&s.r[s.n] - r) * sizeof(*r));
	s.n++;
	expect_refused(&s, "a second CPUID record");

	r = cpuid_rec(&s);
	r->len -= 4;
	expect_refused(&s, "CPUID: 164 bytes for 4 entries");

	r = cpuid_rec(&s);
	h = (struct rec_cpuid){ .nent = 0 };
	memcpy(r->body, &h, sizeof(h));
	r->len = sizeof(h);
	expect_refused(&s, "CPUID: 0 entries");

	r = cpuid_rec(&s);
	h = (struct rec_cpuid){ .nent = REC_CPUID_ENTRIES_MAX + 1 };
	memcpy(r->body, &h, sizeof(h));
	expect_refused(&s, "CPUID: 257 entries");

	/* The APIC ids are each vCPU's: zero in the record. */
	r = cpuid_rec(&s);
	cpuid_entry(r, 1)->ebx |= 1u << 24;
	expect_refused(&s, "CPUID leaf 0x1 subleaf 0: an APIC id field");
	r = cpuid_rec(&s);
	cpuid_entry(r, 3)->edx = 2;
	expect_refused(&s, "CPUID leaf 0xb subleaf 1: an APIC id field");

	r = cpuid_rec(&s);
	cpuid_entry(r, 3)->index = 0;
	expect_refused(&s, "CPUID leaf 0xb subleaf 0 twice");

	r = cpuid_rec(&s);
	cpuid_entry(r, 1)->index = 3;
	expect_refused(&s, "CPUID entry 1 (leaf 0x1): flags 0 with subleaf 3");
	r = cpuid_rec(&s);
	cpuid_entry(r, 1)->flags = 4;
	expect_refused(&s, "flags 0x4");
	r = cpuid_rec(&s);
	cpuid_entry(r, 2)->reserved[1] = 1;
	expect_refused(&s, "reserved bytes are not zero");

	r = cpuid_rec(&s);
	cpuid_entry(r, 0)->function = 2;
	expect_refused(&s, "CPUID without leaf 0");
}

int main(void)
{
	test_table();
	test_round_trip();
	test_wrong_sizes();
	test_refused_records();
	test_place_and_completeness();
	test_virtio_records();
	test_cpuid_records();
	return unit_done();
}
