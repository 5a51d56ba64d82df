/*
 * Domain state to and from the state stream (docs/state-format.md): the
 * one format behind save/restore, live update and migration.
 */
#ifndef XEN_STATE_H
#define XEN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

struct domain;
struct vcpu;

struct save_opts {
	unsigned version;		/* stream format version to write */
	enum page_encoding encoding;
	unsigned workers;		/* page pipeline threads (pagepipe.h) */
	bool no_memory;			/* RAM stays in its memfd (live update) */
};

struct save_stats {
	uint64_t bytes, pages, zero_pages;
};

/* Page pipeline threads when not asked: the CPUs we may use, at most 4. */
unsigned state_default_workers(void);

/* Write the whole state of a quiesced domain as a stream of its own. */
int state_save(struct domain *dom, int fd, const struct save_opts *o,
	       struct save_stats *st, char *err, size_t errlen);
/*
 * The parts of a domain's records, for a writer that sends RAM itself
 * (migration's pre-copy rounds): DOMAIN_CONFIG, MEMORY_LAYOUT and CPUID; then
 * everything after the pages (vCPUs, VM, devices, console).
 */
int state_save_prologue(struct domain *dom, struct stream_writer *w);
int state_save_epilogue(struct domain *dom, struct stream_writer *w);
/* Only the domain's records, into a stream someone else frames. */
int state_save_domain(struct domain *dom, struct stream_writer *w,
		      const struct save_opts *o);

/*
 * How a restored domain's clocks (TSC, kvmclock) resume
 * (docs/state-format.md, "Time across save and load").
 */
enum state_clock {
	STATE_CLOCK_STOPPED,		/* as saved: the guest sees no gap */
	STATE_CLOCK_SAME_HOST,		/* on by the time passed, TSC offset kept */
	STATE_CLOCK_OTHER_HOST,		/* on by CLOCK_REALTIME's difference */
};

struct restore_opts {
	enum state_clock clock;
	const char *rename;		/* new name, or NULL */
	bool paused;
	int ram_fd;			/* adopt this memfd as RAM, or -1 */
	unsigned domid;			/* keep this id, or 0 for a new one */
	bool no_start;			/* leave it prepared, not running */
	bool inherit_fds;		/* a live update: devices adopt the
					 * fds their records name */
	/* Called once the domain and its RAM exist (after MEMORY_LAYOUT):
	 * migration's page connections write into that RAM. */
	void (*prepared)(struct domain *dom, void *opaque);
	void *opaque;
	uint32_t refuse_type;		/* fault injection: refuse this
					 * record as KVM would, or 0 */
};

/*
 * Build a new domain from a stream; 0, or a negative errno with `err` set
 * (-EINVAL: the stream; -ENOMEM, -ENOSPC, -EEXIST: this host), and then
 * nothing is left behind.
 */
int state_restore(struct stream_source src, const struct restore_opts *o,
		  struct domain **out, char *err, size_t errlen);
/*
 * Read one domain's records from an open reader up to END or DOMAIN_END
 * (handover streams hold several domains).
 */
int state_restore_domain(struct stream_reader *r,
			 const struct restore_opts *o, struct domain **out,
			 char *err, size_t errlen);

/*
 * A domain restored in two parts (live update's build-ahead): begin()
 * reads DOMAIN_CONFIG, MEMORY_LAYOUT and what follows up to DOMAIN_END
 * (CPUID) and builds the domain, not started; finish() loads the rest of
 * its records, from another stream, up to DOMAIN_END and checks the
 * domain is complete.  done() hands the domain over (not started);
 * abort() discards it.  0 or a negative errno with `err` set.
 */
struct state_restoring;
int state_restore_begin(struct stream_reader *r, const struct restore_opts *o,
			struct state_restoring **out, char *err, size_t errlen);
int state_restore_finish(struct stream_reader *r, struct state_restoring *x,
			 char *err, size_t errlen);
struct domain *state_restore_domain_of(struct state_restoring *x);
struct domain *state_restore_done(struct state_restoring *x);
void state_restore_abort(struct state_restoring *x);

/* Per-vCPU and VM-wide KVM state (vcpu_state.c, vm_state.c). */
int vcpu_state_save(struct vcpu *v, struct stream_writer *w);
int vcpu_state_load(struct vcpu *v, uint32_t type, const void *body,
		    size_t len, char *err, size_t errlen);
int vm_state_save(struct domain *dom, struct stream_writer *w);
int vm_state_load(struct domain *dom, uint32_t type, const void *body,
		  size_t len, char *err, size_t errlen);

#endif
