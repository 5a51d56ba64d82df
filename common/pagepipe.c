/*
 * The page pipeline (pagepipe.h, docs/page-pipeline.md): PAGE_BATCH
 * records built by worker threads, written in order by the writer's
 * thread, and read back with as few copies as the encoding allows.
 */
#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pagepipe.h"
#include "rec_table.h"

#define PAGE		STREAM_PAGE_SIZE
#define BATCH		STREAM_BATCH_PAGES
#define BATCH_BYTES	((size_t)BATCH * PAGE)
#define HEAD_MAX	(sizeof(struct rec_page_batch) + BATCH * 8)
/* Record header, batch head, the pages (or the data), padding. */
#define IOV_MAX_JOB	(BATCH + 3)

static const uint8_t zero_pad[8];

enum job_state { JOB_FREE, JOB_QUEUED, JOB_BUSY, JOB_DONE };

/* One batch on its way: what was handed in, then the record built. */
struct pp_job {
	enum job_state state;
	uint64_t seq;
	unsigned n;
	bool keep_zero;
	enum page_encoding enc;
	uint64_t pfns[BATCH];
	const uint8_t *pages[BATCH];
	/* Built: */
	unsigned kept;			/* pages in the record; 0: none */
	struct rec_header rh;
	_Alignas(8) uint8_t head[HEAD_MAX];	/* rec_page_batch + pfns */
	struct iovec iov[IOV_MAX_JOB];
	int niov;
	uint8_t *raw;			/* the kept pages gathered (a copy) */
	uint8_t *out;			/* the encoded data */
};

struct page_pipe {
	unsigned workers;
	bool stable;
	unsigned nslots;
	struct pp_job *slots;
	pthread_t *threads;
	unsigned started;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* a job was queued, or stop */
	pthread_cond_t done;		/* a job was built */
	uint64_t submitted, taken, written;
	bool stop;
};

bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	unsigned i;

	/* 64 bytes a step, the compiler's vectors inside, early exit. */
	for (i = 0; i < PAGE / 8; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] |
		    q[i + 5] | q[i + 6] | q[i + 7])
			return false;
	return true;
}

/* ------------------------------------------------------------ building */

static size_t lz4_bound(void)
{
	return LZ4_compressBound(BATCH_BYTES);
}

/* Encode len bytes at src into j->out: the length, or 0 if not smaller. */
static size_t encode(struct pp_job *j, const uint8_t *src, size_t len)
{
	size_t cap = lz4_bound();
	uLongf zlen = cap;
	int n;

	switch (j->enc) {
	case PAGE_ENC_LZ4:
		n = LZ4_compress_default((const char *)src, (char *)j->out,
					 len, cap);
		return n > 0 && (size_t)n < len ? (size_t)n : 0;
	case PAGE_ENC_ZLIB:
		if (compress2(j->out, &zlen, src, len, 1) != Z_OK)
			return 0;
		return zlen < len ? zlen : 0;
	default:
		return 0;
	}
}

