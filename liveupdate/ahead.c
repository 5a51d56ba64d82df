/*
 * The old image's half of a build-ahead live update (ahead.h): start the
 * staged image as a separate process, give it what it needs to build
 * every domain while the guests run here, then park, send the small
 * state, and hand the control socket over once it says every guest runs.
 * Until then nothing here is torn down: on any failure the new process is
 * killed and the guests simply go on here.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buildinfo.h"
#include "commands.h"
#include "control.h"
#include "domain.h"
#include "kvm.h"
#include "livepatch/livepatch.h"
#include "liveupdate/ahead.h"
#include "liveupdate/ahead_save.h"
#include "liveupdate/lu.h"
#include "log.h"
#include "monotime.h"
#include "quiesce.h"
#include "state.h"

extern char **environ;

#define LU_PARK_TIMEOUT_MS	5000
#define MAX_KEEP_FDS		1024

struct ahead {
	struct client *req;
	const struct lu_image *img;
	unsigned version;
	const char *fail;
	int sock;
	pid_t pid;
	struct quiesce q;
	bool parked;
	bool started;		/* the new image said STARTING */
	long long t_start, t_spawn, t_blackout, t_quiesced;
	struct stream_writer w;		/* the state, written as they park */
	struct lu_saver saver;		/* ... by domain, in parallel */
	int keep[MAX_KEEP_FDS];
	unsigned nr_keep;
	/* The control connections handed over, by their fd here. */
	int *client_fds;
	unsigned nr_clients, cap_clients;
	char err[1024];
	int code;		/* CTL_EINTERNAL: failed here; ROLLEDBACK */
};

static bool fail_here(struct ahead *a, const char *phase)
{
	return a->fail && !strcmp(a->fail, phase);
}

static void note_keep(int fd, void *arg)
{
	struct ahead *a = arg;

	if (fd >= 0 && a->nr_keep < MAX_KEEP_FDS)
		a->keep[a->nr_keep++] = fd;
}

/*
 * The child: its own session, so that it does not share the old image's
 * fate (a terminal's hangup, a signal to the process group); the fds the
 * domains' records name stay open at their numbers (the records stay
 * valid, whichever image reads them), every other fd closes at exec.
 */
static void child(struct ahead *a, int sock, char **argv)
{
	sigset_t all;
	unsigned i;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	for (i = 0; i < a->nr_keep; i++)
		fcntl(a->keep[i], F_SETFD, 0);
	fcntl(sock, F_SETFD, 0);
	fexecve(a->img->fd, argv, environ);
	_exit(127);
}

static int spawn(struct ahead *a)
{
	char sbuf[16], tbuf[32];
	char *argv[48];
	int sv[2];
	unsigned i;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(a->err, sizeof(a->err), "socketpair: %s",
			 strerror(errno));
		return -1;
	}
	lu_domain_fds(note_keep, a);
	snprintf(sbuf, sizeof(sbuf), "%d", sv[1]);
	a->t_spawn = now_ns();
	snprintf(tbuf, sizeof(tbuf), "%lld", a->t_spawn);
	i = lu_image_argv(argv, a->img->path);
	argv[i++] = "--lu-build-ahead";
	argv[i++] = sbuf;
	argv[i++] = "--lu-exec-ns";
	argv[i++] = tbuf;
	argv[i] = NULL;
	a->pid = fork();
	if (a->pid == 0)
		child(a, sv[1], argv);
	close(sv[1]);
	if (a->pid < 0) {
		snprintf(a->err, sizeof(a->err), "fork: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	a->sock = sv[0];
	return 0;
}

static json_t *prologue_info(struct ahead *a)
{
	json_t *h = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}",
			      "socket", control_socket_path(),
			      "state_dir", lu_state_dir(),
			      "old_build_id", build_id_hex(),
			      "next_domid", domain_next_id(),
			      "t_start_ns", (json_int_t)a->t_start,
			      "t_spawn_ns", (json_int_t)a->t_spawn);

	json_object_set_new(h, "fail_phase",
			    a->fail ? json_string(a->fail) : json_null());
	json_object_set_new(h, "history", lu_status());
	json_object_set_new(h, "tsc_khz", json_integer(kvm_host.tsc_khz));
	json_object_set_new(h, "daemon_start_ns",
			    json_integer(daemon_start_ns()));
	json_object_set_new(h, "created_ns", lu_created_times());
	json_object_set_new(h, "livepatches", livepatch_handover_json());
	return h;
}

