// SPDX-License-Identifier: GPL-2.0
/*
 * xl shutdown and xl trigger (docs/control-api.md).  `shutdown` presses
 * the guest's ACPI power button; with -w it waits for the domain to end,
 * with -F it also stops the domain itself (a power cut, as the daemon's
 * `shutdown` with `force`) when the guest has not ended it within the
 * timeout.  As in Xen's xl, waiting is xl's own: the daemon only presses.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "xl.h"

#define POLL_US			100000
#define SHUTDOWN_TIMEOUT_S	60
#define HELP_SHOWN		-1	/* -h: print the usage, exit 0 */

struct shutdown_opts {
	bool wait, force;
	long timeout_s;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* The list entry of DOM (an id or a name), or NULL: a new reference. */
static json_t *find_domain(json_t *list, const char *dom, json_int_t id)
{
	json_t *doms = json_object_get(list, "domains"), *d;
	size_t i;

	json_array_foreach(doms, i, d) {
		json_int_t did = json_integer_value(json_object_get(d, "id"));
		const char *name = json_string_value(json_object_get(d, "name"));

		if (id > 0 ? did == id : (name && !strcmp(name, dom)) ||
		    (long long)did == atoll(dom)) {
			json_incref(d);
			return d;
		}
	}
	return NULL;
}

static json_t *domain_entry(struct xl_conn *conn, const char *dom,
			    json_int_t id, int *rc)
{
	json_t *list = NULL, *d;

	*rc = xl_request(conn, "list", NULL, &list);
	if (*rc)
		return NULL;
	d = find_domain(list, dom, id);
	json_decref(list);
	return d;
}

/*
 * Whether the domain the button was pressed on has ended: gone, preserved
 * (state shutdown or crashed), or restarted (on_poweroff = "restart"
 * keeps its id and makes its uptime start again).
 */
static bool domain_ended(json_t *d, double *uptime)
{
	const char *state;
	double up;

	if (!d)
		return true;
	state = json_string_value(json_object_get(d, "state"));
	up = json_number_value(json_object_get(d, "uptime_s"));
	if (state && (!strcmp(state, "shutdown") || !strcmp(state, "crashed")))
		return true;
	if (up < *uptime)
		return true;
	*uptime = up;
	return false;
}

/* Wait until it ends; with -F stop it once the timeout has passed. */
static int wait_shutdown(struct xl_conn *conn, const char *dom,
			 const struct shutdown_opts *o)
{
	double deadline = now_s() + o->timeout_s, uptime = 0;
	json_int_t id;
	json_t *d;
	int rc;

	d = domain_entry(conn, dom, 0, &rc);
	if (rc || !d)
		return rc;
	id = json_integer_value(json_object_get(d, "id"));
	while (!domain_ended(d, &uptime)) {
		json_decref(d);
		if (o->force && now_s() >= deadline) {
			fprintf(stderr, "xl: %s did not power off within %ld s: "
				"stopping it\n", dom, o->timeout_s);
			return xl_request(conn, "shutdown",
					  json_pack("{s:I, s:b}", "domain", id,
						    "force", 1), NULL);
		}
		usleep(POLL_US);
		d = domain_entry(conn, dom, id, &rc);
		if (rc)
			return rc;
	}
	json_decref(d);
	return 0;
}

static int shutdown_parse(int argc, char **argv, struct shutdown_opts *o)
{
	static const struct option opts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "force", no_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->timeout_s = SHUTDOWN_TIMEOUT_S;
	while ((c = xl_getopt(argc, argv, "wFt:h", opts)) != -1) {
		switch (c) {
		case 'w': o->wait = true; break;
		case 'F': o->force = true; break;
		case 't':
			if (xl_parse_long(optarg, &o->timeout_s) < 0 ||
			    o->timeout_s < 0 || o->timeout_s > 86400)
				return xl_usage_error(argv[0],
					"--timeout wants 0 to 86400 seconds, not '%s'",
					optarg);
			break;
		case 'h': return HELP_SHOWN;
		default: return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing DOM");
	if (argc - optind > 1)
		return xl_usage_error(argv[0], "too many arguments");
	return 0;
}

int cmd_shutdown(int argc, char **argv)
{
	struct shutdown_opts o = { 0 };
	struct xl_conn conn;
	const char *dom;
	json_t *args;
	int rc = shutdown_parse(argc, argv, &o);

	if (rc == HELP_SHOWN)
		return xl_help(argv[0]);
	if (rc)
		return rc;
	dom = argv[optind];
	args = xl_domain_args(dom);
	if (!args)
		return xl_usage_error(argv[0], "invalid DOM '%s'", dom);
	rc = xl_connect(&conn);
	if (rc) {
		json_decref(args);
		return rc;
	}
	rc = xl_request(&conn, "shutdown", args, NULL);
	if (!rc && (o.wait || o.force))
		rc = wait_shutdown(&conn, dom, &o);
	xl_disconnect(&conn);
	return rc;
}

/* xl trigger DOM power|reset|nmi [VCPU] */
int cmd_trigger(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *args;
	long vcpu;
	int c;

	c = xl_getopt(argc, argv, "h", opts);
	if (c != -1)
		return c == 'h' ? xl_help(argv[0]) : XL_EXIT_USAGE;
	if (argc - optind < 2)
		return xl_usage_error(argv[0], "missing %s",
				      argc - optind ? "TRIGGER" : "DOM");
	if (argc - optind > 3)
		return xl_usage_error(argv[0], "too many arguments");
	args = xl_domain_args(argv[optind]);
	if (!args)
		return xl_usage_error(argv[0], "invalid DOM '%s'",
				      argv[optind]);
	json_object_set_new(args, "trigger", json_string(argv[optind + 1]));
	if (argc - optind == 3) {
		if (xl_parse_long(argv[optind + 2], &vcpu) < 0 || vcpu < 0) {
			json_decref(args);
			return xl_usage_error(argv[0],
					      "VCPU must be a vCPU number, not '%s'",
					      argv[optind + 2]);
		}
		json_object_set_new(args, "vcpu", json_integer(vcpu));
	}
	return xl_call("trigger", args, NULL);
}
