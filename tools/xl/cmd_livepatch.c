// SPDX-License-Identifier: GPL-2.0
/*
 * xl livepatch: hot-fix functions of the running daemon (docs/livepatch.md)
 *   xl livepatch upload NAME FILE [K=V...]  load and check a payload
 *                                   (--sig SIG: its signature file)
 *   xl livepatch apply NAME         redirect its functions, write ranges
 *   xl livepatch revert NAME        undo (top of the stack only)
 *   xl livepatch replace NAME       revert all applied, apply NAME
 *   xl livepatch unload NAME        drop a payload that is not applied
 *   xl livepatch load NAME FILE [K=V...]   upload + apply
 *   xl livepatch set NAME K=V...    change writable parameters
 *   xl livepatch list [--json]
 */
#include <string.h>

#include "client.h"
#include "xl.h"

static void print_value(json_t *v)
{
	if (json_is_string(v))
		printf("\"%s\"", json_string_value(v));
	else if (json_is_integer(v))
		printf("%lld", (long long)json_integer_value(v));
	else
		printf("%s", json_is_true(v) ? "true" : "false");
}

/* "    param NAME = VALUE (int 14..128, default 128, writable): WHAT" */
static void print_param(json_t *pp)
{
	const char *type = json_string_value(json_object_get(pp, "type"));

	printf("    param %s = ",
	       json_string_value(json_object_get(pp, "name")));
	print_value(json_object_get(pp, "value"));
	printf(" (%s", type);
	if (!strcmp(type, "int"))
		printf(" %lld..%lld",
		       (long long)json_integer_value(json_object_get(pp, "min")),
		       (long long)json_integer_value(json_object_get(pp, "max")));
	else if (!strcmp(type, "string"))
		printf(" of at most %lld bytes", (long long)json_integer_value(
			       json_object_get(pp, "max_len")));
	printf(", default ");
	print_value(json_object_get(pp, "default"));
	printf("%s%s): %s\n",
	       json_is_true(json_object_get(pp, "writable")) ? ", writable" :
	       "", json_is_true(json_object_get(pp, "parked")) ?
	       ", set parked" : "",
	       json_string_value(json_object_get(pp, "description")));
}

static void print_payload(json_t *p)
{
	json_t *funcs = json_object_get(p, "funcs"), *x;
	size_t k;

	printf("%-20s %-8s %-40s",
	       json_string_value(json_object_get(p, "name")),
	       json_string_value(json_object_get(p, "state")),
	       json_string_value(json_object_get(p, "build_id")));
	json_array_foreach(funcs, k, x)
		printf(" %s", json_string_value(x));
	printf("\n");
	json_array_foreach(json_object_get(p, "ranges"), k, x)
		printf("    range %s, %lld bytes%s\n",
		       json_string_value(json_object_get(x, "range")),
		       (long long)json_integer_value(json_object_get(x, "len")),
		       json_is_true(json_object_get(x, "jump")) ?
		       " (a jump to the payload's code)" : " (in place)");
	json_array_foreach(json_object_get(p, "params"), k, x)
		print_param(x);
}

static void print_list(json_t *res)
{
	json_t *arr = json_object_get(res, "payloads"), *p;
	size_t i;

	printf("%-20s %-8s %-40s %s\n", "Name", "State", "Build-id",
	       "Functions");
	json_array_foreach(arr, i, p)
		print_payload(p);
	if (!json_array_size(arr))
		printf("(no payloads; daemon build-id %s)\n",
		       json_string_value(json_object_get(res,
							 "daemon_build_id")));
}

/* K=V arguments into {"K": "V"}; the daemon checks them. */
static int parse_params(const char *cmd, int n, char **kv, json_t *args)
{
	json_t *params = json_object();
	int i;

	for (i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');
		char key[64];

		if (!eq || eq == kv[i] || eq - kv[i] >= (long)sizeof(key)) {
			json_decref(params);
			return xl_usage_error(cmd, "'%s': parameters are "
					      "given as NAME=VALUE", kv[i]);
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv[i]), kv[i]);
		json_object_set_new(params, key, json_string(eq + 1));
	}
	if (n)
		json_object_set(args, "params", params);
	json_decref(params);
	return 0;
}

