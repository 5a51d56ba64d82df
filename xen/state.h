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
};

struct save_stats {
	uint64_t bytes, pages, zero_pages;
};

/* Write the whole state of a quiesced domain. */
int state_save(struct domain *dom, int fd, const struct save_opts *o,
	       struct save_stats *st, char *err, size_t errlen);

struct restore_opts {
	const char *rename;		/* new name, or NULL */
	bool paused;
};

/* Build a new domain from a stream; on error nothing is left behind. */
int state_restore(struct stream_source src, const struct restore_opts *o,
		  struct domain **out, char *err, size_t errlen);

/* Per-vCPU and VM-wide KVM state (vcpu_state.c, vm_state.c). */
int vcpu_state_save(struct vcpu *v, struct stream_writer *w);
int vcpu_state_load(struct vcpu *v, uint32_t type, const void *body,
		    size_t len, char *err, size_t errlen);
int vm_state_save(struct domain *dom, struct stream_writer *w);
int vm_state_load(struct domain *dom, uint32_t type, const void *body,
		  size_t len, char *err, size_t errlen);

#endif
