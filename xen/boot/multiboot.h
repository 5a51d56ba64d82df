/*
 * Multiboot 1 (the 0.6.96 specification) as this loader and QEMU's
 * (hw/i386/multiboot.c with its option ROM) do it: the layouts shared by
 * the image loader (multiboot.c) and the information builder
 * (multiboot_mbi.c).  See docs/boot.md.
 */
#ifndef XEN_BOOT_MULTIBOOT_H
#define XEN_BOOT_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

struct domain;

#define MB_MAGIC		0x1BADB002
#define MB_BOOT_MAGIC		0x2BADB002

/*
 * Where QEMU puts them, and so do we unless the image is there: the memory
 * map, then the MBI.  A kernel may lie anywhere in RAM from MB_LOWEST up,
 * outside the firmware area (QEMU's own kernels, kvm-unit-tests' realmode
 * test among them, run below 1 MiB).
 */
#define MB_MMAP_ADDR		0x9000
#define MB_MBI_ADDR		0x9500
#define MB_MMAP_MAX		((MB_MBI_ADDR - MB_MMAP_ADDR) / 24)
#define MB_INFO_END		(MB_MBI_ADDR + 0x100)
#define MB_LOWEST		0x1000

/* The header, as far as the a.out-kludge fields (flags bit 16). */
struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr;
	uint32_t entry_addr;
};

/*
 * Write the MBI, the memory map, the module list, the strings and the
 * modules for a kernel loaded at [start, end): 0, or -1 with @err.
 * *mbi gets the MBI's address, *mem_upper its mem_upper (KiB).
 */
int mb_write_info(struct domain *dom, const char *kernel, uint64_t start,
		  uint64_t end, uint32_t *mbi, uint32_t *mem_upper, char *err,
		  size_t errlen);

#endif
