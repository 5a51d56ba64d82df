/* Kernel loaders: put a kernel into guest RAM and give vCPU 0 its state. */
#ifndef XEN_BOOT_H
#define XEN_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpu.h"

struct domain;

/* Guest-physical layout of what the loaders write below 1 MiB. */
#define BOOT_GDT		0x00500
#define BOOT_PVH_INFO		0x06000
#define BOOT_ZERO_PAGE		0x07000
#define BOOT_PML4		0x09000
#define BOOT_PDPT		0x0a000
#define BOOT_PD			0x0b000	/* four pages: 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE		0x20000
#define BOOT_CMDLINE_MAX	0x01000
#define BOOT_MBI		0x30000
#define BOOT_EBDA		0x9fc00
#define BOOT_KERNEL_ADDR	0x100000

/* GDT selectors the loaders use. */
#define SEL_CODE32	0x08
#define SEL_CODE64	0x10
#define SEL_DATA	0x18
#define SEL_TSS		0x20

struct boot_image {
	const char *path;
	uint8_t *data;
	size_t size;
};

#define E820_RAM	1
#define E820_RESERVED	2
#define E820_MAX	8

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

int boot_load(struct domain *dom, struct boot_cpu_state *st, char *err,
	      size_t errlen);

/* Helpers shared by the loaders (boot.c). */
int boot_read_file(const char *path, struct boot_image *img, char *err,
		   size_t errlen);
/* The same, an empty file allowed (a multiboot module may be empty). */
int boot_read_module(const char *path, struct boot_image *img, char *err,
		     size_t errlen);
void boot_free_image(struct boot_image *img);
int boot_copy(struct domain *dom, uint64_t gpa, const void *src, size_t len,
	      char *err, size_t errlen);
unsigned boot_e820(struct domain *dom, struct e820_entry *map);
int boot_cmdline(struct domain *dom, char *err, size_t errlen);
void boot_setup_gdt(struct domain *dom);
void boot_flat32(struct boot_cpu_state *st);
void boot_long64(struct domain *dom, struct boot_cpu_state *st);
/* Load the ramdisk as high as possible within [lo, top). */
int boot_load_ramdisk(struct domain *dom, uint64_t lo, uint64_t top,
		      uint64_t *gpa, uint64_t *size, char *err, size_t errlen);
/* Highest page-aligned gpa to place len bytes ending at or below top. */
uint64_t boot_place_high(uint64_t top, uint64_t len);

/* ELF (boot/elf.c, libelf). */
/*
 * Load the PT_LOAD segments; each must lie in RAM at or above @lowest and
 * outside the firmware area [BOOT_EBDA, 1 MiB).  *start and *end bound
 * them all.
 */
int elf_load(struct domain *dom, const struct boot_image *img,
	     uint64_t lowest, uint64_t *entry, uint64_t *start,
	     uint64_t *end, char *err, size_t errlen);
/* Whether [gpa, gpa + len) is RAM >= @lowest outside the firmware area. */
bool boot_range_ok(struct domain *dom, uint64_t lowest, uint64_t gpa,
		   uint64_t len);
int elf_find_xen_note(const struct boot_image *img, uint32_t type,
		      uint64_t *value);
int elf_class(const struct boot_image *img);

/* The loaders, each built only when its Kconfig option is on. */
int multiboot_probe(const struct boot_image *img);
int multiboot_load(struct domain *dom, const struct boot_image *img,
		   struct boot_cpu_state *st, char *err, size_t errlen);
int linux_probe(const struct boot_image *img);
int linux_load(struct domain *dom, const struct boot_image *img,
	       struct boot_cpu_state *st, char *err, size_t errlen);
int pvh_probe(const struct boot_image *img);
int pvh_load(struct domain *dom, const struct boot_image *img,
	     struct boot_cpu_state *st, char *err, size_t errlen);

#endif
