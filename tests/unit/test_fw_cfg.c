// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the fw_cfg register model (xen/dev/fw_cfg.c), run
 * without KVM: items and the selector, the data register past an item's
 * end, the file directory in name order, and the DMA interface over a
 * buffer standing in for guest RAM.
 */
#include <stdlib.h>
#include <string.h>

#include "dev/fw_cfg.h"
#include "unit.h"

#define RAM_SIZE	0x10000

static uint8_t ram[RAM_SIZE];

static void *ram_map(void *opaque, uint64_t gpa, size_t len)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return NULL;
	return ram + gpa;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static char *dup_str(const char *s)
{
	return strdup(s);
}

/* Signature, ID, two CPUs and three files added out of name order. */
static void make(struct fw_cfg *f)
{
	uint32_t id = FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA;
	uint16_t cpus = 2;

	fw_cfg_init(f);
	CHECK_INT(fw_cfg_add(f, FW_CFG_SIGNATURE, "QEMU", 4), 0);
	CHECK_INT(fw_cfg_add(f, FW_CFG_ID, &id, 4), 0);
	CHECK_INT(fw_cfg_add(f, FW_CFG_NB_CPUS, &cpus, 2), 0);
	CHECK_INT(fw_cfg_add_file(f, "opt/zz", dup_str("last"), 4), 0);
	CHECK_INT(fw_cfg_add_file(f, "opt/aa", dup_str("first!"), 6), 0);
	CHECK_INT(fw_cfg_add_file(f, "opt/mm", dup_str("mid"), 3), 0);
	CHECK_INT(fw_cfg_finish(f), 0);
}

static void read_n(struct fw_cfg *f, uint8_t *buf, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		buf[i] = fw_cfg_read(f);
}

static void test_items(void)
{
	struct fw_cfg f;
	uint8_t buf[8];

	make(&f);
	fw_cfg_select(&f, FW_CFG_SIGNATURE);
	read_n(&f, buf, 6);
	CHECK(!memcmp(buf, "QEMU\0\0", 6));	/* 0 past the end */
	fw_cfg_select(&f, FW_CFG_ID);
	read_n(&f, buf, 4);
	CHECK_INT(buf[0], 3);
	fw_cfg_select(&f, FW_CFG_NB_CPUS | FW_CFG_WRITE_CHANNEL);
	CHECK_INT(f.selector, FW_CFG_NB_CPUS | FW_CFG_WRITE_CHANNEL);
	CHECK_INT(fw_cfg_read(&f), 2);		/* bit 14 is ignored */
	fw_cfg_select(&f, FW_CFG_SIGNATURE | FW_CFG_ARCH_LOCAL);
	CHECK(fw_cfg_current(&f) == NULL);
	CHECK_INT(fw_cfg_read(&f), 0);
	fw_cfg_select(&f, 0x1234);
	CHECK_INT(fw_cfg_read(&f), 0);
	/* Selecting again starts at offset 0. */
	fw_cfg_select(&f, FW_CFG_SIGNATURE);
	CHECK_INT(fw_cfg_read(&f), 'Q');
	CHECK_INT(fw_cfg_read(&f), 'E');
	CHECK_INT(f.offset, 2);
	fw_cfg_select(&f, FW_CFG_SIGNATURE);
	CHECK_INT(fw_cfg_read(&f), 'Q');
	fw_cfg_free(&f);
}

static void test_file_dir(void)
{
	static const char *const names[] = { "opt/aa", "opt/mm", "opt/zz" };
	static const uint32_t sizes[] = { 6, 3, 4 };
	uint8_t dir[4 + 3 * FW_CFG_DIR_ENTRY_LEN], e[8];
	struct fw_cfg f;
	unsigned i;

	make(&f);
	fw_cfg_select(&f, FW_CFG_FILE_DIR);
	CHECK_INT(fw_cfg_current(&f)->len, sizeof(dir));
	read_n(&f, dir, sizeof(dir));
	CHECK_INT(be32(dir), 3);
	for (i = 0; i < 3; i++) {
		const uint8_t *d = dir + 4 + i * FW_CFG_DIR_ENTRY_LEN;

		CHECK_INT(be32(d), sizes[i]);
		CHECK_INT(d[4] << 8 | d[5], FW_CFG_FILE_FIRST + i);
		CHECK_INT(d[6] | d[7], 0);
		CHECK(!strcmp((const char *)d + 8, names[i]));
		CHECK_INT(d[FW_CFG_DIR_ENTRY_LEN - 1], 0);
	}
	fw_cfg_select(&f, FW_CFG_FILE_FIRST);
	read_n(&f, e, 7);
	CHECK(!memcmp(e, "first!\0", 7));
	fw_cfg_select(&f, FW_CFG_FILE_FIRST + 2);
	read_n(&f, e, 4);
	CHECK(!memcmp(e, "last", 4));
	fw_cfg_free(&f);
}

