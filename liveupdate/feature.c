/*
 * How live update plugs into the core (xen/feature.h): its commands, the
 * options the old image execs the new one with, and the start-up hooks
 * that take the guests over or give them back.
 */
#include <stdio.h>
#include <stdlib.h>

#include "buildinfo.h"
#include "dev/devices.h"
#include "feature.h"
#include "kvm.h"
#include "liveupdate/ahead.h"
#include "liveupdate/lu.h"
#include "log.h"

/* Set by the old image when it execs us. */
static struct {
	int handover_fd;
	int check_fd;
	const char *rollback_reason;
	long long exec_ns;
	int old_image_fd;
	int ahead_sock;			/* --lu-build-ahead */
} args = { .handover_fd = -1, .check_fd = -1, .old_image_fd = -1,
	   .ahead_sock = -1 };

static int lu_parse_option(unsigned index, const char *arg)
{
	switch (index) {
	case LU_OPT_HANDOVER: args.handover_fd = atoi(arg); break;
	case LU_OPT_HANDOVER_CHECK: args.check_fd = atoi(arg); break;
	case LU_OPT_ROLLBACK: args.rollback_reason = arg; break;
	case LU_OPT_EXEC_NS: args.exec_ns = atoll(arg); break;
	case LU_OPT_OLD_IMAGE_FD: args.old_image_fd = atoi(arg); break;
	case LU_OPT_BUILD_AHEAD: args.ahead_sock = atoi(arg); break;
	default: return -1;
	}
	return 0;
}

/* --handover-check: parse a handover as the staged image, then exit. */
static int lu_run(void)
{
	char err[256];

	if (args.check_fd < 0)
		return -1;
	if (log_open(NULL) < 0 || devices_check() < 0 ||
	    kvm_host_open(false, err, sizeof(err)) < 0)
		return 1;
	return lu_check_handover(args.check_fd);
}

/* Arm the rollback before anything can fail in a new image. */
static void lu_early(const struct daemon_opts *d)
{
	lu_set_daemon_opts(d);
	if (args.handover_fd >= 0)
		lu_early_init(args.handover_fd, args.old_image_fd,
			      args.rollback_reason, d);
}

static bool lu_takes_over(void)
{
	return args.handover_fd >= 0 || args.ahead_sock >= 0;
}

static int lu_take_over(void)
{
	if (args.ahead_sock >= 0) {
		log_info("xen %s (build-id %s) taking over from a live "
			 "update, building ahead", XEN_VERSION, build_id_hex());
		return lu_ahead_takeover(args.ahead_sock, args.exec_ns);
	}
	log_info("xen %s (build-id %s) taking over from a live update%s%s",
		 XEN_VERSION, build_id_hex(),
		 args.rollback_reason ? ", rolling back: " : "",
		 args.rollback_reason ? args.rollback_reason : "");
	return lu_takeover(args.handover_fd, args.rollback_reason,
			   args.exec_ns);
}

/* A new image that cannot start gives the guests back to the old one. */
static void lu_start_failed(const char *why)
{
	char reason[600];

	if (args.ahead_sock >= 0)
		lu_ahead_start_failed(args.ahead_sock, why);
	if (args.handover_fd < 0)
		return;
	snprintf(reason, sizeof(reason), "new image failed to start: %s", why);
	lu_fail_early(reason);
}

static bool lu_busy(char *why, size_t len)
{
	if (!lu_staged())
		return false;
	snprintf(why, len, "a live update is staged (xl live-update unload "
		 "to drop it)");
	return true;
}

static struct feature live_update;

bool lu_others_busy(char *why, size_t len)
{
	return feature_busy(&live_update, why, len);
}

static const struct ctl_command lu_commands[] = {
	{ "live-update-load", cmd_lu_load },
	{ "live-update-exec", cmd_lu_exec },
	{ "live-update-unload", cmd_lu_unload },
	{ "live-update-status", cmd_lu_status },
	{ NULL, NULL },
};

static struct feature live_update = {
	.name = "live update",
	.flag = "LIVE_UPDATE",
	.commands = lu_commands,
	.queries = (const char *const[]){ "live-update-status", NULL },
	.options = lu_options,
	.parse_option = lu_parse_option,
	.run = lu_run,
	.early = lu_early,
	.takes_over = lu_takes_over,
	.take_over = lu_take_over,
	.start_failed = lu_start_failed,
	.busy = lu_busy,
};
FEATURE_REGISTER(live_update)
