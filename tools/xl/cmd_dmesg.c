// SPDX-License-Identifier: GPL-2.0
/*
 * xl dmesg: the daemon's in-memory log.
 */
#include "client.h"
#include "xl.h"

int cmd_dmesg(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "clear", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *res = NULL, *log;
	bool clear = false;
	int c, rc;

	while ((c = xl_getopt(argc, argv, "ch", opts)) != -1) {
		if (c == 'h')
			return xl_help(argv[0]);
		if (c != 'c')
			return XL_EXIT_USAGE;
		clear = true;
	}
	if (optind < argc)
		return xl_usage_error(argv[0], "too many arguments");
	rc = xl_call("dmesg", json_pack("{s:b}", "clear", clear), &res);
	if (rc)
		return rc;
	log = json_object_get(res, "log");
	if (json_is_string(log)) {
		fwrite(json_string_value(log), 1, json_string_length(log),
		       stdout);
	} else {
		xl_err("malformed reply from the daemon: no log");
		rc = XL_EXIT_PROTOCOL;
	}
	json_decref(res);
	return rc;
}
