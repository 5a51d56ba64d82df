/* The blackout's state, saved by domain in parallel (ahead_save.c). */
#ifndef LU_AHEAD_SAVE_H
#define LU_AHEAD_SAVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <generated/autoconf.h>

#include "stream.h"

struct domain;

#define LU_SAVER_MAX_THREADS	4

struct lu_part {
	struct domain *dom;
	uint8_t *buf;			/* its records */
	size_t len, cap;
	int err;			/* 0, or an errno */
};

struct lu_saver {
	struct lu_part parts[CONFIG_MAX_DOMAINS];
	unsigned nr;			/* added */
	unsigned next;			/* the next to save */
	bool closed;			/* no more will be added */
	const struct stream_writer *of;
	int (*save)(struct stream_writer *w, struct domain *d);
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t tids[LU_SAVER_MAX_THREADS];
	unsigned nr_threads;
};

/*
 * Up to `threads` saver threads waiting for domains (0: each is saved in
 * the thread that adds it); save(w, d) writes d's records into w.
 */
void lu_saver_start(struct lu_saver *s, const struct stream_writer *of,
		    int (*save)(struct stream_writer *w, struct domain *d),
		    unsigned threads);
/* A parked domain to save. */
int lu_saver_add(struct lu_saver *s, struct domain *d);
/* Every part saved, then appended to w in the order added; -1 (errno). */
int lu_saver_finish(struct lu_saver *s, struct stream_writer *w);
/* After a failure: the threads stopped, the parts dropped. */
void lu_saver_abort(struct lu_saver *s);

#endif
