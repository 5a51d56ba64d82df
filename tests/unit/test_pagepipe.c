// SPDX-License-Identifier: GPL-2.0
/*
 * The page pipeline (common/pagepipe.c): batches written by worker
 * threads come out in the order they went in, byte for byte what the
 * writer's own thread writes; zero pages inside a batch are left out
 * (or kept, when asked); pages read back land where their pfns say;
 * and a damaged batch is refused by its checksum.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagepipe.h"
#include "rec_table.h"
#include "stream.h"
#include "unit.h"

#define PAGE		STREAM_PAGE_SIZE
#define RAM_PAGES	4096u		/* 16 MiB of "guest RAM" */

static uint8_t *ram;

/* Pages of RAM that are zero (fill_ram()). */
static unsigned zero_pages(void)
{
	return (RAM_PAGES + 3) / 7;
}

/* Page i: zero when i % 7 == 3 (zero pages inside every batch), else
 * a pattern that names the page, and not very compressible. */
static void fill_ram(void)
{
	uint64_t i, k, x;

	ram = mmap(NULL, (size_t)RAM_PAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < RAM_PAGES; i++) {
		uint64_t *p = (uint64_t *)(ram + i * PAGE);

		if (i % 7 == 3)
			continue;
		x = i * 0x9E3779B97F4A7C15ull + 1;
		for (k = 0; k < PAGE / 8; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[k] = k < 256 ? i : x;	/* half compressible */
		}
	}
}

struct out {
	int fd;
	uint8_t *data;
	size_t len;
};

/*
 * RAM out in batches of `batch` pages, pfns in the order given by
 * `stride` (1: ascending; 3: interleaved, so batches are not runs).
 */
static void write_stream(struct out *o, unsigned workers, bool stable,
			 enum page_encoding enc, unsigned batch,
			 unsigned stride, bool keep_zero)
{
	uint64_t pfns[STREAM_BATCH_PAGES];
	const uint8_t *pages[STREAM_BATCH_PAGES];
	struct stream_writer w;
	unsigned i, n = 0, s, k;

	o->fd = memfd_create("pagepipe", 0);
	CHECK(stream_writer_open(&w, o->fd, STREAM_VERSION, "unit", NULL,
				 0) == 0);
	CHECK(stream_write_record(&w, REC_DOMAIN_CONFIG, 0, "{}", 2) == 0);
	CHECK(stream_writer_pipeline(&w, workers, stable) == 0);
	w.keep_zero = keep_zero;
	for (s = 0; s < stride; s++) {
		for (i = s; i < RAM_PAGES; i += stride) {
			pfns[n] = i;
			pages[n] = ram + (size_t)i * PAGE;
			if (++n < batch)
				continue;
			CHECK(stream_write_pages(&w, pfns, pages, n, enc) == 0);
			n = 0;
		}
	}
	if (n)
		CHECK(stream_write_pages(&w, pfns, pages, n, enc) == 0);
	k = keep_zero ? 0 : zero_pages();
	CHECK(stream_writer_finish(&w) == 0);
	CHECK_INT(w.pages, RAM_PAGES);
	CHECK_INT(w.zero_pages, k);
	o->len = lseek(o->fd, 0, SEEK_END);
	o->data = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       o->fd, 0);
}

static void free_out(struct out *o)
{
	munmap(o->data, o->len);
	close(o->fd);
}

/* Where the reader puts pages: a second RAM, every pfn in it. */
static uint8_t *ram2;
static unsigned checks;

static int t_check(void *opaque, const uint64_t *pfns, unsigned n)
{
	unsigned i;

	checks++;
	for (i = 0; i < n; i++)
		if (pfns[i] >= RAM_PAGES)
			return -1;
	return 0;
}

static uint8_t *t_map(void *opaque, uint64_t pfn)
{
	return ram2 + pfn * PAGE;
}

/* A store as the daemon's pwrite() into the RAM memfd: whole runs. */
static unsigned stores;
/* How many storer threads read_stream() uses (page_batch_read_queued()). */
static unsigned queued;

