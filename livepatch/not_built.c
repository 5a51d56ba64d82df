/*
 * Linked instead of livepatch when CONFIG_LIVEPATCH is off: its commands
 * (docs/control-api.md) answer "not supported", and `info` lists no
 * applied payloads.
 */
#include "commands.h"
#include "feature.h"

static int cmd_lp_not_built(struct client *c, json_t *args,
			    struct ctl_reply *r)
{
	return ctl_fail(r, CTL_ENOTSUP, "%s",
			"livepatch is not supported by this build (CONFIG_LIVEPATCH is off)");
}

static const struct ctl_command lp_commands[] = {
	{ "livepatch-*", cmd_lp_not_built },
	{ NULL, NULL },
};

static void lp_info(json_t *result)
{
	json_object_set_new(result, "livepatches", json_array());
}

static struct feature livepatch = {
	.name = "livepatch (not built)",
	.commands = lp_commands,
	.info = lp_info,
};
FEATURE_REGISTER(livepatch)
