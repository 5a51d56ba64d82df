/*
 * Reading a payload: ELF checks, memory within +-2 GiB of the daemon's
 * image, copying its sections, linking it against the daemon's symbols,
 * and finding the functions it replaces.
 */
#include <dlfcn.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "livepatch/internal.h"
#include "log.h"

/* ------------------------------------------------------------ payloads */




/* Memory for a payload within +-2 GiB of all of the daemon's image. */
static void *alloc_near(size_t size)
{
	const uint64_t step = 16ull << 20, lim = 1ull << 30;
	uint64_t off;

	for (off = step; off < lim; off += step) {
		uint64_t hints[2] = { (lp_img.img_hi + off) & ~0xfffull,
				      lp_img.img_lo > off + size ?
				      (lp_img.img_lo - off - size) & ~0xfffull : 0 };
		unsigned k;

		for (k = 0; k < 2; k++) {
			void *p;
			uint64_t a;

			if (!hints[k])
				continue;
			p = mmap((void *)hints[k], size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS |
				 MAP_FIXED_NOREPLACE, -1, 0);
			if (p == MAP_FAILED)
				continue;
			a = (uint64_t)p;
			/* Every byte of it reaches every byte of the image. */
			if ((a + size > lp_img.img_hi ? a + size : lp_img.img_hi) -
			    (a < lp_img.img_lo ? a : lp_img.img_lo) <
			    (2ull << 30) - 4096)
				return p;
			munmap(p, size);
		}
	}
	return NULL;
}

void lp_payload_free(struct payload *p)
{
	if (!p)
		return;
	if (p->mem)
		munmap(p->mem, p->mem_size);
	free(p->funcs);
	free(p->ranges);
	free(p->params);
	json_decref(p->meta);
	free(p);
}

static int read_note(Elf_Data *d, uint8_t *out, unsigned *len)
{
	GElf_Nhdr nh;
	size_t noff, doff, off = 0;

	while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff))) {
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    !memcmp((char *)d->d_buf + noff, "GNU", 4) &&
		    nh.n_descsz > 0 && nh.n_descsz <= LP_BUILD_ID_MAX) {
			memcpy(out, (char *)d->d_buf + doff, nh.n_descsz);
			*len = nh.n_descsz;
			return 0;
		}
	}
	return -1;
}

static const char *reloc_name(unsigned t)
{
	static const char *const names[] = {
		"R_X86_64_NONE", "R_X86_64_64", "R_X86_64_PC32",
		"R_X86_64_GOT32", "R_X86_64_PLT32", "R_X86_64_COPY",
		"R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT",
		"R_X86_64_RELATIVE", "R_X86_64_GOTPCREL", "R_X86_64_32",
		"R_X86_64_32S", "R_X86_64_16", "R_X86_64_PC16", "R_X86_64_8",
		"R_X86_64_PC8", "R_X86_64_DTPMOD64", "R_X86_64_DTPOFF64",
		"R_X86_64_TPOFF64", "R_X86_64_TLSGD", "R_X86_64_TLSLD",
		"R_X86_64_DTPOFF32", "R_X86_64_GOTTPOFF", "R_X86_64_TPOFF32",
		"R_X86_64_PC64", "R_X86_64_GOTOFF64", "R_X86_64_GOTPC32",
	};

	if (t < sizeof(names) / sizeof(names[0]))
		return names[t];
	if (t == R_X86_64_GOTPCRELX)
		return "R_X86_64_GOTPCRELX";
	if (t == R_X86_64_REX_GOTPCRELX)
		return "R_X86_64_REX_GOTPCRELX";
	return "unknown";
}

/*
 * Where a section goes in the payload's memory.  The loader and the
 * runtime read .livepatch.funcs, .livepatch.params, .livepatch.ranges and
 * the hook arrays there as C arrays, so they are placed aligned for their
 * elements whatever the payload says (a payload that asks for 1 would
 * otherwise have them read misaligned: UBSan aborts there).
 */
