/* The sandbox's lists of allowed calls, per thread role (sandbox_rules.c). */
#ifndef XEN_SANDBOX_RULES_H
#define XEN_SANDBOX_RULES_H

#include <seccomp.h>
#include <sys/types.h>

#include "sandbox.h"

/*
 * Add the role's allow rules to ctx; 0, or a negative errno.  `pid` is
 * the process the signal rules name (getpid(); 0 gives a pid-independent
 * program, for comparing rule sets).
 */
int sandbox_rules_add(scmp_filter_ctx ctx, enum sandbox_role role,
		      pid_t pid);

#endif
