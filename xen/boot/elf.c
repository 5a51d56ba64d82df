/* ELF kernels read with libelf: PT_LOAD segments and Xen notes. */
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "elfnote.h"
#include "domain.h"
#include "memory.h"

static Elf *elf_open(const struct boot_image *img)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	return elf_memory((char *)img->data, img->size);
}

int elf_class(const struct boot_image *img)
{
	if (img->size < EI_NIDENT || memcmp(img->data, ELFMAG, SELFMAG))
		return ELFCLASSNONE;
	return img->data[EI_CLASS];
}

int elf_load(struct domain *dom, const struct boot_image *img,
	     uint64_t lowest, uint64_t *entry, uint64_t *start,
	     uint64_t *end, char *err, size_t errlen)
{
	GElf_Ehdr eh;
	GElf_Phdr ph;
	size_t i, nph;
	unsigned loaded = 0;
	Elf *e = elf_open(img);
	int ret = -1;

	*end = 0;
	*start = UINT64_MAX;
	if (!e || !gelf_getehdr(e, &eh) || elf_getphdrnum(e, &nph)) {
		snprintf(err, errlen, "%s: bad ELF header: %s", img->path,
			 elf_errmsg(-1));
		goto out;
	}
	if (eh.e_type != ET_EXEC ||
	    (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64)) {
		snprintf(err, errlen, "%s: not an x86 ELF executable", img->path);
		goto out;
	}
	for (i = 0; i < nph; i++) {
		void *dst;

		if (!gelf_getphdr(e, i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > img->size ||
		    ph.p_filesz > img->size - ph.p_offset) {
			snprintf(err, errlen, "%s: segment %zu lies outside the file",
				 img->path, i);
			goto out;
		}
		dst = gpa_to_hva(&dom->mem, ph.p_paddr, ph.p_memsz);
		if (!boot_range_ok(dom, lowest, ph.p_paddr, ph.p_memsz)) {
			snprintf(err, errlen,
				 "%s: segment %zu at %#llx+%#llx is outside guest RAM %s",
				 img->path, i, (unsigned long long)ph.p_paddr,
				 (unsigned long long)ph.p_memsz,
				 lowest >= BOOT_KERNEL_ADDR ? "above 1 MiB" :
				 "outside page 0 and the firmware area");
			goto out;
		}
		memcpy(dst, img->data + ph.p_offset, ph.p_filesz);
		memset((char *)dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > *end)
			*end = ph.p_paddr + ph.p_memsz;
		if (ph.p_paddr < *start)
			*start = ph.p_paddr;
		loaded++;
	}
	if (!loaded) {
		snprintf(err, errlen, "%s: no loadable segment", img->path);
		goto out;
	}
	*entry = eh.e_entry;
	ret = 0;
out:
	if (e)
		elf_end(e);
	return ret;
}

struct xen_note_query {
	uint32_t type;
	uint64_t *value;
};

static int match_xen_note(const GElf_Nhdr *nh, const char *name,
			  const void *desc, void *ctx)
{
	struct xen_note_query *q = ctx;

	if (nh->n_type != q->type || nh->n_namesz != 4 ||
	    memcmp(name, "Xen", 4))
		return 0;
	*q->value = 0;
	memcpy(q->value, desc, nh->n_descsz < 8 ? nh->n_descsz : 8);
	return 1;
}

/* Find a note named "Xen" of the given type; its value as an integer. */
int elf_find_xen_note(const struct boot_image *img, uint32_t type,
		      uint64_t *value)
{
	struct xen_note_query q = { type, value };
	Elf *e = elf_open(img);
	int found = 0;

	if (e) {
		found = elf_for_each_note(e, match_xen_note, &q) == 1;
		elf_end(e);
	}
	return found;
}