static size_t lp_section_align(const char *sname, uint64_t addralign)
{
	size_t al = addralign ? addralign : 1;
	size_t need = 1;

	if (!strcmp(sname, ".livepatch.funcs"))
		need = _Alignof(struct livepatch_func);
	else if (!strcmp(sname, ".livepatch.params"))
		need = _Alignof(struct livepatch_param);
	else if (!strcmp(sname, ".livepatch.ranges"))
		need = _Alignof(struct livepatch_range);
	else if (!strncmp(sname, ".livepatch.hooks.", 17))
		need = _Alignof(livepatch_hook_t *);
	return al > need ? al : need;
}

static bool in_payload(const struct payload *p, uint64_t a, uint64_t len,
		       bool text)
{
	uint64_t lo = (uint64_t)p->mem;
	uint64_t hi = lo + (text ? p->text_size : p->mem_size);

	return a >= lo && a <= hi && len <= hi - a;
}

static bool fits32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

/* The E9 rel32 apply writes at the old function's entry. */
static void make_jmp(struct lp_func *lf)
{
	int32_t rel = (int32_t)((uint64_t)lf->f->new_addr -
				((uint64_t)lf->old + LIVEPATCH_JMP_SIZE));

	lf->jmp[0] = 0xe9;
	memcpy(lf->jmp + 1, &rel, 4);
}

/* The core of upload: parse, lay out, link and check a payload. */
int lp_payload_load(struct payload *p, const uint8_t *buf, size_t size,
			struct lp_err *e)
{
	Elf *elf;
	GElf_Ehdr eh;
	GElf_Shdr *sh = NULL;
	uint64_t *sec_addr = NULL;
	size_t shnum, shstrndx, i, j, text_off = 0, data_off = 0, nstub = 0;
	size_t symtab = 0, stub_used = 0;
	Elf_Data *symd = NULL;
	const char *sname;
	uint8_t *stubs;
	int ret = -1;
	bool have_funcs = false, have_dep = false, have_id = false;

