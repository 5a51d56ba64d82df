#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dev/virtqueue.h"
#include "domain.h"
#include "memory.h"

#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2
#define VIRTQ_DESC_F_INDIRECT	4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Guest memory of a ring, or NULL if it is not all RAM. */
static void *ring(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	return gpa_to_hva(mem, gpa, len);
}

static uint16_t load16(const void *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

struct walk {
	struct virtq_elem *e;
	struct guest_mem *mem;
	unsigned segs;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 2, 3)))
bad(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Add one buffer to the chain, after every readable one if it is read. */
static int add_buffer(struct walk *w, const struct virtq_desc *d)
{
	struct virtq_elem *e = w->e;
	bool is_wr = d->flags & VIRTQ_DESC_F_WRITE;
	void *hva;

	if (w->segs >= VIRTQ_MAX_SEGS)
		return bad(w, "a chain of more than %u buffers",
			   VIRTQ_MAX_SEGS);
	if (!is_wr && e->nr_wr)
		return bad(w, "a device-readable buffer after a writable one "
			   "(buffer %u)", w->segs);
	hva = gpa_to_hva(w->mem, d->addr, d->len);
	if (!hva || !d->len) {
		snprintf(w->err, w->errlen, "buffer %u at %#llx, %u bytes, "
			 "is not in guest RAM", w->segs,
			 (unsigned long long)d->addr, d->len);
		return -1;
	}
	e->iov[w->segs].iov_base = hva;
	e->iov[w->segs].iov_len = d->len;
	e->gpa[w->segs] = d->addr;
	if (is_wr) {
		e->nr_wr++;
		e->wr_len += d->len;
	} else {
		e->nr_rd++;
		e->rd_len += d->len;
	}
	w->segs++;
	return 0;
}

/* Walk a descriptor table of n entries from index i. */
static int walk_table(struct walk *w, const struct virtq_desc *table,
		      unsigned n, unsigned i, bool indirect_ok)
{
	struct virtq_desc d;
	unsigned steps;

	for (steps = 0;; steps++) {
		if (steps >= n)
			return bad(w, "a descriptor chain loops (more than %u "
				   "steps in a table of %u)", n, n);
		if (i >= n)
			return bad(w, "descriptor index %u beyond a table of %u",
				   i, n);
		memcpy(&d, &table[i], sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!indirect_ok)
				return bad(w, "an indirect descriptor (%u) where "
					   "none is allowed", i);
			if (d.flags & VIRTQ_DESC_F_NEXT || d.len % 16 ||
			    !d.len || d.len / 16 > VIRTQ_MAX_SEGS)
				return bad(w, "an indirect table of %u bytes "
					   "(descriptor %u)", d.len, i);
			table = gpa_to_hva(w->mem, d.addr, d.len);
			if (!table)
				return bad(w, "an indirect table outside guest "
					   "RAM (descriptor %u)", i);
			if (walk_table(w, table, d.len / 16, 0, false) < 0)
				return -1;
			return 0;
		}
		if (add_buffer(w, &d) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct guest_mem *mem, bool indirect,
	      struct virtq_elem *e, char *err, size_t errlen)
{
	struct walk w = { .e = e, .mem = mem, .err = err, .errlen = errlen };
	const struct virtq_desc *table;
	uint16_t *avail, avail_idx, head;

	avail = ring(mem, q->avail, 4 + 2 * q->size);
	table = ring(mem, q->desc, 16 * q->size);
	if (!avail || !table || !ring(mem, q->used, 4 + 8 * q->size)) {
		snprintf(err, errlen, "a ring of size %u outside guest RAM",
			 q->size);
		return -1;
	}
	avail_idx = load16(&avail[1]);
	if (avail_idx == q->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
		snprintf(err, errlen, "avail index %u is %u entries ahead "
			 "of the device in a queue of %u", avail_idx,
			 (uint16_t)(avail_idx - q->last_avail), q->size);
		return -1;
	}
	head = load16(&avail[2 + q->last_avail % q->size]);
	e->head = head;
	e->nr_rd = e->nr_wr = 0;
	e->rd_len = e->wr_len = 0;
	if (walk_table(&w, table, q->size, head, indirect) < 0)
		return -1;
	q->last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void virtq_push(struct virtq *q, struct guest_mem *mem,
		const struct virtq_elem *e, uint32_t len)
{
	uint8_t *used = ring(mem, q->used, 4 + 8 * q->size);
	uint32_t elem[2] = { e->head, len };
	unsigned i;

	if (!used)
		return;
	/*
	 * What the device wrote is dirty from now on, not from the pop: a
	 * migration round that fetched the log in between would otherwise
	 * send the buffer before the data and never again.
	 */
	for (i = e->nr_rd; i < e->nr_rd + e->nr_wr; i++)
		guest_mem_mark_dirty(mem, e->gpa[i], e->iov[i].iov_len);
	memcpy(used + 4 + 8 * (q->used_idx % q->size), elem, sizeof(elem));
	q->used_idx++;
	/* The element before the index that publishes it. */
	__atomic_store_n((uint16_t *)(used + 2), q->used_idx,
			 __ATOMIC_RELEASE);
	guest_mem_mark_dirty(mem, q->used, 4 + 8 * q->size);
}

bool virtq_wants_interrupt(struct virtq *q, struct guest_mem *mem)
{
	uint16_t *avail = ring(mem, q->avail, 4);

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !avail || !(load16(&avail[0]) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

static size_t copy(const struct virtq_elem *e, unsigned first, unsigned n,
		   uint64_t off, void *buf, size_t len, bool to_chain)
{
	size_t done = 0, chunk;
	unsigned i;

	for (i = first; i < first + n && done < len; i++) {
		if (off >= e->iov[i].iov_len) {
			off -= e->iov[i].iov_len;
			continue;
		}
		chunk = e->iov[i].iov_len - off;
		if (chunk > len - done)
			chunk = len - done;
		if (to_chain)
			memcpy((uint8_t *)e->iov[i].iov_base + off,
			       (const uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done,
			       (uint8_t *)e->iov[i].iov_base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t virtq_read(const struct virtq_elem *e, uint64_t off, void *buf,
		  size_t len)
{
	return copy(e, 0, e->nr_rd, off, buf, len, false);
}

size_t virtq_write(const struct virtq_elem *e, uint64_t off,
		   const void *buf, size_t len)
{
	return copy(e, e->nr_rd, e->nr_wr, off, (void *)buf, len, true);
}
