/*
 * The livepatch-* control commands (docs/livepatch.md, "Control API").
 */
#include <fcntl.h>
#include <linux/membarrier.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buildinfo.h"
#include "commands.h"
#include "feature.h"
#include "livepatch/livepatch.h"
#include "livepatch/internal.h"
#include "log.h"
#include "openfile.h"
#include "trust/trust.h"

/* ------------------------------------------------------------ commands */

static int arg_name(json_t *args, struct ctl_reply *r, const char **out)
{
	const char *n = json_string_value(json_object_get(args, "name"));
	size_t i;

	if (!n || !*n || strlen(n) >= LP_NAME_MAX)
		return ctl_fail(r, CTL_EINVAL, "%s", "'name' must be a "
				"payload name (1-63 characters)");
	for (i = 0; n[i]; i++)
		if (!(n[i] == '-' || n[i] == '_' || n[i] == '.' ||
		      (n[i] >= '0' && n[i] <= '9') ||
		      ((n[i] | 0x20) >= 'a' && (n[i] | 0x20) <= 'z')))
			return ctl_fail(r, CTL_EINVAL, "%s", "'name' may "
					"hold letters, digits, '-', '_', '.'");
	*out = n;
	return CTL_OK;
}

static int arg_payload(json_t *args, struct ctl_reply *r,
		       struct payload **out)
{
	const char *n;
	int code = arg_name(args, r, &n);

	if (code)
		return code;
	*out = lp_find_payload(n);
	if (!*out)
		return ctl_fail(r, CTL_EINVAL, "no livepatch payload '%s'", n);
	return CTL_OK;
}

static long arg_timeout(json_t *args)
{
	json_t *v = json_object_get(args, "debug_pause_timeout_ms");

	return json_is_integer(v) ? (long)json_integer_value(v) : LP_PAUSE_MS;
}

static int reply_err(struct ctl_reply *r, const struct lp_err *e)
{
	return ctl_fail(r, e->code, "%s", e->msg);
}

