/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Split virtqueues (xen/dev/virtqueue.c) against rings laid out in a
 * buffer standing in for guest RAM: chains taken and returned, and every
 * malformed ring or chain refused with its reason.
 */
#include <stdlib.h>
#include <string.h>

#include "dev/virtqueue.h"
#include "domain.h"
#include "unit.h"

#define RAM		(1u << 20)
#define QSIZE		8
#define DESC		0x1000
#define AVAIL		0x2000
#define USED		0x3000
#define F_NEXT		1
#define F_WRITE		2
#define F_INDIRECT	4

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static struct guest_mem mem;
static struct virtq q;
static struct virtq_elem e;
static char err[256];

static void reset(void)
{
	memset(mem.base, 0, RAM);
	memset(&q, 0, sizeof(q));
	q.size = QSIZE;
	q.enabled = true;
	q.desc = DESC;
	q.avail = AVAIL;
	q.used = USED;
	err[0] = 0;
}

static void set_desc(uint64_t table, unsigned i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	struct desc d = { addr, len, flags, next };

	memcpy(mem.base + table + 16 * i, &d, sizeof(d));
}

/* Make head available as the n-th entry; the index becomes n + 1. */
static void offer(unsigned n, uint16_t head)
{
	uint16_t idx = n + 1;

	memcpy(mem.base + AVAIL + 4 + 2 * (n % QSIZE), &head, 2);
	memcpy(mem.base + AVAIL + 2, &idx, 2);
}

static int pop(bool indirect)
{
	return virtq_pop(&q, &mem, indirect, &e, err, sizeof(err));
}

static void refused(const char *why, int line)
{
	int ret = pop(true);

	unit_check(ret == -1 && strstr(err, why), __FILE__, line,
		   "want -1 with '%s', got %d '%s'", why, ret, err);
}

static void test_chain_taken_and_returned(void)
{
	uint16_t used_idx;
	uint32_t elem[2];
	char buf[8];

	reset();
	CHECK(pop(true) == 0);
	set_desc(DESC, 0, 0x10000, 16, F_NEXT, 1);
	set_desc(DESC, 1, 0x11000, 512, F_NEXT | F_WRITE, 2);
	set_desc(DESC, 2, 0x12000, 1, F_WRITE, 0);
	offer(0, 0);
	CHECK(pop(true) == 1);
	CHECK(e.head == 0 && e.nr_rd == 1 && e.nr_wr == 2);
	CHECK(e.rd_len == 16 && e.wr_len == 513);
	CHECK(e.iov[1].iov_base == mem.base + 0x11000);
	CHECK(pop(true) == 0);
	memcpy(mem.base + 0x10000, "headerXY", 8);
	CHECK(virtq_read(&e, 6, buf, 2) == 2 && !memcmp(buf, "XY", 2));
	/* A write across the two writable buffers. */
	CHECK(virtq_write(&e, 510, "abc", 3) == 3);
	CHECK(!memcmp(mem.base + 0x11000 + 510, "ab", 2) &&
	      mem.base[0x12000] == 'c');
	virtq_push(&q, &mem, &e, 513);
	memcpy(&used_idx, mem.base + USED + 2, 2);
	memcpy(elem, mem.base + USED + 4, 8);
	CHECK(used_idx == 1 && elem[0] == 0 && elem[1] == 513);
}

static void test_unpop_gives_it_again(void)
{
	reset();
	set_desc(DESC, 3, 0x10000, 64, F_WRITE, 0);
	offer(0, 3);
	CHECK(pop(false) == 1 && e.head == 3);
	virtq_unpop(&q);
	CHECK(pop(false) == 1 && e.head == 3);
	CHECK(pop(false) == 0);
}

static void test_indirect(void)
{
	reset();
	set_desc(DESC, 0, 0x5000, 48, F_INDIRECT, 0);
	set_desc(0x5000, 0, 0x10000, 16, F_NEXT, 1);
	set_desc(0x5000, 1, 0x11000, 4096, F_NEXT | F_WRITE, 2);
	set_desc(0x5000, 2, 0x12000, 1, F_WRITE, 0);
	offer(0, 0);
	CHECK(pop(true) == 1 && e.nr_rd == 1 && e.nr_wr == 2);
	reset();
	set_desc(DESC, 0, 0x5000, 48, F_INDIRECT, 0);
	offer(0, 0);
	/* Not negotiated. */
	CHECK(pop(false) == -1 &&
	      strstr(err, "an indirect descriptor (0) where none is allowed"));
	/* An indirect table inside an indirect table. */
	reset();
	set_desc(DESC, 0, 0x5000, 16, F_INDIRECT, 0);
	set_desc(0x5000, 0, 0x6000, 16, F_INDIRECT, 0);
	offer(0, 0);
	refused("where none is allowed", __LINE__);
	reset();
	set_desc(DESC, 0, 0x5000, 20, F_INDIRECT, 0);
	offer(0, 0);
	refused("an indirect table of 20 bytes", __LINE__);
	reset();
	set_desc(DESC, 0, RAM - 16, 32, F_INDIRECT, 0);
	offer(0, 0);
	refused("an indirect table outside guest RAM", __LINE__);
}

static void test_malformed(void)
{
	reset();
	set_desc(DESC, 0, 0x10000, 16, F_NEXT, 1);
	set_desc(DESC, 1, 0x10000, 16, F_NEXT, 0);
	offer(0, 0);
	refused("a descriptor chain loops", __LINE__);

	reset();
	set_desc(DESC, 0, RAM - 8, 16, 0, 0);
	offer(0, 0);
	refused("is not in guest RAM", __LINE__);

	reset();
	set_desc(DESC, 0, 0x10000, 0xffffffff, 0, 0);
	offer(0, 0);
	refused("is not in guest RAM", __LINE__);

	reset();
	set_desc(DESC, 0, 0x10000, 0, 0, 0);
	offer(0, 0);
	refused("is not in guest RAM", __LINE__);

	reset();
	set_desc(DESC, 0, 0x10000, 16, F_WRITE | F_NEXT, 1);
	set_desc(DESC, 1, 0x11000, 16, 0, 0);
	offer(0, 0);
	refused("a device-readable buffer after a writable one", __LINE__);

	reset();
	set_desc(DESC, 0, 0x10000, 16, F_NEXT, QSIZE);
	offer(0, 0);
	refused("descriptor index 8 beyond a table of 8", __LINE__);

	reset();
	offer(0, QSIZE + 1);
	refused("descriptor index 9 beyond", __LINE__);

	reset();
	offer(QSIZE, 0);	/* avail idx 9 with the device at 0 */
	refused("avail index 9 is 9 entries ahead", __LINE__);

	reset();
	q.desc = RAM - 64;
	offer(0, 0);
	refused("a ring of size 8 outside guest RAM", __LINE__);
}

static void test_interrupt_suppression(void)
{
	uint16_t no_irq = 1;

	reset();
	CHECK(virtq_wants_interrupt(&q, &mem));
	memcpy(mem.base + AVAIL, &no_irq, 2);
	CHECK(!virtq_wants_interrupt(&q, &mem));
}

int main(void)
{
	mem.base = calloc(1, RAM);
	mem.size = mem.low_size = RAM;
	mem.fd = -1;
	test_chain_taken_and_returned();
	test_unpop_gives_it_again();
	test_indirect();
	test_malformed();
	test_interrupt_suppression();
	free(mem.base);
	return unit_done();
}
