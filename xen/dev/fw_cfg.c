/*
 * The fw_cfg register model (fw_cfg.h): items, the selector, the data
 * register, the file directory and the DMA interface.
 */
#include <stdlib.h>
#include <string.h>

#include "dev/fw_cfg.h"

void fw_cfg_init(struct fw_cfg *f)
{
	memset(f, 0, sizeof(*f));
	f->cur = -1;
}

void fw_cfg_free(struct fw_cfg *f)
{
	unsigned i;

	for (i = 0; i < f->nr; i++)
		free(f->items[i].data);
	free(f->items);
	fw_cfg_init(f);
}

static struct fw_cfg_item *new_item(struct fw_cfg *f)
{
	struct fw_cfg_item *items;

	items = realloc(f->items, (f->nr + 1) * sizeof(*items));
	if (!items)
		return NULL;
	f->items = items;
	memset(&items[f->nr], 0, sizeof(items[0]));
	return &items[f->nr++];
}

int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data,
	       uint32_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct fw_cfg_item *it;

	if (!copy)
		return -1;
	it = new_item(f);
	if (!it) {
		free(copy);
		return -1;
	}
	memcpy(copy, data, len);
	it->key = key;
	it->len = len;
	it->data = copy;
	return 0;
}

static bool valid_name(const struct fw_cfg *f, const char *name)
{
	size_t len = strlen(name);
	unsigned i;

	if (len < 1 || len > FW_CFG_NAME_MAX)
		return false;
	for (i = 0; i < f->nr; i++)
		if (!strcmp(f->items[i].name, name))
			return false;
	return true;
}

int fw_cfg_add_file(struct fw_cfg *f, const char *name, void *data,
		    uint32_t len)
{
	struct fw_cfg_item *it;

	if (!valid_name(f, name) || !(it = new_item(f))) {
		free(data);
		return -1;
	}
	strcpy(it->name, name);
	it->len = len;
	it->data = data;
	return 0;
}

/* Fixed items first, by key; then the files, by name. */
static int item_cmp(const void *a, const void *b)
{
	const struct fw_cfg_item *x = a, *y = b;

	if (!x->name[0] || !y->name[0])
		return x->name[0] ? 1 : y->name[0] ? -1 : x->key - y->key;
	return strcmp(x->name, y->name);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* The directory: be32 count, then per file be32 size, be16 key, u16 0,
 * char name[56]. */
static int add_dir(struct fw_cfg *f, unsigned first, unsigned nr_files)
{
	size_t len = 4 + (size_t)nr_files * FW_CFG_DIR_ENTRY_LEN;
	uint8_t *dir = calloc(1, len), *e;
	unsigned i;
	int ret;

	if (!dir)
		return -1;
	put_be32(dir, nr_files);
	for (i = 0; i < nr_files; i++) {
		const struct fw_cfg_item *it = &f->items[first + i];

		e = dir + 4 + i * FW_CFG_DIR_ENTRY_LEN;
		put_be32(e, it->len);
		e[4] = it->key >> 8;
		e[5] = it->key;
		memcpy(e + 8, it->name, strlen(it->name));
	}
	ret = fw_cfg_add(f, FW_CFG_FILE_DIR, dir, len);
	free(dir);
	return ret;
}

int fw_cfg_finish(struct fw_cfg *f)
{
	unsigned i, first;

	qsort(f->items, f->nr, sizeof(f->items[0]), item_cmp);
	for (first = 0; first < f->nr && !f->items[first].name[0]; first++)
		;
	if (f->nr - first > FW_CFG_WRITE_CHANNEL - FW_CFG_FILE_FIRST)
		return -1;
	for (i = first; i < f->nr; i++)
		f->items[i].key = FW_CFG_FILE_FIRST + (i - first);
	if (add_dir(f, first, f->nr - first) < 0)
		return -1;
	fw_cfg_select(f, f->selector);
	return 0;
}

void fw_cfg_select(struct fw_cfg *f, uint16_t selector)
{
	uint16_t key = selector & ~FW_CFG_WRITE_CHANNEL;
	unsigned i;

	f->selector = selector;
	f->offset = 0;
	f->cur = -1;
	for (i = 0; i < f->nr; i++) {
		if (f->items[i].key == key) {
			f->cur = i;
			return;
		}
	}
}

const struct fw_cfg_item *fw_cfg_current(const struct fw_cfg *f)
{
	return f->cur >= 0 ? &f->items[f->cur] : NULL;
}

uint8_t fw_cfg_read(struct fw_cfg *f)
{
	const struct fw_cfg_item *it = fw_cfg_current(f);

	if (!it || f->offset >= it->len)
		return 0;
	return it->data[f->offset++];
}

/* Bytes left in the selected item. */
static uint32_t remaining(const struct fw_cfg *f)
{
	const struct fw_cfg_item *it = fw_cfg_current(f);

	return it && f->offset < it->len ? it->len - f->offset : 0;
}

/* Copy `len` bytes of the item to `gpa`, zeros past its end. */
static int dma_read(struct fw_cfg *f, uint64_t gpa, uint32_t len,
		    fw_cfg_map_fn map, void *opaque)
{
	uint32_t n = remaining(f);
	uint8_t *dst;

	if (n > len)
		n = len;
	dst = len ? map(opaque, gpa, len) : NULL;
	if (len && !dst)
		return -1;
	if (n)
		memcpy(dst, fw_cfg_current(f)->data + f->offset, n);
	if (len > n)
		memset(dst + n, 0, len - n);
	f->offset += n;
	return 0;
}

static void dma_transfer(struct fw_cfg *f, uint64_t addr, fw_cfg_map_fn map,
			 void *opaque)
{
	uint8_t *acc = map(opaque, addr, FW_CFG_DMA_ACCESS_LEN);
	uint32_t ctl, len, skip;
	uint64_t gpa;
	int err = 0;

	if (!acc)
		return;		/* nowhere to report to */
	ctl = get_be32(acc);
	len = get_be32(acc + 4);
	gpa = (uint64_t)get_be32(acc + 8) << 32 | get_be32(acc + 12);
	if (ctl & FW_CFG_DMA_CTL_SELECT)
		fw_cfg_select(f, ctl >> 16);
	if (ctl & FW_CFG_DMA_CTL_READ) {
		err = dma_read(f, gpa, len, map, opaque);
	} else if (ctl & FW_CFG_DMA_CTL_WRITE) {
		err = -1;	/* every item is read-only */
	} else if (ctl & FW_CFG_DMA_CTL_SKIP) {
		skip = remaining(f);
		f->offset += len < skip ? len : skip;
	}
	put_be32(acc, err ? FW_CFG_DMA_CTL_ERROR : 0);
}

void fw_cfg_dma_write(struct fw_cfg *f, bool low, uint32_t half,
		      fw_cfg_map_fn map, void *opaque)
{
	uint64_t addr = (uint64_t)f->dma_high << 32 | half;

	if (!low) {
		f->dma_high = half;
		return;
	}
	f->dma_high = 0;
	dma_transfer(f, addr, map, opaque);
}

uint32_t fw_cfg_dma_read(unsigned off, unsigned size)
{
	uint32_t v = 0;
	unsigned i;

	if (off + size > 8)
		return 0xffffffff;
	for (i = 0; i < size; i++)
		v |= (uint32_t)(FW_CFG_DMA_SIGNATURE >> (8 * (7 - off - i)) &
				0xff) << (8 * i);
	return v;
}
