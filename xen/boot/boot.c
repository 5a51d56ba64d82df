#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "boot/boot.h"
#include "boot/tables.h"
#include "domain.h"
#include "memory.h"
#include "openfile.h"

#define KERNEL_MAX_SIZE	(512u << 20)

#ifdef CONFIG_BOOT_MULTIBOOT
#define IS_ENABLED_MB 1
#else
#define IS_ENABLED_MB 0
#endif
#ifdef CONFIG_BOOT_PVH
#define IS_ENABLED_PVH 1
#else
#define IS_ENABLED_PVH 0
#endif
#ifdef CONFIG_BOOT_LINUX
#define IS_ENABLED_LINUX 1
#else
#define IS_ENABLED_LINUX 0
#endif

static int read_file(const char *path, struct boot_image *img,
		     size_t min_size, char *err, size_t errlen)
{
	off_t size;
	ssize_t n;
	size_t done = 0;
	int fd;

	img->path = path;
	img->data = NULL;
	fd = open_regular(path, KERNEL_MAX_SIZE, &size, err, errlen);
	if (fd < 0 && (errno == EINVAL || errno == EFBIG))
		goto refuse;
	if (fd < 0)
		return -1;
	if ((size_t)size < min_size) {
		close(fd);
		goto refuse;
	}
	img->size = size;
	img->data = malloc(img->size ? img->size : 1);
	if (!img->data)
		goto fail;
	while (done < img->size) {
		n = read(fd, img->data + done, img->size - done);
		if (n <= 0) {
			errno = n ? errno : EIO;
			goto fail;
		}
		done += n;
	}
	close(fd);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	close(fd);
	free(img->data);
	img->data = NULL;
	return -1;
refuse:
	snprintf(err, errlen, "%s: not a regular file of %zu byte%s to %u MiB",
		 path, min_size, min_size == 1 ? "" : "s",
		 KERNEL_MAX_SIZE >> 20);
	return -1;
}

int boot_read_file(const char *path, struct boot_image *img, char *err,
		   size_t errlen)
{
	return read_file(path, img, 1, err, errlen);
}

int boot_read_module(const char *path, struct boot_image *img, char *err,
		     size_t errlen)
{
	return read_file(path, img, 0, err, errlen);
}

void boot_free_image(struct boot_image *img)
{
	free(img->data);
	img->data = NULL;
}

int boot_copy(struct domain *dom, uint64_t gpa, const void *src, size_t len,
	      char *err, size_t errlen)
{
	void *dst = gpa_to_hva(&dom->mem, gpa, len);

	if (!dst) {
		snprintf(err, errlen,
			 "%zu bytes at %#llx do not fit in %u MiB of RAM", len,
			 (unsigned long long)gpa, dom->cfg.memory_mib);
		return -1;
	}
	memcpy(dst, src, len);
	return 0;
}

int boot_load_ramdisk(struct domain *dom, uint64_t lo, uint64_t top,
		      uint64_t *gpa, uint64_t *size, char *err, size_t errlen)
{
	struct boot_image rd;
	int ret;

	*gpa = *size = 0;
	if (!dom->cfg.ramdisk)
		return 0;
	if (boot_read_file(dom->cfg.ramdisk, &rd, err, errlen) < 0)
		return -1;
	*gpa = boot_place_high(top, rd.size);
	if (*gpa < lo) {
		snprintf(err, errlen, "%s: %zu bytes do not fit in guest RAM",
			 rd.path, rd.size);
		ret = -1;
	} else {
		*size = rd.size;
		ret = boot_copy(dom, *gpa, rd.data, rd.size, err, errlen);
	}
	boot_free_image(&rd);
	return ret;
}

bool boot_range_ok(struct domain *dom, uint64_t lowest, uint64_t gpa,
		   uint64_t len)
{
	if (gpa < lowest || !gpa_to_hva(&dom->mem, gpa, len))
		return false;
	return gpa + len <= BOOT_EBDA || gpa >= BOOT_KERNEL_ADDR;
}

uint64_t boot_place_high(uint64_t top, uint64_t len)
{
	if (len > top)
		return 0;
	return (top - len) & ~0xfffULL;
}

unsigned boot_e820(struct domain *dom, struct e820_entry *map)
{
	struct guest_mem *m = &dom->mem;
	unsigned n = 0;

	map[n++] = (struct e820_entry){ 0, BOOT_EBDA, E820_RAM };
	map[n++] = (struct e820_entry){ BOOT_EBDA, 0x100000 - BOOT_EBDA,
					E820_RESERVED };
	if (m->low_size > 0x100000)
		map[n++] = (struct e820_entry){ 0x100000,
						m->low_size - 0x100000,
						E820_RAM };
	if (m->size > m->low_size)
		map[n++] = (struct e820_entry){ MEM_4G, m->size - m->low_size,
						E820_RAM };
	return n;
}

int boot_cmdline(struct domain *dom, char *err, size_t errlen)
{
	const char *c = dom->cfg.cmdline ? dom->cfg.cmdline : "";
	size_t len = strlen(c) + 1;

	if (len > BOOT_CMDLINE_MAX) {
		snprintf(err, errlen, "command line longer than %d bytes",
			 BOOT_CMDLINE_MAX - 1);
		return -1;
	}
	return boot_copy(dom, BOOT_CMDLINE, c, len, err, errlen);
}

