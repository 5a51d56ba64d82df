/*
 * Guest RAM: one memfd (or a file in --mem-path), mapped shared, split
 * around the 32-bit PCI hole.
 */
#ifndef XEN_MEMORY_H
#define XEN_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"

#define MEM_HOLE_START	REC_RAM_HOLE_START	/* RAM above this moves to 4 GiB */
#define MEM_4G		REC_RAM_HIGH_START

struct domain;
struct guest_mem;

/*
 * RAM of size bytes: a new memfd, or (adopt_fd >= 0) a duplicate of an
 * inherited one, whose contents are the guest's memory already.
 */
int guest_mem_init(struct domain *dom, uint64_t size, int adopt_fd);
/*
 * --mem-path DIR: new guests' RAM is an unnamed file (O_TMPFILE) in DIR,
 * which must be on a tmpfs (a tmpfs mounted with huge=always gives guests
 * huge pages, and saves, restores and migrations far fewer page
 * allocations), instead of a memfd.  -1 with the reason in err.
 */
int guest_mem_set_dir(const char *dir, char *err, size_t errlen);
const char *guest_mem_dir(void);	/* NULL: memfds */
int guest_mem_map_slots(struct domain *dom);
void guest_mem_free(struct guest_mem *mem);
/*
 * Dirty logging (migration): KVM_MEM_LOG_DIRTY_PAGES on every slot, and
 * KVM_GET_DIRTY_LOG of one slot (0: low RAM, 1: RAM above 4 GiB) into a
 * bitmap of one bit per page, which KVM clears as it hands it over.  The
 * pages device threads wrote meanwhile are in it too.
 */
int guest_mem_log_dirty(struct domain *dom, bool on);
int guest_mem_get_dirty(struct domain *dom, unsigned slot, void *bitmap);
/* A device wrote [gpa, gpa+len) of RAM (any thread). */
void guest_mem_mark_dirty(struct guest_mem *mem, uint64_t gpa,
			  uint64_t len);
/*
 * The next part of RAM that holds data, at or after *from and before end
 * (offsets into the RAM memfd): true with [*from, *data_end), false if
 * only holes are left.  A hole reads as zero and would be elided from a
 * stream, but reading it would allocate it (a page fault and a zeroed
 * page each: seconds for an idle 1 GiB guest), so save and migration
 * skip holes.  Where the file system cannot say, everything is data.
 */
bool guest_mem_next_data(const struct guest_mem *mem, uint64_t *from,
			 uint64_t end, uint64_t *data_end);
/* Host address of [gpa, gpa+len) if it is all RAM, else NULL. */
void *gpa_to_hva(struct guest_mem *mem, uint64_t gpa, uint64_t len);

#endif
