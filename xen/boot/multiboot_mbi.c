/*
 * The multiboot information a multiboot 1 kernel gets, laid out as QEMU
 * lays it out (docs/boot.md): the memory map at MB_MMAP_ADDR and the MBI
 * at MB_MBI_ADDR below 1 MiB (or, when the image lies there, at the start
 * of what follows); right after the image (page-aligned) the module list
 * and the strings (each module's, the command line, the boot loader's
 * name); then each module, page-aligned, from 1 MiB up at least.  Module 0
 * is the `ramdisk`, the others are the `modules` of the config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/multiboot.h"
#include "domain.h"
#include "memory.h"

#define MBI_MEM		(1u << 0)
#define MBI_BOOTDEV	(1u << 1)
#define MBI_CMDLINE	(1u << 2)
#define MBI_MODS	(1u << 3)
#define MBI_MMAP	(1u << 6)
#define MBI_LOADER	(1u << 9)

/* BIOS drive 0x80, no partition: the value QEMU passes. */
#define MB_BOOT_DEVICE	0x8000ffffu
#define PAGE_UP(x)	(((x) + 0xfffULL) & ~0xfffULL)

static const char loader_name[] = "xen-kvm";

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
	uint32_t mods_count, mods_addr, syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr, config_table, boot_loader_name;
} __attribute__((packed));

struct mb_module {
	uint32_t start, end, string, reserved;
};

struct mb_mmap {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

/* One module to load: its file and the string the guest gets. */
struct mb_mod_src {
	const char *path;
	char *string;
};

/* The area after the image: module list, then strings, built in RAM. */
struct mb_area {
	uint64_t mmap;		/* map and MBI here, not at MB_MMAP_ADDR */
	uint64_t base;		/* guest-physical */
	uint8_t *buf;
	size_t len, cap;
};

static uint64_t area_put(struct mb_area *a, const void *p, size_t n)
{
	uint64_t at = a->base + a->len;

	memcpy(a->buf + a->len, p, n);
	a->len += n;
	return at;
}

static int collect(struct domain *dom, const char *kernel,
		   struct mb_mod_src *src, unsigned *n, size_t *strings)
{
	const struct domcfg *c = &dom->cfg;
	unsigned i;

	*n = 0;
	*strings = strlen(kernel) + 1 + (c->cmdline ? strlen(c->cmdline) : 0)
		   + 1 + sizeof(loader_name);
	if (c->ramdisk) {
		src[*n].path = c->ramdisk;
		src[(*n)++].string = strdup(c->ramdisk);
	}
	for (i = 0; i < c->nr_modules; i++) {
		const struct domcfg_module *m = &c->modules[i];
		size_t len = strlen(m->path) + 1 + strlen(m->args) + 1;

		src[*n].path = m->path;
		src[*n].string = malloc(len);
		if (src[*n].string)
			snprintf(src[*n].string, len, "%s%s%s", m->path,
				 m->args[0] ? " " : "", m->args);
		(*n)++;
	}
	for (i = 0; i < *n; i++) {
		if (!src[i].string)
			return -1;
		*strings += strlen(src[i].string) + 1;
	}
	return 0;
}

/* Read each module into RAM from *next up, page-aligned; fill @mods. */
static int load_modules(struct domain *dom, const struct mb_mod_src *src,
			unsigned n, uint64_t *next, struct mb_module *mods,
			char *err, size_t errlen)
{
	struct boot_image f;
	unsigned i;
	int ret = 0;

	for (i = 0; i < n && !ret; i++) {
		if (boot_read_module(src[i].path, &f, err, errlen) < 0)
			return -1;
		*next = PAGE_UP(*next);
		if (*next < BOOT_KERNEL_ADDR)	/* a kernel below 1 MiB */
			*next = BOOT_KERNEL_ADDR;
		if (*next + f.size > dom->mem.low_size) {
			snprintf(err, errlen, "%s: %zu bytes do not fit in "
				 "guest RAM below %#llx after the kernel and "
				 "the modules before it", f.path, f.size,
				 (unsigned long long)dom->mem.low_size);
			ret = -1;
		} else {
			ret = boot_copy(dom, *next, f.data, f.size, err,
					errlen);
			mods[i].start = *next;
			mods[i].end = *next + f.size;
			*next += f.size;
		}
		boot_free_image(&f);
	}
	return ret;
}

static void fill_mmap(struct domain *dom, uint64_t at, struct mb_info *mbi)
{
	struct e820_entry map[E820_MAX];
	struct mb_mmap *mm = gpa_to_hva(&dom->mem, at,
					MB_MMAP_MAX * sizeof(*mm));
	unsigned i, n = boot_e820(dom, map);

	for (i = 0; i < n; i++)
		mm[i] = (struct mb_mmap){ 20, map[i].addr, map[i].size,
					  map[i].type };
	mbi->mmap_addr = at;
	mbi->mmap_length = n * sizeof(*mm);
	/* Contiguous RAM from 1 MiB, as QEMU's option ROM computes it. */
	mbi->mem_lower = BOOT_EBDA >> 10;
	mbi->mem_upper = (dom->mem.low_size - 0x100000) >> 10;
}

static int build(struct domain *dom, const char *kernel,
		 struct mb_mod_src *src, unsigned n, struct mb_area *a,
		 struct mb_info *mbi, char *err, size_t errlen)
{
	struct mb_module mods[DOMCFG_MODULES_MAX + 1];
	const char *c = dom->cfg.cmdline ? dom->cfg.cmdline : "";
	uint64_t next = a->base + a->cap;
	uint64_t lo = a->mmap ? a->mmap : a->base;
	unsigned i;

