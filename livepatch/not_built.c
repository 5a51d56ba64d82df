/*
 * Linked instead of livepatch when CONFIG_LIVEPATCH is off: its commands
 * (docs/control-api.md) answer "not supported", `info` lists no applied
 * payloads, and those another image applied are dropped across a live
 * update.
 */
#include "commands.h"
#include "feature.h"
#include "livepatch/livepatch.h"
#include "log.h"

#define NOT_BUILT "this image is built without CONFIG_LIVEPATCH"

json_t *livepatch_handover_json(void)
{
	return json_array();
}

json_t *livepatch_carry_over(json_t *handed)
{
	json_t *dropped = json_array(), *v;
	size_t i;

	json_array_foreach(handed, i, v) {
		json_array_append_new(dropped, json_pack(
			"{s:O, s:O, s:s}", "name", json_object_get(v, "name"),
			"build_id", json_object_get(v, "build_id"), "reason",
			NOT_BUILT));
		log_warn("live update: livepatch %s dropped: " NOT_BUILT,
			 json_string_value(json_object_get(v, "name")));
	}
	return json_pack("{s:[], s:o}", "reapplied", "dropped", dropped);
}

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
