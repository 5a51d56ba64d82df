/* Shared by the sandbox's files: sandbox.c, sandbox_caps.c, sandbox_cmd.c. */
#ifndef XEN_SANDBOX_INTERNAL_H
#define XEN_SANDBOX_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "sandbox.h"

/* What sandbox-probe asks a thread to try (sandbox_cmd.c). */
enum sandbox_probe_call {
	PROBE_SOCKET,
	PROBE_EXECVE,
	PROBE_PTRACE,
	PROBE_SETNS,
	PROBE_NR_CALLS,
};

extern const char *const sandbox_role_names[SANDBOX_NR_ROLES];
extern const char *const sandbox_probe_names[PROBE_NR_CALLS];

/* On unless --no-sandbox (or it could not be set up: logged). */
bool sandbox_on(void);
/* Build every role's program; -1 if libseccomp or the kernel cannot. */
int sandbox_prepare(void);
/*
 * At start-up, after sandbox_prepare(): whether the main thread already
 * runs under this image's main-thread filter (inherited through a live
 * update's execve), and say in the environment which one the next image
 * will find (none unless will_install).
 */
void sandbox_note_inherited(bool will_install);
/* The main thread's filter and capabilities, once the daemon serves. */
int sandbox_start_main(void);
/* The report fd's handler: log each refusal not logged yet. */
void sandbox_report(int fd, short revents, void *opaque);
int sandbox_report_fd(void);
unsigned long sandbox_refused_count(void);
/* Threads with their role's filter, per role, into an object. */
json_t *sandbox_threads_json(void);

/*
 * Make a thread of `role` (of domain `domid`, -1 for any) try `call`:
 * the errno it got (0 if the call was let through) in *err, and the
 * thread's name in name.  -1 with why said if there is no such thread or
 * it did not answer.
 */
int sandbox_probe(enum sandbox_role role, int domid,
		  enum sandbox_probe_call call, int *err, char *name,
		  size_t name_len, char *why, size_t why_len);

/* Capabilities (sandbox_caps.c). */
int sandbox_caps_drop_main(void);
int sandbox_caps_drop_thread(void);
json_t *sandbox_caps_json(void);

#endif