static void test_bad_files(void)
{
	char name[FW_CFG_NAME_MAX + 2];
	struct fw_cfg f;

	fw_cfg_init(&f);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	CHECK_INT(fw_cfg_add_file(&f, name, dup_str("x"), 1), -1);
	name[FW_CFG_NAME_MAX] = '\0';			/* 55: it fits */
	CHECK_INT(fw_cfg_add_file(&f, name, dup_str("x"), 1), 0);
	CHECK_INT(fw_cfg_add_file(&f, name, dup_str("x"), 1), -1);
	CHECK_INT(fw_cfg_add_file(&f, "", dup_str("x"), 1), -1);
	CHECK_INT(fw_cfg_finish(&f), 0);
	fw_cfg_select(&f, FW_CFG_FILE_DIR);
	CHECK_INT(fw_cfg_current(&f)->len, 4 + FW_CFG_DIR_ENTRY_LEN);
	fw_cfg_free(&f);
}

/* An access structure at `at`: control, length, address. */
static void access_at(uint32_t at, uint32_t ctl, uint32_t len,
		      uint64_t addr)
{
	put_be32(ram + at, ctl);
	put_be32(ram + at + 4, len);
	put_be32(ram + at + 8, addr >> 32);
	put_be32(ram + at + 12, addr);
}

static void dma(struct fw_cfg *f, uint64_t at)
{
	fw_cfg_dma_write(f, false, at >> 32, ram_map, NULL);
	fw_cfg_dma_write(f, true, at, ram_map, NULL);
}

static void test_dma(void)
{
	struct fw_cfg f;

	make(&f);
	memset(ram, 0xaa, sizeof(ram));
	/* Select and read past the end: zeros after the item. */
	access_at(0x100, FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ |
		  FW_CFG_FILE_FIRST << 16, 8, 0x200);
	dma(&f, 0x100);
	CHECK_INT(be32(ram + 0x100), 0);
	CHECK(!memcmp(ram + 0x200, "first!\0\0", 8));
	CHECK_INT(ram[0x208], 0xaa);
	CHECK_INT(f.dma_high, 0);
	/* Skip then read on the current item, no select. */
	fw_cfg_select(&f, FW_CFG_SIGNATURE);
	access_at(0x100, FW_CFG_DMA_CTL_SKIP, 2, 0);
	dma(&f, 0x100);
	CHECK_INT(be32(ram + 0x100), 0);
	access_at(0x100, FW_CFG_DMA_CTL_READ, 2, 0x300);
	dma(&f, 0x100);
	CHECK(!memcmp(ram + 0x300, "MU", 2));
	/* The data register goes on where DMA left off. */
	fw_cfg_select(&f, FW_CFG_SIGNATURE);
	access_at(0x100, FW_CFG_DMA_CTL_READ, 1, 0x300);
	dma(&f, 0x100);
	CHECK_INT(fw_cfg_read(&f), 'E');
	/* Writes are refused; so is a destination outside RAM. */
	access_at(0x100, FW_CFG_DMA_CTL_WRITE, 1, 0x300);
	dma(&f, 0x100);
	CHECK_INT(be32(ram + 0x100), FW_CFG_DMA_CTL_ERROR);
	access_at(0x100, FW_CFG_DMA_CTL_READ, 16, RAM_SIZE - 8);
	dma(&f, 0x100);
	CHECK_INT(be32(ram + 0x100), FW_CFG_DMA_CTL_ERROR);
	access_at(0x100, FW_CFG_DMA_CTL_READ, 1, 1ull << 40);
	dma(&f, 0x100);
	CHECK_INT(be32(ram + 0x100), FW_CFG_DMA_CTL_ERROR);
	/* An access structure outside RAM: nothing happens. */
	fw_cfg_dma_write(&f, true, RAM_SIZE, ram_map, NULL);
	/* The high half is kept until the low half is written. */
	fw_cfg_dma_write(&f, false, 1, ram_map, NULL);
	CHECK_INT(f.dma_high, 1);
	fw_cfg_dma_write(&f, true, 0x100, ram_map, NULL);	/* 4 GiB up */
	CHECK_INT(f.dma_high, 0);
	fw_cfg_free(&f);
}

static void test_dma_signature(void)
{
	CHECK_INT(fw_cfg_dma_read(0, 4), 'Q' | 'E' << 8 | 'M' << 16 |
		  (uint32_t)'U' << 24);
	CHECK_INT(fw_cfg_dma_read(4, 4), ' ' | 'C' << 8 | 'F' << 16 |
		  (uint32_t)'G' << 24);
	CHECK_INT(fw_cfg_dma_read(1, 1), 'E');
	CHECK_INT(fw_cfg_dma_read(6, 2), 'F' | 'G' << 8);
	CHECK_INT(fw_cfg_dma_read(6, 4), 0xffffffff);
}

int main(void)
{
	test_items();
	test_file_dir();
	test_bad_files();
	test_dma();
	test_dma_signature();
	return unit_done();
}
