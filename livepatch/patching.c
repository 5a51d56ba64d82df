/*
 * Applying and reverting: hooks, parking every vCPU thread within a
 * bounded pause, writing a jump at each old function's entry, and
 * serializing every thread before the new code runs.
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "domain.h"
#include "vcpu.h"
#include "livepatch/internal.h"
#include "log.h"
#include "monotime.h"

const char *const lp_hook_names[H_NR] = {
	"load", "unload", "preapply", "postapply", "prerevert", "postrevert",
	"apply", "revert",
};

int lp_run_hooks(struct payload *p, int kind, struct lp_err *e)
{
	unsigned i;

	for (i = 0; i < p->nhooks[kind]; i++) {
		int r = p->hooks[kind][i]();

		if (r && (kind == H_LOAD || kind == H_PREAPPLY ||
			  kind == H_PREREVERT))
			return lp_fail(e, CTL_ESTATE, "%s: %s hook %u vetoed "
				    "(returned %d); nothing changed", p->name,
				    lp_hook_names[kind], i, r);
		if (r)
			log_warn("livepatch %s: %s hook %u returned %d",
				 p->name, lp_hook_names[kind], i, r);
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
		return lp_fail(e, CTL_ENORES, "%s", "out of memory");
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
			return lp_fail(e, CTL_EBUSY, "pause timeout: d%u has %u "
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
	if (lp_membarrier_ok &&
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
			return lp_fail(e, CTL_EINTERNAL, "%s: mprotect: %s",
				    lf->name, strerror(err));
		}
	}
	return 0;
}

/* What livepatch_default_action() acts on: set only while an action hook
 * runs (on the control thread, with every vCPU parked). */
static struct {
	struct payload *p;
	bool apply, done;
	struct lp_err *e;
} action;

/* The jumps in (apply) or out, unless they already are. */
static int set_jumps(struct payload *p, bool apply, struct lp_err *e)
{
	if (apply == p->jumps_written)
		return 0;
	if (patch_funcs(p, apply, e))
		return -1;
	p->jumps_written = apply;
	return 0;
}

int livepatch_default_action(void)
{
	struct payload *p = action.p;

	if (!p || action.done)
		return -1;
	if (set_jumps(p, action.apply, action.e))
		return -1;
	action.done = true;
	return 0;
}

/*
 * The switch itself, with everything parked: the payload's action hook if
 * it has one (it calls livepatch_default_action() for the jumps, and does
 * what else it must while nothing runs), else the jumps.  A failing action
 * hook has the jumps it had written undone.
 */
static int do_switch(struct payload *p, bool apply, struct lp_err *e)
{
	int kind = apply ? H_APPLY : H_REVERT, r;

	if (!p->nhooks[kind])
		return set_jumps(p, apply, e);
	action.p = p;
	action.apply = apply;
	action.done = false;
	action.e = e;
	r = p->hooks[kind][0]();
	if (r && action.done)
		set_jumps(p, !apply, e);
	action.p = NULL;
	if (r)
		return lp_fail(e, CTL_ESTATE, "%s: %s action hook failed "
			       "(returned %d); the jumps are as they were",
			       p->name, lp_hook_names[kind], r);
	return 0;
}

/* How long the last apply or revert held the guests (the reply shows it). */
static struct {
	long long park_ns, pause_ns;
	unsigned vcpus;
} last_pause;

json_t *lp_last_pause_json(void)
{
	return json_pack("{s:f, s:f, s:i}",
			 "park_ms", last_pause.park_ns / 1e6,
			 "pause_ms", last_pause.pause_ns / 1e6,
			 "vcpus", last_pause.vcpus);
}

/* Apply (or revert) one payload with every vCPU parked. */
int lp_switch_payload(struct payload *p, bool apply, long timeout_ms,
		      struct lp_err *e)
{
	struct quiesced *q = NULL;
	unsigned n = 0, i;
	long long t0, t1;
	int ret;

	if (lp_run_hooks(p, apply ? H_PREAPPLY : H_PREREVERT, e))
		return -1;
	t0 = now_ns();
	if (quiesce_all(timeout_ms, &q, &n, e))
		return -1;
	t1 = now_ns();
	last_pause.vcpus = 0;
	for (i = 0; i < n; i++)
		last_pause.vcpus += started_vcpus(q[i].dom);
	ret = do_switch(p, apply, e);
	sync_cores();
	resume_all(q, n);
	last_pause.park_ns = t1 - t0;
	last_pause.pause_ns = now_ns() - t0;
	if (ret)
		return -1;
	p->applied = apply;
	if (apply)
		lp_applied[lp_napplied++] = p;
	else
		lp_napplied--;
	log_info("livepatch %s: %s (%u function%s)", p->name,
		 apply ? "applied" : "reverted", p->nfuncs,
		 p->nfuncs == 1 ? "" : "s");
	lp_run_hooks(p, apply ? H_POSTAPPLY : H_POSTREVERT, e);
	return 0;
}