static int do_upload(json_t *args, struct ctl_reply *r, struct payload **out)
{
	const char *name, *path, *sig;
	struct lp_err e = { 0 };
	struct payload *p;
	off_t size;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, code = arg_name(args, r, &name);

	if (code)
		return code;
	path = json_string_value(json_object_get(args, "path"));
	if (!path || path[0] != '/')
		return ctl_fail(r, CTL_EINVAL, "%s", "'path' must be an "
				"absolute path to a payload");
	if (trust_sig_arg(args, &sig, r))
		return CTL_EINVAL;
	if (lp_find_payload(name))
		return ctl_fail(r, CTL_EEXIST, "livepatch payload '%s' is "
				"already loaded", name);
	if (lp_nloaded == LP_MAX_PAYLOADS)
		return ctl_fail(r, CTL_ENORES, "%s", "too many payloads");
	if (lp_image_load(&e))
		return reply_err(r, &e);
	fd = open_regular(path, LP_MAX_FILE, &size, r->msg, sizeof(r->msg));
	if (fd < 0)
		return CTL_EINVAL;
	if (size <= 0 || !(buf = malloc(size))) {
		close(fd);
		return ctl_fail(r, CTL_EINVAL, "%s: not a regular file of "
				"1 byte to 64 MiB", path);
	}
	while (got < (size_t)size && (n = read(fd, buf + got, size - got)) > 0)
		got += n;
	close(fd);
	/* These very bytes are loaded: verified before any ELF parsing. */
	code = trust_check(SIG_PURPOSE_LIVEPATCH, buf, got, path, sig, r->msg,
			   sizeof(r->msg));
	if (code) {
		free(buf);
		return code;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		free(buf);
		return ctl_fail(r, CTL_ENORES, "%s", "out of memory");
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s", path);
	snprintf(p->sig_path, sizeof(p->sig_path), "%s", sig ? sig : "");
	p->meta = json_object();
	if (lp_payload_load(p, buf, got, &e)) {
		free(buf);
		lp_payload_free(p);
		log_warn("livepatch %s: refused: %s", name, e.msg);
		return reply_err(r, &e);
	}
	free(buf);
	/* Before any code of the payload runs (its load hooks). */
	if (lp_params_init(p, json_object_get(args, "params"), &e))
		goto refuse;
	/* On the daemon or on a payload we have; expected bytes as now. */
	if (lp_check_depends(p, true, &e)) {
		unsigned i;

		for (i = 0; i < lp_nloaded; i++)
			if (lp_build_id_eq(p->dep, p->dep_len, lp_loaded[i]->id,
					lp_loaded[i]->id_len))
				break;
		if (i == lp_nloaded)
			goto refuse;
	}
	if (!lp_napplied && lp_check_expect(p, &e))
		goto refuse;
	if (lp_run_hooks(p, H_LOAD, &e))
		goto refuse;
	if (!lp_membarrier_ok) {
		lp_membarrier_ok = !syscall(__NR_membarrier,
			MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
			0, 0);
		if (!lp_membarrier_ok)
			log_warn("livepatch: membarrier SYNC_CORE not "
				 "available (%s)", strerror(errno));
	}
	lp_loaded[lp_nloaded++] = p;
	log_info("livepatch %s: uploaded from %s (%u function%s, %u range%s, "
		 "%u parameter%s)", name, path, p->nfuncs,
		 p->nfuncs == 1 ? "" : "s", p->nranges,
		 p->nranges == 1 ? "" : "s", p->nparams,
		 p->nparams == 1 ? "" : "s");
	if (out)
		*out = p;
	return CTL_OK;
refuse:
	log_warn("livepatch %s: refused: %s", name, e.msg);
	lp_payload_free(p);
	return reply_err(r, &e);
}

static void drop_payload(struct payload *p)
{
	unsigned i;
	struct lp_err e;

	lp_run_hooks(p, H_UNLOAD, &e);
	for (i = 0; i < lp_nloaded; i++)
		if (lp_loaded[i] == p) {
			memmove(&lp_loaded[i], &lp_loaded[i + 1],
				(lp_nloaded - i - 1) * sizeof(lp_loaded[0]));
			lp_nloaded--;
			break;
		}
	lp_payload_free(p);
}

static int do_apply(struct payload *p, long timeout_ms, struct ctl_reply *r)
{
	struct lp_err e = { 0 };

	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is already applied",
				p->name);
	if (lp_check_depends(p, false, &e) || lp_check_expect(p, &e) ||
	    lp_switch_payload(p, true, timeout_ms, &e)) {
		log_warn("livepatch %s: apply refused: %s", p->name, e.msg);
		return reply_err(r, &e);
	}
	r->result = lp_last_pause_json();
	return CTL_OK;
}

int cmd_lp_upload(struct client *c, json_t *args, struct ctl_reply *r)
{
	return do_upload(args, r, NULL);
}

int cmd_lp_apply(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p;
	int code = arg_payload(args, r, &p);

	return code ? code : do_apply(p, arg_timeout(args), r);
}

int cmd_lp_load(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p;
	int code = do_upload(args, r, &p);

	if (code)
		return code;
	code = do_apply(p, arg_timeout(args), r);
	if (code)
		drop_payload(p);	/* as if never uploaded */
	return code;
}

int cmd_lp_revert(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct lp_err e = { 0 };
	struct payload *p;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (!p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is not applied", p->name);
	if (lp_applied[lp_napplied - 1] != p)
		return ctl_fail(r, CTL_ESTATE, "only the top of the stack "
				"(%s) can be reverted",
				lp_applied[lp_napplied - 1]->name);
	if (lp_switch_payload(p, false, arg_timeout(args), &e))
		return reply_err(r, &e);
	r->result = lp_last_pause_json();
	return CTL_OK;
}

int cmd_lp_replace(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct payload *p, *old[LP_MAX_PAYLOADS];
	struct lp_err e = { 0 };
	long t = arg_timeout(args);
	unsigned nold, i;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is already applied",
				p->name);
	/* Check it completely first: it goes straight onto the daemon. */
	if (lp_check_depends(p, true, &e))
		return reply_err(r, &e);
	nold = lp_napplied;
	memcpy(old, lp_applied, sizeof(old[0]) * nold);
	if (lp_check_expect_unpatched(p, &e))
		return reply_err(r, &e);
	if (lp_run_hooks(p, H_PREAPPLY, &e))
		return reply_err(r, &e);
	while (lp_napplied) {
		if (lp_switch_payload(lp_applied[lp_napplied - 1], false, t, &e))
			goto rollback;
	}
	if (lp_switch_payload(p, true, t, &e))
		goto rollback;
	log_info("livepatch %s: replaced %u payload%s", p->name, nold,
		 nold == 1 ? "" : "s");
	return CTL_OK;
rollback:
	{
		struct lp_err e2;

		for (i = lp_napplied; i < nold; i++)
			if (lp_switch_payload(old[i], true, LP_PAUSE_MS, &e2))
				log_err("livepatch: replace rollback: %s",
					e2.msg);
	}
	return reply_err(r, &e);
}

