/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libFuzzer target for the virtqueue walker (xen/dev/virtqueue.c): what a
 * hostile guest controls is its RAM, so the input becomes guest RAM (the
 * first bytes also choose the queue's size and ring addresses), and the
 * device takes chains until none is left or one is refused.  Every buffer
 * handed to a device must lie inside guest RAM; the sanitizers catch any
 * read outside it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dev/virtqueue.h"
#include "domain.h"

#define RAM	(64u << 10)

struct fuzz_head {
	uint8_t size_log2;
	uint8_t indirect;
	uint16_t last_avail;
	uint32_t desc, avail, used;
};

static struct virtq_elem e;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct guest_mem mem = { .fd = -1, .size = RAM, .low_size = RAM };
	struct fuzz_head h;
	struct virtq q = { 0 };
	char err[256];
	unsigned i, n;

	if (len < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	mem.base = calloc(1, RAM);
	memcpy(mem.base, data + sizeof(h),
	       len - sizeof(h) < RAM ? len - sizeof(h) : RAM);
	q.size = 1u << (h.size_log2 % 9);	/* 1 .. 256 */
	q.enabled = true;
	q.desc = h.desc % (RAM + 4096);		/* sometimes beyond RAM */
	q.avail = h.avail % (RAM + 4096);
	q.used = h.used % (RAM + 4096);
	q.last_avail = h.last_avail;
	for (n = 0; n < 2 * VIRTQ_MAX_SIZE; n++) {
		if (virtq_pop(&q, &mem, h.indirect & 1, &e, err,
			      sizeof(err)) <= 0)
			break;
		for (i = 0; i < e.nr_rd + e.nr_wr; i++) {
			uint8_t *b = e.iov[i].iov_base;

			if (b < mem.base || e.iov[i].iov_len > RAM ||
			    b + e.iov[i].iov_len > mem.base + RAM)
				abort();
		}
		virtq_push(&q, &mem, &e, e.wr_len);
	}
	free(mem.base);
	return 0;
}
