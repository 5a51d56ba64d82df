/*
 * What the payload loader's target links but must never reach: parking
 * the vCPUs (xen/quiesce.c) and looking at where every thread is
 * (livepatch/threads.c) belong to apply and revert, which the target
 * does not do.  Reaching one is a finding.
 */
#include <stdio.h>
#include <stdlib.h>

#include "livepatch/internal.h"
#include "quiesce.h"

static void unreachable(const char *what)
{
	fprintf(stderr, "fuzz_payload: %s reached\n", what);
	abort();
}

int lp_threads_check(const struct payload *p, bool whole_text, char *why,
		     size_t len)
{
	unreachable("lp_threads_check");
	return -1;
}

int quiesce(struct quiesce *q, struct domain *dom, long timeout_ms,
	    char *err, size_t errlen)
{
	unreachable("quiesce");
	return -1;
}

void quiesce_resume(struct quiesce *q)
{
	unreachable("quiesce_resume");
}
