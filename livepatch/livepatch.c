/*
 * Livepatch runtime (docs/livepatch.md): load a payload (a relocatable
 * ELF object) into memory within +-2 GiB of the daemon's text, link it
 * against the running image's own symbol table, check it, and redirect
 * old functions to the new ones with a 5-byte `jmp rel32` written while
 * every domain's vCPUs are parked.  Payloads form a stack: only the top
 * one can be reverted.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h"
#include "commands.h"
#include "domain.h"
#include "livepatch/livepatch.h"
#include "livepatch/payload.h"
#include "log.h"
#include "vcpu.h"

#define LP_MAX_FILE	(64u << 20)
#define LP_MAX_PAYLOADS	64
#define LP_BUILD_ID_MAX	64
#define LP_NAME_MAX	64
#define LP_STUB_SIZE	16	/* jmp *0(%rip); .quad target */
#define LP_PAUSE_MS	2000	/* default bound on parking the vCPUs */

enum { H_LOAD, H_UNLOAD, H_PREAPPLY, H_POSTAPPLY, H_PREREVERT, H_POSTREVERT,
       H_NR };
static const char *const hook_names[H_NR] = {
	"load", "unload", "preapply", "postapply", "prerevert", "postrevert",
};

/* ------------------------------------------------------------ errors */

struct lp_err {
	int code;
	char msg[480];
};

__attribute__((format(printf, 3, 4)))
static int fail(struct lp_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return -1;
}

/* ------------------------------------------------------------ the image */

struct img_sym {
	const char *name;	/* without @VERSION */
	const char *file;	/* STT_FILE before it, for locals */
	uint64_t addr, size;
	unsigned char type, bind;
};

static struct {
	bool loaded;
	char *strs;		/* names, NUL separated */
	struct img_sym *syms;
	size_t nsyms;
	uint64_t base;		/* PIE load bias */
	uint64_t text_lo, text_hi;	/* executable PT_LOADs */
	uint64_t img_lo, img_hi;	/* all PT_LOADs */
} img;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	int i;

	if (info->dlpi_name && info->dlpi_name[0])
		return 0;
	img.base = info->dlpi_addr;
	img.text_lo = img.img_lo = UINT64_MAX;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		uint64_t hi = lo + ph->p_memsz;

		if (ph->p_type != PT_LOAD)
			continue;
		if (lo < img.img_lo)
			img.img_lo = lo;
		if (hi > img.img_hi)
			img.img_hi = hi;
		if (ph->p_flags & PF_X) {
			if (lo < img.text_lo)
				img.text_lo = lo;
			if (hi > img.text_hi)
				img.text_hi = hi;
		}
	}
	return 1;
}

