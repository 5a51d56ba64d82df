/*
 * The old image's half of a live update: park every vCPU, write the
 * handover stream into a memfd, keep the fds the new image needs open
 * across exec and exec it.  Any failure here resumes the guests as they
 * were: nothing has been handed over yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h"
#include "commands.h"
#include "control.h"
#include "dev/devices.h"
#include "domain.h"
#include "feature.h"
#include "kvm.h"
#include "livepatch/livepatch.h"
#include "liveupdate/ahead.h"
#include "liveupdate/lu.h"
#include "log.h"
#include "monotime.h"
#include "quiesce.h"
#include "state.h"

extern char **environ;

static struct daemon_opts dopts;

void lu_set_daemon_opts(const struct daemon_opts *o)
{
	dopts = *o;
}

static void set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC
				      : flags & ~FD_CLOEXEC);
}

/* A vCPU that does not park within this fails the update, guests running. */
#define LU_PARK_TIMEOUT_MS 5000

static int write_domain(struct stream_writer *w, struct domain *d)
{
	struct save_opts o = { .version = w->version, .no_memory = true };
	struct rec_domain_begin b = {
		.domid = d->id,
		.state = d->state,
		.ram_fd = d->mem.fd,
		.exit_code = d->exit_code,
		.shutdown_reason = d->shutdown_reason,
		.ram_bytes = d->mem.size,
	};

	if (stream_write_record(w, REC_DOMAIN_BEGIN, 0, &b, sizeof(b)) < 0 ||
	    state_save_domain(d, w, &o) < 0)
		return -1;
	return stream_write_record(w, REC_DOMAIN_END, 0, NULL, 0);
}

/*
 * The old KVM VM and vCPU fds.  Closing a VM costs tens of milliseconds,
 * so instead of letting exec close them inside the blackout they are
 * inherited and the new image closes them once the guests run again.
 */
static json_t *kvm_fds(void)
{
	json_t *fds = json_array();
	struct domain *d;
	unsigned i;

	for (d = domain_first(); d; d = d->next) {
		json_array_append_new(fds, json_integer(d->vm_fd));
		for (i = 0; i < d->nr_vcpus; i++)
			json_array_append_new(fds,
					      json_integer(d->vcpus[i].fd));
	}
	return fds;
}

json_t *lu_created_times(void)
{
	json_t *o = json_object();
	struct domain *d;
	char key[16];

	for (d = domain_first(); d; d = d->next) {
		snprintf(key, sizeof(key), "%u", d->id);
		json_object_set_new(o, key, json_integer(
			d->created.tv_sec * 1000000000LL + d->created.tv_nsec));
	}
	return o;
}

static json_t *handover_info(struct client *req, int old_fd,
			     const char *fail_phase, long long t_start,
			     long long t_quiesced)
{
	json_t *id, *h = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:i, s:I, s:I}",
			      "socket", control_socket_path(),
			      "state_dir", dopts.state_dir,
			      "log", dopts.log ? dopts.log : "",
			      "listen_fd", control_listen_fd(),
			      "old_image_fd", old_fd,
			      "old_build_id", build_id_hex(),
			      "next_domid", domain_next_id(),
			      "requester_fd", req ? control_client_fd(req) : -1,
			      "t_start_ns", (json_int_t)t_start,
			      "t_quiesced_ns", (json_int_t)t_quiesced);

	id = req ? control_client_request_id(req) : NULL;
	json_object_set(h, "requester_id", id ? id : json_null());
	json_object_set_new(h, "fail_phase",
			    fail_phase ? json_string(fail_phase) : json_null());
	json_object_set_new(h, "history", lu_status());
	json_object_set_new(h, "tsc_khz", json_integer(kvm_host.tsc_khz));
	json_object_set_new(h, "stale_fds", kvm_fds());
	json_object_set_new(h, "daemon_start_ns",
			    json_integer(daemon_start_ns()));
	json_object_set_new(h, "created_ns", lu_created_times());
	/* Applied payloads die with this process: the next image loads them
	 * again where they still apply (livepatch/carry_over.c). */
	json_object_set_new(h, "livepatches", livepatch_handover_json());
	return h;
}

/* Each connection, with the input it sent that was not served yet. */
int lu_write_client(const struct ctl_client_state *s, void *opaque)
{
	struct rec_client rc = {
		.fd = s->fd,
		.console_domid = s->console_domid,
		.console_pos = s->console_pos,
	};

	return stream_write_record2(opaque, REC_CLIENT, 0, &rc, sizeof(rc),
				    s->input, s->input_len);
}

