#include <stdlib.h>
#include <string.h>

#include "ring.h"

int ring_init(struct ring *r, size_t size)
{
	r->buf = malloc(size);
	r->size = size;
	r->total = 0;
	return r->buf ? 0 : -1;
}

void ring_free(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

void ring_reset(struct ring *r)
{
	r->total = 0;
}

void ring_write(struct ring *r, const void *data, size_t len)
{
	const char *p = data;

	if (len > r->size) {
		p += len - r->size;
		r->total += len - r->size;
		len = r->size;
	}
	while (len) {
		size_t off = r->total % r->size;
		size_t n = r->size - off;

		if (n > len)
			n = len;
		memcpy(r->buf + off, p, n);
		p += n;
		len -= n;
		r->total += n;
	}
}

uint64_t ring_start(const struct ring *r)
{
	return r->total > r->size ? r->total - r->size : 0;
}

size_t ring_read(const struct ring *r, uint64_t *pos, void *out, size_t max)
{
	char *o = out;
	size_t done = 0;

	if (*pos < ring_start(r))
		*pos = ring_start(r);
	while (done < max && *pos < r->total) {
		size_t off = *pos % r->size;
		size_t n = r->size - off;

		if (n > r->total - *pos)
			n = r->total - *pos;
		if (n > max - done)
			n = max - done;
		memcpy(o + done, r->buf + off, n);
		done += n;
		*pos += n;
	}
	return done;
}

void ring_restore(struct ring *r, uint64_t total, const void *data,
		  size_t len)
{
	r->total = total - len;
	ring_write(r, data, len);
}
