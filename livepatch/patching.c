/*
 * Applying and reverting: hooks, parking every vCPU thread within a
 * bounded pause, writing a jump at each old function's entry, and
 * serializing every thread before the new code runs.
 */
#include <linux/membarrier.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "livepatch/internal.h"
#include "log.h"
#include "monotime.h"
#include "quiesce.h"

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

/*
 * Write (apply) or restore (revert) every function entry and range of p;
 * everything stopped.  A failure undoes what was written.
 */
static int patch_spans(struct payload *p, bool apply, struct lp_err *e)
{
	struct lp_span s;
	unsigned i;

	for (i = 0; i < lp_nspans(p); i++) {
		lp_span_at(p, i, &s);
		if (apply)
			memcpy(s.saved, s.addr, s.len);
		if (text_write(s.addr, apply ? s.bytes : s.saved, s.len)) {
			int err = errno;

			while (apply && i--) {
				lp_span_at(p, i, &s);
				text_write(s.addr, s.saved, s.len);
			}
			return lp_fail(e, CTL_EINTERNAL, "%s: mprotect: %s",
				       s.what, strerror(err));
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
	if (patch_spans(p, apply, e))
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
	long long park_ns, pause_ns, check_ns;
	unsigned vcpus, tries;
} last_pause;

json_t *lp_last_pause_json(void)
{
	return json_pack("{s:f, s:f, s:f, s:i, s:i}",
			 "park_ms", last_pause.park_ns / 1e6,
			 "pause_ms", last_pause.pause_ns / 1e6,
			 "check_ms", last_pause.check_ns / 1e6,
			 "vcpus", last_pause.vcpus,
			 "tries", last_pause.tries);
}

/*
 * Park every vCPU; then, when `p` is given, check that no thread is inside
 * what is about to be written (its spans, or with whole_text all of its
 * code), retrying a few times when one is: a thread inside a range is
 * there for a moment, unless it is blocked there.
 */
static int park_safely(struct quiesce *q, const struct payload *p,
		       bool whole_text, long timeout_ms, long long *t0,
		       struct lp_err *e)
{
	char err[256];
	unsigned try;
	int ret;

	for (try = 1;; try++) {
		*t0 = now_ns();
		ret = quiesce(q, NULL, timeout_ms < 0 ? 0 : timeout_ms, err,
			      sizeof(err));
		if (ret < 0) {
			quiesce_resume(q);
			return lp_fail(e, ret == -ENOMEM ? CTL_ENORES : CTL_EBUSY,
				       "pause timeout: %s; nothing was patched",
				       err);
		}
		last_pause.check_ns = now_ns();
		ret = p ? lp_threads_check(p, whole_text, err, sizeof(err)) : 0;
		last_pause.check_ns = now_ns() - last_pause.check_ns;
		last_pause.tries = try;
		if (!ret)
			return 0;
		quiesce_resume(q);
		if (ret != -EAGAIN || try == LP_SAFE_TRIES)
			break;
		usleep(1000 * try);
	}
	return lp_fail(e, CTL_EBUSY, "%s (%u tries); nothing was %s", err, try,
		       whole_text ? "unloaded" : "patched");
}

static void record_pause(const struct quiesce *q, long long t0)
{
	last_pause.vcpus = q->vcpus;
	last_pause.park_ns = q->park_ns;
	last_pause.pause_ns = now_ns() - t0;
}

int lp_parked(int (*fn)(void *arg, struct lp_err *e), void *arg,
	      long timeout_ms, struct lp_err *e)
{
	struct quiesce q;
	long long t0;
	int ret;

	if (park_safely(&q, NULL, false, timeout_ms, &t0, e))
		return -1;
	ret = fn(arg, e);
	quiesce_resume(&q);
	record_pause(&q, t0);
	return ret;
}

int lp_check_unused(const struct payload *p, struct lp_err *e)
{
	struct quiesce q;
	long long t0;

	if (park_safely(&q, p, true, LP_PAUSE_MS, &t0, e))
		return -1;
	quiesce_resume(&q);
	return 0;
}

/* Apply (or revert) one payload with every vCPU parked. */
int lp_switch_payload(struct payload *p, bool apply, long timeout_ms,
		      struct lp_err *e)
{
	struct quiesce q;
	long long t0;
	int ret;

	if (lp_run_hooks(p, apply ? H_PREAPPLY : H_PREREVERT, e))
		return -1;
	if (park_safely(&q, p, false, timeout_ms, &t0, e))
		return -1;
	ret = do_switch(p, apply, e);
	sync_cores();
	quiesce_resume(&q);
	record_pause(&q, t0);
	if (ret)
		return -1;
	p->applied = apply;
	p->ever_applied |= apply;
	if (apply)
		lp_applied[lp_napplied++] = p;
	else
		lp_napplied--;
	log_info("livepatch %s: %s (%u function%s, %u range%s)", p->name,
		 apply ? "applied" : "reverted", p->nfuncs,
		 p->nfuncs == 1 ? "" : "s", p->nranges,
		 p->nranges == 1 ? "" : "s");
	lp_run_hooks(p, apply ? H_POSTAPPLY : H_POSTREVERT, e);
	return 0;
}
