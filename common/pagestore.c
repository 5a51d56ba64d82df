/*
 * The reading side's storer threads (pagepipe.h, docs/page-pipeline.md):
 * while they store one batch into guest RAM, the reader's thread reads
 * and checks the next.  Each thread takes every job of the FIFO in turn
 * and stores the runs of its own 2 MiB regions of RAM (a job's runs are
 * cut at those boundaries), so a page always goes through the same
 * thread, in the order the stream holds it: a later copy of a page lands
 * after an earlier one.  Two threads allocate the new pages (most of the
 * cost) side by side; more would mostly wait for the memfd's lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagepipe.h"

/* One being stored, one being filled, one ready between them. */
#define PS_JOBS		3

struct storer {
	struct page_store *s;
	unsigned index;
	pthread_t thread;
	uint64_t next;			/* jobs this thread is done with */
};

struct page_store {
	struct page_target t;
	struct storer threads[PAGE_STORE_MAX_THREADS];
	unsigned nthreads, started;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* a job was queued, or stop */
	pthread_cond_t done;		/* a thread is done with a job */
	struct ps_job jobs[PS_JOBS];
	uint64_t queued;
	bool stop;
	int error;			/* errno of the first failed store */
	uint64_t error_at;		/* its record's offset */
};

unsigned page_store_thread_of(const uint8_t *dst, unsigned nthreads)
{
	return ((uintptr_t)dst >> PAGE_STORE_REGION_SHIFT) % nthreads;
}

/* Jobs every thread is done with (the lock held). */
static uint64_t stored(const struct page_store *s)
{
	uint64_t n = s->queued;
	unsigned i;

	for (i = 0; i < s->started; i++)
		if (s->threads[i].next < n)
			n = s->threads[i].next;
	return n;
}

static void store_job(struct storer *st, struct ps_job *j)
{
	struct page_store *s = st->s;
	unsigned i;
	int err;

	for (i = 0; i < j->nruns; i++) {
		if (page_store_thread_of(j->runs[i].dst, s->nthreads) !=
		    st->index)
			continue;
		if (s->t.store(s->t.opaque, j->runs[i].dst,
			       j->buf + j->runs[i].off, j->runs[i].len) < 0) {
			err = errno ? errno : EIO;
			pthread_mutex_lock(&s->lock);
			if (!s->error) {
				s->error = err;
				s->error_at = j->rec_offset;
			}
			pthread_mutex_unlock(&s->lock);
			return;
		}
	}
}

static void *storer(void *arg)
{
	struct storer *st = arg;
	struct page_store *s = st->s;
	struct ps_job *j;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && st->next == s->queued)
			pthread_cond_wait(&s->work, &s->lock);
		if (st->next == s->queued)
			break;		/* stopped, and nothing left */
		j = &s->jobs[st->next % PS_JOBS];
		pthread_mutex_unlock(&s->lock);
		store_job(st, j);
		pthread_mutex_lock(&s->lock);
		st->next++;
		pthread_cond_broadcast(&s->done);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void free_store(struct page_store *s)
{
	unsigned i;

	for (i = 0; i < PS_JOBS; i++)
		free(s->jobs[i].buf);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	free(s);
}

static void stop_threads(struct page_store *s)
{
	unsigned i;

	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->started; i++)
		pthread_join(s->threads[i].thread, NULL);
}

struct page_store *page_store_open(const struct page_target *t,
				   unsigned threads)
{
	struct page_store *s = calloc(1, sizeof(*s));
	unsigned i;

	if (!s)
		return NULL;
	s->t = *t;
	s->nthreads = threads < 1 ? 1 : threads > PAGE_STORE_MAX_THREADS ?
		      PAGE_STORE_MAX_THREADS : threads;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	for (i = 0; i < PS_JOBS; i++) {
		s->jobs[i].buf = malloc((size_t)STREAM_BATCH_PAGES *
					STREAM_PAGE_SIZE);
		if (!s->jobs[i].buf)
			goto fail;
	}
	if (!t->store)
		goto fail;
	for (i = 0; i < s->nthreads; i++) {
		s->threads[i] = (struct storer){ .s = s, .index = i };
		if (pthread_create(&s->threads[i].thread, NULL, storer,
				   &s->threads[i]))
			goto fail;
		s->started++;
	}
	return s;
fail:
	stop_threads(s);
	free_store(s);
	return NULL;
}

const struct page_target *page_store_target(const struct page_store *s)
{
	return &s->t;
}

struct ps_job *page_store_job(struct page_store *s)
{
	struct ps_job *j;

	pthread_mutex_lock(&s->lock);
	while (s->queued - stored(s) >= PS_JOBS)
		pthread_cond_wait(&s->done, &s->lock);
	pthread_mutex_unlock(&s->lock);
	j = &s->jobs[s->queued % PS_JOBS];
	j->nruns = 0;
	return j;
}

void page_store_submit(struct page_store *s)
{
	pthread_mutex_lock(&s->lock);
	s->queued++;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
}

/* 0, or -1 and why if a store failed: how the stored ones went. */
static int failed(struct page_store *s, char *err, size_t len)
{
	if (!s->error)
		return 0;
	snprintf(err, len, "offset %llu: writing guest RAM: %s",
		 (unsigned long long)s->error_at, strerror(s->error));
	return -1;
}

int page_store_failed(struct page_store *s, char *err, size_t len)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = failed(s, err, len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int page_store_drain(struct page_store *s, char *err, size_t len)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	while (stored(s) != s->queued)
		pthread_cond_wait(&s->done, &s->lock);
	ret = failed(s, err, len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void page_store_close(struct page_store *s)
{
	if (!s)
		return;
	stop_threads(s);
	free_store(s);
}