	elf_version(EV_CURRENT);
	elf = elf_memory((char *)buf, size);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh)) {
		lp_fail(e, CTL_EINVAL, "corrupt ELF: not an ELF object (%s)",
			elf_errmsg(-1));
		goto out;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_REL ||
	    eh.e_machine != EM_X86_64) {
		lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: not a relocatable "
		     "x86-64 ELF64 object");
		goto out;
	}
	if (elf_getshdrnum(elf, &shnum) || elf_getshdrstrndx(elf, &shstrndx) ||
	    shnum < 2 || shnum > 65000 || shstrndx >= shnum) {
		lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad section table");
		goto out;
	}
	sh = calloc(shnum, sizeof(*sh));
	sec_addr = calloc(shnum, sizeof(*sec_addr));
	if (!sh || !sec_addr) {
		lp_fail(e, CTL_ENORES, "%s", "out of memory");
		goto out;
	}
	/* Sizes sane, then the layout: code (and stubs) first, then data. */
	for (i = 1; i < shnum; i++) {
		Elf_Scn *scn = elf_getscn(elf, i);

		if (!scn || !gelf_getshdr(scn, &sh[i]) ||
		    !(sname = elf_strptr(elf, shstrndx, sh[i].sh_name))) {
			lp_fail(e, CTL_EINVAL, "corrupt ELF: section %zu", i);
			goto out;
		}
		if (sh[i].sh_type != SHT_NOBITS &&
		    (sh[i].sh_offset > size ||
		     sh[i].sh_size > size - sh[i].sh_offset)) {
			lp_fail(e, CTL_EINVAL, "corrupt ELF: section %s runs past "
			     "the end of the file", sname);
			goto out;
		}
		if (sh[i].sh_addralign > 4096 || (sh[i].sh_addralign &
		    (sh[i].sh_addralign - 1)) || sh[i].sh_size > LP_MAX_FILE) {
			lp_fail(e, CTL_EINVAL, "corrupt ELF: section %s: bad "
			     "size or alignment", sname);
			goto out;
		}
		if (sh[i].sh_type == SHT_SYMTAB) {
			if (symtab || sh[i].sh_entsize != sizeof(Elf64_Sym) ||
			    sh[i].sh_link >= shnum) {
				lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad or "
				     "second symbol table");
				goto out;
			}
			symtab = i;
		}
		if (sh[i].sh_type == SHT_RELA) {
			if (sh[i].sh_entsize != sizeof(Elf64_Rela)) {
				lp_fail(e, CTL_EINVAL, "corrupt ELF: %s", sname);
				goto out;
			}
			nstub += sh[i].sh_size / sizeof(Elf64_Rela);
		}
		if (sh[i].sh_flags & SHF_ALLOC) {
			size_t al = lp_section_align(sname, sh[i].sh_addralign);
			size_t *off = sh[i].sh_flags & SHF_EXECINSTR ?
				      &text_off : &data_off;

			*off = (*off + al - 1) & ~(al - 1);
			sec_addr[i] = *off;
			*off += sh[i].sh_size;
		}
	}
	if (!symtab) {
		lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: no symbol table");
		goto out;
	}
	text_off = (text_off + 15) & ~(size_t)15;
	p->text_size = (text_off + nstub * LP_STUB_SIZE + 4095) & ~4095ul;
	p->mem_size = p->text_size + ((data_off + 4095) & ~4095ul);
	if (!p->mem_size)
		p->mem_size = 4096;
	p->mem = alloc_near(p->mem_size);
	if (!p->mem) {
		lp_fail(e, CTL_ENORES, "%s", "no memory within +-2 GiB of the "
		     "daemon's text");
		goto out;
	}
	stubs = p->mem + text_off;
	for (i = 1; i < shnum; i++) {
		if (!(sh[i].sh_flags & SHF_ALLOC))
			continue;
		sec_addr[i] += (uint64_t)p->mem +
			       (sh[i].sh_flags & SHF_EXECINSTR ? 0 :
				p->text_size);
		if (sh[i].sh_type != SHT_NOBITS)
			memcpy((void *)sec_addr[i], buf + sh[i].sh_offset,
			       sh[i].sh_size);
	}

	/* Symbols: the payload's own, else the daemon's, else libc's. */
	symd = elf_getdata(elf_getscn(elf, symtab), NULL);
	for (i = 1; i < shnum; i++) {
		Elf_Data *rd;
		size_t tgt = sh[i].sh_info, nrel;

		if (sh[i].sh_type != SHT_RELA)
			continue;
		if (tgt >= shnum || sh[i].sh_link != symtab) {
			lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: relocation "
			     "section with a bad target");
			goto out;
		}
		if (!(sh[tgt].sh_flags & SHF_ALLOC))
			continue;		/* debug info */
		rd = elf_getdata(elf_getscn(elf, i), NULL);
		nrel = sh[i].sh_size / sizeof(Elf64_Rela);
		for (j = 0; j < nrel; j++) {
			GElf_Rela ra;
			GElf_Sym s;
			const struct img_sym *is;
			const char *nm;
			unsigned type, width;
			uint64_t S = 0, P;
			bool far_data = false;
			int64_t v;

			if (!gelf_getrela(rd, j, &ra) ||
			    !gelf_getsym(symd, GELF_R_SYM(ra.r_info), &s)) {
				lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad "
				     "relocation or symbol index");
				goto out;
			}
			type = GELF_R_TYPE(ra.r_info);
			width = type == R_X86_64_64 ? 8 : 4;
			if (ra.r_offset > sh[tgt].sh_size ||
			    sh[tgt].sh_size - ra.r_offset < width) {
				lp_fail(e, CTL_EINVAL, "%s", "corrupt ELF: "
				     "relocation outside its section");
				goto out;
			}
			nm = elf_strptr(elf, sh[symtab].sh_link, s.st_name);
			if (!nm)
				nm = "";
			if (s.st_shndx == SHN_UNDEF) {
				int r = lp_image_lookup(nm, &is);

				if (r == -2) {
					lp_fail(e, CTL_EINVAL, "symbol %s is "
					     "ambiguous in the daemon (use "
					     "file.c#%s)", nm, nm);
					goto out;
				}
				if (!r) {
					S = is->addr;
				} else if (!strchr(nm, '#') && *nm) {
					const ElfW(Sym) *ds = NULL;
					Dl_info di;

					S = (uint64_t)dlsym(RTLD_DEFAULT, nm);
					/* Only code may go through a stub. */
					if (S && dladdr1((void *)S, &di,
							 (void **)&ds,
							 RTLD_DL_SYMENT) && ds &&
					    ELF64_ST_TYPE(ds->st_info) !=
					    STT_FUNC &&
					    ELF64_ST_TYPE(ds->st_info) !=
					    STT_GNU_IFUNC)
						far_data = true;
				}
				if (!S) {
					lp_fail(e, CTL_EINVAL, "unresolved symbol "
					     "%s", nm);
					goto out;
				}
			} else if (s.st_shndx == SHN_ABS) {
				S = s.st_value;
			} else if (s.st_shndx < shnum &&
				   (sh[s.st_shndx].sh_flags & SHF_ALLOC)) {
				S = sec_addr[s.st_shndx] + s.st_value;
			} else {
				lp_fail(e, CTL_EINVAL, "symbol %s in a section "
				     "that is not loaded", nm);
				goto out;
			}
			P = sec_addr[tgt] + ra.r_offset;
			switch (type) {
			case R_X86_64_64:
				v = S + ra.r_addend;
				memcpy((void *)P, &v, 8);
				continue;
			case R_X86_64_32:
				v = S + ra.r_addend;
				if ((uint64_t)v > UINT32_MAX)
					goto range;
				break;
			case R_X86_64_32S:
				v = S + ra.r_addend;
				if (!fits32(v))
					goto range;
				break;
			case R_X86_64_PC32:
			case R_X86_64_PLT32:
				v = S + ra.r_addend - P;
				if (fits32(v))
					break;
				if (far_data || (type == R_X86_64_PC32 &&
				    GELF_ST_TYPE(s.st_info) != STT_FUNC &&
				    s.st_shndx != SHN_UNDEF))
					goto range;
				/* Far (libc): through a stub. */
				/* fall through */
			case R_X86_64_GOTPCREL:
			case R_X86_64_GOTPCRELX:
			case R_X86_64_REX_GOTPCRELX: {
				uint8_t *st = stubs + stub_used++ *
					      LP_STUB_SIZE;
				static const uint8_t jmp[6] = {
					0xff, 0x25, 0, 0, 0, 0 };

				memcpy(st, jmp, 6);
				memcpy(st + 6, &S, 8);
				/* GOT forms read the 8-byte slot. */
				v = (uint64_t)(type == R_X86_64_PC32 ||
					       type == R_X86_64_PLT32 ?
					       st : st + 6) + ra.r_addend - P;
				if (!fits32(v))
					goto range;
				break;
			}
			default:
				lp_fail(e, CTL_EINVAL, "unsupported relocation %s "
				     "(%u) against %s", reloc_name(type), type,
				     nm);
				goto out;
			}
			{
				int32_t v32 = (int32_t)v;

				memcpy((void *)P, &v32, 4);
			}
			continue;
