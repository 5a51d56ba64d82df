// SPDX-License-Identifier: GPL-2.0
/*
 * xl info: the daemon's and the host's vital statistics.
 */
#include <string.h>

#include "client.h"
#include "xl.h"

struct info_line {
	const char *key;	/* as printed */
	const char *member;	/* in the result */
	const char *sub;	/* inside member, or NULL */
};

static const struct info_line lines[] = {
	{ "hypervisor_version",	"hypervisor", NULL },
	{ "build_id",		"build_id", NULL },
	{ "protocol",		"protocol", NULL },
	{ "features",		"features", NULL },
	{ "livepatches",	"livepatches", NULL },
	{ "sandbox",		"sandbox", "mode" },
	{ "uptime",		"uptime_s", NULL },
	{ "nr_domains",		"domains", NULL },
	{ "nr_cpus",		"host", "nr_cpus" },
	{ "total_memory",	"host", "memory_mib" },
	{ "tsc_khz",		"host", "tsc_khz" },
	{ "kvm_api",		"host", "kvm_api" },
	{ "mem_path",		"mem_path", NULL },
	{ "daemon_pid",		"pid", NULL },
};

/* "on (3 keys)", "off", "off (not built)" (docs/live-update.md). */
static void print_signatures(json_t *sig)
{
	size_t n = json_array_size(json_object_get(sig, "keys"));

	if (!json_is_object(sig))
		return;
	if (json_is_true(json_object_get(sig, "enforcement")))
		xl_print_kv("signature_enforcement", "on (%zu key%s)%s", n,
			    n == 1 ? "" : "s", json_object_get(sig, "error") ?
			    ", keys unreadable: everything is refused" : "");
	else if (json_is_false(json_object_get(sig, "supported")))
		xl_print_kv("signature_enforcement", "off (not built)");
	else
		xl_print_kv("signature_enforcement", "off");
}

static void print_info(json_t *info)
{
	const struct info_line *l;
	json_t *val;

	for (l = lines; l < lines + sizeof(lines) / sizeof(lines[0]); l++) {
		val = json_object_get(info, l->member);
		if (l->sub)
			val = json_object_get(val, l->sub);
		xl_print_field(l->key, val);
		if (!strcmp(l->member, "livepatches"))
			print_signatures(json_object_get(info, "signatures"));
	}
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *info = NULL;
	bool as_json = false;
	int c, rc;

	while ((c = xl_getopt(argc, argv, "h", opts)) != -1) {
		if (c == 'h')
			return xl_help(argv[0]);
		if (c != 'j')
			return XL_EXIT_USAGE;
		as_json = true;
	}
	if (optind < argc)
		return xl_usage_error(argv[0], "too many arguments");
	rc = xl_call("info", NULL, &info);
	if (rc)
		return rc;
	if (as_json)
		xl_print_json(info);
	else
		print_info(info);
	json_decref(info);
	return XL_EXIT_OK;
}
