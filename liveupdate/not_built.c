/*
 * Linked instead of live update when CONFIG_LIVE_UPDATE is off: its
 * commands (docs/control-api.md) answer "not supported", and an image
 * started to take over or to check a handover says it cannot.
 */
#include <stdio.h>

#include "commands.h"
#include "feature.h"
#include "liveupdate/lu.h"

static bool asked;

static int lu_parse_option(unsigned index, const char *arg)
{
	if (index == LU_OPT_HANDOVER || index == LU_OPT_HANDOVER_CHECK ||
	    index == LU_OPT_BUILD_AHEAD)
		asked = true;
	return 0;
}

static int lu_run(void)
{
	if (!asked)
		return -1;
	fprintf(stderr, "xen: live update is not built in\n");
	return 1;
}

static int cmd_lu_not_built(struct client *c, json_t *args,
			    struct ctl_reply *r)
{
	return ctl_fail(r, CTL_ENOTSUP, "%s",
			"live update is not supported by this build (CONFIG_LIVE_UPDATE is off)");
}

static const struct ctl_command lu_commands[] = {
	{ "live-update-*", cmd_lu_not_built },
	{ NULL, NULL },
};

static struct feature live_update = {
	.name = "live update (not built)",
	.commands = lu_commands,
	.options = lu_options,
	.parse_option = lu_parse_option,
	.run = lu_run,
};
FEATURE_REGISTER(live_update)
