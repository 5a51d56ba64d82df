/*
 * The sandbox (docs/sandbox.md): a seccomp filter per thread role and the
 * capabilities the daemon keeps after start-up.  The core only says, at
 * the start of each thread it makes, which role the thread has; the rest
 * lives in xen/sandbox*.c, which a build without CONFIG_SANDBOX leaves out.
 */
#ifndef XEN_SANDBOX_H
#define XEN_SANDBOX_H

#include <generated/autoconf.h>

enum sandbox_role {
	SANDBOX_MAIN,		/* control, event loop, save, live update */
	SANDBOX_VCPU,		/* KVM_RUN and the devices it emulates */
	SANDBOX_DEVICE,		/* a virtio device's I/O thread */
	SANDBOX_MIGRATION,	/* a migration's sending thread */
	SANDBOX_NR_ROLES,
};

#ifdef CONFIG_SANDBOX
/*
 * Called first thing in a new thread: installs the role's filter on top
 * of what the thread inherited, unless the sandbox is off.  `domid` and
 * `name` say which thread it is in the log and to `sandbox-probe`.
 * sandbox_thread_leave() is called last, before the thread returns.
 */
void sandbox_thread_enter(enum sandbox_role role, int domid,
			  const char *name);
void sandbox_thread_leave(void);
#else
static inline void sandbox_thread_enter(enum sandbox_role role, int domid,
					const char *name)
{
}

static inline void sandbox_thread_leave(void)
{
}
#endif

#endif
