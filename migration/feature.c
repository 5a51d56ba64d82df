/*
 * How migration plugs into the core (xen/feature.h): its commands, the
 * daemon options that make it a destination, and the start-up hook that
 * opens the listener once the loop serves.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "feature.h"
#include "migration/mig.h"

enum { OPT_LISTEN, OPT_INSECURE, OPT_TLS, OPT_LISTEN_FD };

static const struct option mig_options[] = {
	[OPT_LISTEN] = { "migrate-listen", required_argument, NULL, 0 },
	[OPT_INSECURE] = { "migrate-insecure", no_argument, NULL, 0 },
	[OPT_TLS] = { "migrate-tls", required_argument, NULL, 0 },
	/* Internal: a live update's new image adopts the old listener. */
	[OPT_LISTEN_FD] = { "migrate-listen-fd", required_argument, NULL, 0 },
	{ NULL, 0, NULL, 0 },
};

static struct {
	const char *listen;
	const char *tls_dir;
	bool insecure;
	int listen_fd;		/* --migrate-listen-fd, or -1 */
} args = { .listen_fd = -1 };

static int mig_parse_option(unsigned index, const char *arg)
{
	switch (index) {
	case OPT_LISTEN: args.listen = arg; break;
	case OPT_INSECURE: args.insecure = true; break;
	case OPT_TLS: args.tls_dir = arg; break;
	case OPT_LISTEN_FD:
		if (sscanf(arg, "%d", &args.listen_fd) != 1 ||
		    args.listen_fd < 0)
			return -1;
		break;
	default: return -1;
	}
	return 0;
}

static int mig_started(void)
{
	if (mig_commands_start() < 0)
		return -1;
	/* The server pair only matters to a daemon that listens. */
	if (args.tls_dir && mig_tls_load(args.tls_dir, args.listen) < 0)
		return -1;
	return args.listen ? mig_listen_start(args.listen, args.insecure,
					      args.listen_fd) : 0;
}

/*
 * The new image of a live update listens where this one does, on this
 * socket (same fd number, kept open across the exec): the address stays
 * taken throughout, and an update never fails to bind it.
 */
static unsigned mig_carry_options(char **argv, unsigned max)
{
	static char fdbuf[16];
	unsigned n = 0;

	if (args.tls_dir && n + 2 <= max) {
		argv[n++] = "--migrate-tls";
		argv[n++] = (char *)args.tls_dir;
	}
	if (!args.listen)
		return n;
	if (args.insecure && n + 1 <= max)
		argv[n++] = "--migrate-insecure";
	if (n + 2 <= max) {
		argv[n++] = "--migrate-listen";
		argv[n++] = (char *)args.listen;
	}
	if (mig_listen_fd() >= 0 && n + 2 <= max) {
		snprintf(fdbuf, sizeof(fdbuf), "%d", mig_listen_fd());
		argv[n++] = "--migrate-listen-fd";
		argv[n++] = fdbuf;
	}
	return n;
}

static void mig_handover_fds(void (*fn)(int fd, void *arg), void *arg)
{
	if (mig_listen_fd() >= 0)
		fn(mig_listen_fd(), arg);
}

static void mig_info(json_t *result)
{
	json_object_set_new(result, "migrate_listen",
			    args.listen ? json_string(args.listen)
					: json_null());
	json_object_set_new(result, "migrate_tls",
			    mig_tls_dir() ? json_string(mig_tls_dir())
					  : json_null());
}

static struct feature migration;

bool mig_others_busy(char *why, size_t len)
{
	return feature_busy(&migration, why, len);
}

static const struct ctl_command mig_commands[] = {
	{ "migrate", cmd_migrate },
	{ "migrate-status", cmd_migrate_status },
	{ "migrate-cancel", cmd_migrate_cancel },
	{ NULL, NULL },
};

static struct feature migration = {
	.name = "migration",
	.flag = "MIGRATION",
	.commands = mig_commands,
	.queries = (const char *const[]){ "migrate-status", NULL },
	.info = mig_info,
	.options = mig_options,
	.parse_option = mig_parse_option,
	.started = mig_started,
	.carry_options = mig_carry_options,
	.handover_fds = mig_handover_fds,
	.busy = mig_busy,
	.domain_gone = mig_domain_gone,
};
FEATURE_REGISTER(migration)
