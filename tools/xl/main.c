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
	{ "shutdown", cmd_shutdown, "[-w] [-F] [-t SECS] DOM",
	  "Press the domain's ACPI power button; it then follows on_poweroff.",
	  "  -w, --wait         wait until the domain has shut down\n"
	  "  -F, --force        wait, and stop the domain (as a power cut)\n"
	  "                     if the guest has not powered off within the\n"
	  "                     timeout\n"
	  "  -t, --timeout SECS the timeout of -F (default 60)\n"
	  "\nThe guest decides what the button does (an ACPI-aware OS powers\n"
	  "off); without -F a guest that ignores it keeps running.  A domain\n"
	  "restarted by on_poweroff = \"restart\" counts as shut down.\n" },
	{ "reboot", cmd_reboot, "DOM",
	  "Reboot a domain; it then follows on_reboot.", NULL },
	{ "trigger", cmd_trigger, "DOM power|reset|nmi [VCPU]",
	  "Send a trigger to a domain, as Xen's xl trigger.",
	  "  power   press the ACPI power button (as xl shutdown)\n"
	  "  reset   reset the machine, as the reset port 0xcf9 does; the\n"
	  "          domain then follows on_reboot\n"
	  "  nmi     an NMI to VCPU (default 0)\n" },
	{ "console", cmd_console, "[-d] [-n] DOM",
	  "Attach to a domain's console; Ctrl-] detaches.",
	  "  -d, --dump        print the console history and exit\n"
	  "  -n, --no-history  do not replay the history when attaching\n" },
	{ "save", cmd_save,
	  "[-c] [--compress none|lz4|zlib] [--format-version N] "
	  "[--workers N] DOM FILE",
	  "Save a domain's state to FILE; the domain is then destroyed.",
	  "  -c, --checkpoint  leave the domain running after the save\n"
	  "  --compress ENC    page encoding: none (default), lz4 or zlib\n"
	  "  --format-version N\n"
	  "                    stream format to write: 2 (default) or 1,\n"
	  "                    for older builds (no compression)\n"
	  "  --workers N       threads that find zero pages, encode and\n"
	  "                    checksum the pages (default: the CPUs, at\n"
	  "                    most 4)\n"
	  "\nFILE may be relative to the working directory; the daemon writes\n"
	  "FILE.tmp and renames it into place when the save is complete.\n" },
	{ "restore", cmd_restore, "[-p] [--name NAME] FILE",
	  "Create a domain from a file written by 'xl save'.",
	  "  -p, --paused      leave the restored domain paused\n"
	  "  -n, --name NAME   give the domain NAME instead of the saved one\n"
	  "\nFILE may be relative to the working directory; the daemon reads\n"
	  "it.\n" },
	{ "migrate", cmd_migrate,
	  "[options] DOM HOST[:PORT]",
	  "Move a running domain to the daemon at HOST (docs/migration.md).",
	  "  --max-downtime MS   longest pause allowed at the switch (300)\n"
	  "  --bandwidth MIB     cap the link at MIB MiB/s (0: none)\n"
	  "  --compress ENC      page batches: none (default), lz4, zlib\n"
	  "  --connections N     N TCP/TLS streams, N-1 of them for pages\n"
	  "  --auto-converge     throttle a guest that dirties too fast\n"
	  "  -p, --paused        leave it paused on the destination\n"
	  "  -n, --name NEW      its name on the destination\n"
	  "  --insecure          plain TCP (loopback destinations only)\n"
	  "  --json              print the final report as JSON\n"
	  "\nOn a terminal, progress is shown on stderr.  PORT defaults to\n"
	  "8002.  The exit status is 0 only if the guest runs on HOST.\n" },
	{ "migrate-status", cmd_migrate_status, "DOM",
	  "Show the progress of DOM's newest migration (JSON).", NULL },
	{ "migrate-cancel", cmd_migrate_cancel, "DOM",
	  "Cancel DOM's migration; the guest keeps running here.", NULL },
	{ "live-update", cmd_live_update,
	  "load IMAGE | exec [--dry-run] | IMAGE | unload | status",
	  "Replace the running hypervisor image; the guests keep running.",
	  "  load IMAGE        stage IMAGE and check it (nothing pauses)\n"
	  "  exec              hand every domain over to the staged image\n"
	  "  IMAGE             load, then exec\n"
	  "  unload            drop the staged image\n"
	  "  status            staged image, last update's result and blackout\n"
	  "  --dry-run         with exec: the staged image parses the current\n"
	  "                    state in a separate process and reports\n"
	  "  --json            print the result as JSON\n"
	  "  --mode M          with exec: build-ahead (default: the new image\n"
	  "                    builds every domain while the guests run, then\n"
	  "                    a short blackout) or reexec (the previous\n"
	  "                    design: exec in place, rebuild in the blackout)\n"
	  "  --sig SIG         with load or IMAGE: IMAGE's signature file\n"
	  "                    (default IMAGE.sig; checked when the daemon\n"
	  "                    runs with --trusted-keys)\n"
	  "  --fail-phase P    debugging: fail phase P on purpose (quiesce,\n"
	  "                    save, exec, verify, restore, kvm, crash,\n"
	  "                    record; build-ahead also build, confirm)\n" },
	{ "livepatch", cmd_livepatch,
	  "upload NAME FILE [K=V...] | apply NAME | revert NAME | "
	  "replace NAME | unload NAME | load NAME FILE [K=V...] | "
	  "set NAME K=V... | list",
	  "Hot-fix functions of the running daemon (docs/livepatch.md).",
	  "  upload NAME FILE [K=V...]\n"
	  "                    load and check payload FILE as NAME, with\n"
	  "                    its parameters K set to V\n"
	  "  apply NAME        redirect its functions and write its code\n"
	  "                    ranges (vCPUs park briefly)\n"
	  "  revert NAME       undo it (only the top of the stack)\n"
	  "  replace NAME      revert every applied payload, apply NAME\n"
	  "  unload NAME       drop a payload that is not applied\n"
	  "  load NAME FILE [K=V...]\n"
	  "                    upload, then apply\n"
	  "  set NAME K=V...   change writable parameters, also while\n"
	  "                    applied\n"
	  "  list              payloads, states, build-ids, functions,\n"
	  "                    ranges, parameters\n"
	  "  --json            with list: the daemon's answer as JSON\n"
	  "  --sig SIG         with upload or load: FILE's signature file\n"
	  "                    (default FILE.sig; checked when the daemon\n"
	  "                    runs with --trusted-keys)\n" },
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