static int t_store(void *opaque, uint8_t *hva, const void *src, size_t len)
{
	CHECK(hva >= ram2 && hva + len <= ram2 + (size_t)RAM_PAGES * PAGE);
	CHECK(len && len % PAGE == 0);
	/* By storer threads: a run's pages start in one thread's region
	 * (ram2 is not page-aligned: pages may straddle regions). */
	CHECK(!queued || (uintptr_t)hva >> PAGE_STORE_REGION_SHIFT ==
		  (uintptr_t)(hva + len - PAGE) >> PAGE_STORE_REGION_SHIFT);
	memcpy(hva, src, len);
	stores++;
	return 0;
}

static int t_store_full(void *opaque, uint8_t *hva, const void *src,
			size_t len)
{
	errno = ENOSPC;
	return -1;
}

/* How read_stream() stores pages: through t_map() when NULL. */
static int (*store_fn)(void *, uint8_t *, const void *, size_t);

/*
 * Read o back: every batch through page_batch_read() into ram2, which
 * must then equal ram; batches' pfns must come in the order written.
 * -1 with the reader's error in err if the stream is refused.
 */
static int read_stream(struct out *o, unsigned stride, char *err,
		       size_t errlen)
{
	struct page_target t = { t_check, t_map, NULL, store_fn };
	struct mem_source m = { .data = o->data, .len = o->len };
	uint8_t *scratch = malloc(STREAM_BATCH_PAGES * PAGE);
	struct page_store *ps = NULL;
	struct stream_reader r;
	bool t_failed;
	int got, ret = -1;

	memset(ram2, 0x5a, (size_t)RAM_PAGES * PAGE);
	if (queued)
		CHECK((ps = page_store_open(&t, queued)) != NULL);
	CHECK(stream_reader_open(&r, (struct stream_source){
				 stream_mem_read, &m }) == 0);
	while ((got = stream_next_head(&r)) > 0) {
		if (r.rec.type != REC_PAGE_BATCH) {
			got = stream_read_rest(&r, 0);
			if (got <= 0)
				break;
			continue;
		}
		if ((ps ? page_batch_read_queued(&r, ps, &t_failed)
			: page_batch_read(&r, &t, scratch, &t_failed)) < 0) {
			got = -1;
			break;
		}
	}
	if (got == 0 && ps && page_store_drain(ps, r.err, sizeof(r.err)) < 0)
		got = -1;
	if (got == 0)
		ret = 0;
	else
		snprintf(err, errlen, "%s", r.err);
	page_store_close(ps);
	stream_reader_close(&r);
	free(scratch);
	return ret;
}

/* ram2 holds ram where ram is not zero (zero pages: never written). */
static bool same_ram(void)
{
	unsigned i;

	for (i = 0; i < RAM_PAGES; i++) {
		const uint8_t *want = ram + (size_t)i * PAGE;
		const uint8_t *got = ram2 + (size_t)i * PAGE;

		if (page_is_zero(want) ? got[0] != 0x5a && !page_is_zero(got)
				       : memcmp(got, want, PAGE))
			return false;
	}
	return true;
}

/* The pfns of every PAGE_BATCH in stream order, and their encodings. */
static unsigned batch_pfns(struct out *o, uint64_t *list, unsigned cap,
			   unsigned *encs)
{
	struct mem_source m = { .data = o->data, .len = o->len };
	uint8_t *buf = malloc(STREAM_BATCH_PAGES * PAGE);
	struct stream_reader r;
	const uint64_t *pfns;
	unsigned n, k = 0, i;

	*encs = 0;
	CHECK(stream_reader_open(&r, (struct stream_source){
				 stream_mem_read, &m }) == 0);
	while (stream_next(&r) > 0) {
		if (r.rec.type != REC_PAGE_BATCH)
			continue;
		*encs |= 1u << ((struct rec_page_batch *)r.body)->encoding;
		CHECK(stream_decode_pages(&r, &pfns, &n, buf,
					  STREAM_BATCH_PAGES * PAGE) == 0);
		for (i = 0; i < n && k < cap; i++) {
			CHECK(!page_is_zero(buf + (size_t)i * PAGE) ||
			      page_is_zero(ram + pfns[i] * PAGE));
			CHECK(!memcmp(buf + (size_t)i * PAGE,
				      ram + pfns[i] * PAGE, PAGE));
			list[k++] = pfns[i];
		}
	}
	stream_reader_close(&r);
	free(buf);
	return k;
}