/* A flat GDT: null, code32, code64, data, and a 32-bit TSS at 0. */
void boot_setup_gdt(struct domain *dom)
{
	uint64_t *gdt = gpa_to_hva(&dom->mem, BOOT_GDT, 5 * 8);

	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL;	/* code32, base 0, 4 GiB */
	gdt[2] = 0x00af9b000000ffffULL;	/* code64 */
	gdt[3] = 0x00cf93000000ffffULL;	/* data, base 0, 4 GiB */
	gdt[4] = 0x00008b0000000067ULL;	/* busy 32-bit TSS, base 0 */
}

static struct kvm_segment flat_seg(uint16_t sel, uint8_t type, bool l)
{
	struct kvm_segment s = {
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = !l, .s = 1, .l = l, .g = 1,
	};
	return s;
}

/* 32-bit protected mode, paging off, flat segments (multiboot, PVH). */
void boot_flat32(struct boot_cpu_state *st)
{
	struct kvm_sregs *s = &st->sregs;

	s->cs = flat_seg(SEL_CODE32, 11, false);
	s->ds = s->es = s->fs = s->gs = s->ss = flat_seg(SEL_DATA, 3, false);
	s->tr = (struct kvm_segment){ .base = 0, .limit = 0x67,
				      .selector = SEL_TSS, .type = 11,
				      .present = 1 };
	s->gdt.base = BOOT_GDT;
	s->gdt.limit = 5 * 8 - 1;
	s->cr0 = 0x11;			/* PE | ET */
	s->cr4 = 0;
	s->efer = 0;
	st->regs.rflags = 2;
}

/* 64-bit mode with 0..4 GiB identity mapped by 2 MiB pages (Linux). */
void boot_long64(struct domain *dom, struct boot_cpu_state *st)
{
	uint64_t *pml4 = gpa_to_hva(&dom->mem, BOOT_PML4, 4096);
	uint64_t *pdpt = gpa_to_hva(&dom->mem, BOOT_PDPT, 4096);
	uint64_t *pd = gpa_to_hva(&dom->mem, BOOT_PD, 4 * 4096);
	struct kvm_sregs *s = &st->sregs;
	unsigned i;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = BOOT_PDPT | 3;
	for (i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD + i * 4096) | 3;
	for (i = 0; i < 2048; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;	/* P | RW | PS */
	boot_flat32(st);
	s->cs = flat_seg(SEL_CODE64, 11, true);
	s->cr3 = BOOT_PML4;
	s->cr4 = 0x20;			/* PAE */
	s->cr0 = 0x80000011;		/* PG | ET | PE */
	s->efer = 0x500;		/* LMA | LME */
}

/*
 * What firmware leaves below 1 MiB for any kernel: the BIOS data area's
 * EBDA pointer and base memory size, an MP table and ACPI tables.
 */
static int boot_tables(struct domain *dom, char *err, size_t errlen)
{
	uint16_t ebda_seg = BOOT_EBDA >> 4, base_kib = BOOT_EBDA >> 10;

	if (boot_copy(dom, BOOT_BDA_EBDA, &ebda_seg, 2, err, errlen) < 0 ||
	    boot_copy(dom, BOOT_BDA_BASEMEM, &base_kib, 2, err, errlen) < 0)
		return -1;
	if (mptable_write(dom) < 0 || acpi_write(dom) < 0) {
		snprintf(err, errlen, "no room for the MP or ACPI tables "
			 "(%u vCPUs)", dom->nr_vcpus);
		return -1;
	}
	return 0;
}

#if defined(CONFIG_BOOT_PVH) || defined(CONFIG_BOOT_LINUX)
/* The `modules` key is for multiboot kernels: refuse it for the others. */
static int no_modules(struct domain *dom, const struct boot_image *img,
		      const char *what, char *err, size_t errlen)
{
	if (!dom->cfg.nr_modules)
		return 0;
	snprintf(err, errlen, "%s: a %s kernel takes no modules (the modules "
		 "key is for multiboot kernels; use ramdisk)", img->path, what);
	return -1;
}
#endif

int boot_load(struct domain *dom, struct boot_cpu_state *st, char *err,
	      size_t errlen)
{
	struct boot_image img;
	int ret = -1;

	if (boot_tables(dom, err, errlen) < 0)
		return -1;
	if (boot_read_file(dom->cfg.kernel, &img, err, errlen) < 0)
		return -1;
	boot_setup_gdt(dom);
#ifdef CONFIG_BOOT_PVH
	if (pvh_probe(&img)) {
		ret = no_modules(dom, &img, "PVH", err, errlen) ?:
		      pvh_load(dom, &img, st, err, errlen);
		goto out;
	}
#endif
#ifdef CONFIG_BOOT_MULTIBOOT
	if (multiboot_probe(&img)) {
		ret = multiboot_load(dom, &img, st, err, errlen);
		goto out;
	}
#endif
#ifdef CONFIG_BOOT_LINUX
	if (linux_probe(&img)) {
		ret = no_modules(dom, &img, "Linux", err, errlen) ?:
		      linux_load(dom, &img, st, err, errlen);
		goto out;
	}
#endif
	snprintf(err, errlen,
		 "%s: not a kernel this build boots (supported:%s%s%s)",
		 img.path,
		 IS_ENABLED_MB ? " multiboot1 ELF or a.out kludge" : "",
		 IS_ENABLED_PVH ? " PVH ELF" : "",
		 IS_ENABLED_LINUX ? " Linux bzImage" : "");
out:
	boot_free_image(&img);
	return ret;
}
