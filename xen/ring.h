/*
 * A byte ring that keeps the newest bytes and counts every byte ever
 * written, so readers can follow it by absolute position.
 */
#ifndef XEN_RING_H
#define XEN_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring {
	char *buf;
	size_t size;
	uint64_t total;		/* bytes ever written */
};

int ring_init(struct ring *r, size_t size);
void ring_free(struct ring *r);
void ring_write(struct ring *r, const void *data, size_t len);
/* Oldest absolute position still held. */
uint64_t ring_start(const struct ring *r);
/* Copy bytes from absolute position pos (clamped to what is held). */
size_t ring_read(const struct ring *r, uint64_t *pos, void *out, size_t max);
void ring_reset(struct ring *r);
/* Refill with the newest len bytes of a history that had total bytes. */
void ring_restore(struct ring *r, uint64_t total, const void *data,
		  size_t len);

#endif
