// SPDX-License-Identifier: GPL-2.0
/*
 * xl create: parse an xl.cfg file here, send the config to the daemon.
 */
#include <stdio.h>

#include "console.h"
#include "xl.h"
#include "xlcfg.h"

struct create_opts {
	bool paused;
	bool console;
	bool dryrun;
	bool quiet;
};

/* The config as the `create` command's config object. */
static int load_config(const char *path, char **overrides, int n,
		       bool quiet, json_t **out)
{
	struct domcfg cfg;
	char err[1024];
	int rc;

	if (!quiet)
		fprintf(stderr, "Parsing config from %s\n", path);
	rc = xlcfg_load(path, overrides, n, &cfg, err, sizeof(err));
	if (rc) {
		xl_err("%s", err);
		return rc == XLCFG_ERR_IO ? XL_EXIT_NOINPUT : XL_EXIT_CONFIG;
	}
	*out = domcfg_to_json(&cfg);
	domcfg_free(&cfg);
	if (!*out) {
		xl_err("out of memory");
		return XL_EXIT_CONFIG;
	}
	return XL_EXIT_OK;
}

static int unpause_new(const char *dom)
{
	return xl_call("unpause", xl_domain_args(dom), NULL);
}

/* Attach to the console of the domain `create` answered with. */
static int create_console(struct xl_conn *conn, json_t *res, bool unpause)
{
	json_t *id = json_object_get(res, "id");
	const char *name = json_string_value(json_object_get(res, "name"));
	char dom[32];

	if (json_is_integer(id))
		snprintf(dom, sizeof(dom), "%lld",
			 (long long)json_integer_value(id));
	else if (!name) {
		xl_err("malformed reply from the daemon: no domain id");
		return XL_EXIT_PROTOCOL;
	}
	return xl_console_attach_then(conn, json_is_integer(id) ? dom : name,
				      true, unpause ? unpause_new : NULL);
}

static int create(json_t *config, const struct create_opts *o)
{
	struct xl_conn conn;
	json_t *args, *res = NULL;
	int rc;

	/* With -c the domain starts paused and runs once the console is on. */
	args = json_pack("{s:o, s:b}", "config", config, "paused",
			 o->paused || o->console);
	rc = xl_connect(&conn);
	if (!rc)
		rc = xl_request(&conn, "create", args, &res);
	else
		json_decref(args);
	if (!rc && o->console)
		rc = create_console(&conn, res, !o->paused);
	json_decref(res);
	xl_disconnect(&conn);
	return rc;
}

static int parse_opts(int argc, char **argv, struct create_opts *o)
{
	static const struct option opts[] = {
		{ "paused", no_argument, NULL, 'p' },
		{ "console", no_argument, NULL, 'c' },
		{ "dryrun", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = xl_getopt(argc, argv, "pcnqh", opts)) != -1) {
		switch (c) {
		case 'p':
			o->paused = true;
			break;
		case 'c':
			o->console = true;
			break;
		case 'n':
			o->dryrun = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			return -xl_help(argv[0]);
		default:
			return -XL_EXIT_USAGE;
		}
	}
	return 1;
}

int cmd_create(int argc, char **argv)
{
	struct create_opts o = { 0 };
	json_t *config = NULL;
	int rc;

	rc = parse_opts(argc, argv, &o);
	if (rc <= 0)
		return -rc;
	if (optind >= argc)
		return xl_usage_error(argv[0], "missing CFG");
	rc = load_config(argv[optind], argv + optind + 1, argc - optind - 1,
			 o.quiet, &config);
	if (rc)
		return rc;
	if (o.dryrun) {
		xl_print_json(config);
		json_decref(config);
		return XL_EXIT_OK;
	}
	return create(config, &o);
}
