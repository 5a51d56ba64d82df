/*
 * The reading side's storer thread (pagepipe.h, docs/page-pipeline.md):
 * while it stores one batch into guest RAM, the reader's thread reads
 * and checks the next.  One thread and a FIFO of jobs, so pages are
 * stored in the order the stream holds them (a later copy of a page
 * lands after an earlier one).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagepipe.h"

/* One being stored, one being filled, one ready between them. */
#define PS_JOBS		3

struct page_store {
	struct page_target t;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* a job was queued, or stop */
	pthread_cond_t done;		/* a job was stored */
	struct ps_job jobs[PS_JOBS];
	uint64_t queued, stored;
	bool stop;
	int error;			/* errno of the first failed store */
	uint64_t error_at;		/* its record's offset */
};

static void store_job(struct page_store *s, struct ps_job *j)
{
	unsigned i;

	for (i = 0; i < j->nruns && !s->error; i++) {
		if (s->t.store(s->t.opaque, j->runs[i].dst,
			       j->buf + j->runs[i].off, j->runs[i].len) < 0) {
			s->error = errno ? errno : EIO;
			s->error_at = j->rec_offset;
		}
	}
}

static void *storer(void *arg)
{
	struct page_store *s = arg;
	struct ps_job *j;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && s->stored == s->queued)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->stored == s->queued)
			break;		/* stopped, and nothing left */
		j = &s->jobs[s->stored % PS_JOBS];
		pthread_mutex_unlock(&s->lock);
		store_job(s, j);
		pthread_mutex_lock(&s->lock);
		s->stored++;
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

struct page_store *page_store_open(const struct page_target *t)
{
	struct page_store *s = calloc(1, sizeof(*s));
	unsigned i;

	if (!s)
		return NULL;
	s->t = *t;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	for (i = 0; i < PS_JOBS; i++) {
		s->jobs[i].buf = malloc((size_t)STREAM_BATCH_PAGES *
					STREAM_PAGE_SIZE);
		if (!s->jobs[i].buf)
			goto fail;
	}
	if (!t->store || pthread_create(&s->thread, NULL, storer, s))
		goto fail;
	return s;
fail:
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
	while (s->queued - s->stored >= PS_JOBS)
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
	pthread_cond_signal(&s->work);
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
	while (s->stored != s->queued)
		pthread_cond_wait(&s->done, &s->lock);
	ret = failed(s, err, len);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void page_store_close(struct page_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	free_store(s);
}
