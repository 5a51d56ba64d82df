/*
 * Multiboot 1 kernels: ELF through their program headers, or any image
 * through the a.out kludge (header flag 16), entered as QEMU's -kernel
 * enters them (docs/boot.md).
 */
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/multiboot.h"
#include "domain.h"
#include "memory.h"

#define MB_SEARCH		8192
#define MB_FLAG_AOUT_KLUDGE	(1u << 16)
/* Required-feature bits other than page alignment (0) and memory info (1). */
#define MB_FLAG_REQUIRED_UNSUPPORTED	0xfffcu

/* The GDT QEMU's multiboot option ROM leaves loaded: its selectors. */
#define MB_SEL_CODE32		0x08
#define MB_SEL_DATA32		0x10
#define MB_GDT_ENTRIES		5

/* Registers QEMU 7.2's loader (multiboot_dma.bin) leaves undefined-by-spec. */
#define MB_QEMU_EDX_LOW		0x0511	/* fw_cfg data port, in DX */
#define MB_QEMU_EDI		0x1000
#define MB_QEMU_ESP		0x6f08	/* SeaBIOS' boot stack */

static long find_header(const struct boot_image *img)
{
	size_t off, lim = img->size < MB_SEARCH ? img->size : MB_SEARCH;

	for (off = 0; off + 12 <= lim; off += 4) {
		const uint32_t *h = (const uint32_t *)(img->data + off);

		if (h[0] == MB_MAGIC && h[0] + h[1] + h[2] == 0)
			return off;
	}
	return -1;
}

int multiboot_probe(const struct boot_image *img)
{
	return find_header(img) >= 0;
}

/*
 * The a.out kludge: the file from the header's offset minus
 * (header_addr - load_addr) is loaded at load_addr up to load_end_addr
 * (0: the end of the file), zeroed up to bss_end_addr (0: no bss).
 */
static int load_kludge(struct domain *dom, const struct boot_image *img,
		       size_t off, const struct mb_header *h, uint64_t *entry,
		       uint64_t *start, uint64_t *end, char *err,
		       size_t errlen)
{
	uint64_t file_off, load_size, mem_size;
	uint8_t *dst;

	if (img->size < off + sizeof(*h)) {
		snprintf(err, errlen, "%s: multiboot a.out-kludge header is "
			 "cut off by the end of the file", img->path);
		return -1;
	}
	if (h->header_addr < h->load_addr ||
	    h->header_addr - h->load_addr > off) {
		snprintf(err, errlen, "%s: multiboot header_addr %#x does not "
			 "lie in the image loaded at %#x", img->path,
			 h->header_addr, h->load_addr);
		return -1;
	}
	file_off = off - (h->header_addr - h->load_addr);
	load_size = img->size - file_off;
	if (h->load_end_addr) {
		if (h->load_end_addr < h->load_addr ||
		    h->load_end_addr - h->load_addr > load_size) {
			snprintf(err, errlen, "%s: multiboot load_end_addr "
				 "%#x lies outside the file", img->path,
				 h->load_end_addr);
			return -1;
		}
		load_size = h->load_end_addr - h->load_addr;
	}
	mem_size = load_size;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < h->load_addr + load_size) {
			snprintf(err, errlen, "%s: multiboot bss_end_addr %#x "
				 "lies below load_end_addr", img->path,
				 h->bss_end_addr);
			return -1;
		}
		mem_size = h->bss_end_addr - h->load_addr;
	}
	if (!boot_range_ok(dom, MB_LOWEST, h->load_addr, mem_size)) {
		snprintf(err, errlen, "%s: image at %#x+%#llx is outside guest "
			 "RAM outside page 0 and the firmware area", img->path,
			 h->load_addr, (unsigned long long)mem_size);
		return -1;
	}
	dst = gpa_to_hva(&dom->mem, h->load_addr, mem_size);
	memcpy(dst, img->data + file_off, load_size);
	memset(dst + load_size, 0, mem_size - load_size);
	*entry = h->entry_addr;
	*start = h->load_addr;
	*end = h->load_addr + mem_size;
	return 0;
}

