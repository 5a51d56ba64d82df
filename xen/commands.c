/* The control API's commands (docs/control-api.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h"
#include "commands.h"
#include "control.h"
#include "domain.h"
#include "feature.h"
#include "kvm.h"
#include "log.h"
#include "memory.h"

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) / 1e9;
}

int ctl_fail(struct ctl_reply *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return code;
}

int ctl_code_from_errno(int err)
{
	switch (err) {
	case 0:
		return CTL_OK;
	case -EINVAL:
		return CTL_EINVAL;
	case -EEXIST:
		return CTL_EEXIST;
	case -ENOMEM:
	case -ENOSPC:
		return CTL_ENORES;
	case -ENOEXEC:
		return CTL_EKERNEL;
	case -EBUSY:
	case -ETIMEDOUT:
		return CTL_EBUSY;
	default:
		return CTL_EINTERNAL;
	}
}

/* Resolve args.domain (an id or a name) to a domain. */
int ctl_arg_domain(json_t *args, struct ctl_reply *r, struct domain **out)
{
	json_t *v = json_object_get(args, "domain");
	char buf[32];
	const char *key;

	if (json_is_integer(v)) {
		/* A JSON number is always an id, never a name. */
		*out = json_integer_value(v) > 0 &&
		       json_integer_value(v) <= 0xffffffffLL ?
		       domain_by_id(json_integer_value(v)) : NULL;
		snprintf(buf, sizeof(buf), "%lld",
			 (long long)json_integer_value(v));
		if (!*out)
			return ctl_fail(r, CTL_ENODOM, "no domain with id %s",
					buf);
		return CTL_OK;
	} else if (json_is_string(v)) {
		key = json_string_value(v);
	} else {
		return ctl_fail(r, CTL_EINVAL, "%s",
			    "'domain' must be a domain id or name");
	}
	*out = domain_lookup(key);
	if (!*out)
		return ctl_fail(r, CTL_ENODOM, "no domain '%.200s'", key);
	return CTL_OK;
}

int ctl_arg_bool(json_t *args, const char *key, bool dflt, bool *out,
		 struct ctl_reply *r)
{
	json_t *v = json_object_get(args, key);

	if (!v || json_is_null(v)) {
		*out = dflt;
		return CTL_OK;
	}
	if (!json_is_boolean(v))
		return ctl_fail(r, CTL_EINVAL, "'%s' must be true or false",
				key);
	*out = json_is_true(v);
	return CTL_OK;
}

static json_t *version_object(void)
{
	return json_pack("{s:s, s:s, s:i, s:i, s:i}",
			 "hypervisor", XEN_VERSION, "build_id", build_id_hex(),
			 "protocol", CTL_PROTOCOL_MAX,
			 "protocol_min", CTL_PROTOCOL_MIN,
			 "protocol_max", CTL_PROTOCOL_MAX);
}

static int cmd_version(struct client *c, json_t *args, struct ctl_reply *r)
{
	r->result = version_object();
	return CTL_OK;
}

static int cmd_info(struct client *c, json_t *args, struct ctl_reply *r)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	json_t *features = json_array();
	const struct feature *f;
	unsigned i;

	for (i = 0; build_features[i]; i++)
		json_array_append_new(features, json_string(build_features[i]));
	for (f = feature_first(); f; f = f->next)
		if (f->flag)
			json_array_append_new(features, json_string(f->flag));
	r->result = version_object();
	json_object_set_new(r->result, "features", features);
	json_object_set_new(r->result, "uptime_s", json_real(daemon_uptime()));
	json_object_set_new(r->result, "domains", json_integer(domain_count()));
	json_object_set_new(r->result, "pid", json_integer(getpid()));
	json_object_set_new(r->result, "host",
			    json_pack("{s:i, s:I, s:i, s:i}",
				      "nr_cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
				      "memory_mib",
				      (json_int_t)pages * psz >> 20,
				      "kvm_api", kvm_host.api_version,
				      "tsc_khz", kvm_host.tsc_khz));
	json_object_set_new(r->result, "mem_path", guest_mem_dir() ?
			    json_string(guest_mem_dir()) : json_null());
	for (f = feature_first(); f; f = f->next)
		if (f->info)
			f->info(r->result);
	return CTL_OK;
}