static void add_iov(struct pp_job *j, const void *p, size_t len)
{
	struct iovec *last = j->niov ? &j->iov[j->niov - 1] : NULL;

	if (!len)
		return;
	/*
	 * Pages next to each other in guest RAM: one piece.  (Not the
	 * record header with the head after it: the checksum skips iov[0].)
	 */
	if (last && last->iov_len >= PAGE &&
	    (const uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return;
	}
	j->iov[j->niov].iov_base = (void *)p;
	j->iov[j->niov].iov_len = len;
	j->niov++;
}

/* The zero pages out; the others gathered into j->raw unless stable. */
static void select_pages(struct pp_job *j, bool gather)
{
	uint64_t *list = (uint64_t *)(j->head + sizeof(struct rec_page_batch));
	unsigned i;

	j->kept = 0;
	for (i = 0; i < j->n; i++) {
		const uint8_t *p = j->pages[i];

		if (!j->keep_zero && page_is_zero(p))
			continue;
		list[j->kept] = j->pfns[i];
		if (gather)
			memcpy(j->raw + (size_t)j->kept * PAGE, p, PAGE);
		else
			j->pages[j->kept] = p;
		j->kept++;
	}
}

/* The kept pages of stable memory one after another: one piece. */
static bool kept_contiguous(const struct pp_job *j)
{
	unsigned i;

	for (i = 1; i < j->kept; i++)
		if (j->pages[i] != j->pages[0] + (size_t)i * PAGE)
			return false;
	return true;
}

/*
 * The pages to encode, in one piece: stable pages in place when they
 * are one run (save: guest RAM; migration: its copy), else gathered
 * into j->raw (which select_pages() did already for unstable pages).
 */
static const uint8_t *encode_source(struct pp_job *j, bool stable)
{
	unsigned i;

	if (!stable)
		return j->raw;
	if (kept_contiguous(j))
		return j->pages[0];
	for (i = 0; i < j->kept; i++)
		memcpy(j->raw + (size_t)i * PAGE, j->pages[i], PAGE);
	return j->raw;
}

/*
 * The record of one batch: pfn list, data and checksum, as iovecs.  The
 * data of stable pages is written from where they are unless encoded;
 * other pages are copied into j->raw once.  The checksum is computed
 * piece by piece.
 */
static void build(struct pp_job *j, bool stable)
{
	struct rec_page_batch b = { 0 };
	size_t hlen, raw_len, elen = 0;
	uint32_t crc;
	int i;

	j->niov = 0;
	select_pages(j, !stable);
	if (!j->kept)
		return;
	raw_len = (size_t)j->kept * PAGE;
	if (j->enc != PAGE_ENC_NONE)
		elen = encode(j, encode_source(j, stable), raw_len);
	b.nr_pages = j->kept;
	b.encoding = elen ? j->enc : PAGE_ENC_NONE;
	b.data_len = elen ? elen : raw_len;
	memcpy(j->head, &b, sizeof(b));
	hlen = sizeof(b) + (size_t)j->kept * 8;
	j->rh = (struct rec_header){
		.type = REC_PAGE_BATCH, .length = hlen + b.data_len,
	};
	add_iov(j, &j->rh, sizeof(j->rh));
	add_iov(j, j->head, hlen);
	if (elen) {
		add_iov(j, j->out, elen);
	} else if (stable) {
		for (i = 0; i < (int)j->kept; i++)
			add_iov(j, j->pages[i], PAGE);
	} else {
		add_iov(j, j->raw, raw_len);
	}
	crc = 0;
	for (i = 1; i < j->niov; i++)
		crc = stream_crc32(crc, j->iov[i].iov_base, j->iov[i].iov_len);
	j->rh.crc = crc;
	add_iov(j, zero_pad, (8 - (j->rh.length & 7)) & 7);
}

/* ------------------------------------------------------------ workers */

static void *worker(void *arg)
{
	struct page_pipe *p = arg;
	struct pp_job *j;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->taken == p->submitted)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		j = &p->slots[p->taken++ % p->nslots];
		j->state = JOB_BUSY;
		pthread_mutex_unlock(&p->lock);
		build(j, p->stable);
		pthread_mutex_lock(&p->lock);
		j->state = JOB_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------ writing */

static void write_job(struct stream_writer *w, struct pp_job *j)
{
	size_t len = 0;
	int i;

	w->pages += j->n;
	w->zero_pages += j->n - j->kept;
	if (!j->kept || w->error)
		return;
	for (i = 0; i < j->niov; i++)
		len += j->iov[i].iov_len;
	if (w->sink.writev) {
		w->error = w->sink.writev(w->sink.opaque, j->iov, j->niov);
	} else {
		for (i = 0; i < j->niov && !w->error; i++)
			w->error = w->sink.write(w->sink.opaque,
						 j->iov[i].iov_base,
						 j->iov[i].iov_len);
	}
	if (!w->error)
		w->bytes += len;
}

/*
 * Write the oldest job once built (waiting for it if `wait`): true if
 * one was written.  Only the writer's thread writes, so records leave
 * in the order their batches came.
 */
static bool write_oldest(struct stream_writer *w, bool wait)
{
	struct page_pipe *p = w->pipe;
	struct pp_job *j;
	bool ready;

	if (p->written == p->submitted)
		return false;
	j = &p->slots[p->written % p->nslots];
	pthread_mutex_lock(&p->lock);
	while (wait && j->state != JOB_DONE)
		pthread_cond_wait(&p->done, &p->lock);
	ready = j->state == JOB_DONE;
	pthread_mutex_unlock(&p->lock);
	if (!ready)
		return false;
	write_job(w, j);
	j->state = JOB_FREE;
	p->written++;
	return true;
}

int stream_writer_flush(struct stream_writer *w)
{
	if (!w->pipe)
		return w->error ? -1 : 0;
	while (write_oldest(w, true))
		;
	return w->error ? -1 : 0;
}

int page_pipe_submit(struct stream_writer *w, const uint64_t *pfns,
		     const uint8_t *const *pages, unsigned n,
		     enum page_encoding enc)
{
	struct page_pipe *p = w->pipe;
	struct pp_job *j;

	if (!n)
		return 0;
	/* The slot of the job nslots back must be written first. */
	while (p->submitted - p->written >= p->nslots)
		write_oldest(w, true);
	j = &p->slots[p->submitted % p->nslots];
	j->n = n;
	j->enc = enc;
	j->keep_zero = w->keep_zero;
	memcpy(j->pfns, pfns, n * sizeof(pfns[0]));
	memcpy(j->pages, pages, n * sizeof(pages[0]));
	if (!p->workers) {
		build(j, p->stable);
		j->state = JOB_DONE;
		p->submitted++;
		write_oldest(w, false);
		return w->error ? -1 : 0;
	}
	pthread_mutex_lock(&p->lock);
	j->state = JOB_QUEUED;
	p->submitted++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	while (write_oldest(w, false))	/* what is ready meanwhile */
		;
	return w->error ? -1 : 0;
}

/* ------------------------------------------------------------ set-up */

static void pipe_free(struct page_pipe *p)
{
	unsigned i;

	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->lock);
		for (i = 0; i < p->started; i++)
			pthread_join(p->threads[i], NULL);
	}
	for (i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].raw);
		free(p->slots[i].out);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->slots);
	free(p->threads);
	free(p);
}

