// SPDX-License-Identifier: GPL-2.0
/*
 * Commands that act on one domain and return nothing: destroy, pause,
 * unpause, reboot (shutdown and trigger: cmd_power.c).
 */
#include "client.h"
#include "xl.h"

/* Parses "CMD [-h] DOM" and sends @command for DOM. */
static int domain_op(int argc, char **argv, const char *command)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *args;
	int c;

	c = xl_getopt(argc, argv, "h", opts);
	if (c != -1)
		return c == 'h' ? xl_help(argv[0]) : XL_EXIT_USAGE;
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing DOM");
	if (argc - optind > 1)
		return xl_usage_error(argv[0], "too many arguments");
	args = xl_domain_args(argv[optind]);
	if (!args)
		return xl_usage_error(argv[0], "invalid DOM '%s'",
				      argv[optind]);
	return xl_call(command, args, NULL);
}

int cmd_destroy(int argc, char **argv)
{
	return domain_op(argc, argv, "destroy");
}

int cmd_pause(int argc, char **argv)
{
	return domain_op(argc, argv, "pause");
}

int cmd_unpause(int argc, char **argv)
{
	return domain_op(argc, argv, "unpause");
}

int cmd_reboot(int argc, char **argv)
{
	return domain_op(argc, argv, "reboot");
}
