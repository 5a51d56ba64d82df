/*
 * The new image's half of a live update.  Like kexec's purgatory it checks
 * the handover (magic, version, every checksum) before using any of it,
 * then rebuilds every domain over the inherited RAM memfds, adopts the
 * control socket and its connections, and resumes the guests.  If any
 * step fails before the guests resume -- including a crash -- it execs the
 * old image again from the same, untouched handover.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "buildinfo.h"
#include "control.h"
#include "dev/devices.h"
#include "domain.h"
#include "feature.h"
#include "kvm.h"
#include "livepatch/livepatch.h"
#include "liveupdate/lu.h"
#include "log.h"
#include "monotime.h"
#include "rec_table.h"
#include "state.h"

extern char **environ;

#define MAX_HANDOVER_CLIENTS 256

struct takeover {
	int hfd;
	json_t *info;
	const char *rollback_reason;	/* non-NULL: we are the old image */
	struct domain *doms[CONFIG_MAX_DOMAINS];
	unsigned nr_doms;
	struct {
		struct rec_client rc;
		void *input;		/* bytes it had sent, not yet served */
		size_t input_len;
	} clients[MAX_HANDOVER_CLIENTS];
	unsigned nr_clients;
	unsigned version;
	long long t_main, t_restored;
	json_t *stale;			/* previous image's KVM fds to close */
};

/* Prebuilt so the crash handler only calls async-signal-safe things. */
static char rb_fd[16], rb_hfd[16];
static char *rb_argv[48];
static int rb_image_fd = -1;
static bool is_rollback;
static unsigned rb_reason_slot;

static const char *info_str(json_t *info, const char *key)
{
	const char *s = json_string_value(json_object_get(info, key));

	return s ? s : "";
}

static int info_int(json_t *info, const char *key)
{
	return json_integer_value(json_object_get(info, key));
}

static void install_crash_handlers(bool on);
static void exec_old_image(void);

/*
 * From our own arguments: rollback must work even if the handover does
 * not.  The old image's own options are those it started us with, up to
 * --handover (lu_image_argv(), then the handover's): given back as they
 * are, so that it gets every option of its features, also those of a
 * feature this image is built without (and cannot carry).
 */
static void prepare_rollback(const struct daemon_opts *d, int hfd,
			     int old_fd)
{
	const unsigned room = sizeof(rb_argv) / sizeof(rb_argv[0]) - 7;
	unsigned i = 0;

	rb_image_fd = old_fd;
	snprintf(rb_fd, sizeof(rb_fd), "%d", rb_image_fd);
	snprintf(rb_hfd, sizeof(rb_hfd), "%d", hfd);
	rb_argv[i++] = "xen";
	for (; d->argv && d->argv[i] && i < room &&
	       strcmp(d->argv[i], "--handover"); i++)
		rb_argv[i] = d->argv[i];
	rb_argv[i++] = "--handover";
	rb_argv[i++] = rb_hfd;
	rb_argv[i++] = "--lu-old-image-fd";
	rb_argv[i++] = rb_fd;
	rb_argv[i++] = "--rollback";
	rb_reason_slot = i;
	rb_argv[i++] = "the new image crashed";
	rb_argv[i] = NULL;
}

void lu_early_init(int hfd, int old_fd, const char *rollback_reason,
		   const struct daemon_opts *d)
{
	prepare_rollback(d, hfd, old_fd);
	is_rollback = rollback_reason != NULL;
	if (!is_rollback)
		install_crash_handlers(true);
}

void lu_fail_early(const char *reason)
{
	if (is_rollback || rb_image_fd < 0)
		return;
	log_err("live update: %s; executing the old image again", reason);
	rb_argv[rb_reason_slot] = (char *)reason;
	exec_old_image();
}

static void exec_old_image(void)
{
	fexecve(rb_image_fd, rb_argv, environ);
}

static void crash_handler(int sig)
{
	static const char msg[] =
		"xen: live update: the new image crashed; rolling back\n";

	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(70);
	exec_old_image();
	_exit(70);
}

static void install_crash_handlers(bool on)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	unsigned i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on ? crash_handler : SIG_DFL;
	sa.sa_flags = SA_NODEFER | SA_RESETHAND;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Go back to the old image with the same handover; returns on failure. */
static void rollback(struct takeover *t, const char *reason)
{
	unsigned i;

	for (i = 0; i < t->nr_doms; i++)
		domain_discard(t->doms[i]);
	t->nr_doms = 0;
	if (t->rollback_reason) {
		log_err("live update: rollback failed too: %s", reason);
		return;
	}
	lu_fail_early(reason);
	log_err("live update: exec of the old image failed: %s",
		strerror(errno));
}