static int write_handover(int fd, unsigned version, json_t *info)
{
	struct stream_writer w;
	struct domain *d;
	uint8_t bid[20];
	unsigned bid_len = build_id_bytes(bid, sizeof(bid));
	char *text = json_dumps(info, JSON_COMPACT);
	int ret = -1;

	if (!text || stream_writer_open(&w, fd, version, XEN_VERSION, bid,
					bid_len) < 0)
		goto out;
	w.handover = true;
	if (stream_write_record(&w, REC_HANDOVER, 0, text, strlen(text)) < 0)
		goto fail;
	for (d = domain_first(); d; d = d->next)
		if (write_domain(&w, d) < 0)
			goto fail;
	if (control_export_clients(lu_write_client, &w) < 0 ||
	    stream_writer_finish(&w) < 0)
		goto out;
	ret = 0;
	goto out;
fail:
	stream_writer_free(&w);
out:
	free(text);
	return ret;
}

static void keep_device_fd(int fd, void *keep)
{
	set_cloexec(fd, !*(bool *)keep);
}

void lu_domain_fds(void (*fn)(int fd, void *arg), void *arg)
{
	struct domain *d;

	for (d = domain_first(); d; d = d->next) {
		fn(d->mem.fd, arg);
		devices_for_each_fd(d, fn, arg);
	}
	feature_handover_fds(fn, arg);	/* listeners, same numbers */
}

/* The fds the new image inherits: everything else stays close-on-exec. */
static void keep_fds_open(bool keep, int hfd, int old_fd)
{
	struct domain *d;

	unsigned i;

	for (d = domain_first(); d; d = d->next) {
		devices_for_each_fd(d, keep_device_fd, &keep);
		set_cloexec(d->mem.fd, !keep);
		set_cloexec(d->vm_fd, !keep);
		for (i = 0; i < d->nr_vcpus; i++)
			set_cloexec(d->vcpus[i].fd, !keep);
	}
	feature_handover_fds(keep_device_fd, &keep);
	control_set_cloexec(!keep);
	set_cloexec(hfd, !keep);
	set_cloexec(old_fd, !keep);
}

const char *lu_state_dir(void)
{
	return dopts.state_dir;
}

const char *lu_socket_group(void)
{
	return dopts.socket_group;
}

unsigned lu_image_argv(char **argv, const char *path)
{
	unsigned i = 0;

	argv[i++] = (char *)path;
	argv[i++] = "--socket";
	argv[i++] = (char *)control_socket_path();
	argv[i++] = "--state-dir";
	argv[i++] = (char *)dopts.state_dir;
	if (dopts.log) {
		argv[i++] = "--log";
		argv[i++] = (char *)dopts.log;
	} else {
		argv[i++] = "--foreground";	/* keep logging to stderr */
	}
	i += feature_carry_options(argv + i, 16);	/* --trusted-keys */
	if (dopts.no_sandbox)
		argv[i++] = "--no-sandbox";
	/* Only when given: an image without the option can still take over. */
	if (dopts.socket_group) {
		argv[i++] = "--socket-group";
		argv[i++] = (char *)dopts.socket_group;
	}
	if (dopts.client_idle_s) {
		argv[i++] = "--client-idle-timeout";
		argv[i++] = (char *)dopts.client_idle_s;
	}
	if (dopts.console_limit) {
		argv[i++] = "--console-limit";
		argv[i++] = (char *)dopts.console_limit;
	}
	if (dopts.mem_path) {
		argv[i++] = "--mem-path";
		argv[i++] = (char *)dopts.mem_path;
	}
	return i;
}

static int exec_image(const struct lu_image *img, int hfd, int old_fd,
		      const char *mode, long long t_exec)
{
	char fdbuf[16], tbuf[32], oldbuf[16];
	char *argv[48];
	unsigned i;

	snprintf(fdbuf, sizeof(fdbuf), "%d", hfd);
	snprintf(oldbuf, sizeof(oldbuf), "%d", old_fd);
	snprintf(tbuf, sizeof(tbuf), "%lld", t_exec);
	i = lu_image_argv(argv, img->path);
	argv[i++] = (char *)mode;
	argv[i++] = fdbuf;
	argv[i++] = "--lu-old-image-fd";
	argv[i++] = oldbuf;
	argv[i++] = "--lu-exec-ns";
	argv[i++] = tbuf;
	argv[i] = NULL;
	fexecve(img->fd, argv, environ);
	return -1;
}

