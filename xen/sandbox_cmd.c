/*
 * How the sandbox plugs into the daemon (xen/feature.h): built before
 * anything can fail, the main thread's filter installed once the daemon
 * serves (after a takeover too), what `info` shows, and the test aid
 * `sandbox-probe` (docs/sandbox.md, docs/control-api.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "domain.h"
#include "feature.h"
#include "log.h"
#include "loop.h"
#include "sandbox_internal.h"

const char *const sandbox_probe_names[PROBE_NR_CALLS] = {
	[PROBE_SOCKET] = "socket",
	[PROBE_EXECVE] = "execve",
	[PROBE_PTRACE] = "ptrace",
	[PROBE_SETNS] = "setns",
};

static bool disabled;		/* --no-sandbox */
static bool active;		/* the filters were built */

bool sandbox_on(void)
{
	return !disabled;
}

static void sandbox_early(const struct daemon_opts *d)
{
	disabled = d->no_sandbox;
	if (!disabled && sandbox_prepare() < 0) {
		/* Refusing to start would strand a live update's guests. */
		log_err("sandbox: cannot build the seccomp filters (%s): "
			"running WITHOUT the sandbox", strerror(errno));
		disabled = true;
	}
	sandbox_note_inherited(!disabled);
	active = !disabled;
}

static int sandbox_started(void)
{
	if (disabled) {
		log_warn("sandbox: OFF (--no-sandbox): no seccomp filter, all "
			 "capabilities kept");
		return 0;
	}
	/* Again if the daemon forked to detach since: a new pid. */
	if (sandbox_prepare() < 0 ||
	    loop_add(sandbox_report_fd(), POLLIN, sandbox_report, NULL) < 0 ||
	    sandbox_start_main() < 0)
		return -1;
	log_info("sandbox: seccomp filters on (main, vcpu, device and "
		 "migration threads); refused calls fail with EPERM and are "
		 "logged");
	return 0;
}

static void sandbox_info(json_t *result)
{
	json_object_set_new(result, "sandbox", json_pack(
		"{s:s, s:o, s:o, s:I}",
		"mode", active && !disabled ? "seccomp" : "off",
		"capabilities", sandbox_caps_json(),
		"threads", sandbox_threads_json(),
		"refused", (json_int_t)sandbox_refused_count()));
}

static int lookup(const char *const *names, unsigned n, const char *s)
{
	unsigned i;

	for (i = 0; s && i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

/* args: role ("vcpu", "device", "migration", "main"), call, [domain]. */
static int cmd_probe(struct client *c, json_t *args, struct ctl_reply *r)
{
	const char *rs = json_string_value(json_object_get(args, "role"));
	const char *cs = json_string_value(json_object_get(args, "call"));
	int role = lookup(sandbox_role_names, SANDBOX_NR_ROLES, rs);
	int call = lookup(sandbox_probe_names, PROBE_NR_CALLS, cs);
	char name[64] = "", why[160];
	struct domain *dom = NULL;
	int code, err;

	if (role < 0)
		return ctl_fail(r, CTL_EINVAL, "%s", "'role' must be main, "
				"vcpu, device or migration");
	if (call < 0)
		return ctl_fail(r, CTL_EINVAL, "%s", "'call' must be socket, "
				"execve, ptrace or setns");
	if (json_object_get(args, "domain")) {
		code = ctl_arg_domain(args, r, &dom);
		if (code)
			return code;
	}
	if (!active || disabled)
		return ctl_fail(r, CTL_ESTATE, "%s", "the sandbox is off "
				"(--no-sandbox): the call would be made");
	if (sandbox_probe(role, dom ? (int)dom->id : -1, call, &err, name,
			  sizeof(name), why, sizeof(why)) < 0)
		return ctl_fail(r, CTL_ENODOM, "%s", why);
	log_info("sandbox: probe: a %s thread (%s) tried %s: %s",
		 sandbox_role_names[role], name, sandbox_probe_names[call],
		 err ? strerror(err) : "allowed");
	r->result = json_pack("{s:s, s:s, s:s, s:b, s:i, s:s}",
			      "role", sandbox_role_names[role],
			      "thread", name, "call", sandbox_probe_names[call],
			      "refused", err == EPERM, "errno", err,
			      "error", err ? strerror(err) : "");
	return CTL_OK;
}

static const struct ctl_command sandbox_commands[] = {
	{ "sandbox-probe", cmd_probe },
	{ NULL, NULL },
};

static struct feature sandbox = {
	.name = "sandbox",
	.flag = "SANDBOX",
	.commands = sandbox_commands,
	.info = sandbox_info,
	.early = sandbox_early,
	.started = sandbox_started,
};
FEATURE_REGISTER(sandbox)