static int open_reader(struct stream_reader *r, int *hfd)
{
	struct stream_source src = { stream_fd_read, hfd };

	if (lseek(*hfd, 0, SEEK_SET) < 0)
		return -1;
	return stream_reader_open(r, src);
}

/* First pass: the whole handover is well formed before we use any of it. */
static int verify(struct takeover *t, char *err, size_t errlen)
{
	struct stream_reader r;
	json_error_t jerr;
	int got;

	if (open_reader(&r, &t->hfd) < 0)
		goto bad;
	t->version = r.hdr.version;
	got = stream_next(&r);
	if (got <= 0 || r.rec.type != REC_HANDOVER) {
		snprintf(err, errlen, "handover does not start with HANDOVER%s%s",
			 got < 0 ? ": " : "", got < 0 ? r.err : "");
		stream_reader_close(&r);
		return -1;
	}
	t->info = json_loadb((char *)r.body, r.rec.length, 0, &jerr);
	if (!json_is_object(t->info)) {
		snprintf(err, errlen, "HANDOVER is not a JSON object: %s",
			 jerr.text);
		stream_reader_close(&r);
		return -1;
	}
	while ((got = stream_next(&r)) > 0)
		;
	if (got < 0)
		goto bad;
	stream_reader_close(&r);
	return 0;
bad:
	snprintf(err, errlen, "handover rejected: %s", r.err);
	stream_reader_close(&r);
	return -1;
}

static bool fail_here(struct takeover *t, const char *phase)
{
	const char *f = json_string_value(json_object_get(t->info, "fail_phase"));

	return !t->rollback_reason && f && !strcmp(f, phase);
}

static int restore_domain(struct takeover *t, struct stream_reader *r,
			  bool fresh_ram, char *err, size_t errlen)
{
	struct rec_domain_begin b;
	struct restore_opts o = {
		.no_start = true,
		.inherit_fds = true,
		.clock = STATE_CLOCK_SAME_HOST,
	};
	struct domain *dom;

	if (r->rec.length != sizeof(b) ||
	    t->nr_doms == CONFIG_MAX_DOMAINS) {
		snprintf(err, errlen, "bad DOMAIN_BEGIN record");
		return -1;
	}
	memcpy(&b, r->body, sizeof(b));
	o.ram_fd = fresh_ram ? -1 : b.ram_fd;
	o.domid = b.domid;
	if (fail_here(t, "kvm") && t->nr_doms == 0) {
		snprintf(err, errlen,
			 "d%u: KVM_CREATE_VM failed (injected failure in phase kvm)",
			 b.domid);
		return -1;
	}
	/* Both images refuse it: the failure that used to lose the guests. */
	if (t->nr_doms == 0 && json_is_string(json_object_get(t->info,
							       "fail_phase")) &&
	    !strcmp(info_str(t->info, "fail_phase"), "record"))
		o.refuse_type = REC_VCPU_XCRS;
	if (state_restore_domain(r, &o, &dom, err, errlen))
		return -1;
	t->doms[t->nr_doms++] = dom;
	dom->state = b.state <= DOM_CRASHED ? b.state : DOM_PAUSED;
	dom->exit_code = b.exit_code;
	dom->shutdown_reason = b.shutdown_reason;
	if (fail_here(t, "crash"))
		lu_crash();
	if (fail_here(t, "restore")) {
		snprintf(err, errlen, "d%u: injected failure in phase restore",
			 dom->id);
		return -1;
	}
	return 0;
}

/* Second pass: rebuild every domain (not started) and note the clients. */
static int restore_all(struct takeover *t, bool fresh_ram, char *err,
		       size_t errlen)
{
	struct stream_reader r;
	int got, ret = -1;

	if (open_reader(&r, &t->hfd) < 0 || stream_next(&r) <= 0) {
		snprintf(err, errlen, "handover changed under us: %s", r.err);
		goto out;
	}
	while ((got = stream_next(&r)) > 0) {
		if (r.rec.type == REC_DOMAIN_BEGIN) {
			if (restore_domain(t, &r, fresh_ram, err, errlen) < 0)
				goto out;
		} else if (r.rec.type == REC_CLIENT &&
			   r.rec.length >= sizeof(struct rec_client) &&
			   t->nr_clients < MAX_HANDOVER_CLIENTS) {
			size_t extra = r.rec.length - sizeof(struct rec_client);

			memcpy(&t->clients[t->nr_clients].rc, r.body,
			       sizeof(struct rec_client));
			t->clients[t->nr_clients].input = malloc(extra ? extra : 1);
			if (t->clients[t->nr_clients].input)
				memcpy(t->clients[t->nr_clients].input,
				       r.body + sizeof(struct rec_client), extra);
			t->clients[t->nr_clients++].input_len = extra;
		} else if (!(r.rec.flags & REC_F_OPTIONAL)) {
			snprintf(err, errlen, "offset %llu: unexpected %s record",
				 (unsigned long long)r.rec_offset,
				 rec_type_name(r.rec.type) ?: "unknown");
			goto out;
		}
	}
	if (got < 0) {
		snprintf(err, errlen, "%s", r.err);
		goto out;
	}
	ret = 0;
out:
	stream_reader_close(&r);
	return ret;
}

