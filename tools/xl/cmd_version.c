// SPDX-License-Identifier: GPL-2.0
/*
 * xl version: this client's version, then the daemon's.
 */
#include "client.h"
#include "xl.h"

int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const daemon_keys[] = {
		"build_id", "protocol", "protocol_min", "protocol_max", NULL,
	};
	const char *const *key;
	json_t *ver = NULL;
	int c, rc;

	c = xl_getopt(argc, argv, "h", opts);
	if (c != -1)
		return c == 'h' ? xl_help(argv[0]) : XL_EXIT_USAGE;
	if (optind < argc)
		return xl_usage_error(argv[0], "too many arguments");
	xl_print_kv("xl_version", "%s", XL_VERSION);
	xl_print_kv("xl_protocol", "%d", XL_PROTOCOL);
	rc = xl_call("version", NULL, &ver);
	if (rc)
		return rc;
	xl_print_field("hypervisor_version",
		       json_object_get(ver, "hypervisor"));
	for (key = daemon_keys; *key; key++)
		xl_print_field(*key, json_object_get(ver, *key));
	json_decref(ver);
	return XL_EXIT_OK;
}