static json_t *domain_object(struct domain *d)
{
	json_t *o = domcfg_to_json(&d->cfg);
	const char *why = dom_event_name(d->shutdown_reason);

	json_object_set_new(o, "id", json_integer(d->id));
	json_object_set_new(o, "name", json_string(d->name));
	json_object_set_new(o, "state", json_string(dom_state_name(d->state)));
	json_object_set_new(o, "memory_mib", json_integer(d->cfg.memory_mib));
	json_object_set_new(o, "cpu_time_s", json_real(domain_cpu_time(d)));
	json_object_set_new(o, "uptime_s", json_real(since(&d->created)));
	json_object_set_new(o, "exit_code", d->exit_code >= 0 ?
			    json_integer(d->exit_code) : json_null());
	json_object_set_new(o, "shutdown_reason",
			    why ? json_string(why) : json_null());
	return o;
}

static int cmd_list(struct client *c, json_t *args, struct ctl_reply *r)
{
	json_t *arr = json_array();
	struct domain *d;

	for (d = domain_first(); d; d = d->next)
		json_array_append_new(arr, domain_object(d));
	r->result = json_pack("{s:o}", "domains", arr);
	return CTL_OK;
}

static int cmd_create(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domcfg cfg;
	struct domain *dom;
	bool paused = false;
	int code = ctl_arg_bool(args, "paused", false, &paused, r);

	if (code)
		return code;
	domcfg_init(&cfg);
	if (domcfg_from_json(json_object_get(args, "config"), &cfg, r->msg,
			     sizeof(r->msg)) < 0) {
		domcfg_free(&cfg);
		return CTL_EINVAL;
	}
	/* Chosen once: the config keeps it through save, restore, migration */
	code = domcfg_vif_fill_mac(&cfg);
	if (code) {
		domcfg_free(&cfg);
		return ctl_fail(r, CTL_EINTERNAL, "cannot pick a MAC "
				"address: %s", strerror(-code));
	}
	code = ctl_code_from_errno(domain_create(&cfg, paused, &dom, r->msg,
						 sizeof(r->msg)));
	domcfg_free(&cfg);
	if (code)
		return code;
	r->result = json_pack("{s:i, s:s}", "id", dom->id, "name", dom->name);
	return CTL_OK;
}

static int cmd_destroy(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	domain_destroy(dom);
	return CTL_OK;
}

static int cmd_pause(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	if (domain_pause(dom) < 0)
		return ctl_fail(r, CTL_ESTATE, "domain is %s, not running",
			    dom_state_name(dom->state));
	return CTL_OK;
}

static int cmd_unpause(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	if (domain_unpause(dom) < 0)
		return ctl_fail(r, CTL_ESTATE, "domain is %s, not paused",
			    dom_state_name(dom->state));
	return CTL_OK;
}

static int end_domain(json_t *args, struct ctl_reply *r, enum dom_event ev)
{
	struct domain *dom;
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	if (dom->state != DOM_RUNNING && dom->state != DOM_PAUSED)
		return ctl_fail(r, CTL_ESTATE, "domain is %s already",
			    dom_state_name(dom->state));
	domain_end(dom, ev);
	return CTL_OK;
}

static int cmd_reboot(struct client *c, json_t *args, struct ctl_reply *r)
{
	return end_domain(args, r, DOM_EV_REBOOT);
}

static int cmd_console(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	bool history = true;
	uint64_t pos;
	int code = ctl_arg_domain(args, r, &dom);

	if (!code)
		code = ctl_arg_bool(args, "history", true, &history, r);
	if (code)
		return code;
	pthread_mutex_lock(&dom->console_lock);
	pos = history ? ring_start(&dom->console) : dom->console.total;
	pthread_mutex_unlock(&dom->console_lock);
	control_client_console(c, dom->id, pos);
	return CTL_OK;
}

