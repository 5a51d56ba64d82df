/*
 * The record table: for each record type of the state stream its name,
 * the part of a domain's stream it belongs to (its phase), its size rule,
 * whether a domain's stream must hold it, and the function that checks
 * its body.  Checking is separate from loading (Xen's
 * HVM_REGISTER_SAVE_RESTORE(name, save, check, load)): the daemon's
 * restore checks every record here before its loader touches the domain,
 * and `xen-stream verify|dump` and the fuzzer run the same checks.
 *
 * The bodies are common/records.h's; the framing is common/stream.h's.
 */
#ifndef COMMON_REC_TABLE_H
#define COMMON_REC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domcfg.h"
#include "stream.h"

/* The parts of a domain's stream, in their order. */
enum rec_phase {
	PH_PROLOGUE,		/* DOMAIN_CONFIG, MEMORY_LAYOUT */
	PH_CPUID,		/* CPUID, before anything of a vCPU */
	PH_PAGES,
	PH_VCPUS,		/* per vCPU, in table order */
	PH_VM,
	PH_DEVICES,
	PH_CONSOLE,
	PH_UNUSED,		/* known; restore has no use for it */
	PH_HANDOVER,		/* live-update handover streams only */
	PH_END,
};

enum rec_size_rule {
	RS_ANY,			/* the check function decides */
	RS_EXACT,		/* exactly `size` bytes */
	RS_AT_LEAST,		/* `size` bytes or more */
};

#define REC_REQUIRED	0x1u	/* a domain's stream must hold it (per vCPU
				 * for vCPU records) */
#define REC_ONCE	0x2u	/* at most one per domain */

#define CHECK_ERR_MAX	320

struct stream_check;

struct rec_desc {
	uint32_t type;
	const char *name;
	enum rec_phase phase;
	enum rec_size_rule size_rule;
	/* Body bytes; for vCPU records the KVM structure after the head. */
	uint32_t size;
	unsigned flags;
	/* What the body must hold beyond its size: 0, or -1 and c->err. */
	int (*check)(struct stream_check *c, const struct rec_desc *d,
		     uint64_t offset, const uint8_t *body, uint32_t len);
};

/* Bytes of a CPUID record with nent entries (common/records.h). */
size_t rec_cpuid_size(unsigned nent);
/* Bytes of a DEV_VIRTIO record with these counts (common/records.h). */
size_t rec_virtio_size(unsigned nr_queues, unsigned msix_entries);

/* The entry of a record type, or NULL if the format has none. */
const struct rec_desc *rec_desc(uint32_t type);
/* Entries in table order (vCPU records in the order restore applies them,
 * which KVM cares about); NULL past the end. */
const struct rec_desc *rec_desc_at(unsigned i);
const char *rec_type_name(uint32_t type);

/* What a domain's stream has shown so far. */
struct stream_check {
	unsigned records;		/* records checked, END included */
	bool have_config, have_layout, ended;
	struct domcfg cfg;		/* from DOMAIN_CONFIG */
	unsigned nr_vcpus;
	unsigned memory_mib;
	struct rec_memory_layout layout;
	uint64_t low_pages, high_pages;	/* RAM below the hole, above 4 GiB */
	uint64_t seen;			/* bit per table entry */
	uint32_t vcpu_seen[DOMCFG_VCPUS_LIMIT];	/* bit per vCPU entry */
	unsigned phase;			/* enum rec_phase reached */
	uint32_t virtio_slots;		/* DEV_VIRTIO records seen, by slot */
	int cur_vcpu, cur_rank;		/* last vCPU record: vCPU, rank */
	unsigned irqchips_seen;		/* bit per chip id */
	uint64_t pages;			/* pfns checked */
	char err[CHECK_ERR_MAX];	/* "offset N: reason" */
};

void check_init(struct stream_check *c);
void check_free(struct stream_check *c);
/*
 * One record as the reader returned it, END excluded: 0, or -1 with the
 * problem in c->err.  @offset is where the record begins.
 */
int check_record(struct stream_check *c, uint64_t offset,
		 const struct rec_header *rh, const uint8_t *body);
/* The pfns of a PAGE_BATCH the reader decoded. */
int check_pages(struct stream_check *c, uint64_t offset,
		const uint64_t *pfns, unsigned n);
/* At the END (or DOMAIN_END) record: every required record was there. */
int check_end(struct stream_check *c, uint64_t offset);

/* Whether the pfn is RAM in the checked MEMORY_LAYOUT. */
bool check_pfn_is_ram(const struct stream_check *c, uint64_t pfn);

#endif