/* Workers or not, stable or copied: the same bytes, in the same order. */
static void test_ordering(void)
{
	static const enum page_encoding encs[] = {
		PAGE_ENC_NONE, PAGE_ENC_LZ4, PAGE_ENC_ZLIB,
	};
	static uint64_t list[RAM_PAGES];
	struct out base, o;
	unsigned e, workers, encs_seen, n, i;
	char err[256];

	for (e = 0; e < 3; e++) {
		write_stream(&base, 0, false, encs[e], 100, 3, false);
		n = batch_pfns(&base, list, RAM_PAGES, &encs_seen);
		CHECK_INT(n, RAM_PAGES - zero_pages());
		CHECK(encs_seen & (1u << encs[e]));
		/* Interleaved order, as written: 0, 3, 6, ... then 1, 4, ... */
		for (i = 1; i < n; i++)
			CHECK(list[i] % 3 != list[i - 1] % 3 ||
			      list[i] > list[i - 1]);
		for (workers = 1; workers <= 5; workers += 2) {
			write_stream(&o, workers, e == 0, encs[e], 100, 3,
				     false);
			CHECK_INT(o.len, base.len);
			CHECK(!memcmp(o.data, base.data, base.len));
			free_out(&o);
		}
		/* Through the mapping, then by stores of whole runs. */
		store_fn = NULL;
		CHECK(read_stream(&base, 3, err, sizeof(err)) == 0);
		CHECK(same_ram());
		store_fn = t_store;
		stores = 0;
		CHECK(read_stream(&base, 3, err, sizeof(err)) == 0);
		CHECK(same_ram());
		CHECK(stores > 0);
		/* By storer threads, while the next batch is read. */
		for (queued = 1; queued <= 2; queued++) {
			stores = 0;
			CHECK(read_stream(&base, 3, err, sizeof(err)) == 0);
			CHECK(same_ram());
			CHECK(stores > 0);
		}
		queued = 0;
		store_fn = NULL;
		free_out(&base);
	}
}

/*
 * Stable pages encoded where they are (a batch that is one run of RAM)
 * or gathered first (a zero page inside it): the same bytes as pages
 * copied by the pipeline.
 */
static void test_stable_in_place(void)
{
	static const enum page_encoding encs[] = {
		PAGE_ENC_NONE, PAGE_ENC_LZ4, PAGE_ENC_ZLIB,
	};
	struct out a, b;
	unsigned e, workers;
	char err[256];

	for (e = 0; e < 3; e++) {
		write_stream(&a, 0, false, encs[e], 3, 1, false);
		for (workers = 0; workers <= 2; workers += 2) {
			write_stream(&b, workers, true, encs[e], 3, 1, false);
			CHECK_INT(b.len, a.len);
			CHECK(!memcmp(a.data, b.data, a.len));
			free_out(&b);
		}
		CHECK(read_stream(&a, 1, err, sizeof(err)) == 0);
		CHECK(same_ram());
		free_out(&a);
	}
}

