// SPDX-License-Identifier: GPL-2.0
/*
 * xl migrate, migrate-status, migrate-cancel (docs/migration.md): the
 * daemon sends; xl starts it, then follows migrate-status until it ends.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "xl.h"

#define POLL_US		100000

struct mig_args {
	json_t *args;
	bool json;
};

static int set_num(json_t *a, const char *key, const char *cmd,
		   const char *opt, const char *val)
{
	long v;

	if (xl_parse_long(val, &v) < 0 || v < 0)
		return -xl_usage_error(cmd, "%s wants a whole number, not '%s'",
				       opt, val);
	json_object_set_new(a, key, json_integer(v));
	return 1;
}

static int parse_opts(int argc, char **argv, struct mig_args *m)
{
	static const struct option opts[] = {
		{ "max-downtime", required_argument, NULL, 'D' },
		{ "bandwidth", required_argument, NULL, 'B' },
		{ "compress", required_argument, NULL, 'z' },
		{ "connections", required_argument, NULL, 'C' },
		{ "auto-converge", no_argument, NULL, 'a' },
		{ "paused", no_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *a = m->args;
	int c, rc = 1;

	while (rc > 0 && (c = xl_getopt(argc, argv, "pn:h", opts)) != -1) {
		switch (c) {
		case 'D': rc = set_num(a, "max_downtime_ms", argv[0],
				       "--max-downtime", optarg); break;
		case 'B': rc = set_num(a, "bandwidth_mib", argv[0],
				       "--bandwidth", optarg); break;
		case 'C': rc = set_num(a, "connections", argv[0],
				       "--connections", optarg); break;
		case 'z': json_object_set_new(a, "compress",
					      json_string(optarg)); break;
		case 'a': json_object_set_new(a, "auto_converge",
					      json_true()); break;
		case 'p': json_object_set_new(a, "paused", json_true()); break;
		case 'n': json_object_set_new(a, "name", json_string(optarg));
			  break;
		case 'I': json_object_set_new(a, "insecure", json_true());
			  break;
		case 'j': m->json = true; break;
		case 'h': return -xl_help(argv[0]);
		default: return -XL_EXIT_USAGE;
		}
	}
	return rc;
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void print_progress(json_t *st)
{
	fprintf(stderr, "\r%-10s iter %3.0f  %5.1f%% of RAM  %8.1f MiB/s  "
		"dirty %8.1f MiB/s  expected downtime %7.1f ms   ",
		json_string_value(json_object_get(st, "phase")) ?: "?",
		num(st, "iteration"), num(st, "percent"), num(st, "rate_mib_s"),
		num(st, "dirty_rate_mib_s"), num(st, "expected_downtime_ms"));
}

/* Follow migrate-status until the migration ends; its last status. */
static int follow(struct xl_conn *conn, json_int_t id, bool tty,
		  json_t **last)
{
	int rc;

	for (;;) {
		json_t *st = NULL;
		const char *s;

		rc = xl_request(conn, "migrate-status",
				json_pack("{s:I}", "domain", id), &st);
		if (rc)
			return rc;
		s = json_string_value(json_object_get(st, "state"));
		if (s && strcmp(s, "active")) {
			*last = st;
			return 0;
		}
		if (tty)
			print_progress(st);
		json_decref(st);
		usleep(POLL_US);
	}
}

static int report(json_t *st, bool json, bool tty)
{
	const char *s = json_string_value(json_object_get(st, "state"));
	bool ok = s && !strcmp(s, "completed");

	if (tty)
		fputc('\n', stderr);
	if (json)
		xl_print_json(st);
	else if (ok)
		printf("Migrated %s: %.0f rounds, %.1f MiB sent, downtime "
		       "%.1f ms, %.2f s in all; d%.0f on the destination\n",
		       json_string_value(json_object_get(st, "name")),
		       num(st, "iteration"), num(st, "wire_bytes") / 1048576.0,
		       num(st, "downtime_ms"), num(st, "total_s"),
		       num(st, "dest_id"));
	if (!ok)
		xl_err("migration %s: %s", s ? s : "?",
		       json_string_value(json_object_get(st, "error")) ?: "?");
	return ok ? 0 : XL_EXIT_DAEMON_MAX - 1;
}

int cmd_migrate(int argc, char **argv)
{
	struct mig_args m = { .args = json_object() };
	struct xl_conn conn;
	json_t *res = NULL, *last = NULL;
	bool tty = isatty(2);
	int rc = parse_opts(argc, argv, &m);

	if (rc <= 0)
		goto out_args;
	rc = XL_EXIT_USAGE;
	if (argc - optind != 2) {
		rc = xl_usage_error(argv[0], "want DOM and HOST[:PORT]");
		goto out_args;
	}
	json_object_set_new(m.args, "domain", json_string(argv[optind]));
	json_object_set_new(m.args, "host", json_string(argv[optind + 1]));
	rc = xl_connect(&conn);
	if (rc)
		goto out_args;
	rc = xl_request(&conn, "migrate", m.args, &res);
	m.args = NULL;
	if (!rc)
		rc = follow(&conn, json_integer_value(json_object_get(res, "id")),
			    tty && !m.json, &last);
	if (!rc)
		rc = report(last, m.json, tty && !m.json);
	json_decref(res);
	json_decref(last);
	xl_disconnect(&conn);
out_args:
	json_decref(m.args);
	return rc < 0 ? -rc : rc;
}

int cmd_migrate_status(int argc, char **argv)
{
	json_t *res = NULL;
	int rc;

	if (argc != 2)
		return xl_usage_error(argv[0], "want DOM");
	rc = xl_call("migrate-status", xl_domain_args(argv[1]), &res);
	if (!rc)
		xl_print_json(res);
	json_decref(res);
	return rc;
}

int cmd_migrate_cancel(int argc, char **argv)
{
	if (argc != 2)
		return xl_usage_error(argv[0], "want DOM");
	return xl_call("migrate-cancel", xl_domain_args(argv[1]), NULL);
}