static double ms(long long a, long long b)
{
	return (b - a) / 1e6;
}

static json_t *result_json(struct takeover *t, long long t_exec,
			   long long t_resumed)
{
	json_t *info = t->info;
	long long t_start = json_integer_value(json_object_get(info, "t_start_ns"));
	long long t_q = json_integer_value(json_object_get(info, "t_quiesced_ns"));
	json_t *res;

	res = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f}",
			"result", t->rollback_reason ? "rolled-back" : "ok",
			"from_build_id", info_str(info, "old_build_id"),
			"to_build_id", build_id_hex(),
			"format_version", t->version,
			"domains", t->nr_doms,
			"blackout_ms", ms(t_start, t_resumed),
			"total_ms", ms(t_start, t_resumed));
	/* A rollback re-exec carries no exec timestamp: no save/exec split. */
	if (t_exec)
		json_object_set_new(res, "phases_ms",
				    json_pack("{s:f, s:f, s:f, s:f, s:f}",
					      "quiesce", ms(t_start, t_q),
					      "save", ms(t_q, t_exec),
					      "exec", ms(t_exec, t->t_main),
					      "restore",
					      ms(t->t_main, t->t_restored),
					      "resume",
					      ms(t->t_restored, t_resumed)));
	if (t->rollback_reason)
		json_object_set_new(res, "reason",
				    json_string(t->rollback_reason));
	return res;
}

static bool is_kvm_fd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return !strncmp(link, "anon_inode:kvm-", 15);
}

/*
 * The previous image's KVM fds, as they are now: only numbers that still
 * hold a KVM object inherited from it (after a rollback some were closed
 * by the exec and their numbers may be reused).  They are made
 * close-on-exec at once so no later exec carries them further.
 */
static void stale_fds_claim(struct takeover *t)
{
	json_t *fds = json_object_get(t->info, "stale_fds"), *v;
	size_t i;

	t->stale = json_array();
	json_array_foreach(fds, i, v) {
		int fd = json_integer_value(v);

		if (fd > 2 && is_kvm_fd(fd)) {
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			json_array_append_new(t->stale, json_integer(fd));
		}
	}
}

static void *close_fds_thread(void *arg)
{
	json_t *fds = arg;
	size_t i;
	json_t *v;

	json_array_foreach(fds, i, v)
		close(json_integer_value(v));
	json_decref(fds);
	return NULL;
}

/* The previous image's KVM fds, closed off the critical path. */
static void close_stale_fds(json_t *fds)
{
	pthread_t t;

	if (!json_is_array(fds) || !json_array_size(fds)) {
		json_decref(fds);
		return;
	}
	if (pthread_create(&t, NULL, close_fds_thread, fds)) {
		close_fds_thread(fds);
		return;
	}
	pthread_detach(t);
}

/* A domain's uptime goes on from when the first image created it. */
void lu_restore_created(json_t *info, struct domain *d)
{
	char key[16];
	json_t *v;

	snprintf(key, sizeof(key), "%u", d->id);
	v = json_object_get(json_object_get(info, "created_ns"), key);
	if (json_is_integer(v)) {
		d->created.tv_sec = json_integer_value(v) / 1000000000LL;
		d->created.tv_nsec = json_integer_value(v) % 1000000000LL;
	}
}

/*
 * The livepatches the old image had applied, loaded and applied again
 * here where they still apply, before any guest runs: NULL if there were
 * none, else {reapplied, dropped} for the result.
 */
static json_t *carry_livepatches(json_t *handed)
{
	if (!json_array_size(handed))
		return NULL;
	return livepatch_carry_over(handed);
}

