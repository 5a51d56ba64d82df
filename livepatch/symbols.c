/*
 * The running daemon's own symbol table (its .symtab, read from
 * /proc/self/exe with libelf) and where its image lies: what payloads are
 * linked against and what their functions must point into.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "livepatch/internal.h"
#include "log.h"

/* ------------------------------------------------------------ the image */


struct lp_image lp_img;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	int i;

	if (info->dlpi_name && info->dlpi_name[0])
		return 0;
	lp_img.base = info->dlpi_addr;
	lp_img.text_lo = lp_img.img_lo = UINT64_MAX;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		uint64_t hi = lo + ph->p_memsz;

		if (ph->p_type != PT_LOAD)
			continue;
		if (lo < lp_img.img_lo)
			lp_img.img_lo = lo;
		if (hi > lp_img.img_hi)
			lp_img.img_hi = hi;
		if (ph->p_flags & PF_X) {
			if (lo < lp_img.text_lo)
				lp_img.text_lo = lo;
			if (hi > lp_img.text_hi)
				lp_img.text_hi = hi;
		}
	}
	return 1;
}

/* Read the running executable's .symtab (once). */
int lp_image_load(struct lp_err *e)
{
	Elf *elf = NULL;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf_Data *d;
	size_t n, i, total = 0, pos = 0;
	const char *file = "";
	int fd, ret = -1;

	if (lp_img.loaded)
		return 0;
	dl_iterate_phdr(phdr_cb, NULL);
	elf_version(EV_CURRENT);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lp_fail(e, CTL_EINTERNAL, "/proc/self/exe: %s",
			    strerror(errno));
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (elf && (scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			break;
	if (!scn || !(d = elf_getdata(scn, NULL)) || !sh.sh_entsize) {
		lp_fail(e, CTL_ENOTSUP, "%s", "the daemon has no symbol table "
		     "(stripped?): livepatch needs it");
		goto out;
	}
	n = sh.sh_size / sh.sh_entsize;
	for (i = 0; i < n; i++) {
		GElf_Sym s;
		const char *nm;

		if (gelf_getsym(d, i, &s) &&
		    (nm = elf_strptr(elf, sh.sh_link, s.st_name)))
			total += strlen(nm) + 1;
	}
	lp_img.strs = malloc(total + 1);
	lp_img.syms = calloc(n, sizeof(*lp_img.syms));
	if (!lp_img.strs || !lp_img.syms) {
		lp_fail(e, CTL_ENORES, "%s", "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		GElf_Sym s;
		const char *nm;
		struct img_sym *is;
		char *at;

		if (!gelf_getsym(d, i, &s) ||
		    !(nm = elf_strptr(elf, sh.sh_link, s.st_name)) || !*nm)
			continue;
		strcpy(lp_img.strs + pos, nm);
		nm = lp_img.strs + pos;
		pos += strlen(nm) + 1;
		if (GELF_ST_TYPE(s.st_info) == STT_FILE) {
			file = nm;
			continue;
		}
		if (s.st_shndx == SHN_UNDEF || GELF_ST_TYPE(s.st_info) ==
		    STT_SECTION)
			continue;
		at = strchr(nm, '@');
		if (at)
			*at = 0;
		is = &lp_img.syms[lp_img.nsyms++];
		is->name = nm;
		is->file = GELF_ST_BIND(s.st_info) == STB_LOCAL ? file : "";
		is->addr = s.st_value + (s.st_shndx == SHN_ABS ? 0 : lp_img.base);
		is->size = s.st_size;
		is->type = GELF_ST_TYPE(s.st_info);
		is->bind = GELF_ST_BIND(s.st_info);
	}
	lp_img.loaded = true;
	ret = 0;
out:
	if (ret) {
		free(lp_img.strs);
		free(lp_img.syms);
		lp_img.strs = NULL;
		lp_img.syms = NULL;
		lp_img.nsyms = 0;
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return ret;
}

/*
 * A symbol of the running image: "name" (a global, else the only local of
 * that name) or "file.c#name" (a local of that source file).  Returns 0,
 * -1 when absent, -2 when ambiguous.
 */
int lp_image_lookup(const char *name, const struct img_sym **out)
{
	const char *hash = strchr(name, '#');
	const struct img_sym *found = NULL;
	size_t flen = hash ? (size_t)(hash - name) : 0;
	unsigned nlocal = 0;
	size_t i;

	for (i = 0; i < lp_img.nsyms; i++) {
		const struct img_sym *s = &lp_img.syms[i];

		if (hash) {
			if (!strcmp(s->name, hash + 1) &&
			    strlen(s->file) == flen &&
			    !strncmp(s->file, name, flen)) {
				if (found)
					return -2;
				found = s;
			}
			continue;
		}
		if (strcmp(s->name, name))
			continue;
		if (s->bind != STB_LOCAL) {
			*out = s;
			return 0;
		}
		nlocal++;
		found = s;
	}
	if (!found)
		return -1;
	if (nlocal > 1)
		return -2;
	*out = found;
	return 0;
}
