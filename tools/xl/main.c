// SPDX-License-Identifier: GPL-2.0
/*
 * xl: global options and the command table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xl.h"

const char *xl_socket_path = XL_DEFAULT_SOCKET;

static const struct xl_command commands[] = {
	{ "create", cmd_create, "[-p] [-c] [-n] [-q] CFG [KEY=VALUE...]",
	  "Create a domain from an xl.cfg file.",
	  "  KEY=VALUE       override a setting of the file (file syntax, or\n"
	  "                  the bare text as a string: name=web2)\n"
	  "  -p, --paused    leave the domain paused\n"
	  "  -c, --console   attach to its console once created\n"
	  "  -n, --dryrun    parse the config, print it as JSON and exit\n"
	  "  -q, --quiet     do not print \"Parsing config from CFG\"\n" },
	{ "list", cmd_list, "[-l|--json] [DOM...]",
	  "List domains (all, or the ones named).",
	  "  -l, --long, --json  print the daemon's domain list as JSON\n" },
	{ "info", cmd_info, "[--json]",
	  "Show information about the daemon and the host.",
	  "  --json          print the daemon's answer as JSON\n" },
	{ "destroy", cmd_destroy, "DOM",
	  "Terminate a domain immediately.", NULL },
	{ "pause", cmd_pause, "DOM", "Pause a domain.", NULL },
	{ "unpause", cmd_unpause, "DOM", "Unpause a paused domain.", NULL },
	{ "shutdown", cmd_shutdown, "DOM",
	  "Shut a domain down; it then follows on_poweroff.", NULL },
	{ "reboot", cmd_reboot, "DOM",
	  "Reboot a domain; it then follows on_reboot.", NULL },
	{ "console", cmd_console, "[-d] [-n] DOM",
	  "Attach to a domain's console; Ctrl-] detaches.",
	  "  -d, --dump        print the console history and exit\n"
	  "  -n, --no-history  do not replay the history when attaching\n" },
	{ "dmesg", cmd_dmesg, "[-c]", "Print the daemon's log.",
	  "  -c, --clear     clear the log after printing it\n" },
	{ "version", cmd_version, "", "Show the xl and daemon versions.",
	  NULL },
	{ "help", cmd_help, "[COMMAND]", "Show help for xl or a command.",
	  NULL },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct xl_command *xl_find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

void xl_print_usage(const struct xl_command *cmd, FILE *out)
{
	fprintf(out, "Usage: xl %s%s%s\n\n%s\n", cmd->name,
		*cmd->args ? " " : "", cmd->args, cmd->summary);
	if (cmd->options)
		fprintf(out, "\nOptions:\n%s", cmd->options);
}

static void print_help(FILE *out)
{
	size_t i;

	fprintf(out, "Usage: xl [--socket PATH] COMMAND [ARGS...]\n\n"
		"Commands:\n");
	for (i = 0; i < NR_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "\nGlobal options:\n"
		"  --socket PATH   the daemon's control socket\n"
		"                  (default: $%s, else %s)\n"
		"  -h, --help      show this help\n\n"
		"DOM is a domain id or name.  'xl help COMMAND' describes a "
		"command.\n", XL_SOCKET_ENV, XL_DEFAULT_SOCKET);
}

int cmd_help(int argc, char **argv)
{
	const struct xl_command *cmd;

	if (argc > 2)
		return xl_usage_error("help", "too many arguments");
	if (argc < 2) {
		print_help(stdout);
		return XL_EXIT_OK;
	}
	cmd = xl_find_command(argv[1]);
	if (!cmd) {
		xl_err("unknown command '%s'", argv[1]);
		return XL_EXIT_USAGE;
	}
	xl_print_usage(cmd, stdout);
	return XL_EXIT_OK;
}

/* Global options; returns the index of the command, or -exit code. */
static int parse_global(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			xl_socket_path = optarg;
			break;
		case 'h':
			print_help(stdout);
			return -XL_EXIT_OK;
		case ':':
			xl_err("option '%s' needs an argument",
			       argv[optind - 1]);
			return -XL_EXIT_USAGE;
		default:
			xl_err("unknown option '%s' (try 'xl help')",
			       argv[optind - 1]);
			return -XL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		print_help(stderr);
		return -XL_EXIT_USAGE;
	}
	return optind;
}

/* Output lost (e.g. a full disk) must not look like success. */
static int flush_stdout(int rc)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rc;
	xl_err("writing output: %s", strerror(errno));
	return rc ? rc : XL_EXIT_IOERR;
}

int main(int argc, char **argv)
{
	const struct xl_command *cmd;
	const char *env = getenv(XL_SOCKET_ENV);
	int first;

	if (env && *env)
		xl_socket_path = env;
	first = parse_global(argc, argv);
	if (first <= 0)
		return -first;
	cmd = xl_find_command(argv[first]);
	if (!cmd) {
		xl_err("unknown command '%s' (try 'xl help')", argv[first]);
		return XL_EXIT_USAGE;
	}
	optind = 0;	/* restart getopt for the command's own options */
	return flush_stdout(cmd->main(argc - first, argv + first));
}
