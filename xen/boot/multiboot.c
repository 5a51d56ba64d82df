/* Multiboot1 ELF kernels (the test guests; QEMU -kernel boots them too). */
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "domain.h"
#include "memory.h"

#define MB_MAGIC		0x1BADB002
#define MB_BOOT_MAGIC		0x2BADB002
#define MB_SEARCH		8192
#define MB_FLAG_AOUT_KLUDGE	(1u << 16)
/* Required-feature bits other than page alignment (0) and memory info (1). */
#define MB_FLAG_REQUIRED_UNSUPPORTED	0xfffcu

#define MBI_MEM		(1u << 0)
#define MBI_CMDLINE	(1u << 2)
#define MBI_MODS	(1u << 3)
#define MBI_MMAP	(1u << 6)
#define MBI_LOADER	(1u << 9)

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

static const uint32_t *find_header(const struct boot_image *img)
{
	size_t off, lim = img->size < MB_SEARCH ? img->size : MB_SEARCH;

	for (off = 0; off + 12 <= lim; off += 4) {
		const uint32_t *h = (const uint32_t *)(img->data + off);

		if (h[0] == MB_MAGIC && h[0] + h[1] + h[2] == 0)
			return h;
	}
	return NULL;
}

int multiboot_probe(const struct boot_image *img)
{
	return find_header(img) != NULL;
}

static const char loader_name[] = "xen-kvm";

/* Boot information below 1 MiB at BOOT_MBI, in this order. */
struct mb_area {
	struct mb_info info;
	struct mb_mmap mmap[E820_MAX];
	struct mb_module mod;
	char name[sizeof(loader_name)];
	char modname[8];
} __attribute__((packed));

int multiboot_load(struct domain *dom, const struct boot_image *img,
		   struct boot_cpu_state *st, char *err, size_t errlen)
{
	const uint32_t *hdr = find_header(img);
	struct e820_entry map[E820_MAX];
	struct mb_area a;
	uint64_t entry, end, rd, rd_size;
	unsigned i, n;

	/* Bits 0-15 are requirements: refuse what we cannot provide. */
	if (hdr[1] & MB_FLAG_REQUIRED_UNSUPPORTED) {
		snprintf(err, errlen,
			 "%s: multiboot header requires features %#x this loader does not provide (video mode or unknown)",
			 img->path, hdr[1] & MB_FLAG_REQUIRED_UNSUPPORTED);
		return -1;
	}
	if (hdr[1] & MB_FLAG_AOUT_KLUDGE && elf_class(img) == 0) {
		snprintf(err, errlen,
			 "%s: multiboot a.out-kludge images are not supported, only ELF",
			 img->path);
		return -1;
	}
	if (elf_load(dom, img, &entry, &end, err, errlen) < 0)
		return -1;
	if (boot_cmdline(dom, err, errlen) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.info.flags = MBI_MEM | MBI_CMDLINE | MBI_MMAP | MBI_LOADER;
	a.info.mem_lower = BOOT_EBDA / 1024;
	a.info.mem_upper = (dom->mem.low_size - 0x100000) / 1024;
	a.info.cmdline = BOOT_CMDLINE;
	n = boot_e820(dom, map);
	for (i = 0; i < n; i++)
		a.mmap[i] = (struct mb_mmap){ 20, map[i].addr, map[i].size,
					      map[i].type };
	a.info.mmap_addr = BOOT_MBI + offsetof(struct mb_area, mmap);
	a.info.mmap_length = n * sizeof(struct mb_mmap);
	memcpy(a.name, loader_name, sizeof(loader_name));
	a.info.boot_loader_name = BOOT_MBI + offsetof(struct mb_area, name);
	if (boot_load_ramdisk(dom, (end + 0xfff) & ~0xfffULL,
			      dom->mem.low_size, &rd, &rd_size, err,
			      errlen) < 0)
		return -1;
	if (rd_size) {
		a.info.flags |= MBI_MODS;
		a.info.mods_count = 1;
		a.info.mods_addr = BOOT_MBI + offsetof(struct mb_area, mod);
		memcpy(a.modname, "initrd", 7);
		a.mod = (struct mb_module){
			rd, rd + rd_size,
			BOOT_MBI + offsetof(struct mb_area, modname), 0 };
	}
	if (boot_copy(dom, BOOT_MBI, &a, sizeof(a), err, errlen) < 0)
		return -1;
	boot_flat32(st);
	st->regs.rip = (uint32_t)entry;
	st->regs.rax = MB_BOOT_MAGIC;
	st->regs.rbx = BOOT_MBI;
	return 0;
}
