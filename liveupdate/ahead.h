/*
 * Build-ahead live update (docs/live-update.md): the old image starts the
 * new one as a separate process and talks to it over a Unix
 * SOCK_SEQPACKET socketpair.  Each message is a struct lu_msg head, a
 * short text and at most LU_MSG_MAX_FDS fds (SCM_RIGHTS).  The
 * conversation, old -> new and back:
 *
 *   PROLOGUE (memfd: HANDOVER + each domain's DOMAIN_BEGIN, config,
 *             layout, CPUID, DOMAIN_END)       -> BUILT or ERR
 *   [the old parks its vCPUs]
 *   EPILOGUE (memfd: HANDOVER + each domain's DOMAIN_BEGIN, vCPU, VM,
 *             device and console records, DOMAIN_END)
 *                                  -> STARTING, RUNNING; or ERR
 *   FDS... (control connections, listeners)
 *   HANDOFF (memfd: HANDOVER + CLIENT records)  -> DONE
 *
 * Until STARTING the old image keeps its VMs: any ERR, a silent exit, a
 * crash or a timeout and it resumes its own vCPUs, once the new process is
 * reaped (every thread of it gone).  STARTING is said before the new image
 * lets any vCPU run: from then on the guests' RAM may move past the state
 * the old image holds, so if the new image dies before RUNNING the old
 * one does not resume that stale state; it crashes the domains (their
 * on_crash action) instead of letting them run on corrupted state.
 */
#ifndef LIVEUPDATE_AHEAD_H
#define LIVEUPDATE_AHEAD_H

#include <stddef.h>
#include <stdint.h>

enum lu_msg_type {
	LU_MSG_PROLOGUE = 1,
	LU_MSG_BUILT,
	LU_MSG_EPILOGUE,
	LU_MSG_RUNNING,
	LU_MSG_FDS,		/* fds; text: their numbers in the old image */
	LU_MSG_HANDOFF,
	LU_MSG_DONE,
	LU_MSG_ERR,		/* text: why */
	LU_MSG_STARTING,	/* the new image releases its vCPUs now */
};

#define LU_MSG_TEXT_MAX		2048
#define LU_MSG_MAX_FDS		200

struct lu_msg {
	uint32_t type;
	uint32_t len;			/* bytes of text */
	char text[LU_MSG_TEXT_MAX];
	int fds[LU_MSG_MAX_FDS];	/* received: close-on-exec */
	unsigned nr_fds;
};

/* 0, or -1 with errno. */
int lu_msg_send(int sock, uint32_t type, const void *text, size_t len,
		const int *fds, unsigned nr_fds);
/*
 * Wait up to timeout_ms for a message: 0, or -1 with errno (ETIMEDOUT,
 * EPIPE when the peer went away).  The text is NUL-terminated.
 */
int lu_msg_recv(int sock, struct lu_msg *m, int timeout_ms);
void lu_msg_close_fds(struct lu_msg *m);
/* "build" "confirm"...: the name of a message type, for the log. */
const char *lu_msg_name(uint32_t type);

/* Old image side (ahead.c); new image side (ahead_new.c). */
struct client;
struct ctl_reply;
struct lu_image;
int lu_ahead_exec(struct client *requester, const struct lu_image *img,
		  int version, const char *fail_phase, struct ctl_reply *r);
int lu_ahead_takeover(int sock, long long t_spawn);
/* A new image that cannot start says why (ERR) before it exits. */
void lu_ahead_start_failed(int sock, const char *why);

/* How long the old image waits for each answer of the new one. */
#define LU_AHEAD_BUILD_TIMEOUT_MS	60000
#define LU_AHEAD_RUN_TIMEOUT_MS		10000
#define LU_AHEAD_DONE_TIMEOUT_MS	10000

/* The daemon's identity for its supervisor (identity.c). */
void lu_identity_take(const char *state_dir);

#endif
