/* CLOCK_MONOTONIC in ns: exec does not reset it, so live update's
 * timestamps taken before and after the exec compare. */
#ifndef XEN_MONOTIME_H
#define XEN_MONOTIME_H

#include <time.h>

static inline long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

#endif
