// SPDX-License-Identifier: GPL-2.0
/*
 * xl list: the domain table, in the format of Xen's xl list.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xl.h"

struct state_flags {
	const char *state;
	const char *flags;
};

static const struct state_flags states[] = {
	{ "running",	"r-----" },
	{ "paused",	"--p---" },
	{ "shutdown",	"---s--" },
	{ "crashed",	"----c-" },
	{ "dying",	"-----d" },
};

static const char *flags_of(const char *state)
{
	size_t i;

	for (i = 0; state && i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(state, states[i].state))
			return states[i].flags;
	return "------";
}

static long long int_of(json_t *dom, const char *key)
{
	return json_integer_value(json_object_get(dom, key));
}

static void print_header(void)
{
	printf("Name                                        ID   Mem VCPUs"
	       "\tState\tTime(s)\n");
}

static void print_row(json_t *dom)
{
	const char *name = json_string_value(json_object_get(dom, "name"));
	const char *state = json_string_value(json_object_get(dom, "state"));

	printf("%-40s %5lld %5lld %5lld     %s  %8.1f\n", name ? name : "?",
	       int_of(dom, "id"), int_of(dom, "memory_mib"),
	       int_of(dom, "vcpus"), flags_of(state),
	       json_number_value(json_object_get(dom, "cpu_time_s")));
}

/* DOM names a domain by name, else by id, as the daemon reads it. */
static bool matches_name(json_t *dom, const char *want)
{
	const char *name = json_string_value(json_object_get(dom, "name"));

	return name && !strcmp(name, want);
}

static bool matches_id(json_t *dom, const char *want)
{
	json_t *id = json_object_get(dom, "id");
	char *end;
	long long n;

	if (!*want || strspn(want, "0123456789") != strlen(want))
		return false;
	n = strtoll(want, &end, 10);
	return json_is_integer(id) && json_integer_value(id) == n;
}

static json_t *find(json_t *domains, const char *want)
{
	json_t *dom;
	size_t i;

	json_array_foreach(domains, i, dom)
		if (matches_name(dom, want))
			return dom;
	json_array_foreach(domains, i, dom)
		if (matches_id(dom, want))
			return dom;
	return NULL;
}

/* The domains named in @names (all when none), in that order. */
static int select_domains(json_t *domains, char **names, int n,
			  json_t **out)
{
	json_t *dom;
	int i;

	if (!n) {
		*out = json_incref(domains);
		return XL_EXIT_OK;
	}
	*out = json_array();
	if (!*out) {
		xl_err("out of memory");
		return XL_EXIT_PROTOCOL;
	}
	for (i = 0; i < n; i++) {
		dom = find(domains, names[i]);
		if (!dom) {
			json_decref(*out);
			*out = NULL;
			xl_err("no domain '%s'", names[i]);
			return XL_EXIT_NO_SUCH_DOMAIN;
		}
		json_array_append(*out, dom);
	}
	return XL_EXIT_OK;
}

static int check_domains(json_t *domains)
{
	json_t *dom;
	size_t i;

	if (!json_is_array(domains))
		goto bad;
	json_array_foreach(domains, i, dom)
		if (!json_is_object(dom))
			goto bad;
	return XL_EXIT_OK;
bad:
	xl_err("malformed reply from the daemon: bad domain list");
	return XL_EXIT_PROTOCOL;
}

static void print_domains(json_t *domains, bool as_json)
{
	json_t *dom;
	size_t i;

	if (as_json) {
		xl_print_json(domains);
		return;
	}
	print_header();
	json_array_foreach(domains, i, dom)
		print_row(dom);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'l' },
		{ "long", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *result = NULL, *domains, *sel = NULL;
	bool as_json = false;
	int c, rc;

	while ((c = xl_getopt(argc, argv, "lh", opts)) != -1) {
		if (c == 'h')
			return xl_help(argv[0]);
		if (c != 'l')
			return XL_EXIT_USAGE;
		as_json = true;
	}
	rc = xl_call("list", NULL, &result);
	if (rc)
		return rc;
	domains = json_object_get(result, "domains");
	rc = check_domains(domains);
	if (!rc)
		rc = select_domains(domains, argv + optind, argc - optind,
				    &sel);
	if (!rc && sel)
		print_domains(sel, as_json);
	json_decref(sel);
	json_decref(result);
	return rc;
}