/* Read the running executable's .symtab (once). */
static int image_load(struct lp_err *e)
{
	Elf *elf = NULL;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf_Data *d;
	size_t n, i, total = 0, pos = 0;
	const char *file = "";
	int fd, ret = -1;

	if (img.loaded)
		return 0;
	dl_iterate_phdr(phdr_cb, NULL);
	elf_version(EV_CURRENT);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(e, CTL_EINTERNAL, "/proc/self/exe: %s",
			    strerror(errno));
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (elf && (scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			break;
	if (!scn || !(d = elf_getdata(scn, NULL)) || !sh.sh_entsize) {
		fail(e, CTL_ENOTSUP, "%s", "the daemon has no symbol table "
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
	img.strs = malloc(total + 1);
	img.syms = calloc(n, sizeof(*img.syms));
	if (!img.strs || !img.syms) {
		fail(e, CTL_ENORES, "%s", "out of memory");
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
		strcpy(img.strs + pos, nm);
		nm = img.strs + pos;
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
		is = &img.syms[img.nsyms++];
		is->name = nm;
		is->file = GELF_ST_BIND(s.st_info) == STB_LOCAL ? file : "";
		is->addr = s.st_value + (s.st_shndx == SHN_ABS ? 0 : img.base);
		is->size = s.st_size;
		is->type = GELF_ST_TYPE(s.st_info);
		is->bind = GELF_ST_BIND(s.st_info);
	}
	img.loaded = true;
	ret = 0;
out:
	if (ret) {
		free(img.strs);
		free(img.syms);
		img.strs = NULL;
		img.syms = NULL;
		img.nsyms = 0;
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
static int image_lookup(const char *name, const struct img_sym **out)
{
	const char *hash = strchr(name, '#');
	const struct img_sym *found = NULL;
	size_t flen = hash ? (size_t)(hash - name) : 0;
	unsigned nlocal = 0;
	size_t i;

	for (i = 0; i < img.nsyms; i++) {
		const struct img_sym *s = &img.syms[i];

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

/* ------------------------------------------------------------ payloads */

struct lp_func {
	const struct livepatch_func *f;
	const char *name;
	uint8_t *old;		/* old function's entry */
	uint32_t old_size;
	uint8_t saved[LIVEPATCH_JMP_SIZE];	/* its bytes before apply */
};

struct payload {
	char name[LP_NAME_MAX];
	char path[256];
	uint8_t *mem;
	size_t mem_size, text_size;
	struct lp_func *funcs;
	unsigned nfuncs;
	uint8_t id[LP_BUILD_ID_MAX], dep[LP_BUILD_ID_MAX];
	unsigned id_len, dep_len;
	livepatch_hook_t **hooks[H_NR];
	unsigned nhooks[H_NR];
	json_t *meta;
	bool applied;
};

static struct payload *loaded[LP_MAX_PAYLOADS];	/* upload order */
static unsigned nloaded;
static struct payload *applied[LP_MAX_PAYLOADS];	/* bottom first */
static unsigned napplied;
static bool membarrier_ok;

static struct payload *find_payload(const char *name)
{
	unsigned i;

	for (i = 0; i < nloaded; i++)
		if (!strcmp(loaded[i]->name, name))
			return loaded[i];
	return NULL;
}

static void hex(char *out, const uint8_t *b, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

/* Memory for a payload within +-2 GiB of all of the daemon's image. */
static void *alloc_near(size_t size)
{
	const uint64_t step = 16ull << 20, lim = 1ull << 30;
	uint64_t off;

	for (off = step; off < lim; off += step) {
		uint64_t hints[2] = { (img.img_hi + off) & ~0xfffull,
				      img.img_lo > off + size ?
				      (img.img_lo - off - size) & ~0xfffull : 0 };
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
			if ((a + size > img.img_hi ? a + size : img.img_hi) -
			    (a < img.img_lo ? a : img.img_lo) <
			    (2ull << 30) - 4096)
				return p;
			munmap(p, size);
		}
	}
	return NULL;
}

static void payload_free(struct payload *p)
{
	if (!p)
		return;
	if (p->mem)
		munmap(p->mem, p->mem_size);
	free(p->funcs);
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

/* The core of upload: parse, lay out, link and check a payload. */
static int payload_load(struct payload *p, const uint8_t *buf, size_t size,
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
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh))
		return fail(e, CTL_EINVAL, "corrupt ELF: not an ELF object "
			    "(%s)", elf_errmsg(-1));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_REL ||
	    eh.e_machine != EM_X86_64) {
		fail(e, CTL_EINVAL, "%s", "corrupt ELF: not a relocatable "
		     "x86-64 ELF64 object");
		goto out;
	}
	if (elf_getshdrnum(elf, &shnum) || elf_getshdrstrndx(elf, &shstrndx) ||
	    shnum < 2 || shnum > 65000 || shstrndx >= shnum) {
		fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad section table");
		goto out;
	}
	sh = calloc(shnum, sizeof(*sh));
	sec_addr = calloc(shnum, sizeof(*sec_addr));
	if (!sh || !sec_addr) {
		fail(e, CTL_ENORES, "%s", "out of memory");
		goto out;
	}
	/* Sizes sane, then the layout: code (and stubs) first, then data. */
	for (i = 1; i < shnum; i++) {
		Elf_Scn *scn = elf_getscn(elf, i);

		if (!scn || !gelf_getshdr(scn, &sh[i]) ||
		    !(sname = elf_strptr(elf, shstrndx, sh[i].sh_name))) {
			fail(e, CTL_EINVAL, "corrupt ELF: section %zu", i);
			goto out;
		}
		if (sh[i].sh_type != SHT_NOBITS &&
		    (sh[i].sh_offset > size ||
		     sh[i].sh_size > size - sh[i].sh_offset)) {
			fail(e, CTL_EINVAL, "corrupt ELF: section %s runs past "
			     "the end of the file", sname);
			goto out;
		}
		if (sh[i].sh_addralign > 4096 || (sh[i].sh_addralign &
		    (sh[i].sh_addralign - 1)) || sh[i].sh_size > LP_MAX_FILE) {
			fail(e, CTL_EINVAL, "corrupt ELF: section %s: bad "
			     "size or alignment", sname);
			goto out;
		}
		if (sh[i].sh_type == SHT_SYMTAB) {
			if (symtab || sh[i].sh_entsize != sizeof(Elf64_Sym) ||
			    sh[i].sh_link >= shnum) {
				fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad or "
				     "second symbol table");
				goto out;
			}
			symtab = i;
		}
		if (sh[i].sh_type == SHT_RELA) {
			if (sh[i].sh_entsize != sizeof(Elf64_Rela)) {
				fail(e, CTL_EINVAL, "corrupt ELF: %s", sname);
				goto out;
			}
			nstub += sh[i].sh_size / sizeof(Elf64_Rela);
		}
		if (sh[i].sh_flags & SHF_ALLOC) {
			size_t al = sh[i].sh_addralign ? sh[i].sh_addralign : 1;
			size_t *off = sh[i].sh_flags & SHF_EXECINSTR ?
				      &text_off : &data_off;

			*off = (*off + al - 1) & ~(al - 1);
			sec_addr[i] = *off;
			*off += sh[i].sh_size;
		}
	}
	if (!symtab) {
		fail(e, CTL_EINVAL, "%s", "corrupt ELF: no symbol table");
		goto out;
	}
	text_off = (text_off + 15) & ~(size_t)15;
	p->text_size = (text_off + nstub * LP_STUB_SIZE + 4095) & ~4095ul;
	p->mem_size = p->text_size + ((data_off + 4095) & ~4095ul);
	if (!p->mem_size)
		p->mem_size = 4096;
	p->mem = alloc_near(p->mem_size);
	if (!p->mem) {
		fail(e, CTL_ENORES, "%s", "no memory within +-2 GiB of the "
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
			fail(e, CTL_EINVAL, "%s", "corrupt ELF: relocation "
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
				fail(e, CTL_EINVAL, "%s", "corrupt ELF: bad "
				     "relocation or symbol index");
				goto out;
			}
			type = GELF_R_TYPE(ra.r_info);
			width = type == R_X86_64_64 ? 8 : 4;
			if (ra.r_offset > sh[tgt].sh_size ||
			    sh[tgt].sh_size - ra.r_offset < width) {
				fail(e, CTL_EINVAL, "%s", "corrupt ELF: "
				     "relocation outside its section");
				goto out;
			}
			nm = elf_strptr(elf, sh[symtab].sh_link, s.st_name);
			if (!nm)
				nm = "";
			if (s.st_shndx == SHN_UNDEF) {
				int r = image_lookup(nm, &is);

				if (r == -2) {
					fail(e, CTL_EINVAL, "symbol %s is "
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
					fail(e, CTL_EINVAL, "unresolved symbol "
					     "%s", nm);
					goto out;
				}
			} else if (s.st_shndx == SHN_ABS) {
				S = s.st_value;
			} else if (s.st_shndx < shnum &&
				   (sh[s.st_shndx].sh_flags & SHF_ALLOC)) {
				S = sec_addr[s.st_shndx] + s.st_value;
			} else {
				fail(e, CTL_EINVAL, "symbol %s in a section "
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
				fail(e, CTL_EINVAL, "unsupported relocation %s "
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
			fail(e, CTL_EINVAL, "relocation %s against %s out of "
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
				fail(e, CTL_EINVAL, "%s", ".livepatch.depends "
				     "is not a GNU build-id note");
				goto out;
			}
			have_dep = true;
		} else if (!strcmp(sname, ".note.gnu.build-id")) {
			if (read_note(d, p->id, &p->id_len)) {
				fail(e, CTL_EINVAL, "%s", ".note.gnu.build-id "
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
			if (!(sh[i].sh_flags & SHF_ALLOC) || !sh[i].sh_size ||
			    sh[i].sh_size % sizeof(struct livepatch_func)) {
				fail(e, CTL_EINVAL, "%s", ".livepatch.funcs: "
				     "bad size (not an array of struct "
				     "livepatch_func)");
				goto out;
			}
			p->nfuncs = sh[i].sh_size /
				    sizeof(struct livepatch_func);
			p->funcs = calloc(p->nfuncs, sizeof(*p->funcs));
			if (!p->funcs) {
				fail(e, CTL_ENORES, "%s", "out of memory");
				goto out;
			}
			for (k = 0; k < p->nfuncs; k++)
				p->funcs[k].f = (const struct livepatch_func *)
					sec_addr[i] + k;
			have_funcs = true;
		} else if (!strncmp(sname, ".livepatch.hooks.", 17)) {
			for (k = 0; k < H_NR; k++)
				if (!strcmp(sname + 17, hook_names[k]))
					break;
			if (k == H_NR || !(sh[i].sh_flags & SHF_ALLOC) ||
			    sh[i].sh_size % sizeof(void *)) {
				fail(e, CTL_EINVAL, "bad hook section %s",
				     sname);
				goto out;
			}
			p->hooks[k] = (livepatch_hook_t **)sec_addr[i];
			p->nhooks[k] = sh[i].sh_size / sizeof(void *);
			for (j = 0; j < p->nhooks[k]; j++)
				if (!in_payload(p, (uint64_t)p->hooks[k][j], 1,
						true)) {
					fail(e, CTL_EINVAL, "hook %zu of %s "
					     "points outside the payload's "
					     "code", j, sname);
					goto out;
				}
		}
	}
	if (!have_funcs || !have_dep || !have_id) {
		fail(e, CTL_EINVAL, "not a livepatch payload: %s is missing",
		     !have_funcs ? ".livepatch.funcs" : !have_dep ?
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
			fail(e, CTL_EINVAL, "function %zu: bad name", i);
			goto out;
		}
		lf->name = f->name;
		if (f->flags || f->expect_len > LIVEPATCH_EXPECT_MAX) {
			fail(e, CTL_EINVAL, "%s: bad flags or expect_len",
			     lf->name);
			goto out;
		}
		if (!in_payload(p, (uint64_t)f->new_addr,
				f->new_size ? f->new_size : 1, true)) {
			fail(e, CTL_EINVAL, "%s: the new function is not in "
			     "the payload's code", lf->name);
			goto out;
		}
		if (f->old_addr) {
			lf->old = (uint8_t *)(uintptr_t)f->old_addr;
			lf->old_size = f->old_size;
		} else {
			r = image_lookup(lf->name, &is);
			if (r) {
				fail(e, CTL_EINVAL, "%s: %s in the daemon",
				     lf->name, r == -2 ? "ambiguous" :
				     "no such function");
				goto out;
			}
			if (is->type != STT_FUNC) {
				fail(e, CTL_EINVAL, "%s is not a function",
				     lf->name);
				goto out;
			}
			lf->old = (uint8_t *)(uintptr_t)is->addr;
			lf->old_size = f->old_size ? f->old_size : is->size;
		}
		if ((uint64_t)lf->old < img.text_lo ||
		    (uint64_t)lf->old + lf->old_size > img.text_hi) {
			fail(e, CTL_EINVAL, "%s: not in the daemon's text",
			     lf->name);
			goto out;
		}
		if (lf->old_size < LIVEPATCH_JMP_SIZE) {
			fail(e, CTL_EINVAL, "%s is %u bytes: too small to "
			     "patch (needs %d)", lf->name, lf->old_size,
			     LIVEPATCH_JMP_SIZE);
			goto out;
		}
		if (!fits32((int64_t)(uint64_t)f->new_addr -
			    ((uint64_t)lf->old + LIVEPATCH_JMP_SIZE))) {
			fail(e, CTL_EINVAL, "%s: the new function is out of "
			     "jmp rel32 range", lf->name);
			goto out;
		}
		for (j = 0; j < i; j++)
			if (p->funcs[j].old == lf->old) {
				fail(e, CTL_EINVAL, "%s is patched twice",
				     lf->name);
				goto out;
			}
	}
	if (mprotect(p->mem, p->text_size, PROT_READ | PROT_EXEC)) {
		fail(e, CTL_EINTERNAL, "mprotect: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(sh);
	free(sec_addr);
	elf_end(elf);
	return ret;
}

/* ------------------------------------------------------------ checks */

static bool build_id_eq(const uint8_t *a, unsigned al, const uint8_t *b,
			unsigned bl)
{
	return al == bl && !memcmp(a, b, al);
}

/* What the next payload applied must depend on: the top, or the daemon. */
static unsigned top_build_id(uint8_t *buf)
{
	if (napplied) {
		memcpy(buf, applied[napplied - 1]->id,
		       applied[napplied - 1]->id_len);
		return applied[napplied - 1]->id_len;
	}
	return build_id_bytes(buf, LP_BUILD_ID_MAX);
}

static int check_depends(const struct payload *p, bool on_daemon,
			 struct lp_err *e)
{
	uint8_t want[LP_BUILD_ID_MAX];
	unsigned wl = on_daemon ? build_id_bytes(want, sizeof(want)) :
		      top_build_id(want);
	char h1[2 * LP_BUILD_ID_MAX + 1], h2[2 * LP_BUILD_ID_MAX + 1];

	if (build_id_eq(p->dep, p->dep_len, want, wl))
		return 0;
	hex(h1, p->dep, p->dep_len);
	hex(h2, want, wl);
	return fail(e, CTL_EINVAL, "build-id mismatch: %s depends on %s, "
		    "but %s is %s", p->name, h1, on_daemon || !napplied ?
		    "the running daemon" : applied[napplied - 1]->name, h2);
}

static int check_expect(const struct payload *p, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nfuncs; i++) {
		const struct lp_func *lf = &p->funcs[i];

		if (lf->f->expect_len &&
		    memcmp(lf->old, lf->f->expect, lf->f->expect_len))
			return fail(e, CTL_EINVAL, "%s: expected bytes "
				    "differ: the running code is not what "
				    "the payload was built against", lf->name);
	}
	return 0;
}

static int run_hooks(struct payload *p, int kind, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nhooks[kind]; i++) {
		int r = p->hooks[kind][i]();

		if (r && (kind == H_LOAD || kind == H_PREAPPLY ||
			  kind == H_PREREVERT))
			return fail(e, CTL_ESTATE, "%s: %s hook %u vetoed "
				    "(returned %d); nothing changed", p->name,
				    hook_names[kind], i, r);
		if (r)
			log_warn("livepatch %s: %s hook %u returned %d",
				 p->name, hook_names[kind], i, r);
	}
	return 0;
}

/* ------------------------------------------------------------ stopping */

struct quiesced {
	struct domain *dom;
	bool run_ok;
};

static unsigned started_vcpus(struct domain *d)
{
	unsigned i, n = 0;

	for (i = 0; i < d->nr_vcpus; i++)
		n += d->vcpus[i].thread_started;
	return n;
}

static void resume_all(struct quiesced *q, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct domain *d = q[i].dom;

		pthread_mutex_lock(&d->lock);
		d->run_ok = q[i].run_ok && d->pending == DOM_EV_NONE;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	free(q);
}

/*
 * Park every vCPU thread of every domain, within timeout_ms.  On failure
 * everything runs again and nothing was written.
 */
static int quiesce_all(long timeout_ms, struct quiesced **out, unsigned *nout,
		       struct lp_err *e)
{
	struct quiesced *q;
	struct domain *d;
	struct timespec dl;
	unsigned n = 0, i, k;

	for (d = domain_first(); d; d = d->next)
		n++;
	q = calloc(n ? n : 1, sizeof(*q));
	if (!q)
		return fail(e, CTL_ENORES, "%s", "out of memory");
	n = 0;
	for (d = domain_first(); d; d = d->next) {
		if (!d->vcpus || d->state == DOM_DYING)
			continue;
		pthread_mutex_lock(&d->lock);
		if (d->stopping) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		q[n].dom = d;
		q[n++].run_ok = d->run_ok;
		d->run_ok = false;
		pthread_mutex_unlock(&d->lock);
		for (k = 0; k < d->nr_vcpus; k++)
			if (!d->vcpus[k].parked)
				vcpu_kick(&d->vcpus[k]);
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	for (i = 0; i < n; i++) {
		unsigned want = started_vcpus(q[i].dom);
		bool ok = true;

		d = q[i].dom;
		pthread_mutex_lock(&d->lock);
		while (d->nr_parked < want && !d->stopping) {
			if (timeout_ms <= 0 ||
			    pthread_cond_timedwait(&d->cond, &d->lock, &dl) ==
			    ETIMEDOUT) {
				ok = d->nr_parked >= want;
				break;
			}
		}
		pthread_mutex_unlock(&d->lock);
		if (!ok) {
			unsigned parked = d->nr_parked;

			resume_all(q, n);
			return fail(e, CTL_EBUSY, "pause timeout: d%u has %u "
				    "of %u vCPUs parked after %ld ms; nothing "
				    "was patched", d->id, parked, want,
				    timeout_ms);
		}
	}
	*out = q;
	*nout = n;
	return 0;
}

/* ------------------------------------------------------------ patching */

static int text_write(uint8_t *addr, const uint8_t *bytes, size_t len)
{
	uintptr_t pg = (uintptr_t)addr & ~4095ul;
	size_t span = ((uintptr_t)addr + len - pg + 4095) & ~4095ul;

	if (mprotect((void *)pg, span, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -1;
	memcpy(addr, bytes, len);
	return mprotect((void *)pg, span, PROT_READ | PROT_EXEC);
}

static void sync_cores(void)
{
	if (membarrier_ok &&
	    syscall(__NR_membarrier,
		    MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) < 0)
		log_warn("livepatch: membarrier: %s", strerror(errno));
}

/* Write (apply) or restore (revert) every function of p; all stopped. */
static int patch_funcs(struct payload *p, bool apply, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nfuncs; i++) {
		struct lp_func *lf = &p->funcs[i];
		uint8_t jmp[LIVEPATCH_JMP_SIZE];
		int32_t rel;

		if (apply) {
			memcpy(lf->saved, lf->old, LIVEPATCH_JMP_SIZE);
			rel = (int32_t)((uint64_t)lf->f->new_addr -
					((uint64_t)lf->old +
					 LIVEPATCH_JMP_SIZE));
			jmp[0] = 0xe9;
			memcpy(jmp + 1, &rel, 4);
		} else {
			memcpy(jmp, lf->saved, LIVEPATCH_JMP_SIZE);
		}
		if (text_write(lf->old, jmp, LIVEPATCH_JMP_SIZE)) {
			int err = errno;

			/* Undo what was written: the old code runs. */
			while (apply && i--)
				text_write(p->funcs[i].old, p->funcs[i].saved,
					   LIVEPATCH_JMP_SIZE);
			return fail(e, CTL_EINTERNAL, "%s: mprotect: %s",
				    lf->name, strerror(err));
		}
	}
	return 0;
}

/* Apply (or revert) one payload with every vCPU parked. */
static int switch_payload(struct payload *p, bool apply, long timeout_ms,
			  struct lp_err *e)
{
	struct quiesced *q = NULL;
	unsigned n = 0;
	int ret;

	if (run_hooks(p, apply ? H_PREAPPLY : H_PREREVERT, e))
		return -1;
	if (quiesce_all(timeout_ms, &q, &n, e))
		return -1;
	ret = patch_funcs(p, apply, e);
	sync_cores();
	resume_all(q, n);
	if (ret)
		return -1;
	p->applied = apply;
	if (apply)
		applied[napplied++] = p;
	else
		napplied--;
	log_info("livepatch %s: %s (%u function%s)", p->name,
		 apply ? "applied" : "reverted", p->nfuncs,
		 p->nfuncs == 1 ? "" : "s");
	run_hooks(p, apply ? H_POSTAPPLY : H_POSTREVERT, e);
	return 0;
}

/* ------------------------------------------------------------ commands */

static int arg_name(json_t *args, struct ctl_reply *r, const char **out)
{
	const char *n = json_string_value(json_object_get(args, "name"));
	size_t i;

	if (!n || !*n || strlen(n) >= LP_NAME_MAX)
		return ctl_fail(r, CTL_EINVAL, "%s", "'name' must be a "
				"payload name (1-63 characters)");
	for (i = 0; n[i]; i++)
		if (!(n[i] == '-' || n[i] == '_' || n[i] == '.' ||
		      (n[i] >= '0' && n[i] <= '9') ||
		      ((n[i] | 0x20) >= 'a' && (n[i] | 0x20) <= 'z')))
			return ctl_fail(r, CTL_EINVAL, "%s", "'name' may "
					"hold letters, digits, '-', '_', '.'");
	*out = n;
	return CTL_OK;
}

static int arg_payload(json_t *args, struct ctl_reply *r,
		       struct payload **out)
{
	const char *n;
	int code = arg_name(args, r, &n);

	if (code)
		return code;
	*out = find_payload(n);
	if (!*out)
		return ctl_fail(r, CTL_EINVAL, "no livepatch payload '%s'", n);
	return CTL_OK;
}

static long arg_timeout(json_t *args)
{
	json_t *v = json_object_get(args, "debug_pause_timeout_ms");

	return json_is_integer(v) ? (long)json_integer_value(v) : LP_PAUSE_MS;
}

static int reply_err(struct ctl_reply *r, const struct lp_err *e)
{
	return ctl_fail(r, e->code, "%s", e->msg);
}

static int do_upload(json_t *args, struct ctl_reply *r, struct payload **out)
{
	const char *name, *path;
	struct lp_err e = { 0 };
	struct payload *p;
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, code = arg_name(args, r, &name);

	if (code)
		return code;
	path = json_string_value(json_object_get(args, "path"));
	if (!path || path[0] != '/')
		return ctl_fail(r, CTL_EINVAL, "%s", "'path' must be an "
				"absolute path to a payload");
	if (find_payload(name))
		return ctl_fail(r, CTL_EEXIST, "livepatch payload '%s' is "
				"already loaded", name);
	if (nloaded == LP_MAX_PAYLOADS)
		return ctl_fail(r, CTL_ENORES, "%s", "too many payloads");
	if (image_load(&e))
		return reply_err(r, &e);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ctl_fail(r, CTL_EINVAL, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > LP_MAX_FILE || !(buf = malloc(st.st_size))) {
		close(fd);
		return ctl_fail(r, CTL_EINVAL, "%s: not a regular file of "
				"1 byte to 64 MiB", path);
	}
	while (got < (size_t)st.st_size &&
	       (n = read(fd, buf + got, st.st_size - got)) > 0)
		got += n;
	close(fd);
	p = calloc(1, sizeof(*p));
	if (!p) {
		free(buf);
		return ctl_fail(r, CTL_ENORES, "%s", "out of memory");
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->meta = json_object();
	if (payload_load(p, buf, got, &e)) {
		free(buf);
		payload_free(p);
		log_warn("livepatch %s: refused: %s", name, e.msg);
		return reply_err(r, &e);
	}
	free(buf);
	/* On the daemon or on a payload we have; expected bytes as now. */
	if (check_depends(p, true, &e)) {
		unsigned i;

		for (i = 0; i < nloaded; i++)
			if (build_id_eq(p->dep, p->dep_len, loaded[i]->id,
					loaded[i]->id_len))
				break;
		if (i == nloaded)
			goto refuse;
	}
	if (!napplied && check_expect(p, &e))
		goto refuse;
	if (run_hooks(p, H_LOAD, &e))
		goto refuse;
	if (!membarrier_ok) {
		membarrier_ok = !syscall(__NR_membarrier,
			MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
			0, 0);
		if (!membarrier_ok)
			log_warn("livepatch: membarrier SYNC_CORE not "
				 "available (%s)", strerror(errno));
	}
	loaded[nloaded++] = p;
	log_info("livepatch %s: uploaded from %s (%u function%s)", name, path,
		 p->nfuncs, p->nfuncs == 1 ? "" : "s");
	if (out)
		*out = p;
	return CTL_OK;
refuse:
	log_warn("livepatch %s: refused: %s", name, e.msg);
	payload_free(p);
	return reply_err(r, &e);
}

static void drop_payload(struct payload *p)
{
	unsigned i;
	struct lp_err e;

	run_hooks(p, H_UNLOAD, &e);
	for (i = 0; i < nloaded; i++)
		if (loaded[i] == p) {
			memmove(&loaded[i], &loaded[i + 1],
				(nloaded - i - 1) * sizeof(loaded[0]));
			nloaded--;
			break;
		}
	payload_free(p);
}

static int do_apply(struct payload *p, long timeout_ms, struct ctl_reply *r)
{
	struct lp_err e = { 0 };

	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is already applied",
				p->name);
	if (check_depends(p, false, &e) || check_expect(p, &e) ||
	    switch_payload(p, true, timeout_ms, &e)) {
		log_warn("livepatch %s: apply refused: %s", p->name, e.msg);
		return reply_err(r, &e);
	}
	return CTL_OK;
}

int cmd_lp_upload(struct client *c, json_t *args, struct ctl_reply *r)
{
	return do_upload(args, r, NULL);
}

int cmd_lp_apply(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p;
	int code = arg_payload(args, r, &p);

	return code ? code : do_apply(p, arg_timeout(args), r);
}

int cmd_lp_load(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p;
	int code = do_upload(args, r, &p);

	if (code)
		return code;
	code = do_apply(p, arg_timeout(args), r);
	if (code)
		drop_payload(p);	/* as if never uploaded */
	return code;
}

int cmd_lp_revert(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct lp_err e = { 0 };
	struct payload *p;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (!p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is not applied", p->name);
	if (applied[napplied - 1] != p)
		return ctl_fail(r, CTL_ESTATE, "only the top of the stack "
				"(%s) can be reverted",
				applied[napplied - 1]->name);
	if (switch_payload(p, false, arg_timeout(args), &e))
		return reply_err(r, &e);
	return CTL_OK;
}

int cmd_lp_replace(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p, *old[LP_MAX_PAYLOADS];
	struct lp_err e = { 0 };
	long t = arg_timeout(args);
	unsigned nold, i;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is already applied",
				p->name);
	/* Check it completely first: it goes straight onto the daemon. */
	if (check_depends(p, true, &e))
		return reply_err(r, &e);
	nold = napplied;
	memcpy(old, applied, sizeof(old[0]) * nold);
	for (i = 0; i < p->nfuncs; i++) {
		uint8_t *orig = p->funcs[i].old;
		uint8_t now[LIVEPATCH_EXPECT_MAX];
		unsigned k;

		memcpy(now, orig, p->funcs[i].f->expect_len);

		/* The bytes once every applied payload is reverted. */
		for (k = 0; k < nold; k++) {
			unsigned f;

			for (f = 0; f < old[k]->nfuncs; f++)
				if (old[k]->funcs[f].old == orig) {
					memcpy(now, old[k]->funcs[f].saved,
					       LIVEPATCH_JMP_SIZE);
					k = nold;
					break;
				}
		}
		if (p->funcs[i].f->expect_len &&
		    memcmp(now, p->funcs[i].f->expect,
			   p->funcs[i].f->expect_len))
			return ctl_fail(r, CTL_EINVAL, "%s: expected bytes "
					"differ", p->funcs[i].name);
	}
	if (run_hooks(p, H_PREAPPLY, &e))
		return reply_err(r, &e);
	while (napplied) {
		if (switch_payload(applied[napplied - 1], false, t, &e))
			goto rollback;
	}
	if (switch_payload(p, true, t, &e))
		goto rollback;
	log_info("livepatch %s: replaced %u payload%s", p->name, nold,
		 nold == 1 ? "" : "s");
	return CTL_OK;
rollback:
	{
		struct lp_err e2;

		for (i = napplied; i < nold; i++)
			if (switch_payload(old[i], true, LP_PAUSE_MS, &e2))
				log_err("livepatch: replace rollback: %s",
					e2.msg);
	}
	return reply_err(r, &e);
}

int cmd_lp_unload(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is applied: revert it "
				"first", p->name);
	log_info("livepatch %s: unloaded", p->name);
	drop_payload(p);
	return CTL_OK;
}

int cmd_lp_list(struct client *c, json_t *args, struct ctl_reply *r)
{
	json_t *arr = json_array();
	unsigned i, k;

	for (i = 0; i < nloaded; i++) {
		struct payload *p = loaded[i];
		char id[2 * LP_BUILD_ID_MAX + 1], dep[2 * LP_BUILD_ID_MAX + 1];
		json_t *funcs = json_array();
		int pos = -1;

		hex(id, p->id, p->id_len);
		hex(dep, p->dep, p->dep_len);
		for (k = 0; k < p->nfuncs; k++)
			json_array_append_new(funcs,
					      json_string(p->funcs[k].name));
		for (k = 0; k < napplied; k++)
			if (applied[k] == p)
				pos = k;
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:o, s:O, s:o}",
			"name", p->name,
			"state", p->applied ? "applied" : "checked",
			"build_id", id, "depends", dep, "path", p->path,
			"funcs", funcs, "metadata", p->meta,
			"stack_pos", pos >= 0 ? json_integer(pos) :
				     json_null()));
	}
	r->result = json_pack("{s:o, s:s, s:o}", "payloads", arr,
			      "daemon_build_id", build_id_hex(),
			      "applied", livepatch_applied_json());
	return CTL_OK;
}

json_t *livepatch_applied_json(void)
{
	json_t *arr = json_array();
	unsigned i;

	for (i = 0; i < napplied; i++)
		json_array_append_new(arr, json_string(applied[i]->name));
	return arr;
}
