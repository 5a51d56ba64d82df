/*
 * What a state stream must hold beyond its framing (tools/stream/check.c):
 * the required records in their places, record bodies of the right size
 * for what the daemon's restore does with them, pages inside the RAM the
 * MEMORY_LAYOUT describes.  The framing itself (header, checksums, record
 * structure, page decoding) is common/stream.c's reader.
 *
 * Used by `xen-stream verify` and `dump` and by the fuzz target.
 */
#ifndef XEN_STREAM_CHECK_H
#define XEN_STREAM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domcfg.h"
#include "stream.h"

#define CHECK_ERR_MAX	320

struct stream_check {
	unsigned records;		/* records checked, END included */
	bool have_config, have_layout, ended;
	unsigned nr_vcpus;		/* from DOMAIN_CONFIG */
	unsigned memory_mib;
	struct rec_memory_layout layout;
	uint64_t low_pages, high_pages;	/* RAM below the hole, above 4 GiB */
	uint32_t vcpu_seen[DOMCFG_VCPUS_LIMIT];	/* bit per vCPU record type */
	unsigned devices_seen;		/* bit per DEV_* record type */
	/* The record order of docs/state-format.md. */
	unsigned phase;			/* enum check_phase reached */
	int cur_vcpu, cur_rank;		/* last vCPU record: vCPU, rank */
	unsigned vm_seen;		/* IRQCHIP 0-2, PIT, CLOCK */
	bool console_seen;
	uint64_t pages;			/* pfns checked */
	char err[CHECK_ERR_MAX];	/* "offset N: reason" */
};

void check_init(struct stream_check *c);
/*
 * One record as the reader returned it, END excluded: 0, or -1 with the
 * problem in c->err.  @offset is where the record begins.
 */
int check_record(struct stream_check *c, uint64_t offset,
		 const struct rec_header *rh, const uint8_t *body);
/* The pfns of a PAGE_BATCH the reader decoded. */
int check_pages(struct stream_check *c, uint64_t offset,
		const uint64_t *pfns, unsigned n);
/* At the END record: every required record was there. */
int check_end(struct stream_check *c, uint64_t offset);

/* Size of the KVM structure after a vCPU record's head; 0 if variable. */
size_t vcpu_struct_size(uint32_t type);
/* Whether the pfn is RAM in the checked MEMORY_LAYOUT. */
bool check_pfn_is_ram(const struct stream_check *c, uint64_t pfn);

#endif
