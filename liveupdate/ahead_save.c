// SPDX-License-Identifier: GPL-2.0
/*
 * The blackout's state, saved by domain in parallel.  As each domain parks
 * (quiesce_each()), its records go into a memory part of its own, written
 * by whichever saver thread is free while the others still park; the
 * parts are then appended to the stream in the domains' order, so the
 * stream is byte for byte the one a single thread writes.  Saving is a
 * few dozen KVM ioctls per vCPU: with eight domains on two CPUs, done one
 * after another it was most of the old image's part of the blackout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "liveupdate/ahead_save.h"
#include "domain.h"
#include "state.h"

#define PART_FIRST_CAP	(64 * 1024)

static int part_write(void *opaque, const void *buf, size_t len)
{
	struct lu_part *p = opaque;
	size_t cap = p->cap ? p->cap : PART_FIRST_CAP;
	uint8_t *n;

	while (cap - p->len < len)
		cap *= 2;
	if (cap != p->cap) {
		n = realloc(p->buf, cap);
		if (!n)
			return ENOMEM;
		p->buf = n;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, buf, len);
	p->len += len;
	return 0;
}

static void save_part(struct lu_saver *s, struct lu_part *p)
{
	struct stream_sink sink = { .write = part_write, .opaque = p };
	struct stream_writer w;

	stream_writer_open_part(&w, s->of, sink);
	if (s->save(&w, p->dom) < 0)
		p->err = w.error ? w.error : (errno ? errno : EIO);
}

/* Take and save parts until none is left and no more will come. */
static void *saver_run(void *arg)
{
	struct lu_saver *s = arg;
	struct lu_part *p;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->next == s->nr && !s->closed)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->next == s->nr)
			break;
		p = &s->parts[s->next++];
		pthread_mutex_unlock(&s->lock);
		save_part(s, p);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void lu_saver_start(struct lu_saver *s, const struct stream_writer *of,
		    int (*save)(struct stream_writer *w, struct domain *d),
		    unsigned threads)
{
	memset(s, 0, sizeof(*s));
	s->of = of;
	s->save = save;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (threads > LU_SAVER_MAX_THREADS)
		threads = LU_SAVER_MAX_THREADS;
	/* None started: lu_saver_add() saves in the caller's thread. */
	while (s->nr_threads < threads &&
	       !pthread_create(&s->tids[s->nr_threads], NULL, saver_run, s))
		s->nr_threads++;
}

int lu_saver_add(struct lu_saver *s, struct domain *d)
{
	struct lu_part *p;

	if (s->nr == CONFIG_MAX_DOMAINS) {
		errno = ENOSPC;
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	p = &s->parts[s->nr];
	p->dom = d;
	if (s->nr_threads) {
		s->nr++;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	s->nr++;
	s->next++;
	pthread_mutex_unlock(&s->lock);
	save_part(s, p);
	return 0;
}

/* No more parts: help with what is left, then stop the threads. */
static void close_and_join(struct lu_saver *s)
{
	unsigned i;

	pthread_mutex_lock(&s->lock);
	s->closed = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	saver_run(s);
	for (i = 0; i < s->nr_threads; i++)
		pthread_join(s->tids[i], NULL);
	s->nr_threads = 0;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

static void free_parts(struct lu_saver *s)
{
	unsigned i;

	for (i = 0; i < s->nr; i++) {
		free(s->parts[i].buf);
		s->parts[i].buf = NULL;
	}
}

int lu_saver_finish(struct lu_saver *s, struct stream_writer *w)
{
	unsigned i;
	int err = 0;

	close_and_join(s);
	for (i = 0; i < s->nr && !err; i++) {
		err = s->parts[i].err;
		if (!err && stream_write_raw(w, s->parts[i].buf,
					     s->parts[i].len) < 0)
			err = w->error ? w->error : EIO;
	}
	free_parts(s);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

void lu_saver_abort(struct lu_saver *s)
{
	close_and_join(s);
	free_parts(s);
}
