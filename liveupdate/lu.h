/*
 * Live update (docs/live-update.md): a staged new hypervisor image takes
 * over the running guests.  The old image parks every vCPU, writes a
 * handover stream into a memfd and execs the new image, which checks the
 * handover, rebuilds the KVM objects over the same RAM memfds and resumes.
 * If the new image fails before the guests resume, it execs the old image
 * again from the same handover.
 */
#ifndef LIVEUPDATE_LU_H
#define LIVEUPDATE_LU_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elfnote.h"

struct client;
struct ctl_reply;
struct domain;

/*
 * The notes every image carries (common/elfnote.h): XKVM_NOTE_STREAM, the
 * stream versions it handles, and XKVM_NOTE_FEATURES, what the image can
 * do as the new image of an update, a 32-bit word of flags.  An image
 * without the latter (older than build-ahead) is updated to by re-exec,
 * whatever mode was asked.
 */
#define XKVM_CAN_BUILD_AHEAD	(1u << 0)	/* --lu-build-ahead */

struct lu_image {
	char path[4096];
	int fd;				/* O_RDONLY, kept until exec/unload */
	char build_id[41];
	unsigned read_min, read_max, write_min, write_max;
	uint32_t features;		/* XKVM_CAN_*; 0 without the note */
};

/* Phases that fault injection can fail (docs/live-update.md). */
#define LU_PHASES "quiesce save exec verify restore kvm crash build confirm record started"

/* Phases only the build-ahead conversation has (commands.c). */
bool lu_phase_ahead_only(const char *phase);

/* The largest image `load` stages (the daemon is ~1 MiB, ~3 with ASan). */
#define LU_IMAGE_MAX		(128 << 20)

/*
 * Staging: the checks that run before anything pauses (stage.c), the
 * signature first (sig_path NULL: PATH.sig).  CTL_OK, or a control API
 * error code (CTL_EKERNEL, CTL_ESIG) with the reason in err.
 */
int lu_check_image(const char *path, const char *sig_path,
		   struct lu_image *img, char *err, size_t errlen);
/*
 * A CLIENT record of one connection, with the input it sent that was not
 * served yet, into the stream writer `w` (control_export_clients()).
 */
struct ctl_client_state;
int lu_write_client(const struct ctl_client_state *s, void *w);
/* The stream version to hand over in, or -1 if the image cannot read ours. */
int lu_handover_version(const struct lu_image *img, char *err,
			size_t errlen);

/*
 * The options an image is exec'd with (handover.c, takeover.c); every
 * image reads them, whatever its Kconfig (options.c), so older and newer
 * images keep understanding each other.
 */
enum lu_option {
	LU_OPT_HANDOVER,		/* --handover FD: take over */
	LU_OPT_HANDOVER_CHECK,		/* --handover-check FD: dry run */
	LU_OPT_ROLLBACK,		/* --rollback REASON: back to the old */
	LU_OPT_EXEC_NS,			/* --lu-exec-ns NS: when exec began */
	LU_OPT_OLD_IMAGE_FD,		/* --lu-old-image-fd FD: to roll back */
	LU_OPT_BUILD_AHEAD,		/* --lu-build-ahead SOCK: build ahead */
};
extern const struct option lu_options[];

/* Daemon options a new image must start with (the feature's early hook). */
struct daemon_opts;
void lu_set_daemon_opts(const struct daemon_opts *o);

/* How exec hands over (docs/live-update.md, "Modes"). */
enum lu_mode {
	LU_MODE_AHEAD,		/* a separate process builds ahead */
	LU_MODE_REEXEC,		/* the previous design: exec in place */
};

/*
 * Old image side (handover.c): 0 = dry run done; on success the old
 * image does not return (exec, or exit once the new one runs).
 */
int lu_exec(struct client *requester, const char *fail_phase, bool dry_run,
	    enum lu_mode mode, struct ctl_reply *r);
/*
 * The command line every image is started with (docs/live-update.md,
 * "Different builds"): the image's path, the daemon's options and the
 * carried feature options, at most 40 entries; how many.
 */
unsigned lu_image_argv(char **argv, const char *path);

/*
 * An injected crash: a real fault, not raise(): the sandbox lets the main
 * thread send itself only the signals it names.
 */
static inline void lu_crash(void)
{
	volatile int *volatile p = NULL;

	*p = 0;
}
const char *lu_socket_group(void);	/* --socket-group, NULL: none */
/* Each domain's creation time, by id (JSON object), and the fail phase. */
json_t *lu_created_times(void);
/* The fds a domain's records name, kept by a new image: RAM and devices. */
void lu_domain_fds(void (*fn)(int fd, void *arg), void *arg);
const char *lu_state_dir(void);

/*
 * New image side (takeover.c), called from the start-up hooks (feature.c)
 * with --handover: first lu_early_init() (rollback armed from our own
 * arguments, crash handlers), then lu_takeover().  lu_fail_early() rolls
 * back from any start-up error.
 */
void lu_early_init(int hfd, int old_fd, const char *rollback_reason,
		   const struct daemon_opts *d);
void lu_fail_early(const char *reason);
int lu_takeover(int handover_fd, const char *rollback_reason,
		long long t_exec_ns);
/* A domain's creation time from the handover's created_ns. */
void lu_restore_created(json_t *info, struct domain *d);
/* --handover-check: parse a handover without taking over (dry run). */
int lu_check_handover(int handover_fd);

/* Another feature is busy (a migration runs): no staging, no exec. */
bool lu_others_busy(char *why, size_t len);
/* Status kept across updates (status.c). */
json_t *lu_status(void);
void lu_set_last_result(json_t *result);
const struct lu_image *lu_staged(void);
/* lu_check_image(), then the image is staged; its result. */
int lu_stage(const char *path, const char *sig_path, char *err,
	     size_t errlen);
void lu_unstage(void);

/* Control API commands (commands.c). */
int cmd_lu_load(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lu_exec(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lu_unload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lu_status(struct client *c, json_t *args, struct ctl_reply *r);

#endif
