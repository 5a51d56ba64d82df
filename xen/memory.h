/* Guest RAM: one memfd, mapped shared, split around the 32-bit PCI hole. */
#ifndef XEN_MEMORY_H
#define XEN_MEMORY_H

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
int guest_mem_map_slots(struct domain *dom);
void guest_mem_free(struct guest_mem *mem);
/* Host address of [gpa, gpa+len) if it is all RAM, else NULL. */
void *gpa_to_hva(struct guest_mem *mem, uint64_t gpa, uint64_t len);

#endif
