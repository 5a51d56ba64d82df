/*
 * Optional features (live update, livepatch, next migration) plug into the
 * core here.  Each registers, from a constructor in its own files, the
 * control commands it serves and what it adds to `info`; the core includes
 * none of their headers, and a feature compiled out is simply not linked.
 * (kvmtool's util-init.h is the model.)
 */
#ifndef XEN_FEATURE_H
#define XEN_FEATURE_H

#include <jansson.h>

#include "control.h"

struct ctl_command {
	const char *name;
	ctl_handler fn;
};

struct feature {
	const char *name;			/* for the log */
	const struct ctl_command *commands;	/* ended by { NULL } */
	/* Adds the feature's part to the result of `info`, if not NULL. */
	void (*info)(json_t *result);
	struct feature *next;
};

void feature_register(struct feature *f);
const struct feature *feature_first(void);

/* Register `f` (a static struct feature) before main() runs. */
#define FEATURE_REGISTER(f)						\
	static void __attribute__((constructor)) register_##f(void)	\
	{								\
		feature_register(&f);					\
	}

#endif