/* Everything checked and rebuilt: take over and let the guests run. */
static void go_live(struct takeover *t, long long t_exec)
{
	json_t *res, *lp, *id = json_object_get(t->info, "requester_id");
	int req_fd = info_int(t->info, "requester_fd");
	struct client *req = NULL;
	char err[128];
	unsigned i;

	install_crash_handlers(false);
	control_adopt_listener(info_int(t->info, "listen_fd"),
			       info_str(t->info, "socket"));
	for (i = 0; i < t->nr_clients; i++) {
		struct ctl_client_state s = {
			.fd = t->clients[i].rc.fd,
			.console_domid = t->clients[i].rc.console_domid,
			.console_pos = t->clients[i].rc.console_pos,
			.input = t->clients[i].input,
			.input_len = t->clients[i].input_len,
		};
		struct client *c = control_adopt_client(&s);

		free(t->clients[i].input);
		if (c && s.fd == req_fd)
			req = c;
	}
	domain_set_next_id(info_int(t->info, "next_domid"));
	lp = carry_livepatches(json_object_get(t->info, "livepatches"));
	for (i = 0; i < t->nr_doms; i++) {
		struct domain *d = t->doms[i];
		enum dom_state st = d->state;

		if (domain_commit(d, st != DOM_RUNNING, err, sizeof(err)))
			log_err("d%u: cannot start after live update: %s",
				d->id, err);
		d->state = st;
		lu_restore_created(t->info, d);
		/* RAM is mapped through our duplicate; drop the inherited fd
		 * (and the devices theirs: disk images, taps). */
		close(d->adopt_ram_fd);
		d->adopt_ram_fd = -1;
		devices_takeover_done(d);
		d->inherit_fds = false;
	}
	res = result_json(t, t_exec, now_ns());
	if (lp)
		json_object_set_new(res, "livepatches", lp);
	close_stale_fds(t->stale);
	t->stale = NULL;
	lu_set_last_result(json_incref(res));
	log_info("live update %s: %u domain(s), blackout %.3f ms%s%s",
		 t->rollback_reason ? "rolled back" : "done", t->nr_doms,
		 json_real_value(json_object_get(res, "blackout_ms")),
		 t->rollback_reason ? ": " : "",
		 t->rollback_reason ? t->rollback_reason : "");
	daemon_set_start_ns(json_integer_value(json_object_get(t->info,
							    "daemon_start_ns")));
	if (req && t->rollback_reason) {
		char msg[512];

		snprintf(msg, sizeof(msg), "live update rolled back: %s",
			 t->rollback_reason);
		control_audit(req, "live-update-exec", NULL, CTL_EROLLEDBACK,
			      NULL);
		control_reply_now(req, id, CTL_EROLLEDBACK, NULL, msg);
	} else if (req) {
		control_audit(req, "live-update-exec", NULL, CTL_OK, NULL);
		control_reply_now(req, id, CTL_OK, res, NULL);
	}
	control_process_adopted();
	json_decref(res);
}

int lu_takeover(int hfd, const char *rollback_reason, long long t_exec)
{
	struct takeover t = { .hfd = hfd, .rollback_reason = rollback_reason };
	char err[512];

	t.t_main = now_ns();
	if (verify(&t, err, sizeof(err)) < 0) {
		rollback(&t, err);
		return -1;
	}
	stale_fds_claim(&t);
	lu_set_last_result(json_incref(json_object_get(
		json_object_get(t.info, "history"), "last")));
	kvm_host.tsc_khz = info_int(t.info, "tsc_khz");
	if (!kvm_host.tsc_khz)
		kvm_probe_tsc_khz();	/* an older image did not say */
	if (fail_here(&t, "verify")) {
		rollback(&t, "handover rejected (injected failure in phase verify)");
		return -1;
	}
	if (restore_all(&t, false, err, sizeof(err)) < 0) {
		rollback(&t, err);
		return -1;
	}
	t.t_restored = now_ns();
	go_live(&t, t_exec);
	close(hfd);
	close(rb_image_fd);
	json_decref(t.info);
	return 0;
}

int lu_check_handover(int hfd)
{
	struct takeover t = { .hfd = hfd, .rollback_reason = "dry run" };
	char err[512];
	unsigned i;

	if (verify(&t, err, sizeof(err)) < 0 ||
	    restore_all(&t, true, err, sizeof(err)) < 0) {
		printf("%s\n", err);
		for (i = 0; i < t.nr_doms; i++)
			domain_discard(t.doms[i]);
		for (i = 0; i < t.nr_clients; i++)
			free(t.clients[i].input);
		return 1;
	}
	printf("handover stream v%u: %u domain(s), %u client(s) restored and checked (build-id %s)\n",
	       t.version, t.nr_doms, t.nr_clients, build_id_hex());
	for (i = 0; i < t.nr_doms; i++) {
		printf("  d%u %s: %u MiB, %u vCPU(s), %s\n", t.doms[i]->id,
		       t.doms[i]->name, t.doms[i]->cfg.memory_mib,
		       t.doms[i]->nr_vcpus, dom_state_name(t.doms[i]->state));
		domain_discard(t.doms[i]);
	}
	for (i = 0; i < t.nr_clients; i++)
		free(t.clients[i].input);
	json_decref(t.info);
	return 0;
}