/* A batch of zero and non-zero pages: only the latter unless asked. */
static void test_zero_straddle(void)
{
	static uint64_t list[RAM_PAGES];
	struct out o;
	unsigned n, encs, i, zeros = 0;
	char err[256];

	write_stream(&o, 2, true, PAGE_ENC_NONE, 10, 1, false);
	n = batch_pfns(&o, list, RAM_PAGES, &encs);
	for (i = 0; i < n; i++)
		zeros += list[i] % 7 == 3;
	CHECK_INT(zeros, 0);
	CHECK_INT(n, RAM_PAGES - zero_pages());
	CHECK(read_stream(&o, 1, err, sizeof(err)) == 0);
	CHECK(same_ram());
	free_out(&o);

	/* Migration's later rounds: zero pages are sent too. */
	write_stream(&o, 2, false, PAGE_ENC_LZ4, 10, 1, true);
	n = batch_pfns(&o, list, RAM_PAGES, &encs);
	CHECK_INT(n, RAM_PAGES);
	memset(ram2, 0x5a, (size_t)RAM_PAGES * PAGE);
	CHECK(read_stream(&o, 1, err, sizeof(err)) == 0);
	CHECK(!memcmp(ram, ram2, (size_t)RAM_PAGES * PAGE));
	free_out(&o);
}

/* Offset of the k-th PAGE_BATCH record of o. */
static size_t nth_batch(struct out *o, unsigned k, uint32_t *len)
{
	size_t off = STREAM_HEADER_LEN;
	struct rec_header rh;

	for (;;) {
		memcpy(&rh, o->data + off, sizeof(rh));
		if (rh.type == REC_PAGE_BATCH && !k--) {
			*len = rh.length;
			return off;
		}
		off += sizeof(rh) + ((rh.length + 7) & ~7u);
	}
}

/* One flipped bit in the data or the pfn list mid-file: refused by the
 * checksum, naming the record's offset. */
static void test_checksum_mid_file(void)
{
	static const enum page_encoding encs[] = {
		PAGE_ENC_NONE, PAGE_ENC_LZ4,
	};
	struct out o;
	uint32_t len;
	size_t off;
	char err[256], want[128];
	unsigned e, where;

	for (e = 0; e < 6; e++) {
		store_fn = e >= 2 ? t_store : NULL;
		queued = e >= 4 ? 2 : 0;
		for (where = 0; where < 2; where++) {
			write_stream(&o, 2, e % 2 == 0, encs[e % 2], 512, 1,
				     false);
			off = nth_batch(&o, 4, &len);
			/* where 0: a pfn's high bits; 1: the data's middle */
			if (where == 0)
				o.data[off + 16 + 16 + 8 * 3 + 5] ^= 0x40;
			else
				o.data[off + 16 + len / 2] ^= 0x01;
			CHECK(read_stream(&o, 1, err, sizeof(err)) < 0);
			snprintf(want, sizeof(want), "offset %zu: checksum "
				 "mismatch in record PAGE_BATCH (0x3)", off);
			unit_check(!strcmp(err, want), __FILE__, __LINE__,
				   "enc %u where %u: '%s', want '%s'", e,
				   where, err, want);
			free_out(&o);
		}
	}
	store_fn = NULL;
	queued = 0;
}

/* A store that fails (RAM full): the reader says so, at the record. */
static void test_store_fails(void)
{
	static const enum page_encoding encs[] = {
		PAGE_ENC_NONE, PAGE_ENC_LZ4,
	};
	struct out o;
	uint32_t len;
	char err[256], want[128];
	unsigned e;

	store_fn = t_store_full;
	for (e = 0; e < 4; e++) {
		queued = e >= 2 ? e - 1 : 0;
		write_stream(&o, 0, false, encs[e % 2], 512, 1, false);
		CHECK(read_stream(&o, 1, err, sizeof(err)) < 0);
		snprintf(want, sizeof(want), "offset %zu: writing guest RAM: "
			 "%s", nth_batch(&o, 0, &len), strerror(ENOSPC));
		unit_check(!strcmp(err, want), __FILE__, __LINE__,
			   "enc %u: '%s', want '%s'", e, err, want);
		free_out(&o);
	}
	store_fn = NULL;
	queued = 0;
}

/*
 * The same page twice in one stream (migration's rounds): by the storer
 * thread too, the later copy is what stays.
 */