/* Dry run: the staged image parses the handover in a child process. */
static int dry_run(const struct lu_image *img, int hfd, struct ctl_reply *r)
{
	char out[2048] = "";
	size_t len = 0;
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ctl_fail(r, CTL_EINTERNAL, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		bool keep = true;
		struct domain *d;

		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		set_cloexec(hfd, false);
		/* The check adopts the disks and taps as the update would. */
		for (d = domain_first(); d; d = d->next)
			devices_for_each_fd(d, keep_device_fd, &keep);
		exec_image(img, hfd, -1, "--handover-check", 0);
		_exit(127);
	}
	close(pipefd[1]);
	while (pid > 0 && len < sizeof(out) - 1 &&
	       (n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += n;
	out[len] = '\0';
	close(pipefd[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return ctl_fail(r, CTL_EINTERNAL, "fork: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return ctl_fail(r, CTL_EINVAL, "dry run failed: %s", out);
	r->result = json_pack("{s:s, s:s, s:s}", "result", "dry-run-ok",
			      "image", img->path, "report", out);
	return CTL_OK;
}

int lu_exec(struct client *requester, const char *fail_phase, bool dry,
	    enum lu_mode mode, struct ctl_reply *r)
{
	const struct lu_image *img = lu_staged();
	long long t_start = now_ns(), t_quiesced;
	int version, hfd = -1, old_fd = -1, code = CTL_EINTERNAL;
	struct quiesce q;
	json_t *info;
	char err[256];

	if (!img)
		return ctl_fail(r, CTL_ESTATE, "%s",
				"no image is staged: xl live-update load IMAGE");
	version = lu_handover_version(img, err, sizeof(err));
	if (version < 0)
		return ctl_fail(r, CTL_EINVAL, "%s", err);
	if (mode == LU_MODE_AHEAD && !(img->features & XKVM_CAN_BUILD_AHEAD)) {
		/* An older image: it would not know --lu-build-ahead. */
		if (fail_phase && lu_phase_ahead_only(fail_phase))
			return ctl_fail(r, CTL_EINVAL, "phase '%s' exists only "
					"in mode build-ahead, and %s cannot "
					"be built ahead (no build-ahead note)",
					fail_phase, img->path);
		log_info("live update: %s has no build-ahead note: updating "
			 "by re-exec", img->path);
		mode = LU_MODE_REEXEC;
	}
	if (mode == LU_MODE_AHEAD && !dry)
		return lu_ahead_exec(requester, img, version, fail_phase, r);
	if (quiesce(&q, NULL, LU_PARK_TIMEOUT_MS, err, sizeof(err)) < 0) {
		code = ctl_fail(r, CTL_EBUSY, "quiesce: %s", err);
		goto resume;
	}
	t_quiesced = now_ns();
	if (fail_phase && !strcmp(fail_phase, "quiesce")) {
		ctl_fail(r, CTL_EINTERNAL, "%s", "injected failure in phase quiesce");
		goto resume;
	}
	hfd = memfd_create("xkvm-handover", MFD_CLOEXEC);
	old_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	info = handover_info(dry ? NULL : requester, old_fd, fail_phase,
			     t_start, t_quiesced);
	if (hfd < 0 || old_fd < 0 || write_handover(hfd, version, info) < 0 ||
	    (fail_phase && !strcmp(fail_phase, "save"))) {
		json_decref(info);
		ctl_fail(r, CTL_EINTERNAL, "writing the handover failed%s",
			 fail_phase && !strcmp(fail_phase, "save") ?
			 " (injected failure in phase save)" : "");
		goto resume;
	}
	json_decref(info);
	if (dry) {
		quiesce_resume(&q);
		code = dry_run(img, hfd, r);
		goto out;
	}
	log_info("live update: handing %u domain(s) to %s (build-id %s), stream v%d",
		 domain_count(), img->path, img->build_id, version);
	keep_fds_open(true, hfd, old_fd);
	if (!fail_phase || strcmp(fail_phase, "exec"))
		exec_image(img, hfd, old_fd, "--handover", now_ns());
	/* Still here: exec failed, nothing was handed over. */
	keep_fds_open(false, hfd, old_fd);
	ctl_fail(r, CTL_EINTERNAL, "exec of %s failed: %s", img->path,
		 fail_phase ? "injected failure in phase exec" : strerror(errno));
resume:
	quiesce_resume(&q);
out:
	if (hfd >= 0)
		close(hfd);
	if (old_fd >= 0)
		close(old_fd);
	if (code != CTL_OK && !dry) {
		log_err("live update failed, guests resumed: %s", r->msg);
		lu_set_last_result(json_pack("{s:s, s:s, s:s}", "result",
					     "failed", "reason", r->msg,
					     "image", img->path));
	}
	return code;
}