range:
			lp_fail(e, CTL_EINVAL, "relocation %s against %s out of "
			     "range", reloc_name(type), nm);
			goto out;
		}
	}

	/* The special sections. */
	for (i = 1; i < shnum; i++) {
		Elf_Data *d = elf_getdata(elf_getscn(elf, i), NULL);
		unsigned k;

		sname = elf_strptr(elf, shstrndx, sh[i].sh_name);
		if (!strcmp(sname, ".livepatch.depends")) {
			if (read_note(d, p->dep, &p->dep_len)) {
				lp_fail(e, CTL_EINVAL, "%s", ".livepatch.depends "
				     "is not a GNU build-id note");
				goto out;
			}
			have_dep = true;
		} else if (!strcmp(sname, ".note.gnu.build-id")) {
			if (read_note(d, p->id, &p->id_len)) {
				lp_fail(e, CTL_EINVAL, "%s", ".note.gnu.build-id "
				     "is not a GNU build-id note");
				goto out;
			}
			have_id = true;
		} else if (!strcmp(sname, ".livepatch.meta")) {
			const char *s = d ? d->d_buf : NULL;
			size_t o = 0, n = d ? d->d_size : 0;

			while (s && o < n) {
				size_t l = strnlen(s + o, n - o);
				const char *eq = memchr(s + o, '=', l);

				if (eq && l < 1024) {
					char key[256];

					snprintf(key, sizeof(key), "%.*s",
						 (int)(eq - (s + o)), s + o);
					json_object_set_new(p->meta, key,
						json_stringn(eq + 1,
							l - (eq - (s + o)) - 1));
				}
				o += l + 1;
			}
		} else if (!strcmp(sname, ".livepatch.funcs")) {
			if (p->funcs) {
				lp_fail(e, CTL_EINVAL, "%s", "two "
					".livepatch.funcs sections");
				goto out;
			}
			if (!(sh[i].sh_flags & SHF_ALLOC) || !sh[i].sh_size ||
			    sh[i].sh_size % sizeof(struct livepatch_func)) {
				lp_fail(e, CTL_EINVAL, "%s", ".livepatch.funcs: "
				     "bad size (not an array of struct "
				     "livepatch_func)");
				goto out;
			}
			p->nfuncs = sh[i].sh_size /
				    sizeof(struct livepatch_func);
			p->funcs = calloc(p->nfuncs, sizeof(*p->funcs));
			if (!p->funcs) {
				lp_fail(e, CTL_ENORES, "%s", "out of memory");
				goto out;
			}
			for (k = 0; k < p->nfuncs; k++)
				p->funcs[k].f = (const struct livepatch_func *)
					sec_addr[i] + k;
			have_funcs = true;
		} else if (!strcmp(sname, ".livepatch.params") ||
			   !strcmp(sname, ".livepatch.ranges")) {
			int (*rd)(struct payload *, const void *, size_t,
				  struct lp_err *) = !strcmp(sname,
				".livepatch.params") ? lp_params_read :
				lp_ranges_read;

			if (!(sh[i].sh_flags & SHF_ALLOC) ||
			    sh[i].sh_type == SHT_NOBITS) {
				lp_fail(e, CTL_EINVAL, "%s is not loaded", sname);
				goto out;
			}
			if (rd(p, (const void *)sec_addr[i], sh[i].sh_size, e))
				goto out;
		} else if (!strncmp(sname, ".livepatch.hooks.", 17)) {
			for (k = 0; k < H_NR; k++)
				if (!strcmp(sname + 17, lp_hook_names[k]))
					break;
			if (k == H_NR || !(sh[i].sh_flags & SHF_ALLOC) ||
			    sh[i].sh_size % sizeof(void *)) {
				lp_fail(e, CTL_EINVAL, "bad hook section %s",
				     sname);
				goto out;
			}
			p->hooks[k] = (livepatch_hook_t **)sec_addr[i];
			p->nhooks[k] = sh[i].sh_size / sizeof(void *);
			if ((k == H_APPLY || k == H_REVERT) &&
			    p->nhooks[k] > 1) {
				lp_fail(e, CTL_EINVAL, "%s: %u %s action hooks "
					"(at most one)", sname, p->nhooks[k],
					lp_hook_names[k]);
				goto out;
			}
			for (j = 0; j < p->nhooks[k]; j++)
				if (!in_payload(p, (uint64_t)p->hooks[k][j], 1,
						true)) {
					lp_fail(e, CTL_EINVAL, "hook %zu of %s "
					     "points outside the payload's "
					     "code", j, sname);
					goto out;
				}
		}
	}
	if ((!have_funcs && !p->nranges) || !have_dep || !have_id) {
		lp_fail(e, CTL_EINVAL, "not a livepatch payload: %s is missing",
		     !have_funcs && !p->nranges ?
		     ".livepatch.funcs (or .livepatch.ranges)" : !have_dep ?
		     ".livepatch.depends" : ".note.gnu.build-id");
		goto out;
	}

	/* Each function: the old one found, big enough; the new one ours. */
	for (i = 0; i < p->nfuncs; i++) {
		struct lp_func *lf = &p->funcs[i];
		const struct livepatch_func *f = lf->f;
		const struct img_sym *is;
		int r;

		if (!in_payload(p, (uint64_t)f->name, 1, false) ||
		    !memchr(f->name, 0, (uint64_t)p->mem + p->mem_size -
			    (uint64_t)f->name)) {
			lp_fail(e, CTL_EINVAL, "function %zu: bad name", i);
			goto out;
		}
		lf->name = f->name;
		if (f->flags || f->expect_len > LIVEPATCH_EXPECT_MAX) {
			lp_fail(e, CTL_EINVAL, "%s: bad flags or expect_len",
			     lf->name);
			goto out;
		}
		if (!in_payload(p, (uint64_t)f->new_addr,
				f->new_size ? f->new_size : 1, true)) {
			lp_fail(e, CTL_EINVAL, "%s: the new function is not in "
			     "the payload's code", lf->name);
			goto out;
		}
		if (f->old_addr) {
			lf->old = (uint8_t *)(uintptr_t)f->old_addr;
			lf->old_size = f->old_size;
		} else {
			r = lp_image_lookup(lf->name, &is);
			if (r) {
				lp_fail(e, CTL_EINVAL, "%s: %s in the daemon",
				     lf->name, r == -2 ? "ambiguous" :
				     "no such function");
				goto out;
			}
			if (is->type != STT_FUNC) {
				lp_fail(e, CTL_EINVAL, "%s is not a function",
				     lf->name);
				goto out;
			}
			lf->old = (uint8_t *)(uintptr_t)is->addr;
			lf->old_size = f->old_size ? f->old_size : is->size;
		}
		if ((uint64_t)lf->old < lp_img.text_lo ||
		    (uint64_t)lf->old + lf->old_size > lp_img.text_hi) {
			lp_fail(e, CTL_EINVAL, "%s: not in the daemon's text",
			     lf->name);
			goto out;
		}
		if (lf->old_size < LIVEPATCH_JMP_SIZE) {
			lp_fail(e, CTL_EINVAL, "%s is %u bytes: too small to "
			     "patch (needs %d)", lf->name, lf->old_size,
			     LIVEPATCH_JMP_SIZE);
			goto out;
		}
		if (!fits32((int64_t)(uint64_t)f->new_addr -
			    ((uint64_t)lf->old + LIVEPATCH_JMP_SIZE))) {
			lp_fail(e, CTL_EINVAL, "%s: the new function is out of "
			     "jmp rel32 range", lf->name);
			goto out;
		}
		for (j = 0; j < i; j++)
			if (p->funcs[j].old == lf->old) {
				lp_fail(e, CTL_EINVAL, "%s is patched twice",
				     lf->name);
				goto out;
			}
		make_jmp(lf);
	}
	if (lp_ranges_resolve(p, e))
		goto out;
	if (mprotect(p->mem, p->text_size, PROT_READ | PROT_EXEC)) {
		lp_fail(e, CTL_EINTERNAL, "mprotect: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(sh);
	free(sec_addr);
	elf_end(elf);
	return ret;
}
