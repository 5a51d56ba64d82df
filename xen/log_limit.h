/*
 * A budget of log lines for one source a guest drives (its resets,
 * crashes, unclaimed accesses): LOG_LIMIT_BURST lines at once, then
 * LOG_LIMIT_PER_S a second, so that a guest doing one of those in a loop
 * cannot grow xen.log without bound nor crowd the other guests' lines out
 * of `xl dmesg`.  What is left out is counted and said with the next line
 * logged ("dN: N log lines not logged ...").  README.md, "Limits".
 */
#ifndef XEN_LOG_LIMIT_H
#define XEN_LOG_LIMIT_H

#include <stdbool.h>

#include "log.h"
#include "token_bucket.h"

#define LOG_LIMIT_BURST	50
#define LOG_LIMIT_PER_S	1

struct log_limit {
	char who[24];			/* "d3": names the source */
	struct token_bucket budget;
	unsigned long dropped;		/* not logged since the last line */
};

/* Log through @l's budget (any thread). */
void log_limited(struct log_limit *l, enum log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Say how many lines were left out, if any (the source is going away). */
void log_limit_flush(struct log_limit *l);

#endif
