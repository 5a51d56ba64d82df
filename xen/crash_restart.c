// SPDX-License-Identifier: GPL-2.0
#include "crash_restart.h"

long long crash_restart_delay(struct crash_history *h, long long now_ns,
			      unsigned *recent)
{
	long long since = now_ns - CRASH_RESTART_WINDOW_S * 1000000000LL;
	unsigned i, n = 0;

	for (i = 0; i < CRASH_RESTART_MAX; i++)
		if (h->at_ns[i] && h->at_ns[i] > since)
			n++;
	*recent = n + 1;
	if (n >= CRASH_RESTART_MAX)
		return -1;
	h->at_ns[h->next] = now_ns;
	h->next = (h->next + 1) % CRASH_RESTART_MAX;
	return n ? (long long)CRASH_RESTART_DELAY_MS << (n - 1) : 0;
}
