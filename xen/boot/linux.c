/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst): a bzImage
 * entered at its 64-bit entry point with a boot_params "zero page".
 */
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/tables.h"
#include "domain.h"
#include "memory.h"

#define HDR_SETUP_SECTS		0x1f1
#define HDR_SYSSIZE		0x1f4
#define HDR_VID_MODE		0x1fa
#define HDR_BOOT_FLAG		0x1fe
#define HDR_JUMP		0x200
#define HDR_MAGIC		0x202
#define HDR_VERSION		0x206
#define HDR_LOADER_TYPE		0x210
#define HDR_LOADFLAGS		0x211
#define HDR_RAMDISK_IMAGE	0x218
#define HDR_RAMDISK_SIZE	0x21c
#define HDR_HEAP_END		0x224
#define HDR_CMD_LINE_PTR	0x228
#define HDR_INITRD_MAX		0x22c
#define HDR_XLOADFLAGS		0x236
#define HDR_CMDLINE_SIZE	0x238
#define HDR_INIT_SIZE		0x260
#define BP_ACPI_RSDP_ADDR	0x070
#define BP_E820_ENTRIES		0x1e8
#define BP_E820_TABLE		0x2d0

#define LOADFLAG_CAN_USE_HEAP	0x80
#define XLF_KERNEL_64		0x01
#define MIN_VERSION		0x020c	/* 2.12: xloadflags, 64-bit entry */

static uint32_t get32(const uint8_t *p, unsigned off)
{
	uint32_t v;

	memcpy(&v, p + off, 4);
	return v;
}

static void put32(uint8_t *p, unsigned off, uint32_t v)
{
	memcpy(p + off, &v, 4);
}

int linux_probe(const struct boot_image *img)
{
	return img->size >= HDR_VERSION && !memcmp(img->data + HDR_MAGIC,
						  "HdrS", 4);
}

static int check_header(const struct boot_image *img, char *err,
			size_t errlen)
{
	const uint8_t *d = img->data;
	uint16_t version;

	if (img->size < HDR_INIT_SIZE + 4 ||
	    img->size < (size_t)HDR_JUMP + 2 + d[HDR_JUMP + 1]) {
		snprintf(err, errlen, "%s: truncated bzImage (%zu bytes)",
			 img->path, img->size);
		return -1;
	}
	version = d[HDR_VERSION] | d[HDR_VERSION + 1] << 8;

	if (d[HDR_BOOT_FLAG] != 0x55 || d[HDR_BOOT_FLAG + 1] != 0xaa) {
		snprintf(err, errlen, "%s: bzImage without the 0xAA55 boot flag",
			 img->path);
		return -1;
	}
	if (version < MIN_VERSION || !(d[HDR_XLOADFLAGS] & XLF_KERNEL_64)) {
		snprintf(err, errlen,
			 "%s: boot protocol %u.%02u without a 64-bit entry (need 2.12+)",
			 img->path, version >> 8, version & 0xff);
		return -1;
	}
	return 0;
}

/* Fill the zero page: the setup header plus what the loader adds. */
static void fill_zero_page(struct domain *dom, const struct boot_image *img,
			   uint8_t *bp, uint64_t rd, uint64_t rd_size)
{
	struct e820_entry map[E820_MAX];
	unsigned hdr_end = HDR_JUMP + 2 + img->data[HDR_JUMP + 1];
	unsigned n;

	memset(bp, 0, 4096);
	memcpy(bp + HDR_SETUP_SECTS, img->data + HDR_SETUP_SECTS,
	       hdr_end - HDR_SETUP_SECTS);
	bp[HDR_VID_MODE] = 0xff;		/* "normal" */
	bp[HDR_VID_MODE + 1] = 0xff;
	bp[HDR_LOADER_TYPE] = 0xff;		/* undefined loader */
	bp[HDR_LOADFLAGS] |= LOADFLAG_CAN_USE_HEAP;
	bp[HDR_HEAP_END] = 0x00;
	bp[HDR_HEAP_END + 1] = 0xfe;
	put32(bp, HDR_CMD_LINE_PTR, BOOT_CMDLINE);
	put32(bp, HDR_RAMDISK_IMAGE, rd);
	put32(bp, HDR_RAMDISK_SIZE, rd_size);
	put32(bp, BP_ACPI_RSDP_ADDR, BOOT_ACPI);
	n = boot_e820(dom, map);
	bp[BP_E820_ENTRIES] = n;
	memcpy(bp + BP_E820_TABLE, map, n * sizeof(map[0]));
}

int linux_load(struct domain *dom, const struct boot_image *img,
	       struct boot_cpu_state *st, char *err, size_t errlen)
{
	unsigned setup_sects;
	size_t kernel_off;
	uint64_t rd, rd_size, top, kernel_end;
	uint8_t *bp;

	if (check_header(img, err, errlen) < 0)
		return -1;
	setup_sects = img->data[HDR_SETUP_SECTS] ? img->data[HDR_SETUP_SECTS]
						 : 4;
	kernel_off = (setup_sects + 1) * 512;
	/* syssize (in 16-byte units) is reliable from protocol 2.04 on. */
	if (kernel_off >= img->size ||
	    img->size - kernel_off < (size_t)get32(img->data, HDR_SYSSIZE) * 16) {
		snprintf(err, errlen, "%s: truncated bzImage", img->path);
		return -1;
	}
	if (dom->cfg.cmdline &&
	    strlen(dom->cfg.cmdline) > get32(img->data, HDR_CMDLINE_SIZE)) {
		snprintf(err, errlen, "command line longer than the kernel's %u",
			 get32(img->data, HDR_CMDLINE_SIZE));
		return -1;
	}
	kernel_end = BOOT_KERNEL_ADDR + get32(img->data, HDR_INIT_SIZE);
	if (kernel_end > dom->mem.low_size) {
		snprintf(err, errlen, "%s needs %llu MiB of RAM to unpack",
			 img->path,
			 (unsigned long long)((kernel_end + (1 << 20) - 1) >> 20));
		return -1;
	}
	if (boot_copy(dom, BOOT_KERNEL_ADDR, img->data + kernel_off,
		      img->size - kernel_off, err, errlen) < 0 ||
	    boot_cmdline(dom, err, errlen) < 0)
		return -1;
	top = (uint64_t)get32(img->data, HDR_INITRD_MAX) + 1;
	if (top > dom->mem.low_size)
		top = dom->mem.low_size;
	if (boot_load_ramdisk(dom, (kernel_end + 0xfff) & ~0xfffULL, top, &rd,
			      &rd_size, err, errlen) < 0)
		return -1;
	bp = gpa_to_hva(&dom->mem, BOOT_ZERO_PAGE, 4096);
	fill_zero_page(dom, img, bp, rd, rd_size);
	boot_long64(dom, st);
	st->regs.rip = BOOT_KERNEL_ADDR + 0x200;	/* startup_64 */
	st->regs.rsi = BOOT_ZERO_PAGE;
	return 0;
}