static void print_done(const char *name, const char *sub, json_t *res)
{
	if (json_object_get(res, "pause_ms"))
		printf("livepatch %s: %s done; guests paused %.3f ms (%d "
		       "vCPUs parked in %.3f ms)\n", name, sub,
		       json_real_value(json_object_get(res, "pause_ms")),
		       (int)json_integer_value(json_object_get(res, "vcpus")),
		       json_real_value(json_object_get(res, "park_ms")));
	else
		printf("livepatch %s: %s done\n", name, sub);
}

/* The request of every subcommand but list; rest[0] is NAME. */
static int make_args(const char *cmd, const char *sub, int nargs,
		     char **rest, const char *sig, json_t **out)
{
	json_t *args;
	char *abs;
	int ret = 0;

	if (!strcmp(sub, "upload") || !strcmp(sub, "load")) {
		if (nargs < 2)
			return xl_usage_error(cmd, "%s needs NAME FILE "
					      "[K=V...]", sub);
		abs = xl_abspath(rest[1]);
		if (!abs)
			return xl_usage_error(cmd, "bad FILE");
		args = json_pack("{s:s, s:s}", "name", rest[0], "path", abs);
		free(abs);
		abs = sig ? xl_abspath(sig) : NULL;
		if (sig && !abs) {
			json_decref(args);
			return xl_usage_error(cmd, "bad SIG");
		}
		if (abs)	/* else the daemon reads FILE.sig */
			json_object_set_new(args, "signature",
					    json_string(abs));
		free(abs);
		ret = parse_params(cmd, nargs - 2, rest + 2, args);
	} else if (sig) {
		return xl_usage_error(cmd, "--sig goes with upload or load");
	} else if (!strcmp(sub, "set")) {
		if (nargs < 2)
			return xl_usage_error(cmd, "set needs NAME K=V...");
		args = json_pack("{s:s}", "name", rest[0]);
		ret = parse_params(cmd, nargs - 1, rest + 1, args);
	} else if (!strcmp(sub, "apply") || !strcmp(sub, "revert") ||
		   !strcmp(sub, "replace") || !strcmp(sub, "unload")) {
		if (nargs != 1)
			return xl_usage_error(cmd, "%s needs NAME", sub);
		args = json_pack("{s:s}", "name", rest[0]);
	} else {
		return xl_usage_error(cmd, "unknown subcommand '%s'", sub);
	}
	if (ret)
		json_decref(args);
	else
		*out = args;
	return ret;
}

int cmd_livepatch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "sig", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	const char *sub, *sig = NULL;
	json_t *res = NULL, *args = NULL;
	char command[64];
	int c, ret, nargs;

	while ((c = xl_getopt(argc, argv, "hj", opts)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'S': sig = optarg; break;
		case 'h': return xl_help(argv[0]);
		default: return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing a subcommand");
	sub = argv[optind];
	nargs = argc - optind - 1;
	if (!strcmp(sub, "list")) {
		if (nargs)
			return xl_usage_error(argv[0], "too many arguments");
		ret = xl_call("livepatch-list", json_object(), &res);
		if (!ret)
			json ? xl_print_json(res) : print_list(res);
		json_decref(res);
		return ret;
	}
	ret = make_args(argv[0], sub, nargs, argv + optind + 1, sig, &args);
	if (ret)
		return ret;
	snprintf(command, sizeof(command), "livepatch-%s", sub);
	ret = xl_call(command, args, &res);
	if (!ret)
		print_done(argv[optind + 1], sub, res);
	json_decref(res);
	return ret;
}
