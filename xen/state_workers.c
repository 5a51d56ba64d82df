/*
 * How many threads the page pipeline uses by default, on both sides:
 * save's workers and restore's storers (docs/page-pipeline.md).
 */
#include <sched.h>

#include "state.h"

/* The CPUs this thread may run on (sched_getaffinity: every sandbox
 * role may ask; sysconf() would open files under /sys), at most 4. */
unsigned state_default_workers(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	n = CPU_COUNT(&set);
	return n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
}
