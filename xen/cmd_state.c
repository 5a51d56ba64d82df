/* The save and restore commands (docs/control-api.md). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "domain.h"
#include "log.h"
#include "openfile.h"
#include "pagepipe.h"
#include "quiesce.h"
#include "state.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int save_args(json_t *args, struct save_opts *o, const char **path,
		     struct ctl_reply *r)
{
	json_t *v;

	*path = json_string_value(json_object_get(args, "path"));
	if (!*path || (*path)[0] != '/')
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'path' must be an absolute file name");
	o->version = STREAM_VERSION;
	o->encoding = PAGE_ENC_NONE;
	v = json_object_get(args, "compress");
	if (v && (!json_is_string(v) ||
		  page_encoding_from_name(json_string_value(v),
					  &o->encoding) < 0))
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'compress' must be none, lz4 or zlib");
	v = json_object_get(args, "format_version");
	if (v) {
		if (!json_is_integer(v) ||
		    json_integer_value(v) < STREAM_VERSION_MIN ||
		    json_integer_value(v) > STREAM_VERSION)
			return ctl_fail(r, CTL_EINVAL,
					"'format_version' must be %s",
					STREAM_VERSION_MIN == 1 ? "1 or 2" : "");
		o->version = json_integer_value(v);
	}
	if (o->version < 2 && o->encoding != PAGE_ENC_NONE)
		return ctl_fail(r, CTL_EINVAL, "%s",
				"format version 1 has no compression");
	o->workers = state_default_workers();
	v = json_object_get(args, "workers");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > PAGE_PIPE_MAX_WORKERS)
			return ctl_fail(r, CTL_EINVAL,
					"'workers' must be 1 to %d",
					PAGE_PIPE_MAX_WORKERS);
		o->workers = json_integer_value(v);
	}
	return CTL_OK;
}

/* Refuse what is not a regular file without blocking on FIFOs or devices. */
static int open_stream(const char *path, struct ctl_reply *r)
{
	char why[400];
	int fd = open_regular(path, 0, NULL, why, sizeof(why));

	if (fd < 0)
		ctl_fail(r, CTL_EINVAL, "cannot read %s", why);
	return fd;
}

/*
 * The stream is written to a new file beside the target, PATH.tmp.XXXXXX
 * (mkostemp: O_EXCL, mode 0600, never through a link planted there), and
 * renamed over PATH once complete: a failed save leaves no partial file.
 */
#define SAVE_TMP_SUFFIX		".tmp.XXXXXX"

