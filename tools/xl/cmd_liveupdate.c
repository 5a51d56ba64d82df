// SPDX-License-Identifier: GPL-2.0
/*
 * xl live-update: replace the running hypervisor image, modelled on
 * kexec-tools (load / exec / unload):
 *   xl live-update load IMAGE        stage and check a new image
 *                                    (--sig SIG: its signature file)
 *   xl live-update exec [--dry-run]  perform the staged update
 *                                    (--mode reexec: the previous design)
 *   xl live-update IMAGE             load, then exec
 *   xl live-update unload            drop the staged image
 *   xl live-update status            staged image, last result, blackout
 * Debugging: exec --fail-phase PHASE injects a failure (docs/live-update.md).
 */
#include <string.h>

#include "client.h"
#include "xl.h"

/* What became of the applied livepatches (docs/livepatch.md). */
static void print_livepatches(json_t *lp)
{
	json_t *v;
	size_t i;

	if (!json_is_object(lp))
		return;
	json_array_foreach(json_object_get(lp, "kept"), i, v)
		xl_print_kv("livepatch_kept", "%s", json_string_value(v));
	json_array_foreach(json_object_get(lp, "reapplied"), i, v)
		xl_print_kv("livepatch_reapplied", "%s", json_string_value(v));
	json_array_foreach(json_object_get(lp, "dropped"), i, v)
		xl_print_kv("livepatch_dropped", "%s: %s",
			    json_string_value(json_object_get(v, "name")),
			    json_string_value(json_object_get(v, "reason")));
}

/* Each phase of `group` as "INDENT NAME_ms" lines. */
static void print_phases(json_t *group, const char *indent)
{
	const char *k;
	json_t *v;

	json_object_foreach(group, k, v) {
		char key[64];

		if (!strcmp(k, "total"))
			continue;
		snprintf(key, sizeof(key), "%s%s_ms", indent, k);
		xl_print_kv(key, "%.3f", json_real_value(v));
	}
}

static void print_result(json_t *res)
{
	json_t *ahead = json_object_get(res, "build_ahead_ms");

	xl_print_field("result", json_object_get(res, "result"));
	xl_print_field("reason", json_object_get(res, "reason"));
	xl_print_field("image", json_object_get(res, "image"));
	xl_print_field("from_build_id", json_object_get(res, "from_build_id"));
	xl_print_field("to_build_id", json_object_get(res, "to_build_id"));
	xl_print_field("format_version",
		       json_object_get(res, "format_version"));
	xl_print_field("domains", json_object_get(res, "domains"));
	xl_print_field("mode", json_object_get(res, "mode"));
	/* Build-ahead: the guests ran meanwhile; then the blackout. */
	if (json_is_object(ahead)) {
		xl_print_kv("build_ahead_ms", "%.3f", json_real_value(
				    json_object_get(ahead, "total")));
		print_phases(ahead, "  ");
	}
	if (json_object_get(res, "blackout_ms"))
		xl_print_kv("blackout_ms", "%.3f", json_real_value(
				    json_object_get(res, "blackout_ms")));
	print_phases(json_object_get(res, "phases_ms"), "  ");
	/* Build-ahead: finer steps within those phases. */
	print_phases(json_object_get(res, "blackout_steps_ms"), "    ");
	if (json_object_get(res, "handoff_ms"))
		xl_print_kv("handoff_ms", "%.3f", json_real_value(
				    json_object_get(res, "handoff_ms")));
	xl_print_field("report", json_object_get(res, "report"));
	print_livepatches(json_object_get(res, "livepatches"));
}

static void print_status(json_t *st)
{
	json_t *staged = json_object_get(st, "staged");
	json_t *last = json_object_get(st, "last");

	if (json_is_object(staged)) {
		xl_print_field("staged_image", json_object_get(staged, "image"));
		xl_print_field("staged_build_id",
			       json_object_get(staged, "build_id"));
		xl_print_field("staged_reads", json_object_get(staged, "reads"));
	} else {
		xl_print_kv("staged_image", "(none)");
	}
	if (json_is_object(last))
		print_result(last);
	else
		xl_print_kv("last_update", "(none)");
}

static int do_load(const char *image, const char *sig, bool quiet)
{
	char *abs = xl_abspath(image), *sig_abs = NULL;
	json_t *res = NULL, *args;
	int ret;

	if (!abs)
		return xl_usage_error("live-update", "bad IMAGE '%s'", image);
	args = json_pack("{s:s}", "image", abs);
	free(abs);
	if (sig) {	/* else the daemon reads IMAGE.sig */
		sig_abs = xl_abspath(sig);
		if (!sig_abs) {
			json_decref(args);
			return xl_usage_error("live-update", "bad SIG '%s'",
					      sig);
		}
		json_object_set_new(args, "signature", json_string(sig_abs));
		free(sig_abs);
	}
	ret = xl_call("live-update-load", args, &res);
	if (!ret && !quiet)
		print_status(res);
	json_decref(res);
	return ret;
}

static int do_exec(bool dry_run, const char *fail_phase, const char *mode,
		   bool json)
{
	json_t *args = json_pack("{s:b}", "dry_run", dry_run);
	json_t *res = NULL;
	int ret;

	if (mode)
		json_object_set_new(args, "mode", json_string(mode));
	if (fail_phase)
		json_object_set_new(args, "fail_phase",
				    json_string(fail_phase));
	ret = xl_call("live-update-exec", args, &res);
	if (!ret) {
		if (json)
			xl_print_json(res);
		else
			print_result(res);
	}
	json_decref(res);
	return ret;
}

static int do_simple(const char *command, bool show)
{
	json_t *res = NULL;
	int ret = xl_call(command, json_object(), &res);

	if (!ret && show)
		print_status(res);
	json_decref(res);
	return ret;
}

int cmd_live_update(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "fail-phase", required_argument, NULL, 'F' },
		{ "sig", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "mode", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fail_phase = NULL, *sig = NULL, *mode = NULL, *sub;
	bool dry_run = false, json = false;
	int c, ret;

	while ((c = xl_getopt(argc, argv, "hdj", opts)) != -1) {
		switch (c) {
		case 'd': dry_run = true; break;
		case 'F': fail_phase = optarg; break;
		case 'S': sig = optarg; break;
		case 'M': mode = optarg; break;
		case 'j': json = true; break;
		case 'h': return xl_help(argv[0]);
		default: return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing a subcommand or IMAGE");
	sub = argv[optind];
	if (!strcmp(sub, "load") || !strcmp(sub, "exec") ||
	    !strcmp(sub, "unload") || !strcmp(sub, "status")) {
		if (!strcmp(sub, "load") && argc - optind != 2)
			return xl_usage_error(argv[0], "load needs IMAGE");
		if (strcmp(sub, "load") && argc - optind != 1)
			return xl_usage_error(argv[0], "too many arguments");
	} else if (argc - optind != 1) {
		return xl_usage_error(argv[0], "too many arguments");
	}
	if (!strcmp(sub, "load"))
		return do_load(argv[optind + 1], sig, false);
	if (!strcmp(sub, "exec"))
		return do_exec(dry_run, fail_phase, mode, json);
	if (!strcmp(sub, "unload"))
		return do_simple("live-update-unload", true);
	if (!strcmp(sub, "status")) {
		json_t *res = NULL;

		ret = xl_call("live-update-status", json_object(), &res);
		if (!ret)
			json ? xl_print_json(res) : print_status(res);
		json_decref(res);
		return ret;
	}
	ret = do_load(sub, sig, true);
	return ret ? ret : do_exec(dry_run, fail_phase, mode, json);
}