int cmd_lp_unload(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct lp_err e = { 0 };
	struct payload *p;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (p->applied)
		return ctl_fail(r, CTL_ESTATE, "%s is applied: revert it "
				"first", p->name);
	/* Code that ran on other threads may still be on their stacks. */
	if (p->ever_applied && lp_check_unused(p, &e))
		return reply_err(r, &e);
	log_info("livepatch %s: unloaded", p->name);
	drop_payload(p);
	return CTL_OK;
}

int cmd_lp_list(struct client *c, json_t *args, struct ctl_reply *r)
{
	json_t *arr = json_array();
	unsigned i, k;

	for (i = 0; i < lp_nloaded; i++) {
		struct payload *p = lp_loaded[i];
		char id[2 * LP_BUILD_ID_MAX + 1], dep[2 * LP_BUILD_ID_MAX + 1];
		json_t *funcs = json_array();
		int pos = -1;

		lp_hex(id, p->id, p->id_len);
		lp_hex(dep, p->dep, p->dep_len);
		for (k = 0; k < p->nfuncs; k++)
			json_array_append_new(funcs,
					      json_string(p->funcs[k].name));
		for (k = 0; k < lp_napplied; k++)
			if (lp_applied[k] == p)
				pos = k;
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:O, s:o}",
			"name", p->name,
			"state", p->applied ? "applied" : "checked",
			"build_id", id, "depends", dep, "path", p->path,
			"funcs", funcs, "ranges", lp_ranges_json(p),
			"params", lp_params_json(p), "metadata", p->meta,
			"stack_pos", pos >= 0 ? json_integer(pos) :
				     json_null()));
	}
	r->result = json_pack("{s:o, s:s, s:o}", "payloads", arr,
			      "daemon_build_id", build_id_hex(),
			      "applied", livepatch_applied_json());
	return CTL_OK;
}

int cmd_lp_set(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct lp_err e = { 0 };
	struct payload *p;
	int code = arg_payload(args, r, &p);

	if (code)
		return code;
	if (lp_params_set(p, json_object_get(args, "params"),
			  arg_timeout(args), &r->result, &e)) {
		log_warn("livepatch %s: set refused: %s", p->name, e.msg);
		return reply_err(r, &e);
	}
	return CTL_OK;
}

json_t *livepatch_applied_json(void)
{
	json_t *arr = json_array();
	unsigned i;

	for (i = 0; i < lp_napplied; i++)
		json_array_append_new(arr, json_string(lp_applied[i]->name));
	return arr;
}

static const struct ctl_command lp_commands[] = {
	{ "livepatch-upload", cmd_lp_upload },
	{ "livepatch-apply", cmd_lp_apply },
	{ "livepatch-revert", cmd_lp_revert },
	{ "livepatch-replace", cmd_lp_replace },
	{ "livepatch-unload", cmd_lp_unload },
	{ "livepatch-load", cmd_lp_load },
	{ "livepatch-list", cmd_lp_list },
	{ "livepatch-set", cmd_lp_set },
	{ NULL, NULL },
};

/* `info` lists the applied payloads, bottom of the stack first. */
static void lp_info(json_t *result)
{
	json_object_set_new(result, "livepatches", livepatch_applied_json());
}

static struct feature livepatch = {
	.name = "livepatch",
	.flag = "LIVEPATCH",
	.commands = lp_commands,
	.queries = (const char *const[]){ "livepatch-list", NULL },
	.info = lp_info,
};
FEATURE_REGISTER(livepatch)