static void test_queued_in_order(void)
{
	static const uint8_t fill[] = { 0x11, 0x22, 0x33 };
	uint8_t page[3][PAGE];
	const uint8_t *pages[STREAM_BATCH_PAGES];
	uint64_t pfns[STREAM_BATCH_PAGES];
	struct stream_writer w;
	struct out o;
	char err[256];
	unsigned round, i;

	o.fd = memfd_create("pagepipe", 0);
	CHECK(stream_writer_open(&w, o.fd, STREAM_VERSION, "unit", NULL,
				 0) == 0);
	w.keep_zero = true;
	for (round = 0; round < 60; round++) {
		memset(page[round % 3], fill[round % 3], PAGE);
		for (i = 0; i < STREAM_BATCH_PAGES; i++) {
			pfns[i] = (round * 7 + i) % RAM_PAGES;
			pages[i] = page[round % 3];
		}
		CHECK(stream_write_pages(&w, pfns, pages, STREAM_BATCH_PAGES,
					 round & 1 ? PAGE_ENC_LZ4
						   : PAGE_ENC_NONE) == 0);
		CHECK(stream_writer_flush(&w) == 0);
	}
	CHECK(stream_writer_finish(&w) == 0);
	o.len = lseek(o.fd, 0, SEEK_END);
	o.data = mmap(NULL, o.len, PROT_READ, MAP_SHARED, o.fd, 0);
	store_fn = t_store;
	for (queued = 1; queued <= 2; queued++) {
		CHECK(read_stream(&o, 1, err, sizeof(err)) == 0);
		/* Each page holds the fill of the last round that sent it. */
		for (i = 0; i < RAM_PAGES; i++) {
			unsigned last = 60, rd;

			for (rd = 0; rd < 60; rd++)
				if ((i + RAM_PAGES - (rd * 7) % RAM_PAGES) %
				    RAM_PAGES < STREAM_BATCH_PAGES)
					last = rd;
			CHECK(ram2[(size_t)i * PAGE + 100] ==
			      (last == 60 ? 0x5a : fill[last % 3]));
		}
	}
	queued = 0;
	store_fn = NULL;
	free_out(&o);
}

/* A pfn the target refuses, with a good checksum: the target's error. */
static void test_target_refuses(void)
{
	struct page_target t = { t_check, t_map, NULL, NULL };
	struct out o;
	uint8_t *scratch = malloc(STREAM_BATCH_PAGES * PAGE);
	struct mem_source m;
	struct stream_reader r;
	uint64_t bad = RAM_PAGES + 5;
	uint32_t len, crc;
	size_t off;
	bool t_failed = false;
	int got;

	write_stream(&o, 1, true, PAGE_ENC_NONE, 512, 1, false);
	off = nth_batch(&o, 1, &len);
	memcpy(o.data + off + 32, &bad, 8);
	crc = stream_crc32(0, o.data + off + 16, len);
	memcpy(o.data + off + 12, &crc, 4);
	m = (struct mem_source){ .data = o.data, .len = o.len };
	CHECK(stream_reader_open(&r, (struct stream_source){
				 stream_mem_read, &m }) == 0);
	checks = 0;
	while ((got = stream_next_head(&r)) > 0) {
		if (r.rec.type != REC_PAGE_BATCH) {
			if (stream_read_rest(&r, 0) <= 0)
				break;
			continue;
		}
		if (page_batch_read(&r, &t, scratch, &t_failed) < 0)
			break;
	}
	CHECK(t_failed);
	CHECK_INT(checks, 2);
	stream_reader_close(&r);
	free(scratch);
	free_out(&o);
}

int main(void)
{
	fill_ram();
	ram2 = malloc((size_t)RAM_PAGES * PAGE);
	test_ordering();
	test_stable_in_place();
	test_zero_straddle();
	test_checksum_mid_file();
	test_store_fails();
	test_queued_in_order();
	test_target_refuses();
	return unit_done();
}