/* Refused before the domain is paused: what the save could not end in. */
static int check_target(const char *path, struct ctl_reply *r)
{
	struct stat sb;

	if (strlen(path) + sizeof(SAVE_TMP_SUFFIX) > PATH_MAX)
		return ctl_fail(r, CTL_EINVAL, "cannot write %.300s...: the "
				"path is longer than %zu bytes (the temporary "
				"file beside it needs %zu more)", path,
				PATH_MAX - sizeof(SAVE_TMP_SUFFIX),
				sizeof(SAVE_TMP_SUFFIX) - 1);
	if (lstat(path, &sb) < 0 || S_ISREG(sb.st_mode))
		return CTL_OK;
	if (S_ISDIR(sb.st_mode))
		return ctl_fail(r, CTL_EINVAL, "cannot write %.300s: %s", path,
				strerror(EISDIR));
	return ctl_fail(r, CTL_EINVAL, "cannot write %.300s: it exists and "
			"is not a regular file (%s)", path,
			S_ISLNK(sb.st_mode) ? "a symbolic link" :
			S_ISSOCK(sb.st_mode) ? "a socket" :
			S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device");
}

static int save_to_file(struct domain *dom, const char *path,
			const struct save_opts *o, struct save_stats *st,
			struct ctl_reply *r)
{
	char tmp[PATH_MAX];
	int fd, ret, code;

	snprintf(tmp, sizeof(tmp), "%s" SAVE_TMP_SUFFIX, path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ctl_fail(r, CTL_EINVAL, "cannot write %.300s: %s", path,
				strerror(errno));
	ret = state_save(dom, fd, o, st, r->msg, sizeof(r->msg));
	if (!ret && fsync(fd) < 0)
		ret = -1;
	if (close(fd) < 0)
		ret = -1;
	/* Checked again: the target may have been replaced meanwhile. */
	code = ret ? CTL_EINTERNAL : check_target(path, r);
	if (!code && rename(tmp, path) < 0)
		code = CTL_EINTERNAL;
	if (code) {
		if (!r->msg[0])
			snprintf(r->msg, sizeof(r->msg), "%s: %s", path,
				 strerror(errno));
		unlink(tmp);
	}
	return code;
}

/* A vCPU that does not park within this fails the save, guest running. */
#define SAVE_PARK_TIMEOUT_MS 5000

int cmd_save(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct save_stats st = { 0 };
	bool checkpoint = false;
	struct save_opts o = { 0 };
	struct quiesce q;
	struct domain *dom;
	const char *path;
	char err[128];
	double t0 = now_s(), paused_s;
	int code;

	code = ctl_arg_domain(args, r, &dom);
	if (!code)
		code = ctl_arg_bool(args, "checkpoint", false, &checkpoint, r);
	if (!code)
		code = save_args(args, &o, &path, r);
	if (code)
		return code;
	if (dom->state != DOM_RUNNING && dom->state != DOM_PAUSED)
		return ctl_fail(r, CTL_ESTATE, "domain is %s",
				dom_state_name(dom->state));
	code = check_target(path, r);
	if (code)
		return code;
	if (quiesce(&q, dom, SAVE_PARK_TIMEOUT_MS, err, sizeof(err)) < 0) {
		quiesce_resume(&q);
		return ctl_fail(r, CTL_EBUSY, "%s; nothing was saved", err);
	}
	code = save_to_file(dom, path, &o, &st, r);
	if (code || checkpoint) {
		quiesce_resume(&q);
	} else {
		quiesce_keep(&q);
		log_info("d%u: saved to %s; destroying it", dom->id, path);
		domain_destroy(dom);
	}
	paused_s = now_s() - t0;
	if (code)
		return code;
	r->result = json_pack("{s:I, s:I, s:I, s:f, s:i, s:s, s:i}",
			      "bytes", (json_int_t)st.bytes,
			      "pages", (json_int_t)st.pages,
			      "zero_pages", (json_int_t)st.zero_pages,
			      "seconds", paused_s,
			      "format_version", o.version,
			      "compress", page_encoding_name(o.encoding),
			      "workers", o.workers);
	return CTL_OK;
}

int cmd_restore(struct client *c, json_t *args, struct ctl_reply *r)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	json_t *name = json_object_get(args, "name");
	struct restore_opts o = {
		.rename = json_string_value(name),
		.ram_fd = -1,
	};
	struct stream_source src = { stream_fd_read, NULL };
	struct domain *dom;
	double t0 = now_s();
	int fd, code;

	if (ctl_arg_bool(args, "paused", false, &o.paused, r))
		return CTL_EINVAL;
	if (!path || path[0] != '/')
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'path' must be an absolute file name");
	if (name && (!json_is_string(name) ||
		     !domcfg_valid_name(json_string_value(name))))
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'name' must be 1-63 characters of [A-Za-z0-9_.-]");
	fd = open_stream(path, r);
	if (fd < 0)
		return CTL_EINVAL;
	src.opaque = &fd;
	code = ctl_code_from_errno(state_restore(src, &o, &dom, r->msg,
						 sizeof(r->msg)));
	close(fd);
	if (code) {
		log_err("restore from %s failed: %s", path, r->msg);
		return code;
	}
	log_info("d%u: restored '%s' from %s", dom->id, dom->name, path);
	r->result = json_pack("{s:i, s:s, s:f}", "id", dom->id, "name",
			      dom->name, "seconds", now_s() - t0);
	return CTL_OK;
}