static int load_image(struct domain *dom, const struct boot_image *img,
		      size_t off, uint64_t *entry, uint64_t *start,
		      uint64_t *end, char *err, size_t errlen)
{
	struct mb_header h;
	size_t n = img->size - off < sizeof(h) ? img->size - off : sizeof(h);

	memset(&h, 0, sizeof(h));
	memcpy(&h, img->data + off, n);
	/* Bits 0-15 are requirements: refuse what we cannot provide. */
	if (h.flags & MB_FLAG_REQUIRED_UNSUPPORTED) {
		snprintf(err, errlen,
			 "%s: multiboot header requires features %#x this loader does not provide (video mode or unknown)",
			 img->path, h.flags & MB_FLAG_REQUIRED_UNSUPPORTED);
		return -1;
	}
	if (h.flags & MB_FLAG_AOUT_KLUDGE)
		return load_kludge(dom, img, off, &h, entry, start, end, err,
				   errlen);
	if (elf_class(img) == ELFCLASSNONE) {
		snprintf(err, errlen, "%s: multiboot image is neither ELF nor "
			 "has the a.out-kludge addresses (header flag 16)",
			 img->path);
		return -1;
	}
	return elf_load(dom, img, MB_LOWEST, entry, start, end, err, errlen);
}

/* QEMU's option ROM GDT: null, code32, data32, code16, data16. */
static void mb_gdt(struct domain *dom, struct boot_cpu_state *st)
{
	uint64_t *gdt = gpa_to_hva(&dom->mem, BOOT_GDT, MB_GDT_ENTRIES * 8);

	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL;	/* code32, base 0, 4 GiB */
	gdt[2] = 0x00cf93000000ffffULL;	/* data32, base 0, 4 GiB */
	gdt[3] = 0x00009f000000ffffULL;	/* code16, conforming, 64 KiB */
	gdt[4] = 0x000093000000ffffULL;	/* data16, 64 KiB */
	boot_flat32(st);
	st->sregs.cs.selector = MB_SEL_CODE32;
	st->sregs.ds.selector = st->sregs.es.selector = MB_SEL_DATA32;
	st->sregs.fs.selector = st->sregs.gs.selector = MB_SEL_DATA32;
	st->sregs.ss.selector = MB_SEL_DATA32;
	st->sregs.gdt.limit = MB_GDT_ENTRIES * 8 - 1;
	/* The real-mode IVT and a TR never loaded, as after the BIOS. */
	st->sregs.idt = (struct kvm_dtable){ .base = 0, .limit = 0x3ff };
	st->sregs.tr = (struct kvm_segment){ .base = 0, .limit = 0xffff,
					     .type = 11, .present = 1 };
}

int multiboot_load(struct domain *dom, const struct boot_image *img,
		   struct boot_cpu_state *st, char *err, size_t errlen)
{
	long off = find_header(img);
	uint64_t entry, start, end;
	uint32_t mbi, mem_upper;

	if (load_image(dom, img, off, &entry, &start, &end, err, errlen) < 0)
		return -1;
	if (mb_write_info(dom, img->path, start, end, &mbi, &mem_upper, err,
			  errlen) < 0)
		return -1;
	mb_gdt(dom, st);
	st->regs.rip = (uint32_t)entry;
	st->regs.rax = MB_BOOT_MAGIC;
	st->regs.rbx = mbi;
	/* Undefined by the specification: what QEMU leaves (docs/boot.md). */
	st->regs.rcx = (uint32_t)entry;
	st->regs.rdx = (mem_upper & 0xffff0000u) | MB_QEMU_EDX_LOW;
	st->regs.rdi = MB_QEMU_EDI;
	st->regs.rsp = MB_QEMU_ESP;
	return 0;
}
