/*
 * The page pipeline: how PAGE_BATCH records (docs/state-format.md) are
 * built, written and read by save, restore and migration alike
 * (docs/page-pipeline.md).
 *
 * Writing: stream_write_pages() hands a batch of pages to the pipeline.
 * Worker threads find the zero pages, encode and checksum each batch;
 * the writer's own thread writes the finished records in the order the
 * batches came, each in one gathered write.  Raw batches of pages that
 * cannot change meanwhile (a paused domain) are written straight from
 * guest RAM; otherwise a batch is copied once, by its worker.
 *
 * Reading: page_batch_read() reads a raw batch's pages a piece at a
 * time into a buffer small enough to stay in the CPU's cache, checksums
 * them there and stores them into guest RAM; other batches are decoded
 * through a buffer and stored run by run.
 */
#ifndef PAGEPIPE_H
#define PAGEPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define PAGE_PIPE_MAX_WORKERS	16

/*
 * Set up w's pipeline: `workers` threads (0: the writer's thread builds
 * each batch itself), and whether the pages handed in stay unchanged
 * until written (`stable`: a quiesced domain), so that raw batches need
 * no copy.  Pages handed to stream_write_pages() must stay mapped until
 * the next record, stream_writer_flush() or the end of the stream.
 */
int stream_writer_pipeline(struct stream_writer *w, unsigned workers,
			   bool stable);
/* Write every batch handed in so far (the pipeline is empty after it). */
int stream_writer_flush(struct stream_writer *w);

/* Used by stream.c. */
int page_pipe_open(struct stream_writer *w, unsigned workers, bool stable);
void page_pipe_close(struct stream_writer *w);
int page_pipe_submit(struct stream_writer *w, const uint64_t *pfns,
		     const uint8_t *const *pages, unsigned n,
		     enum page_encoding enc);
bool page_is_zero(const uint8_t *p);

/* Where a reader puts pages: the restoring domain's RAM. */
struct page_target {
	/* The pfns of a batch, before anything is written: 0 or -1. */
	int (*check)(void *opaque, const uint64_t *pfns, unsigned n);
	/* Where page pfn lives (checked already). */
	uint8_t *(*map)(void *opaque, uint64_t pfn);
	void *opaque;
	/*
	 * Optional: write src to [hva, hva+len), a run of pages map() gave,
	 * without touching it through the mapping (guest RAM: a pwrite()
	 * into its memfd, which allocates a new page without a page fault,
	 * without zeroing it first and without a page-table entry).  0, or
	 * -1 with errno.  Without it, pages are written through map().
	 */
	int (*store)(void *opaque, uint8_t *hva, const void *src, size_t len);
};

/*
 * After stream_next_head() returned a PAGE_BATCH: read it into t.  A
 * raw batch is read through scratch piece by piece, each piece
 * checksummed and stored (t->store) before the next is read; anything
 * else is read whole, checked like stream_next() and decoded into
 * scratch (STREAM_BATCH_PAGES pages), then stored run by run.  Without
 * t->store, a raw batch is read straight into RAM through t->map and
 * checksummed there.  0, or -1 with r->err (or t's own error, *t_failed
 * set).  A checksum that fails leaves pages of the batch written: the
 * caller discards the domain, which is not running.
 */
int page_batch_read(struct stream_reader *r, const struct page_target *t,
		    uint8_t *scratch, bool *t_failed);

/*
 * Storer threads (common/pagestore.c) for a target with a store hook:
 * page_batch_read_queued() reads and checks a batch in the caller's
 * thread, then hands its runs to the storers, which store them while
 * the next batch is read.  Each storer owns every n-th 2 MiB region of
 * the target's addresses (runs are cut at region boundaries), so the
 * copies of one page are stored in the order read.
 */
struct page_store;

#define PAGE_STORE_MAX_THREADS	2
#define PAGE_STORE_REGION_SHIFT	21

/* A batch's pages in buf, and where each run of them goes. */
struct ps_job {
	uint8_t *buf;			/* STREAM_BATCH_PAGES pages */
	uint64_t rec_offset;		/* for the error message */
	unsigned nruns;
	struct {
		uint8_t *dst;
		uint32_t off, len;
	} runs[STREAM_BATCH_PAGES];
};

/* NULL if t has no store or no thread could be started. */
struct page_store *page_store_open(const struct page_target *t,
				   unsigned threads);
/* Which of n threads stores the run at dst. */
unsigned page_store_thread_of(const uint8_t *dst, unsigned nthreads);
const struct page_target *page_store_target(const struct page_store *s);
/* The next job to fill (waits while every job is queued). */
struct ps_job *page_store_job(struct page_store *s);
void page_store_submit(struct page_store *s);
/* 0, or -1 with "offset N: writing guest RAM: why" if a store failed. */
int page_store_failed(struct page_store *s, char *err, size_t len);
/* Every job stored (do this before anything reads guest RAM); as above. */
int page_store_drain(struct page_store *s, char *err, size_t len);
/* Stores what is queued, then stops the thread. */
void page_store_close(struct page_store *s);

/*
 * page_batch_read() through s: the checksum of a raw batch is checked
 * before any of it is stored; a failed store is reported here by a
 * later batch or by page_store_drain().
 */
int page_batch_read_queued(struct stream_reader *r, struct page_store *s,
			   bool *t_failed);

#endif
