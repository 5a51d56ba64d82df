/*
 * Payloads across a live update (docs/livepatch.md, "Live update").
 *
 * A payload is code loaded into the old process; the exec drops it.  The
 * old image hands over what was applied (name, file, build-ids); the image
 * that takes over loads each one again from its file, bottom of the stack
 * first, and applies it before any guest runs again, provided it still
 * applies: the file is the same payload (same build-id) and it was built
 * for this image (its dependency is this image's build-id, or the payload
 * re-applied below it).  That is the case on a rollback and on an update
 * to the same build.  Otherwise it is dropped, with the reason recorded in
 * the live update's result: an image built from a source that has the fix
 * needs no payload.  Its parameters are set again to the values they had
 * (a value its declarations now refuse drops it, with that reason).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buildinfo.h"
#include "livepatch/internal.h"
#include "livepatch/livepatch.h"
#include "log.h"

json_t *livepatch_handover_json(void)
{
	json_t *arr = json_array();
	char id[2 * LP_BUILD_ID_MAX + 1], dep[2 * LP_BUILD_ID_MAX + 1];
	unsigned i;

	for (i = 0; i < lp_napplied; i++) {
		struct payload *p = lp_applied[i];

		lp_hex(id, p->id, p->id_len);
		lp_hex(dep, p->dep, p->dep_len);
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:o}", "name", p->name, "path",
			p->path, "build_id", id, "depends", dep, "params",
			lp_params_values(p)));
		if (p->sig_path[0])	/* checked again by the new image */
			json_object_set_new(json_array_get(arr, i),
					    "signature",
					    json_string(p->sig_path));
	}
	return arr;
}

static void drop(json_t *dropped, json_t *prev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void drop(json_t *dropped, json_t *prev, const char *fmt, ...)
{
	char why[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	json_array_append_new(dropped, json_pack(
		"{s:O, s:O, s:s}", "name", json_object_get(prev, "name"),
		"build_id", json_object_get(prev, "build_id"), "reason", why));
	log_warn("live update: livepatch %s dropped: %s",
		 json_string_value(json_object_get(prev, "name")), why);
}

/* Upload and apply one handed-over payload; NULL or why not. */
static const char *carry_one(json_t *prev, char *why, size_t len)
{
	const char *name = json_string_value(json_object_get(prev, "name"));
	const char *want = json_string_value(json_object_get(prev,
							     "build_id"));
	json_t *args = json_pack("{s:O, s:O}", "name",
				 json_object_get(prev, "name"), "path",
				 json_object_get(prev, "path"));
	json_t *params = json_object_get(prev, "params");
	struct ctl_reply r = { 0 };
	char id[2 * LP_BUILD_ID_MAX + 1];
	struct payload *p;
	const char *ret = NULL;

	if (!name || !want || !args) {
		ret = "the handover's record of it is incomplete";
		goto out;
	}
	/* With the values it had, checked against its declarations. */
	if (json_object_size(params))
		json_object_set(args, "params", params);
	if (json_object_get(prev, "signature"))
		json_object_set(args, "signature",
				json_object_get(prev, "signature"));
	if (cmd_lp_upload(NULL, args, &r)) {
		snprintf(why, len, "cannot load it again: %s", r.msg);
		ret = why;
		goto out;
	}
	p = lp_find_payload(name);
	lp_hex(id, p->id, p->id_len);
	if (strcmp(id, want)) {
		snprintf(why, len, "its file now holds another payload "
			 "(build-id %s)", id);
		ret = why;
	} else if (cmd_lp_apply(NULL, args, &r)) {
		snprintf(why, len, "%s", r.msg);
		ret = why;
	}
	if (ret)
		cmd_lp_unload(NULL, args, &r);
out:
	json_decref(r.result);
	json_decref(args);
	return ret;
}

json_t *livepatch_carry_over(json_t *handed)
{
	json_t *reapplied = json_array(), *dropped = json_array(), *prev;
	const char *below = NULL;	/* the first one dropped */
	char why[640];
	size_t i;

	json_array_foreach(handed, i, prev) {
		const char *name = json_string_value(json_object_get(prev,
								     "name"));
		const char *err;

		if (below) {
			drop(dropped, prev, "it was applied on %s, which was "
			     "dropped", below);
			continue;
		}
		err = carry_one(prev, why, sizeof(why));
		if (err) {
			drop(dropped, prev, "%s", err);
			below = name;
			continue;
		}
		json_array_append_new(reapplied, json_string(name));
		log_info("live update: livepatch %s applied again", name);
	}
	return json_pack("{s:o, s:o}", "reapplied", reapplied, "dropped",
			 dropped);
}