/* Bytes as code points U+0000..U+00FF, so any byte survives JSON. */
static json_t *latin1_string(const unsigned char *p, size_t n)
{
	char *u = malloc(n * 2 + 1);
	size_t i, j = 0;
	json_t *s;

	if (!u)
		return NULL;
	for (i = 0; i < n; i++) {
		if (p[i] < 0x80) {
			u[j++] = p[i];
		} else {
			u[j++] = 0xc0 | (p[i] >> 6);
			u[j++] = 0x80 | (p[i] & 0x3f);
		}
	}
	s = json_stringn(u, j);
	free(u);
	return s;
}

static int cmd_console_read(struct client *c, json_t *args,
			    struct ctl_reply *r)
{
	struct domain *dom;
	unsigned char *buf;
	uint64_t pos = 0, total;
	size_t n;
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	buf = malloc(dom->console.size);
	if (!buf)
		return ctl_fail(r, CTL_ENORES, "%s", "out of memory");
	pthread_mutex_lock(&dom->console_lock);
	n = ring_read(&dom->console, &pos, buf, dom->console.size);
	total = dom->console.total;
	pthread_mutex_unlock(&dom->console_lock);
	r->result = json_pack("{s:o, s:s, s:I}", "data", latin1_string(buf, n),
			      "encoding", "latin1", "total", (json_int_t)total);
	free(buf);
	return CTL_OK;
}

static int cmd_dmesg(struct client *c, json_t *args, struct ctl_reply *r)
{
	size_t len;
	bool clear = false;
	char *log;

	if (ctl_arg_bool(args, "clear", false, &clear, r))
		return CTL_EINVAL;
	log = log_snapshot(&len);
	if (!log)
		return ctl_fail(r, CTL_ENORES, "%s", "out of memory");
	r->result = json_pack("{s:o}", "log",
			      latin1_string((unsigned char *)log, len));
	free(log);
	if (clear) {
		log_clear();
		r->audit = true;
	}
	return CTL_OK;
}

static const struct {
	const char *name;
	ctl_handler fn;
	bool query;		/* only answers: not audited */
} commands[] = {
	{ "version", cmd_version, true },
	{ "info", cmd_info, true },
	{ "list", cmd_list, true },
	{ "create", cmd_create, false },
	{ "destroy", cmd_destroy, false },
	{ "pause", cmd_pause, false },
	{ "unpause", cmd_unpause, false },
	{ "shutdown", cmd_shutdown, false },
	{ "reboot", cmd_reboot, false },
	{ "trigger", cmd_trigger, false },
	{ "console", cmd_console, false },
	{ "console-read", cmd_console_read, true },
	{ "dmesg", cmd_dmesg, true },	/* audited with clear (it says so) */
	{ "save", cmd_save, false },
	{ "restore", cmd_restore, false },
};

/* "name", or "prefix-*" for every command so begun. */
static bool command_matches(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);

	if (n && pattern[n - 1] == '*')
		return !strncmp(pattern, name, n - 1);
	return !strcmp(pattern, name);
}

static bool feature_query(const struct feature *f, const char *name)
{
	const char *const *q;

	for (q = f->queries; q && *q; q++)
		if (!strcmp(*q, name))
			return true;
	return false;
}

/* The core's commands, then the features'. */
ctl_handler ctl_find_command(const char *name, bool *query)
{
	const struct feature *f;
	const struct ctl_command *fc;
	unsigned i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(commands[i].name, name)) {
			*query = commands[i].query;
			return commands[i].fn;
		}
	}
	for (f = feature_first(); f; f = f->next) {
		for (fc = f->commands; fc && fc->name; fc++) {
			if (command_matches(fc->name, name)) {
				*query = feature_query(f, name);
				return fc->fn;
			}
		}
	}
	return NULL;
}
