// SPDX-License-Identifier: GPL-2.0
/*
 * xl restore: build a domain from a file `xl save` wrote (the daemon
 * reads it, docs/control-api.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xl.h"

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "paused", no_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *rname;
	json_t *args, *res = NULL;
	bool paused = false;
	char *path;
	int c, rc;

	while ((c = xl_getopt(argc, argv, "pn:h", opts)) != -1) {
		switch (c) {
		case 'p':
			paused = true;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			return xl_help(argv[0]);
		default:
			return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing FILE");
	if (argc - optind > 1)
		return xl_usage_error(argv[0], "too many arguments");
	if (!*argv[optind])
		return xl_usage_error(argv[0], "FILE is empty");
	path = xl_abspath(argv[optind]);
	if (!path) {
		xl_err("cannot make '%s' an absolute path: %s", argv[optind],
		       strerror(errno));
		return XL_EXIT_NOINPUT;
	}
	args = json_pack("{s:s, s:b}", "path", path, "paused", paused);
	if (args && name &&
	    json_object_set_new(args, "name", json_string(name))) {
		json_decref(args);
		args = NULL;
	}
	if (!args) {
		free(path);
		return xl_usage_error(argv[0], "FILE or NAME is not valid "
				      "UTF-8");
	}
	rc = xl_call("restore", args, &res);
	if (!rc) {
		rname = json_string_value(json_object_get(res, "name"));
		printf("Restored %s (id %lld) from %s in %.3f s%s\n",
		       rname ? rname : "?",
		       (long long)json_integer_value(json_object_get(res, "id")),
		       path, json_number_value(json_object_get(res, "seconds")),
		       paused ? " (paused)" : "");
	}
	json_decref(res);
	free(path);
	return rc;
}
