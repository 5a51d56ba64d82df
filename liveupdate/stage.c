/*
 * Staging checks, done before anything pauses: the file is an x86-64 ELF
 * executable with a build-id, and its XKVM note says it can read a stream
 * version this image writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "elfnote.h"
#include "openfile.h"
#include "liveupdate/lu.h"
#include "stream.h"
#include "trust/trust.h"

struct notes {
	bool have_build_id, have_xkvm;
	char build_id[41];
	uint32_t versions[4];
	uint32_t features;
};

static int read_note(const GElf_Nhdr *nh, const char *name,
		     const void *desc_buf, void *ctx)
{
	const unsigned char *desc = desc_buf;
	struct notes *n = ctx;
	unsigned i;

	if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
	    !memcmp(name, "GNU", 4) && nh->n_descsz <= 20) {
		for (i = 0; i < nh->n_descsz; i++)
			sprintf(n->build_id + 2 * i, "%02x", desc[i]);
		n->have_build_id = nh->n_descsz > 0;
	} else if (nh->n_type == XKVM_NOTE_STREAM &&
		   nh->n_namesz == sizeof(XKVM_NOTE_NAME) &&
		   !memcmp(name, XKVM_NOTE_NAME, sizeof(XKVM_NOTE_NAME)) &&
		   nh->n_descsz == sizeof(n->versions)) {
		memcpy(n->versions, desc, sizeof(n->versions));
		n->have_xkvm = true;
	} else if (nh->n_type == XKVM_NOTE_FEATURES &&
		   nh->n_namesz == sizeof(XKVM_NOTE_NAME) &&
		   !memcmp(name, XKVM_NOTE_NAME, sizeof(XKVM_NOTE_NAME)) &&
		   nh->n_descsz == sizeof(n->features)) {
		memcpy(&n->features, desc, sizeof(n->features));
	}
	return 0;
}

static bool segments_in_file(Elf *e, const GElf_Ehdr *eh, int fd)
{
	struct stat st;
	size_t i, nph;
	GElf_Phdr ph;

	if (fstat(fd, &st) < 0 || elf_getphdrnum(e, &nph))
		return false;
	if (eh->e_shoff + (uint64_t)eh->e_shnum * eh->e_shentsize >
	    (uint64_t)st.st_size)
		return false;
	for (i = 0; i < nph; i++) {
		if (!gelf_getphdr(e, i, &ph))
			return false;
		if (ph.p_offset + ph.p_filesz > (uint64_t)st.st_size)
			return false;
	}
	return true;
}

static int check_elf(int fd, const char *path, struct lu_image *img,
		     char *err, size_t errlen)
{
	struct notes n = { 0 };
	GElf_Ehdr eh;
	Elf *e;
	int ret = -1;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh)) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		goto out;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)) {
		snprintf(err, errlen, "%s: not an x86-64 ELF executable", path);
		goto out;
	}
	if (!segments_in_file(e, &eh, fd)) {
		snprintf(err, errlen, "%s: truncated: a segment or the section table lies past the end of the file",
			 path);
		goto out;
	}
	if (elf_for_each_note(e, read_note, &n) < 0) {
		snprintf(err, errlen, "%s: truncated or corrupt ELF: %s", path,
			 elf_errmsg(-1));
		goto out;
	}
	if (!n.have_build_id) {
		snprintf(err, errlen, "%s: no GNU build-id note", path);
		goto out;
	}
	if (!n.have_xkvm) {
		snprintf(err, errlen,
			 "%s: no XKVM stream-version note: not a hypervisor image",
			 path);
		goto out;
	}
	memcpy(img->build_id, n.build_id, sizeof(img->build_id));
	img->read_min = n.versions[0];
	img->read_max = n.versions[1];
	img->write_min = n.versions[2];
	img->write_max = n.versions[3];
	img->features = n.features;
	ret = 0;
out:
	if (e)
		elf_end(e);
	return ret;
}

/* The ELF header of the file itself, before anything is copied. */
static int check_header(int fd, const char *path, char *err, size_t errlen)
{
	Elf64_Ehdr eh;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		return -1;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)) {
		snprintf(err, errlen, "%s: not an x86-64 ELF executable", path);
		return -1;
	}
	return 0;
}

/* Exactly @size bytes of @in into a new memfd, sealed. */
static int copy_sealed(int in, off_t size)
{
	char buf[1 << 16];
	off_t done = 0;
	ssize_t n = 0;
	int out = memfd_create("xkvm-staged-image", MFD_CLOEXEC |
			       MFD_ALLOW_SEALING);

	if (out < 0)
		return -1;
	while (done < size) {
		n = read(in, buf, size - done < (off_t)sizeof(buf) ?
			 (size_t)(size - done) : sizeof(buf));
		if (n <= 0 || write(out, buf, n) != n)
			break;
		done += n;
	}
	if (done < size || fcntl(out, F_ADD_SEALS, F_SEAL_WRITE |
				 F_SEAL_GROW | F_SEAL_SHRINK |
				 F_SEAL_SEAL) < 0) {
		if (!n)
			errno = EIO;	/* the file shrank meanwhile */
		close(out);
		return -1;
	}
	return out;
}

/*
 * What runs must be what was checked: the image is copied into a sealed
 * memfd, checked there and later executed from there, so rewriting or
 * deleting the file after `load` changes nothing.  Only a regular file of
 * at most LU_IMAGE_MAX bytes that starts as an x86-64 ELF executable is
 * copied at all: the copy runs on the control thread.
 */
static int sealed_copy(const char *path, char *err, size_t errlen)
{
	off_t size;
	int in, out = -1;

	in = open_regular(path, LU_IMAGE_MAX, &size, err, errlen);
	if (in < 0)
		return -1;
	if (check_header(in, path, err, errlen) < 0)
		goto out;
	if (access(path, X_OK) < 0) {
		snprintf(err, errlen, "%s: not executable", path);
		goto out;
	}
	out = copy_sealed(in, size);
	if (out < 0)
		snprintf(err, errlen, "%s: cannot copy the image: %s", path,
			 strerror(errno));
out:
	close(in);
	return out;
}

int lu_check_image(const char *path, const char *sig_path,
		   struct lu_image *img, char *err, size_t errlen)
{
	int code, fd = sealed_copy(path, err, errlen);

	if (fd < 0)
		return CTL_EKERNEL;
	/* The bytes that will run, verified before libelf reads them. */
	code = trust_check_image(fd, path, sig_path, err, errlen);
	if (code)
		goto fail;
	code = CTL_EKERNEL;
	if (check_elf(fd, path, img, err, errlen) < 0)
		goto fail;
	if (lu_handover_version(img, err, errlen) < 0)
		goto fail;
	snprintf(img->path, sizeof(img->path), "%s", path);
	img->fd = fd;
	return CTL_OK;
fail:
	close(fd);
	return code;
}

int lu_handover_version(const struct lu_image *img, char *err,
			size_t errlen)
{
	unsigned v = img->read_max < STREAM_VERSION ? img->read_max
						    : STREAM_VERSION;

	if (img->read_max == 0) {
		snprintf(err, errlen, "the image is built without live update "
			 "(CONFIG_LIVE_UPDATE off): it cannot take over the "
			 "guests");
		return -1;
	}
	if (v < STREAM_VERSION_MIN || v < img->read_min) {
		snprintf(err, errlen,
			 "the image reads state versions %u..%u; this one writes %d..%d",
			 img->read_min, img->read_max, STREAM_VERSION_MIN,
			 STREAM_VERSION);
		return -1;
	}
	return v;
}
