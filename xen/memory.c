#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "domain.h"
#include "log.h"
#include "memory.h"

static int adopt(int fd, uint64_t size)
{
	struct stat st;
	int dup_fd;

	if (fstat(fd, &st) < 0)
		return -1;
	if ((uint64_t)st.st_size != size) {
		errno = EINVAL;
		return -1;
	}
	/* A duplicate: discarding the domain must not close the original. */
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return dup_fd;
}

/* --mem-path: NULL for a memfd (the kernel's internal tmpfs). */
static const char *ram_dir;

/*
 * A new, empty RAM file: a memfd "domN-ram", or in --mem-path a file
 * "domN-ram.XXXXXX" made and unlinked at once (O_TMPFILE would leave it
 * nameless: /proc/PID/fd still says whose RAM it is this way).
 */
static int new_ram_fd(unsigned domid)
{
	char name[PATH_MAX];
	int fd;

	if (!ram_dir) {
		snprintf(name, sizeof(name), "dom%u-ram", domid);
		return memfd_create(name, MFD_CLOEXEC);
	}
	if (snprintf(name, sizeof(name), "%s/dom%u-ram.XXXXXX", ram_dir,
		     domid) >= (int)sizeof(name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(name, O_CLOEXEC);
	if (fd >= 0)
		unlink(name);
	return fd;
}

int guest_mem_set_dir(const char *dir, char *err, size_t errlen)
{
	static char abs_dir[PATH_MAX];
	struct statfs fs;
	int fd;

	/* Absolute: the daemon changes directory when it detaches. */
	if (!realpath(dir, abs_dir) || statfs(abs_dir, &fs) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* Holes (SEEK_DATA), pwrite() and no disk under the guest's RAM. */
	if (fs.f_type != TMPFS_MAGIC) {
		snprintf(err, errlen, "%s is not on a tmpfs (guest RAM must "
			 "be; for huge pages mount one with huge=always)",
			 dir);
		return -1;
	}
	ram_dir = abs_dir;
	fd = new_ram_fd(0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", dir,
			 strerror(errno));
		ram_dir = NULL;
		return -1;
	}
	close(fd);
	return 0;
}

const char *guest_mem_dir(void)
{
	return ram_dir;
}

int guest_mem_init(struct domain *dom, uint64_t size, int adopt_fd)
{
	struct guest_mem *mem = &dom->mem;

	if (adopt_fd >= 0) {
		mem->fd = adopt(adopt_fd, size);
		if (mem->fd < 0)
			return -1;
	} else {
		mem->fd = new_ram_fd(dom->id);
		if (mem->fd < 0)
			return -1;
		if (ftruncate(mem->fd, size) < 0)
			goto fail;
	}
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 mem->fd, 0);
	if (mem->base == MAP_FAILED) {
		mem->base = NULL;
		goto fail;
	}
	mem->size = size;
	mem->low_size = size < MEM_HOLE_START ? size : MEM_HOLE_START;
	return 0;
fail:
	close(mem->fd);
	mem->fd = -1;
	return -1;
}

static int set_slot(int vm_fd, unsigned slot, uint64_t gpa, uint64_t size,
		    void *hva, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static int map_slots(struct domain *dom, uint32_t flags)
{
	struct guest_mem *mem = &dom->mem;

	if (set_slot(dom->vm_fd, 0, 0, mem->low_size, mem->base, flags) < 0)
		return -1;
	if (mem->size > mem->low_size &&
	    set_slot(dom->vm_fd, 1, MEM_4G, mem->size - mem->low_size,
		     mem->base + mem->low_size, flags) < 0)
		return -1;
	return 0;
}

int guest_mem_map_slots(struct domain *dom)
{
	return map_slots(dom, 0);
}

#define PAGE_SHIFT	12

static uint64_t bitmap_words(const struct guest_mem *mem)
{
	return ((mem->size >> PAGE_SHIFT) + 63) / 64;
}

int guest_mem_log_dirty(struct domain *dom, bool on)
{
	struct guest_mem *mem = &dom->mem;

	/* Allocated once and kept: device threads may be marking. */
	if (on && !mem->dev_dirty) {
		mem->dev_dirty = calloc(bitmap_words(mem), sizeof(uint64_t));
		if (!mem->dev_dirty)
			return -1;
	}
	if (on)
		memset(mem->dev_dirty, 0, bitmap_words(mem) * sizeof(uint64_t));
	__atomic_store_n(&mem->dev_log, on, __ATOMIC_RELEASE);
	if (map_slots(dom, on ? KVM_MEM_LOG_DIRTY_PAGES : 0) < 0) {
		__atomic_store_n(&mem->dev_log, false, __ATOMIC_RELEASE);
		return -1;
	}
	return 0;
}

void guest_mem_mark_dirty(struct guest_mem *mem, uint64_t gpa,
			  uint64_t len)
{
	uint64_t *bits = mem->dev_dirty;
	uint64_t off, first, last, p;

	if (!__atomic_load_n(&mem->dev_log, __ATOMIC_ACQUIRE) || !len)
		return;
	off = gpa >= MEM_4G ? gpa - MEM_4G + mem->low_size : gpa;
	first = off >> PAGE_SHIFT;
	last = (off + len - 1) >> PAGE_SHIFT;
	for (p = first; p <= last && p < (mem->size >> PAGE_SHIFT); p++)
		__atomic_fetch_or(&bits[p / 64], 1ULL << (p % 64),
				  __ATOMIC_RELAXED);
}

/*
 * OR the device-written pages of a slot into bitmap, clearing them, a
 * word at a time: a slot starts on a 64-page boundary (slot 1 at 3 GiB),
 * and no bit past the last page of RAM is ever set.
 */
static void take_dev_dirty(struct guest_mem *mem, unsigned slot,
			   uint64_t *bitmap)
{
	uint64_t *bits = mem->dev_dirty;
	uint64_t first = slot ? mem->low_size >> PAGE_SHIFT : 0;
	uint64_t n = slot ? (mem->size - mem->low_size) >> PAGE_SHIFT
			  : mem->low_size >> PAGE_SHIFT;
	uint64_t w;

	if (!bits)
		return;
	for (w = 0; w < (n + 63) / 64; w++)
		if (__atomic_load_n(&bits[first / 64 + w], __ATOMIC_RELAXED))
			bitmap[w] |= __atomic_exchange_n(&bits[first / 64 + w],
							 0, __ATOMIC_RELAXED);
}

int guest_mem_get_dirty(struct domain *dom, unsigned slot, void *bitmap)
{
	struct kvm_dirty_log d = { .slot = slot, .dirty_bitmap = bitmap };

	if (ioctl(dom->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0)
		return -1;
	take_dev_dirty(&dom->mem, slot, bitmap);
	return 0;
}

void guest_mem_free(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	free(mem->dev_dirty);
	mem->dev_dirty = NULL;
	mem->base = NULL;
	mem->fd = -1;
}

bool guest_mem_next_data(const struct guest_mem *mem, uint64_t *from,
			 uint64_t end, uint64_t *data_end)
{
	off_t d = lseek(mem->fd, *from, SEEK_DATA), h;

	if (d < 0 && errno == ENXIO)
		return false;		/* holes to the end of the file */
	if (d < 0) {
		*data_end = end;
		return true;
	}
	if ((uint64_t)d >= end)
		return false;
	h = lseek(mem->fd, d, SEEK_HOLE);
	*from = d;
	*data_end = h < 0 || (uint64_t)h > end ? end : (uint64_t)h;
	return true;
}

void *gpa_to_hva(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return NULL;
	if (gpa + len <= mem->low_size)
		return mem->base + gpa;
	if (gpa >= MEM_4G && gpa + len - MEM_4G <= mem->size - mem->low_size)
		return mem->base + mem->low_size + (gpa - MEM_4G);
	return NULL;
}
