// SPDX-License-Identifier: GPL-2.0
/*
 * xl livepatch: hot-fix functions of the running daemon (docs/livepatch.md)
 *   xl livepatch upload NAME FILE   load and check a payload
 *   xl livepatch apply NAME         redirect its functions
 *   xl livepatch revert NAME        undo (top of the stack only)
 *   xl livepatch replace NAME       revert all applied, apply NAME
 *   xl livepatch unload NAME        drop a payload that is not applied
 *   xl livepatch load NAME FILE     upload + apply
 *   xl livepatch list [--json]
 */
#include <string.h>

#include "client.h"
#include "xl.h"

static void print_list(json_t *res)
{
	json_t *arr = json_object_get(res, "payloads"), *p;
	size_t i;

	printf("%-20s %-8s %-40s %s\n", "Name", "State", "Build-id",
	       "Functions");
	json_array_foreach(arr, i, p) {
		json_t *funcs = json_object_get(p, "funcs"), *f;
		size_t k;

		printf("%-20s %-8s %-40s",
		       json_string_value(json_object_get(p, "name")),
		       json_string_value(json_object_get(p, "state")),
		       json_string_value(json_object_get(p, "build_id")));
		json_array_foreach(funcs, k, f)
			printf(" %s", json_string_value(f));
		printf("\n");
	}
	if (!json_array_size(arr))
		printf("(no payloads; daemon build-id %s)\n",
		       json_string_value(json_object_get(res,
							 "daemon_build_id")));
}

int cmd_livepatch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	const char *sub;
	json_t *res = NULL, *args;
	char command[64], *abs = NULL;
	int c, ret, nargs;

	while ((c = xl_getopt(argc, argv, "hj", opts)) != -1) {
		switch (c) {
		case 'j': json = true; break;
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
	if (!strcmp(sub, "upload") || !strcmp(sub, "load")) {
		if (nargs != 2)
			return xl_usage_error(argv[0], "%s needs NAME FILE",
					      sub);
		abs = xl_abspath(argv[optind + 2]);
		if (!abs)
			return xl_usage_error(argv[0], "bad FILE");
		args = json_pack("{s:s, s:s}", "name", argv[optind + 1],
				 "path", abs);
		free(abs);
	} else if (!strcmp(sub, "apply") || !strcmp(sub, "revert") ||
		   !strcmp(sub, "replace") || !strcmp(sub, "unload")) {
		if (nargs != 1)
			return xl_usage_error(argv[0], "%s needs NAME", sub);
		args = json_pack("{s:s}", "name", argv[optind + 1]);
	} else {
		return xl_usage_error(argv[0], "unknown subcommand '%s'", sub);
	}
	snprintf(command, sizeof(command), "livepatch-%s", sub);
	ret = xl_call(command, args, &res);
	if (!ret && json_object_get(res, "pause_ms"))
		printf("livepatch %s: %s done; guests paused %.3f ms (%d "
		       "vCPUs parked in %.3f ms)\n", argv[optind + 1], sub,
		       json_real_value(json_object_get(res, "pause_ms")),
		       (int)json_integer_value(json_object_get(res, "vcpus")),
		       json_real_value(json_object_get(res, "park_ms")));
	else if (!ret)
		printf("livepatch %s: %s done\n", argv[optind + 1], sub);
	json_decref(res);
	return ret;
}
