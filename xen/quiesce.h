/*
 * Parking vCPUs: the one way to stop guests so that their state can be
 * read, written or replaced (save, live update, livepatch, migration).
 * A parked vCPU thread waits outside KVM_RUN with its last exit completed
 * (vcpu.c), so its registers are what the guest will resume with.
 */
#ifndef XEN_QUIESCE_H
#define XEN_QUIESCE_H

#include <stdbool.h>
#include <stddef.h>

struct domain;

struct quiesce {
	unsigned nr;			/* domains held */
	struct quiesce_held {
		struct domain *dom;
		bool was_running;	/* let it run again on resume */
		unsigned parked;	/* vCPUs parked before the kick */
	} *held;
	unsigned vcpus;			/* vCPU threads parked */
	long long park_ns;		/* first kick to the last one parked */
};

/*
 * Park every vCPU of `dom`, or of every domain when `dom` is NULL, within
 * timeout_ms (< 0: as long as it takes; 0: only if they all were parked
 * already, which a running guest never is).  0 on success.  -ETIMEDOUT, with
 * `err` naming the domain that did not park: the domains stay held, for
 * the caller to resume or keep.  -ENOMEM: nothing was held.
 */
int quiesce(struct quiesce *q, struct domain *dom, long timeout_ms,
	    char *err, size_t errlen);
/*
 * quiesce() of every domain, handing each to each(d, arg) in the domain
 * list's order as soon as it is parked (at once for a domain that could
 * not be held: ending, or without vCPUs), while later ones still park:
 * work on the parked (writing their state) overlaps the wait for the
 * others.  A nonzero return of `each` stops it and is returned (the
 * domains held stay held, as on a timeout).
 */
int quiesce_each(struct quiesce *q, long timeout_ms,
		 int (*each)(struct domain *d, void *arg), void *arg,
		 char *err, size_t errlen);
/* Let each held domain run again if it ran before; frees the set. */
void quiesce_resume(struct quiesce *q);
/* Keep the domains parked (paused, preserved, saved away); frees the set. */
void quiesce_keep(struct quiesce *q);

#endif
