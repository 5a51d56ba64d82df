#include <gelf.h>
#include <libelf.h>

#include "elfnote.h"

static int walk_segment(Elf *e, const GElf_Phdr *ph, elf_note_fn fn,
			void *ctx)
{
	Elf_Data *d;
	GElf_Nhdr nh;
	size_t off = 0, name_off, desc_off;
	int ret;

	d = elf_getdata_rawchunk(e, ph->p_offset, ph->p_filesz, ELF_T_NHDR);
	if (!d)
		return 0;	/* a segment outside the file has no notes */
	while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off))) {
		ret = fn(&nh, (const char *)d->d_buf + name_off,
			 (const char *)d->d_buf + desc_off, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

int elf_for_each_note(Elf *e, elf_note_fn fn, void *ctx)
{
	size_t i, nph;
	GElf_Phdr ph;
	int ret;

	if (elf_getphdrnum(e, &nph))
		return -1;
	for (i = 0; i < nph; i++) {
		if (!gelf_getphdr(e, i, &ph) || ph.p_type != PT_NOTE)
			continue;
		ret = walk_segment(e, &ph, fn, ctx);
		if (ret)
			return ret;
	}
	return 0;
}