static int open_memfd_stream(struct ahead *a, const char *name,
			     struct stream_writer *w, json_t *info)
{
	uint8_t bid[20];
	unsigned bid_len = build_id_bytes(bid, sizeof(bid));
	char *text = json_dumps(info, JSON_COMPACT);
	int fd = memfd_create(name, MFD_CLOEXEC);

	json_decref(info);
	if (fd < 0 || !text ||
	    stream_writer_open(w, fd, a->version, XEN_VERSION, bid,
			       bid_len) < 0) {
		free(text);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	w->handover = true;
	if (stream_write_record(w, REC_HANDOVER, 0, text, strlen(text)) < 0) {
		stream_writer_free(w);
		close(fd);
		fd = -1;
	}
	free(text);
	return fd;
}

static int begin_domain(struct stream_writer *w, struct domain *d)
{
	struct rec_domain_begin b = {
		.domid = d->id,
		.state = d->state,
		.ram_fd = d->mem.fd,
		.exit_code = d->exit_code,
		.shutdown_reason = d->shutdown_reason,
		.ram_bytes = d->mem.size,
	};

	return stream_write_record(w, REC_DOMAIN_BEGIN, 0, &b, sizeof(b));
}

/* One domain's records: those the build needs, or (!prologue) the rest. */
static int write_domain(struct stream_writer *w, struct domain *d,
			bool prologue)
{
	if (begin_domain(w, d) < 0)
		return -1;
	if ((prologue ? state_save_prologue(d, w) : state_save_epilogue(d, w)) < 0)
		return -1;
	return stream_write_record(w, REC_DOMAIN_END, 0, NULL, 0);
}

/* While the guests run: what the new image builds every domain from. */
static int send_prologue(struct ahead *a)
{
	struct stream_writer w;
	struct domain *d;
	int fd, ret = -1;

	fd = open_memfd_stream(a, "xkvm-lu-prologue", &w, prologue_info(a));
	if (fd < 0)
		goto out;
	for (d = domain_first(); d; d = d->next)
		if (write_domain(&w, d, true) < 0) {
			stream_writer_free(&w);
			goto out;
		}
	if (stream_writer_finish(&w) < 0)
		goto out;
	ret = lu_msg_send(a->sock, LU_MSG_PROLOGUE, NULL, 0, &fd, 1);
	if (ret < 0)
		snprintf(a->err, sizeof(a->err), "the new image went away: %s",
			 strerror(errno));
out:
	if (ret < 0 && !a->err[0])
		snprintf(a->err, sizeof(a->err), "writing the prologue failed: "
			 "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * The state to the new image.  The times go in the message's text (JSON:
 * t_blackout_ns, t_quiesced_ns, t_saved_ns), written last.
 */
static int send_state(struct ahead *a, int fd)
{
	char text[160];
	int len;

	len = snprintf(text, sizeof(text), "{\"t_blackout_ns\": %lld, "
		       "\"t_quiesced_ns\": %lld, \"t_saved_ns\": %lld}",
		       a->t_blackout, a->t_quiesced, now_ns());
	if (lu_msg_send(a->sock, LU_MSG_EPILOGUE, text, len, &fd, 1) < 0) {
		snprintf(a->err, sizeof(a->err), "the new image went away: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int write_epilogue(struct stream_writer *w, struct domain *d)
{
	return write_domain(w, d, false);
}

/* quiesce_each(): a domain is parked, a saver thread writes its state. */
static int save_parked(struct domain *d, void *arg)
{
	struct ahead *a = arg;

	a->t_quiesced = now_ns();	/* the last call's: all parked */
	return lu_saver_add(&a->saver, d) < 0 ? -EIO : 0;
}

/* One saver thread per CPU beside this one, when there is work for it. */
static unsigned saver_threads(void)
{
	unsigned n = 0, cpus = state_default_workers();
	struct domain *d;

	for (d = domain_first(); d; d = d->next)
		n++;
	return n > 1 ? (cpus < n ? cpus : n) : 0;
}

/*
 * The blackout, this image's part: park every vCPU, writing each
 * domain's state as soon as it is parked, while the others still park
 * (quiesce_each()); then pass the state.  Its message's text holds the
 * times (blackout_steps_ms), known only once the stream is written.
 */
static int park_and_save(struct ahead *a)
{
	char why[256];
	int fd, ret = -1;

	fd = open_memfd_stream(a, "xkvm-lu-epilogue", &a->w, json_object());
	if (fd < 0) {
		snprintf(a->err, sizeof(a->err), "writing the state failed: "
			 "%s", strerror(errno));
		return -1;
	}
	lu_saver_start(&a->saver, &a->w, write_epilogue, saver_threads());
	a->t_blackout = now_ns();
	ret = quiesce_each(&a->q, LU_PARK_TIMEOUT_MS, save_parked, a, why,
			   sizeof(why));
	a->parked = true;	/* whatever is held resumes on failure */
	if (!ret && lu_saver_finish(&a->saver, &a->w) < 0)
		ret = -EIO;
	else if (ret)
		lu_saver_abort(&a->saver);
	if (ret) {
		stream_writer_free(&a->w);
		if (ret == -EIO)
			snprintf(a->err, sizeof(a->err), "writing the state "
				 "failed: %s", strerror(errno));
		else
			snprintf(a->err, sizeof(a->err), "quiesce: %s", why);
		goto out;
	}
	ret = -1;
	if (fail_here(a, "quiesce")) {
		stream_writer_free(&a->w);
		snprintf(a->err, sizeof(a->err),
			 "injected failure in phase quiesce");
		goto out;
	}
	if (stream_writer_finish(&a->w) < 0) {
		snprintf(a->err, sizeof(a->err), "writing the state failed: "
			 "%s", strerror(errno));
		goto out;
	}
	if (fail_here(a, "save")) {
		snprintf(a->err, sizeof(a->err), "writing the state failed "
			 "(injected failure in phase save)");
		goto out;
	}
	ret = send_state(a, fd);
out:
	close(fd);
	return ret;
}

/* What became of the new process, for the reason. */
static void child_gone(struct ahead *a, const char *when, int err)
{
	int st;

	if (err == ETIMEDOUT) {
		snprintf(a->err, sizeof(a->err), "the new image did not answer "
			 "%s in time", when);
		return;
	}
	kill(a->pid, SIGKILL);
	if (waitpid(a->pid, &st, 0) == a->pid) {
		a->pid = -1;
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			snprintf(a->err, sizeof(a->err), "the new image "
				 "crashed (signal %d, %s) %s", WTERMSIG(st),
				 strsignal(WTERMSIG(st)), when);
		else if (WIFEXITED(st))
			snprintf(a->err, sizeof(a->err), "the new image exited "
				 "with status %d %s", WEXITSTATUS(st), when);
		else
			snprintf(a->err, sizeof(a->err), "the new image died "
				 "%s", when);
		return;
	}
	snprintf(a->err, sizeof(a->err), "the new image went away %s: %s",
		 when, strerror(err));
}

/* The answer `want` from the new image, or why not (a->err). */
static int expect(struct ahead *a, uint32_t want, int timeout_ms,
		  const char *when, struct lu_msg *m)
{
	if (lu_msg_recv(a->sock, m, timeout_ms) < 0) {
		child_gone(a, when, errno);
		return -1;
	}
	lu_msg_close_fds(m);
	if (m->type == LU_MSG_ERR) {
		snprintf(a->err, sizeof(a->err), "%.1000s", m->text);
		return -1;
	}
	if (m->type != want) {
		snprintf(a->err, sizeof(a->err), "the new image said %s, not %s",
			 lu_msg_name(m->type), lu_msg_name(want));
		return -1;
	}
	return 0;
}

/* ---- the handoff, once the guests run on the new image */

static int note_client(const struct ctl_client_state *s, void *opaque)
{
	struct ahead *a = opaque;

	if (a->nr_clients == a->cap_clients) {
		unsigned cap = a->cap_clients ? 2 * a->cap_clients : 32;
		int *p = realloc(a->client_fds, cap * sizeof(*p));

		if (!p)
			return -1;
		a->client_fds = p;
		a->cap_clients = cap;
	}
	a->client_fds[a->nr_clients++] = s->fd;
	return 0;
}

/* The listener and every connection, LU_MSG_MAX_FDS at a time. */
static int send_fds(struct ahead *a)
{
	int fds[LU_MSG_MAX_FDS];
	unsigned i = 0, n = 0;

	if (control_export_clients(note_client, a) < 0)
		return -1;
	fds[n++] = control_listen_fd();
	for (;;) {
		while (n < LU_MSG_MAX_FDS && i < a->nr_clients)
			fds[n++] = a->client_fds[i++];
		if (lu_msg_send(a->sock, LU_MSG_FDS, fds, n * sizeof(int),
				fds, n) < 0)
			return -1;
		n = 0;
		if (i == a->nr_clients)
			return 0;
	}
}

static int send_handoff(struct ahead *a)
{
	json_t *id = a->req ? control_client_request_id(a->req) : NULL;
	json_t *info = json_pack("{s:i, s:i}",
				 "listen_fd", control_listen_fd(),
				 "requester_fd",
				 a->req ? control_client_fd(a->req) : -1);
	struct stream_writer w;
	int fd, ret = -1;

	json_object_set(info, "requester_id", id ? id : json_null());
	if (send_fds(a) < 0)
		return -1;
	fd = open_memfd_stream(a, "xkvm-lu-handoff", &w, info);
	if (fd < 0)
		return -1;
	if (control_export_clients(lu_write_client, &w) < 0) {
		stream_writer_free(&w);
		goto out;
	}
	if (stream_writer_finish(&w) < 0)
		goto out;
	ret = lu_msg_send(a->sock, LU_MSG_HANDOFF, NULL, 0, &fd, 1);
out:
	close(fd);
	return ret;
}

/*
 * The guests run on the new image: give it the control socket and the
 * connections, and go.  Nothing here may touch a guest any more, and
 * nothing may unlink the socket or the pid file: _exit().
 */
static void hand_off_and_exit(struct ahead *a)
{
	struct sched_param idle = { 0 };
	struct lu_msg *m;
	int ok;

	/*
	 * The guests' vCPUs are waking in the new process right now: what
	 * is left here (the handoff, then the kernel tearing down this
	 * image's VMs at exit) takes only a CPU nothing else wants.
	 */
	if (sched_setscheduler(0, SCHED_IDLE, &idle) < 0)
		log_warn("live update: this image cannot step aside for the "
			 "guests (SCHED_IDLE): %s", strerror(errno));
	m = malloc(sizeof(*m));
	ok = m && send_handoff(a) == 0 &&
	     expect(a, LU_MSG_DONE, LU_AHEAD_DONE_TIMEOUT_MS,
		    "taking the control socket", m) == 0;

	free(m);
	if (ok)
		log_info("live update: the new image (pid %d) runs the guests "
			 "and serves; this image (pid %d) exits", a->pid,
			 getpid());
	else
		log_err("live update: the guests run on the new image (pid %d), "
			"but handing it the control socket failed: %s; it "
			"listens anew", a->pid, a->err[0] ? a->err
							 : strerror(errno));
	_exit(ok ? 0 : 1);
}

/* ---- failure: the guests go on here */

/*
 * This image never stopped running its code: every livepatch it had
 * applied is still applied, none was loaded again (unlike a re-exec
 * rollback, which reapplies them).
 */
static json_t *kept_livepatches(void)
{
	json_t *applied = livepatch_handover_json(), *kept = json_array(), *v;
	size_t i;

	json_array_foreach(applied, i, v)
		json_array_append(kept, json_object_get(v, "name"));
	json_decref(applied);
	if (!json_array_size(kept)) {	/* absent when nothing was applied */
		json_decref(kept);
		return NULL;
	}
	return json_pack("{s:o, s:[], s:[]}", "kept", kept, "reapplied",
			 "dropped");
}

/*
 * The new image died after it let its vCPUs run: the guests' RAM may be
 * past the vCPU and device state held here, and resuming it could corrupt
 * them silently.  Each running domain is crashed instead (its on_crash
 * action: restart, preserve or destroy), never resumed.
 */
static void crash_stale(struct ahead *a)
{
	struct domain *d;
	bool running[CONFIG_MAX_DOMAINS];
	unsigned k = 0;

	for (d = domain_first(); d && k < CONFIG_MAX_DOMAINS; d = d->next)
		running[k++] = d->state == DOM_RUNNING;
	quiesce_keep(&a->q);
	k = 0;
	for (d = domain_first(); d && k < CONFIG_MAX_DOMAINS; d = d->next)
		if (running[k++])
			domain_raise(d, DOM_EV_CRASH, "live update: the new "
				     "image died after it ran this guest; "
				     "the state here is stale");
	snprintf(a->err + strlen(a->err), sizeof(a->err) - strlen(a->err),
		 "; it had started the guests: their state here is stale, "
		 "they were crashed (on_crash), not resumed");
}

static int give_up(struct ahead *a, struct ctl_reply *r)
{
	long long t_resumed;
	json_t *res, *lp;

	if (a->pid > 0) {
		/* Dead before any of our vCPUs runs again: never two runners. */
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
	}
	if (a->sock >= 0)
		close(a->sock);
	if (a->started)
		crash_stale(a);
	else if (a->parked)
		quiesce_resume(&a->q);
	t_resumed = now_ns();
	free(a->client_fds);
	log_err("live update %s%s: %s",
		a->code == CTL_EROLLEDBACK ? "rolled back" : "failed",
		a->started ? "" : ", guests resumed on this image", a->err);
	res = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}",
				"result", a->code == CTL_EROLLEDBACK ?
					  "rolled-back" : "failed",
				"mode", "build-ahead",
				"reason", a->err,
				"image", a->img->path,
				"from_build_id", build_id_hex(),
				"domains", domain_count());

	lp = kept_livepatches();
	if (lp)
		json_object_set_new(res, "livepatches", lp);
	if (a->parked)
		json_object_set_new(res, "blackout_ms", json_real(
			(t_resumed - a->t_blackout) / 1e6));
	lu_set_last_result(res);
	if (a->code == CTL_EROLLEDBACK)
		return ctl_fail(r, CTL_EROLLEDBACK, "live update rolled back: %s",
				a->err);
	return ctl_fail(r, CTL_EINTERNAL, "%s", a->err);
}

int lu_ahead_exec(struct client *requester, const struct lu_image *img,
		  int version, const char *fail_phase, struct ctl_reply *r)
{
	struct ahead a = {
		.req = requester, .img = img, .version = version,
		.fail = fail_phase, .sock = -1, .pid = -1,
		.t_start = now_ns(), .code = CTL_EINTERNAL,
	};
	struct lu_msg *m = malloc(sizeof(*m));

	if (!m)
		return ctl_fail(r, CTL_EINTERNAL, "%s", "out of memory");
	if (fail_here(&a, "exec")) {
		snprintf(a.err, sizeof(a.err), "starting %.900s failed: "
			 "injected failure in phase exec", img->path);
		goto fail;
	}
	log_info("live update: building %u domain(s) ahead in %s (build-id "
		 "%s), stream v%d", domain_count(), img->path, img->build_id,
		 version);
	if (spawn(&a) < 0)
		goto fail;
	/* From here on, a failure is the new image's: a rollback. */
	a.code = CTL_EROLLEDBACK;
	if (send_prologue(&a) < 0 ||
	    expect(&a, LU_MSG_BUILT, LU_AHEAD_BUILD_TIMEOUT_MS,
		   "while building the domains", m) < 0)
		goto fail;
	a.code = CTL_EINTERNAL;
	if (park_and_save(&a) < 0)
		goto fail;
	a.code = CTL_EROLLEDBACK;
	if (expect(&a, LU_MSG_STARTING, LU_AHEAD_RUN_TIMEOUT_MS,
		   "while loading the state", m) < 0)
		goto fail;
	a.started = true;
	a.code = CTL_EINTERNAL;
	if (expect(&a, LU_MSG_RUNNING, LU_AHEAD_RUN_TIMEOUT_MS,
		   "while starting the guests", m) < 0)
		goto fail;
	free(m);
	quiesce_keep(&a.q);	/* parked here for good */
	hand_off_and_exit(&a);
fail:
	free(m);
	return give_up(&a, r);
}
