/*
 * PVH entry (Xen's docs/misc/pvh.pandoc): an ELF kernel with a
 * XEN_ELFNOTE_PHYS32_ENTRY note, entered in 32-bit protected mode with
 * %ebx pointing at an hvm_start_info.
 */
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/tables.h"
#include "domain.h"

#define XEN_ELFNOTE_PHYS32_ENTRY	18
#define HVM_START_MAGIC			0x336ec578

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct pvh_area {
	struct hvm_start_info info;
	struct hvm_modlist_entry mod;
	struct hvm_memmap_entry map[E820_MAX];
};

int pvh_probe(const struct boot_image *img)
{
	uint64_t entry;

	return elf_class(img) && elf_find_xen_note(img,
						   XEN_ELFNOTE_PHYS32_ENTRY,
						   &entry);
}

int pvh_load(struct domain *dom, const struct boot_image *img,
	     struct boot_cpu_state *st, char *err, size_t errlen)
{
	struct e820_entry map[E820_MAX];
	struct pvh_area a;
	uint64_t entry, elf_entry, start, end, rd, rd_size;
	unsigned i, n;

	elf_find_xen_note(img, XEN_ELFNOTE_PHYS32_ENTRY, &entry);
	entry &= 0xffffffff;
	if (elf_load(dom, img, BOOT_KERNEL_ADDR, &elf_entry, &start, &end, err,
		     errlen) < 0 ||
	    boot_cmdline(dom, err, errlen) < 0)
		return -1;
	if (boot_load_ramdisk(dom, (end + 0xfff) & ~0xfffULL,
			      dom->mem.low_size, &rd, &rd_size, err,
			      errlen) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.info.magic = HVM_START_MAGIC;
	a.info.version = 1;
	a.info.cmdline_paddr = BOOT_CMDLINE;
	a.info.rsdp_paddr = BOOT_ACPI;
	if (rd_size) {
		a.info.nr_modules = 1;
		a.info.modlist_paddr = BOOT_PVH_INFO +
				       offsetof(struct pvh_area, mod);
		a.mod.paddr = rd;
		a.mod.size = rd_size;
	}
	n = boot_e820(dom, map);
	for (i = 0; i < n; i++)
		a.map[i] = (struct hvm_memmap_entry){ map[i].addr, map[i].size,
						      map[i].type, 0 };
	a.info.memmap_paddr = BOOT_PVH_INFO + offsetof(struct pvh_area, map);
	a.info.memmap_entries = n;
	if (boot_copy(dom, BOOT_PVH_INFO, &a, sizeof(a), err, errlen) < 0)
		return -1;
	boot_flat32(st);
	st->regs.rip = entry;
	st->regs.rbx = BOOT_PVH_INFO;
	return 0;
}
