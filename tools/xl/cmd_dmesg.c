// SPDX-License-Identifier: GPL-2.0
/*
 * xl dmesg: the daemon's in-memory log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xl.h"

/* The log's bytes as the daemon logged them (it is sent as latin1). */
static int print_log(json_t *log)
{
	char *buf = json_is_string(log) ?
		    malloc(json_string_length(log) + 1) : NULL;
	long len = -1;

	if (buf) {
		memcpy(buf, json_string_value(log), json_string_length(log));
		len = xl_latin1_decode(buf, json_string_length(log));
	}
	if (len >= 0)
		fwrite(buf, 1, len, stdout);
	free(buf);
	if (len >= 0)
		return XL_EXIT_OK;
	xl_err("malformed reply from the daemon: no log");
	return XL_EXIT_PROTOCOL;
}

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
	rc = print_log(log);
	json_decref(res);
	return rc;
}
