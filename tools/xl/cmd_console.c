// SPDX-License-Identifier: GPL-2.0
/*
 * xl console: attach to a domain's console, or (--dump) print its history.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console.h"
#include "xl.h"

static int dump_history(const char *dom)
{
	json_t *res = NULL, *data;
	const char *enc;
	char *buf = NULL;
	long len = -1;
	int rc;

	rc = xl_call("console-read", xl_domain_args(dom), &res);
	if (rc)
		return rc;
	data = json_object_get(res, "data");
	enc = json_string_value(json_object_get(res, "encoding"));
	if (json_is_string(data) && (!enc || !strcmp(enc, "latin1")))
		buf = malloc(json_string_length(data) + 1);
	if (buf) {
		memcpy(buf, json_string_value(data), json_string_length(data));
		len = xl_latin1_decode(buf, json_string_length(data));
	}
	if (len < 0) {
		xl_err("malformed reply from the daemon: bad console data");
		rc = XL_EXIT_PROTOCOL;
	} else if (xl_write_all(STDOUT_FILENO, buf, len) && errno != EPIPE) {
		xl_err("writing output: %s", strerror(errno));
		rc = XL_EXIT_IOERR;
	}
	free(buf);
	json_decref(res);
	return rc;
}

static int attach(const char *dom, bool history)
{
	struct xl_conn conn;
	int rc;

	rc = xl_connect(&conn);
	if (rc)
		return rc;
	rc = xl_console_attach(&conn, dom, history);
	xl_disconnect(&conn);
	return rc;
}

int cmd_console(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dump", no_argument, NULL, 'd' },
		{ "no-history", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool dump = false, history = true;
	int c;

	while ((c = xl_getopt(argc, argv, "dnh", opts)) != -1) {
		switch (c) {
		case 'd':
			dump = true;
			break;
		case 'n':
			history = false;
			break;
		case 'h':
			return xl_help(argv[0]);
		default:
			return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing DOM");
	if (argc - optind > 1)
		return xl_usage_error(argv[0], "too many arguments");
	if (dump && !history)
		return xl_usage_error(argv[0], "--dump and --no-history "
				      "exclude each other");
	fflush(stdout);
	if (dump)
		return dump_history(argv[optind]);
	return attach(argv[optind], history);
}