int page_pipe_open(struct stream_writer *w, unsigned workers, bool stable)
{
	struct page_pipe *p = calloc(1, sizeof(*p));
	unsigned i;

	if (!p)
		return -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->workers = workers;
	p->stable = stable;
	/* Each worker busy with one job while one more waits for it. */
	p->nslots = workers ? 2 * workers + 1 : 1;
	p->slots = calloc(p->nslots, sizeof(p->slots[0]));
	p->threads = calloc(workers ? workers : 1, sizeof(p->threads[0]));
	if (!p->slots || !p->threads)
		goto fail;
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].raw = malloc(BATCH_BYTES);
		p->slots[i].out = malloc(lz4_bound());
		if (!p->slots[i].raw || !p->slots[i].out)
			goto fail;
	}
	for (i = 0; i < workers; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p))
			goto fail;
		p->started++;
	}
	w->pipe = p;
	return 0;
fail:
	pipe_free(p);
	return -1;
}

void page_pipe_close(struct stream_writer *w)
{
	if (!w->pipe)
		return;
	pipe_free(w->pipe);
	w->pipe = NULL;
}

int stream_writer_pipeline(struct stream_writer *w, unsigned workers,
			   bool stable)
{
	if (workers > PAGE_PIPE_MAX_WORKERS)
		workers = PAGE_PIPE_MAX_WORKERS;
	if (stream_writer_flush(w) < 0)
		return -1;
	page_pipe_close(w);
	if (page_pipe_open(w, workers, stable) < 0) {
		w->error = w->error ? w->error : ENOMEM;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ reading */

#define RFAIL(r, ...) do { \
	snprintf((r)->err, sizeof((r)->err), __VA_ARGS__); \
	return -1; \
} while (0)

/* Pages are read, checksummed and stored this much at a time. */
#define PIECE		((size_t)256 << 10)

/* The run of pages from pfns[i] that lie next to each other in RAM. */
static unsigned run_of(const struct page_target *t, const uint64_t *pfns,
		       unsigned i, unsigned n, uint8_t **dst)
{
	unsigned k;

	*dst = t->map(t->opaque, pfns[i]);
	for (k = i + 1; k < n && t->map(t->opaque, pfns[k]) ==
				 *dst + (size_t)(k - i) * PAGE; k++)
		;
	return k - i;
}

static int store(struct stream_reader *r, const struct page_target *t,
		 uint8_t *dst, const uint8_t *src, size_t len)
{
	if (!t->store) {
		memcpy(dst, src, len);
		return 0;
	}
	if (t->store(t->opaque, dst, src, len) < 0)
		RFAIL(r, "offset %llu: writing guest RAM: %s",
		      (unsigned long long)r->rec_offset, strerror(errno));
	return 0;
}

/*
 * A run of a raw batch, PIECE bytes at a time: read into scratch while
 * it is in the CPU's cache, checksummed there, stored from there.  Two
 * copies, but no page fault for RAM not yet allocated: that costs more
 * than the copies (docs/page-pipeline.md).  Without t->store, straight
 * into RAM.
 */
static int read_run(struct stream_reader *r, const struct page_target *t,
		    uint8_t *dst, size_t len, uint8_t *scratch, uint32_t *crc)
{
	size_t piece;

	if (!t->store) {
		if (stream_read_exact(r, dst, len) < 0)
			return -1;
		*crc = stream_crc32(*crc, dst, len);
		return 0;
	}
	for (; len; len -= piece, dst += piece) {
		piece = len < PIECE ? len : PIECE;
		if (stream_read_exact(r, scratch, piece) < 0)
			return -1;
		*crc = stream_crc32(*crc, scratch, piece);
		if (store(r, t, dst, scratch, piece) < 0)
			return -1;
	}
	return 0;
}

/* A raw batch's data into guest RAM, run by run, checksummed on the way. */
static int read_direct(struct stream_reader *r, const struct page_target *t,
		       const uint64_t *pfns, unsigned n, uint8_t *scratch,
		       uint32_t crc)
{
	unsigned i, k;
	uint8_t *dst;

	for (i = 0; i < n; i += k) {
		k = run_of(t, pfns, i, n, &dst);
		if (read_run(r, t, dst, (size_t)k * PAGE, scratch, &crc) < 0)
			return -1;
	}
	if (crc != r->rec.crc)
		RFAIL(r, "offset %llu: checksum mismatch in record PAGE_BATCH (%#x)",
		      (unsigned long long)r->rec_offset, REC_PAGE_BATCH);
	return 0;
}

/* The record whole into r->body, checked, decoded, stored run by run. */
static int read_buffered(struct stream_reader *r, const struct page_target *t,
			 uint8_t *scratch, size_t have, bool *t_failed)
{
	const uint64_t *pfns;
	unsigned n, i, k;
	uint8_t *dst;

	if (stream_read_rest(r, have) < 0)
		return -1;
	if (stream_decode_pages(r, &pfns, &n, scratch, BATCH_BYTES) < 0)
		return -1;
	if (t->check(t->opaque, pfns, n) < 0) {
		*t_failed = true;
		return -1;
	}
	for (i = 0; i < n; i += k) {
		k = run_of(t, pfns, i, n, &dst);
		if (store(r, t, dst, scratch + (size_t)i * PAGE,
			  (size_t)k * PAGE) < 0)
			return -1;
	}
	return 0;
}

/*
 * The batch head into r->body (after the record header): true if it is
 * a well-formed raw batch, whose pfn list is then read too; false (and
 * *have: what r->body holds) for the careful path; -1 on a read error.
 */
static int read_head(struct stream_reader *r, size_t *have)
{
	struct rec_page_batch b;
	size_t hlen, len = r->rec.length;

	*have = 0;
	if (len < sizeof(b) || stream_body_reserve(r, (len + 7) & ~7u) < 0 ||
	    stream_read_exact(r, r->body, sizeof(b)) < 0)
		return 0;
	*have = sizeof(b);
	memcpy(&b, r->body, sizeof(b));
	hlen = sizeof(b) + (size_t)b.nr_pages * 8;
	/* Anything but a well-formed raw batch: the careful path. */
	if (b.encoding != PAGE_ENC_NONE || !b.nr_pages || b.nr_pages > BATCH ||
	    hlen > len || b.data_len != len - hlen ||
	    b.data_len != (size_t)b.nr_pages * PAGE || b.reserved)
		return 0;
	if (stream_read_exact(r, r->body + sizeof(b), hlen - sizeof(b)) < 0)
		return -1;
	*have = hlen;
	return 1;
}

/*
 * pfns the target refuses: read the rest, so a damaged record is
 * reported as such (its checksum) and not by what it happens to say.
 */
static int refused(struct stream_reader *r, size_t have, bool *t_failed)
{
	if (stream_read_rest(r, have) < 0)
		return -1;
	*t_failed = true;
	return -1;
}

int page_batch_read(struct stream_reader *r, const struct page_target *t,
		    uint8_t *scratch, bool *t_failed)
{
	const uint64_t *pfns;
	size_t have;
	unsigned n;
	int raw;

	*t_failed = false;
	raw = read_head(r, &have);
	if (raw < 0)
		return -1;
	if (!raw)
		return read_buffered(r, t, scratch, have, t_failed);
	pfns = (const uint64_t *)(r->body + sizeof(struct rec_page_batch));
	n = (have - sizeof(struct rec_page_batch)) / 8;
	if (t->check(t->opaque, pfns, n) < 0)
		return refused(r, have, t_failed);
	return read_direct(r, t, pfns, n, scratch,
			   stream_crc32(0, r->body, have));
}

/*
 * The runs of pages[0..n) in j->buf to their places in RAM, each cut
 * so that the pages of a run start in one storer's region
 * (PAGE_STORE_REGION_SHIFT), the region of its first byte: never more
 * runs than pages.
 */
static void job_runs(struct ps_job *j, const struct page_target *t,
		     const uint64_t *pfns, unsigned n)
{
	const uintptr_t region = (uintptr_t)1 << PAGE_STORE_REGION_SHIFT;
	unsigned i, k, c;
	uint8_t *dst;

	j->nruns = 0;
	for (i = 0; i < n; i += k) {
		k = run_of(t, pfns, i, n, &dst);
		c = (region - ((uintptr_t)dst & (region - 1)) + PAGE - 1) /
		    PAGE;
		if (c < k)
			k = c;		/* the rest is the next run */
		j->runs[j->nruns].dst = dst;
		j->runs[j->nruns].off = i * PAGE;
		j->runs[j->nruns].len = k * PAGE;
		j->nruns++;
	}
}

int page_batch_read_queued(struct stream_reader *r, struct page_store *s,
			   bool *t_failed)
{
	const struct page_target *t = page_store_target(s);
	struct ps_job *j;
	const uint64_t *pfns;
	size_t have;
	unsigned n;
	int raw;

	*t_failed = false;
	if (page_store_failed(s, r->err, sizeof(r->err)) < 0)
		return -1;
	j = page_store_job(s);
	j->rec_offset = r->rec_offset;
	raw = read_head(r, &have);
	if (raw < 0)
		return -1;
	if (!raw) {
		if (stream_read_rest(r, have) < 0 ||
		    stream_decode_pages(r, &pfns, &n, j->buf, BATCH_BYTES) < 0)
			return -1;
		if (t->check(t->opaque, pfns, n) < 0) {
			*t_failed = true;
			return -1;
		}
	} else {
		pfns = (const uint64_t *)(r->body +
					  sizeof(struct rec_page_batch));
		n = (have - sizeof(struct rec_page_batch)) / 8;
		if (t->check(t->opaque, pfns, n) < 0)
			return refused(r, have, t_failed);
		if (stream_read_exact(r, j->buf, (size_t)n * PAGE) < 0)
			return -1;
		if (stream_crc32(stream_crc32(0, r->body, have), j->buf,
				 (size_t)n * PAGE) != r->rec.crc)
			RFAIL(r, "offset %llu: checksum mismatch in record PAGE_BATCH (%#x)",
			      (unsigned long long)r->rec_offset,
			      REC_PAGE_BATCH);
	}
	job_runs(j, t, pfns, n);
	page_store_submit(s);
	return 0;
}
