/*
 * A token bucket: `burst` tokens at once, then `per_s` a second.  The
 * caller serialises calls on one bucket.  Used for a guest's log lines
 * (log_limit.c) and its console bytes (dev/uart.c).
 */
#ifndef XEN_TOKEN_BUCKET_H
#define XEN_TOKEN_BUCKET_H

#include <stdbool.h>

#include "monotime.h"

struct token_bucket {
	bool started;
	double tokens;
	long long last_ns;
};

/* Add what the time since the last call earned; returns the tokens. */
static inline double token_bucket_refill(struct token_bucket *b,
					 double burst, double per_s)
{
	long long now = now_ns();

	if (!b->started) {
		b->started = true;
		b->tokens = burst;
	} else {
		b->tokens += (now - b->last_ns) / 1e9 * per_s;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_ns = now;
	return b->tokens;
}

#endif