	memset(mods, 0, sizeof(mods));
	if (!boot_range_ok(dom, MB_LOWEST, lo, next - lo)) {
		snprintf(err, errlen, "no room in guest RAM for the multiboot "
			 "information after the kernel");
		return -1;
	}
	if (load_modules(dom, src, n, &next, mods, err, errlen) < 0)
		return -1;
	a->len = n * sizeof(struct mb_module);
	for (i = 0; i < n; i++)
		mods[i].string = area_put(a, src[i].string,
					  strlen(src[i].string) + 1);
	memcpy(a->buf, mods, n * sizeof(struct mb_module));
	/* QEMU's command line: the kernel's file name, a blank, the rest. */
	mbi->cmdline = area_put(a, kernel, strlen(kernel));
	area_put(a, " ", 1);
	area_put(a, c, strlen(c) + 1);
	mbi->boot_loader_name = area_put(a, loader_name, sizeof(loader_name));
	mbi->mods_addr = a->base;
	mbi->mods_count = n;
	return boot_copy(dom, a->base, a->buf, a->len, err, errlen);
}

int mb_write_info(struct domain *dom, const char *kernel, uint64_t start,
		  uint64_t end, uint32_t *mbi_addr, uint32_t *mem_upper,
		  char *err, size_t errlen)
{
	struct mb_mod_src src[DOMCFG_MODULES_MAX + 1];
	struct mb_info mbi;
	struct mb_area a;
	unsigned n = 0, i;
	size_t strings;
	int ret = -1;

	memset(&mbi, 0, sizeof(mbi));
	memset(src, 0, sizeof(src));
	a.buf = NULL;
	if (collect(dom, kernel, src, &n, &strings) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	a.mmap = 0;
	a.base = PAGE_UP(end);
	if (start < MB_INFO_END && MB_MMAP_ADDR < end) {
		a.mmap = a.base;
		a.base += MB_INFO_END - MB_MMAP_ADDR;
	}
	a.cap = n * sizeof(struct mb_module) + strings;
	a.len = 0;
	a.buf = calloc(1, a.cap);
	if (!a.buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (build(dom, kernel, src, n, &a, &mbi, err, errlen) < 0)
		goto out;
	fill_mmap(dom, a.mmap ? a.mmap : MB_MMAP_ADDR, &mbi);
	mbi.flags = MBI_MEM | MBI_BOOTDEV | MBI_CMDLINE | MBI_MODS | MBI_MMAP |
		    MBI_LOADER;
	mbi.boot_device = MB_BOOT_DEVICE;
	*mem_upper = mbi.mem_upper;
	*mbi_addr = (a.mmap ? a.mmap : MB_MMAP_ADDR) + MB_MBI_ADDR -
		    MB_MMAP_ADDR;
	ret = boot_copy(dom, *mbi_addr, &mbi, sizeof(mbi), err, errlen);
out:
	for (i = 0; i < n; i++)
		free(src[i].string);
	free(a.buf);
	return ret;
}
