// SPDX-License-Identifier: GPL-2.0
#include <pthread.h>

#include "log_limit.h"

/* Guards every budget: lines are rare next to what they cost to write. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

static void say_dropped(struct log_limit *l)
{
	if (!l->dropped)
		return;
	log_msg(LOG_WARN, "%s: %lu log lines not logged (a guest's lines are "
		"limited to %d at once, then %d a second)",
		l->who[0] ? l->who : "a guest", l->dropped, LOG_LIMIT_BURST,
		LOG_LIMIT_PER_S);
	l->dropped = 0;
}

/* Take a line from the budget: false if there is none left. */
static bool take(struct log_limit *l)
{
	if (token_bucket_refill(&l->budget, LOG_LIMIT_BURST,
				LOG_LIMIT_PER_S) < 1) {
		l->dropped++;
		return false;
	}
	l->budget.tokens -= 1;
	return true;
}

void log_limited(struct log_limit *l, enum log_level level,
		 const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&limit_lock);
	if (take(l)) {
		say_dropped(l);
		va_start(ap, fmt);
		log_vmsg(level, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&limit_lock);
}

void log_limit_flush(struct log_limit *l)
{
	pthread_mutex_lock(&limit_lock);
	say_dropped(l);
	pthread_mutex_unlock(&limit_lock);
}
