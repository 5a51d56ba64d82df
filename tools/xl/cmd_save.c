// SPDX-License-Identifier: GPL-2.0
/*
 * xl save: write a domain's whole state to a file (the daemon writes it,
 * docs/control-api.md); without -c the domain is destroyed afterwards.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xl.h"

struct save_opts {
	bool checkpoint;
	const char *compress;		/* NULL: the daemon's default */
	long format_version;		/* 0: the daemon's default */
	long workers;			/* 0: the daemon's default */
};

static int parse_opts(int argc, char **argv, struct save_opts *o)
{
	static const struct option opts[] = {
		{ "checkpoint", no_argument, NULL, 'c' },
		{ "compress", required_argument, NULL, 'z' },
		{ "format-version", required_argument, NULL, 'V' },
		{ "workers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = xl_getopt(argc, argv, "ch", opts)) != -1) {
		switch (c) {
		case 'c':
			o->checkpoint = true;
			break;
		case 'z':
			o->compress = optarg;
			break;
		case 'V':
			if (xl_parse_long(optarg, &o->format_version) < 0 ||
			    o->format_version < 1)
				return -xl_usage_error(argv[0],
					"--format-version wants a positive "
					"integer, not '%s'", optarg);
			break;
		case 'w':
			if (xl_parse_long(optarg, &o->workers) < 0 ||
			    o->workers < 1)
				return -xl_usage_error(argv[0],
					"--workers wants a positive integer, "
					"not '%s'", optarg);
			break;
		case 'h':
			return -xl_help(argv[0]);
		default:
			return -XL_EXIT_USAGE;
		}
	}
	return 1;
}

static json_t *save_args(const char *dom, const char *path,
			 const struct save_opts *o)
{
	json_t *args = json_pack("{s:s, s:s, s:b}", "domain", dom, "path",
				 path, "checkpoint", o->checkpoint);

	if (args && o->compress &&
	    json_object_set_new(args, "compress", json_string(o->compress))) {
		json_decref(args);
		return NULL;
	}
	if (args && o->format_version &&
	    json_object_set_new(args, "format_version",
				json_integer(o->format_version))) {
		json_decref(args);
		return NULL;
	}
	if (args && o->workers &&
	    json_object_set_new(args, "workers", json_integer(o->workers))) {
		json_decref(args);
		return NULL;
	}
	return args;
}

static void print_summary(const char *dom, const char *path,
			  const struct save_opts *o, json_t *res)
{
	json_int_t bytes = json_integer_value(json_object_get(res, "bytes"));
	json_int_t pages = json_integer_value(json_object_get(res, "pages"));
	json_int_t zero = json_integer_value(json_object_get(res,
							     "zero_pages"));
	const char *enc = json_string_value(json_object_get(res, "compress"));

	printf("Saved %s to %s: %lld bytes (%.1f MiB), %lld pages, "
	       "%lld zero pages, format %lld, compress %s, %.3f s%s\n",
	       dom, path, (long long)bytes, bytes / 1048576.0,
	       (long long)pages, (long long)zero,
	       (long long)json_integer_value(json_object_get(
			res, "format_version")),
	       enc ? enc : "?",
	       json_number_value(json_object_get(res, "seconds")),
	       o->checkpoint ? " (checkpoint: the domain keeps running)" : "");
}

int cmd_save(int argc, char **argv)
{
	struct save_opts o = { 0 };
	json_t *args, *res = NULL;
	char *path;
	int rc;

	rc = parse_opts(argc, argv, &o);
	if (rc <= 0)
		return -rc;
	if (argc - optind < 2)
		return xl_usage_error(argv[0], "missing %s",
				      argc - optind ? "FILE" : "DOM and FILE");
	if (argc - optind > 2)
		return xl_usage_error(argv[0], "too many arguments");
	if (!*argv[optind + 1])
		return xl_usage_error(argv[0], "FILE is empty");
	path = xl_abspath(argv[optind + 1]);
	if (!path) {
		xl_err("cannot make '%s' an absolute path: %s", argv[optind + 1],
		       strerror(errno));
		return XL_EXIT_NOINPUT;
	}
	args = save_args(argv[optind], path, &o);
	if (!args) {
		free(path);
		return xl_usage_error(argv[0], "DOM, FILE or --compress is "
				      "not valid UTF-8");
	}
	rc = xl_call("save", args, &res);
	if (!rc)
		print_summary(argv[optind], path, &o, res);
	json_decref(res);
	free(path);
	return rc;
}
