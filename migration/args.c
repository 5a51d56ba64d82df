/* The migrate command's arguments (docs/control-api.md). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "domcfg.h"
#include "migration/mig.h"

#define DEFAULT_PORT		8002
#define DEFAULT_DOWNTIME_MS	300

static int arg_uint(json_t *args, const char *key, unsigned lo, unsigned hi,
		    unsigned *out, struct ctl_reply *r)
{
	json_t *v = json_object_get(args, key);

	if (!v || json_is_null(v))
		return CTL_OK;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return ctl_fail(r, CTL_EINVAL, "'%s' must be an integer "
				"%u..%u", key, lo, hi);
	*out = json_integer_value(v);
	return CTL_OK;
}

static int arg_host(json_t *args, struct mig_opts *o, struct ctl_reply *r)
{
	const char *h = json_string_value(json_object_get(args, "host"));

	if (!h || mig_parse_hostport(h, o->host, sizeof(o->host),
				     &o->port) < 0)
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'host' must be HOST[:PORT]");
	if (!o->port)
		o->port = DEFAULT_PORT;
	if (o->insecure && !mig_host_is_loopback(o->host))
		return ctl_fail(r, CTL_EINVAL, "%s", "plain TCP ('insecure') "
				"is for a loopback destination only; "
				"elsewhere, use TLS");
	if (!o->insecure && !mig_tls_loaded())
		return ctl_fail(r, CTL_ENOTSUP, "%s", "this daemon has no TLS "
				"credentials: start it with --migrate-tls DIR "
				"(or use 'insecure' to a loopback address)");
	return CTL_OK;
}

static int arg_name(json_t *args, struct mig_opts *o, struct ctl_reply *r)
{
	json_t *v = json_object_get(args, "name");

	if (!v || json_is_null(v))
		return CTL_OK;
	if (!json_is_string(v) || !domcfg_valid_name(json_string_value(v)))
		return ctl_fail(r, CTL_EINVAL, "%s", "'name' must be 1-63 "
				"characters of [A-Za-z0-9_.-]");
	snprintf(o->new_name, sizeof(o->new_name), "%s",
		 json_string_value(v));
	return CTL_OK;
}

static int arg_compress(json_t *args, struct mig_opts *o,
			struct ctl_reply *r)
{
	json_t *v = json_object_get(args, "compress");

	o->enc = PAGE_ENC_NONE;
	if (v && (!json_is_string(v) ||
		  page_encoding_from_name(json_string_value(v), &o->enc) < 0))
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'compress' must be none, lz4 or zlib");
	return CTL_OK;
}

int mig_parse_args(json_t *args, struct mig_opts *o, struct ctl_reply *r)
{
	int code;

	o->max_downtime_ms = DEFAULT_DOWNTIME_MS;
	o->connections = 1;
	code = ctl_arg_bool(args, "insecure", false, &o->insecure, r);
	if (!code)
		code = ctl_arg_bool(args, "auto_converge", false,
				    &o->auto_converge, r);
	if (!code)
		code = ctl_arg_bool(args, "paused", false, &o->paused, r);
	if (!code)
		code = arg_uint(args, "max_downtime_ms", 1, 600000,
				&o->max_downtime_ms, r);
	if (!code)
		code = arg_uint(args, "bandwidth_mib", 0, 1000000,
				&o->bandwidth_mib, r);
	if (!code)
		code = arg_uint(args, "connections", 1, MIG_CONNECTIONS_MAX,
				&o->connections, r);
	if (!code)
		code = arg_compress(args, o, r);
	if (!code)
		code = arg_name(args, o, r);
	if (!code)
		code = arg_host(args, o, r);
	return code;
}
