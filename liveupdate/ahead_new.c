/*
 * The new image's half of a build-ahead live update (ahead.h): build
 * every domain from the prologue while the guests still run on the old
 * image, one thread per domain; load the state the old image sends once
 * it has parked them, start them and say RUNNING; then take the control
 * socket and the connections and become the daemon.  Any failure before
 * RUNNING is said (ERR) and this process exits: the old image still has
 * every guest.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "buildinfo.h"
#include "control.h"
#include "dev/devices.h"
#include "domain.h"
#include "identity.h"
#include "kvm.h"
#include "livepatch/livepatch.h"
#include "liveupdate/ahead.h"
#include "liveupdate/lu.h"
#include "log.h"
#include "monotime.h"
#include "rec_table.h"
#include "state.h"

/* The old image has parked nothing yet: it may take its time. */
#define WAIT_EPILOGUE_MS	(10 * 60 * 1000)

struct nd {
	struct rec_domain_begin b;	/* the prologue's, then the state's */
	struct state_restoring *x;
	struct domain *dom;		/* once committed */
	char err[512];
};

struct stream_map {
	uint8_t *data;
	size_t len;
};

struct fdmap {
	int old, now;
};

struct newside {
	int sock;
	json_t *info, *epi, *lp;
	unsigned version;
	struct nd doms[CONFIG_MAX_DOMAINS];
	unsigned nr;
	struct fdmap *fds;
	unsigned nr_fds;
	long long t_main, t_prologue, t_built, t_epilogue, t_loaded, t_running;
	char err[1024];
};

/* The phase the requester asked to fail (the prologue says). */
static bool fail_here(struct newside *s, const char *phase)
{
	const char *f = json_string_value(json_object_get(s->info,
							  "fail_phase"));

	return f && !strcmp(f, phase);
}

static long long info_ns(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static int map_stream(struct lu_msg *m, struct stream_map *sm, char *err,
		      size_t errlen)
{
	struct stat st;

	if (m->nr_fds != 1 || fstat(m->fds[0], &st) < 0 || st.st_size <= 0) {
		snprintf(err, errlen, "%s carries no stream", lu_msg_name(m->type));
		return -1;
	}
	sm->len = st.st_size;
	sm->data = mmap(NULL, sm->len, PROT_READ, MAP_PRIVATE, m->fds[0], 0);
	lu_msg_close_fds(m);
	if (sm->data == MAP_FAILED) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void unmap_stream(struct stream_map *sm)
{
	if (sm->data && sm->data != MAP_FAILED)
		munmap(sm->data, sm->len);
	sm->data = NULL;
}

static int open_mem(struct stream_reader *r, struct mem_source *ms,
		    const struct stream_map *sm)
{
	struct stream_source src = { stream_mem_read, ms };

	ms->data = sm->data;
	ms->len = sm->len;
	ms->pos = 0;
	return stream_reader_open(r, src);
}

/*
 * The whole stream checks out (checksums up to END) and starts with
 * HANDOVER: its JSON, and each DOMAIN_BEGIN into begins[] (n of them).
 */
static json_t *check_stream(struct newside *s, const struct stream_map *sm,
			    struct rec_domain_begin *begins, unsigned *n)
{
	struct mem_source ms;
	struct stream_reader r;
	json_t *info = NULL;
	int got;

	*n = 0;
	if (open_mem(&r, &ms, sm) < 0 || stream_next(&r) <= 0 ||
	    r.rec.type != REC_HANDOVER) {
		snprintf(s->err, sizeof(s->err), "handover rejected: %s",
			 r.err[0] ? r.err : "it does not start with HANDOVER");
		goto out;
	}
	s->version = r.hdr.version;
	info = json_loadb((char *)r.body, r.rec.length, 0, NULL);
	while ((got = stream_next(&r)) > 0) {
		if (r.rec.type != REC_DOMAIN_BEGIN || !begins)
			continue;
		if (r.rec.length != sizeof(*begins) ||
		    *n == CONFIG_MAX_DOMAINS) {
			got = -1;
			snprintf(r.err, sizeof(r.err), "bad DOMAIN_BEGIN record");
			break;
		}
		memcpy(&begins[(*n)++], r.body, sizeof(*begins));
	}
	if (got < 0 || !json_is_object(info)) {
		snprintf(s->err, sizeof(s->err), "handover rejected: %s",
			 got < 0 ? r.err : "HANDOVER is not a JSON object");
		json_decref(info);
		info = NULL;
	}
out:
	stream_reader_close(&r);
	return info;
}

/* One domain's part of a stream, on a thread of its own. */
struct job {
	struct newside *s;
	const struct stream_map *sm;
	unsigned k;
	bool prologue;
	int ret;
};

/* Move the reader just past the k-th DOMAIN_BEGIN. */
static int seek_domain(struct stream_reader *r, unsigned k)
{
	unsigned seen = 0;

	while (stream_next(r) > 0)
		if (r->rec.type == REC_DOMAIN_BEGIN && seen++ == k)
			return 0;
	return -1;
}

static int build_one(struct job *j, struct stream_reader *r, struct nd *nd)
{
	struct restore_opts o = {
		.no_start = true, .inherit_fds = true,
		.ram_fd = nd->b.ram_fd, .domid = nd->b.domid,
		.clock = STATE_CLOCK_SAME_HOST,	/* time runs through it */
	};

	if (j->k == 0 && fail_here(j->s, "kvm")) {
		snprintf(nd->err, sizeof(nd->err), "d%u: KVM_CREATE_VM failed "
			 "(injected failure in phase kvm)", nd->b.domid);
		return -1;
	}
	/* The record both images refuse (KVM_SET_XCRS on a host without
	 * XSAVE, say): only this new image ever tries it. */
	if (j->k == 0 && fail_here(j->s, "record"))
		o.refuse_type = REC_VCPU_XCRS;
	if (state_restore_begin(r, &o, &nd->x, nd->err, sizeof(nd->err)))
		return -1;
	/* Threads and their filters now, not in the blackout. */
	if (domain_start_parked(state_restore_domain_of(nd->x), nd->err,
				sizeof(nd->err)))
		return -1;
	return 0;
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	struct nd *nd = &j->s->doms[j->k];
	struct mem_source ms;
	struct stream_reader r;

	j->ret = -1;
	if (open_mem(&r, &ms, j->sm) < 0 || seek_domain(&r, j->k) < 0) {
		snprintf(nd->err, sizeof(nd->err), "d%u: %s", nd->b.domid,
			 r.err);
	} else if (j->prologue) {
		j->ret = build_one(j, &r, nd);
	} else {
		j->ret = state_restore_finish(&r, nd->x, nd->err,
					      sizeof(nd->err)) ? -1 : 0;
	}
	stream_reader_close(&r);
	return NULL;
}

/* Every domain's part at once; the first failure into s->err. */
static int run_parallel(struct newside *s, const struct stream_map *sm,
			bool prologue)
{
	struct job jobs[CONFIG_MAX_DOMAINS];
	pthread_t tids[CONFIG_MAX_DOMAINS];
	bool started[CONFIG_MAX_DOMAINS];
	unsigned k;
	int ret = 0;

	for (k = 0; k < s->nr; k++) {
		jobs[k] = (struct job){ s, sm, k, prologue, -1 };
		/* One domain: no thread to start and join in the blackout. */
		started[k] = s->nr > 1 &&
			     !pthread_create(&tids[k], NULL, run_job, &jobs[k]);
		if (!started[k])
			run_job(&jobs[k]);
	}
	for (k = 0; k < s->nr; k++) {
		if (started[k])
			pthread_join(tids[k], NULL);
		if (jobs[k].ret < 0 && !ret) {
			snprintf(s->err, sizeof(s->err), "%s", s->doms[k].err);
			ret = -1;
		}
	}
	return ret;
}

/* ---- build-ahead */

static int build(struct newside *s)
{
	struct rec_domain_begin begins[CONFIG_MAX_DOMAINS];
	struct stream_map sm = { 0 };
	struct lu_msg *m = malloc(sizeof(*m));
	unsigned k;
	int ret = -1;

	if (!m || lu_msg_recv(s->sock, m, WAIT_EPILOGUE_MS) < 0 ||
	    m->type != LU_MSG_PROLOGUE) {
		snprintf(s->err, sizeof(s->err), "no prologue from the old "
			 "image");
		goto out;
	}
	s->t_prologue = now_ns();
	if (map_stream(m, &sm, s->err, sizeof(s->err)) < 0)
		goto out;
	s->info = check_stream(s, &sm, begins, &s->nr);
	if (!s->info)
		goto out;
	if (fail_here(s, "verify")) {
		snprintf(s->err, sizeof(s->err), "handover rejected (injected "
			 "failure in phase verify)");
		goto out;
	}
	kvm_host.tsc_khz = json_integer_value(json_object_get(s->info,
							     "tsc_khz"));
	if (!kvm_host.tsc_khz)
		kvm_probe_tsc_khz();
	/* Above every id handed over, so that no thread moves it. */
	domain_set_next_id(json_integer_value(json_object_get(s->info,
							     "next_domid")));
	for (k = 0; k < s->nr; k++)
		s->doms[k].b = begins[k];
	if (run_parallel(s, &sm, true) < 0)
		goto out;
	if (s->nr && fail_here(s, "build")) {
		snprintf(s->err, sizeof(s->err), "d%u: injected failure in "
			 "phase build", s->doms[0].b.domid);
		goto out;
	}
	/* Patched before any guest runs on this image (docs/livepatch.md). */
	if (json_array_size(json_object_get(s->info, "livepatches")))
		s->lp = livepatch_carry_over(json_object_get(s->info,
							     "livepatches"));
	ret = 0;
out:
	unmap_stream(&sm);
	if (m)
		lu_msg_close_fds(m);
	free(m);
	return ret;
}

/* ---- the blackout */

static int load(struct newside *s)
{
	struct rec_domain_begin begins[CONFIG_MAX_DOMAINS];
	struct stream_map sm = { 0 };
	struct lu_msg *m = malloc(sizeof(*m));
	unsigned n, k;
	int ret = -1;

	if (!m || lu_msg_recv(s->sock, m, WAIT_EPILOGUE_MS) < 0 ||
	    m->type != LU_MSG_EPILOGUE) {
		snprintf(s->err, sizeof(s->err), "no state from the old image");
		goto out;
	}
	s->t_epilogue = now_ns();
	if (map_stream(m, &sm, s->err, sizeof(s->err)) < 0)
		goto out;
	s->epi = check_stream(s, &sm, begins, &n);
	if (!s->epi)
		goto out;
	for (k = 0; k < n && k < s->nr; k++)
		if (begins[k].domid != s->doms[k].b.domid)
			break;
	if (n != s->nr || k != n) {
		snprintf(s->err, sizeof(s->err), "the state names other "
			 "domains than the prologue did");
		goto out;
	}
	for (k = 0; k < n; k++)
		s->doms[k].b = begins[k];
	if (run_parallel(s, &sm, false) < 0)
		goto out;
	if (s->nr && fail_here(s, "crash"))
		lu_crash();
	if (s->nr && fail_here(s, "restore")) {
		snprintf(s->err, sizeof(s->err), "d%u: injected failure in "
			 "phase restore", s->doms[0].b.domid);
		goto out;
	}
	/* Everything loaded; dying now must still leave the guests there. */
	if (fail_here(s, "confirm"))
		_exit(3);
	ret = 0;
out:
	unmap_stream(&sm);
	if (m)
		lu_msg_close_fds(m);
	free(m);
	return ret;
}

static int start_all(struct newside *s)
{
	char err[256];
	unsigned k;

	for (k = 0; k < s->nr; k++) {
		struct nd *nd = &s->doms[k];
		struct domain *d = state_restore_done(nd->x);
		enum dom_state st = nd->b.state <= DOM_CRASHED ? nd->b.state
							       : DOM_PAUSED;

		nd->x = NULL;
		nd->dom = d;
		d->exit_code = nd->b.exit_code;
		d->shutdown_reason = nd->b.shutdown_reason;
		if (domain_commit(d, st != DOM_RUNNING, err, sizeof(err))) {
			snprintf(s->err, sizeof(s->err), "d%u: cannot start: "
				 "%s", d->id, err);
			return -1;
		}
		d->state = st;
		lu_restore_created(s->info, d);
	}
	return 0;
}

/* ---- after the confirmation */

static int fd_now(struct newside *s, int old)
{
	unsigned i;

	for (i = 0; i < s->nr_fds; i++)
		if (s->fds[i].old == old) {
			int fd = s->fds[i].now;

			s->fds[i].now = -1;	/* adopted: not closed below */
			return fd;
		}
	return -1;
}

static int take_fds(struct newside *s, struct lu_msg *m)
{
	unsigned i, n = m->len / sizeof(int);
	struct fdmap *p;

	if (n != m->nr_fds)
		return -1;
	p = realloc(s->fds, (s->nr_fds + n) * sizeof(*p));
	if (!p)
		return -1;
	s->fds = p;
	for (i = 0; i < n; i++) {
		memcpy(&p[s->nr_fds].old, m->text + i * sizeof(int),
		       sizeof(int));
		p[s->nr_fds++].now = m->fds[i];
	}
	m->nr_fds = 0;
	return 0;
}

static struct client *adopt_clients(struct newside *s,
				    const struct stream_map *sm, json_t **h)
{
	struct client *req = NULL;
	struct mem_source ms;
	struct stream_reader r;
	int req_fd = -1;

	if (open_mem(&r, &ms, sm) < 0 || stream_next(&r) <= 0 ||
	    r.rec.type != REC_HANDOVER)
		goto out;
	*h = json_loadb((char *)r.body, r.rec.length, 0, NULL);
	if (!json_is_object(*h))
		goto out;
	req_fd = json_integer_value(json_object_get(*h, "requester_fd"));
	control_adopt_listener(fd_now(s, json_integer_value(
				json_object_get(*h, "listen_fd"))),
			       json_string_value(json_object_get(s->info,
								 "socket")));
	while (stream_next(&r) > 0) {
		struct ctl_client_state cs = { 0 };
		struct rec_client rc;
		struct client *c;

		if (r.rec.type != REC_CLIENT || r.rec.length < sizeof(rc))
			continue;
		memcpy(&rc, r.body, sizeof(rc));
		cs.fd = fd_now(s, rc.fd);
		if (cs.fd < 0)
			continue;
		cs.console_domid = rc.console_domid;
		cs.console_pos = rc.console_pos;
		cs.input = r.body + sizeof(rc);
		cs.input_len = r.rec.length - sizeof(rc);
		c = control_adopt_client(&cs);
		if (c && rc.fd == req_fd)
			req = c;
	}
out:
	stream_reader_close(&r);
	return req;
}

/* The listener and the connections; the requester, if it is still there. */
static struct client *take_control(struct newside *s, json_t **h)
{
	struct stream_map sm = { 0 };
	struct lu_msg *m = malloc(sizeof(*m));
	struct client *req = NULL;
	char err[256];
	unsigned i;

	while (m && lu_msg_recv(s->sock, m, LU_AHEAD_DONE_TIMEOUT_MS) == 0) {
		if (m->type == LU_MSG_FDS && take_fds(s, m) == 0)
			continue;
		if (m->type == LU_MSG_HANDOFF &&
		    map_stream(m, &sm, err, sizeof(err)) == 0)
			req = adopt_clients(s, &sm, h);
		break;
	}
	if (!*h) {
		/* The old image went away: serve on a socket of our own. */
		log_err("live update: no control socket from the old image; "
			"listening anew on %s", json_string_value(
				json_object_get(s->info, "socket")));
		if (control_listen(json_string_value(json_object_get(
			s->info, "socket")), lu_socket_group(), err,
			sizeof(err)) < 0)
			log_err("live update: %s", err);
	}
	for (i = 0; i < s->nr_fds; i++)
		if (s->fds[i].now >= 0)
			close(s->fds[i].now);
	free(s->fds);
	s->fds = NULL;
	unmap_stream(&sm);
	if (m)
		lu_msg_close_fds(m);
	free(m);
	return req;
}

static double ms(long long a, long long b)
{
	return a && b ? (b - a) / 1e6 : 0;
}

static json_t *result_json(struct newside *s, long long t_done)
{
	long long t_start = info_ns(s->info, "t_start_ns");
	long long t_spawn = info_ns(s->info, "t_spawn_ns");
	long long t_bo = info_ns(s->epi, "t_blackout_ns");
	long long t_q = info_ns(s->epi, "t_quiesced_ns");
	json_t *res;

	res = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:f}",
			"result", "ok", "mode", "build-ahead",
			"from_build_id", json_string_value(json_object_get(
				s->info, "old_build_id")) ?: "",
			"to_build_id", build_id_hex(),
			"format_version", s->version,
			"domains", s->nr,
			"blackout_ms", ms(t_bo, s->t_running),
			"total_ms", ms(t_start, t_done));
	json_object_set_new(res, "build_ahead_ms",
			    json_pack("{s:f, s:f, s:f, s:f}",
				      "spawn", ms(t_spawn, s->t_main),
				      "prologue", ms(s->t_main, s->t_prologue),
				      "build", ms(s->t_prologue, s->t_built),
				      "total", ms(t_start, t_bo)));
	json_object_set_new(res, "phases_ms",
			    json_pack("{s:f, s:f, s:f, s:f}",
				      "quiesce", ms(t_bo, t_q),
				      "save", ms(t_q, s->t_epilogue),
				      "load", ms(s->t_epilogue, s->t_loaded),
				      "start", ms(s->t_loaded, s->t_running)));
	json_object_set_new(res, "handoff_ms",
			    json_real(ms(s->t_running, t_done)));
	if (s->lp)
		json_object_set(res, "livepatches", s->lp);
	return res;
}

/* The update committed: become the daemon. */
static void go_live(struct newside *s)
{
	json_t *h = NULL, *res, *id;
	struct client *req;
	unsigned k;

	req = take_control(s, &h);
	for (k = 0; k < s->nr; k++) {
		struct domain *d = s->doms[k].dom;

		/* RAM is mapped through our duplicate; the inherited fds
		 * (RAM, disk images, taps) go. */
		close(d->adopt_ram_fd);
		d->adopt_ram_fd = -1;
		devices_takeover_done(d);
		d->inherit_fds = false;
	}
	daemon_set_start_ns(info_ns(s->info, "daemon_start_ns"));
	res = result_json(s, now_ns());
	lu_set_last_result(json_incref(res));
	/* The supervisor's view moves here before the old image exits. */
	pid_file_write(lu_state_dir());
	{
		char note[64];

		snprintf(note, sizeof(note), "MAINPID=%d", getpid());
		if (supervisor_notify(note) < 0)
			log_err("live update: telling the supervisor our pid "
				"failed: %s", strerror(errno));
	}
	lu_msg_send(s->sock, LU_MSG_DONE, NULL, 0, NULL, 0);
	log_info("live update done: %u domain(s), blackout %.3f ms, built "
		 "ahead in %.3f ms, pid %d", s->nr,
		 json_real_value(json_object_get(res, "blackout_ms")),
		 ms(s->t_prologue, s->t_built), getpid());
	id = h ? json_object_get(h, "requester_id") : NULL;
	if (req) {
		/* Audited by the image that answers (the old one exits). */
		control_audit(req, "live-update-exec", NULL, CTL_OK, NULL);
		control_reply_now(req, id, CTL_OK, res, NULL);
	}
	control_process_adopted();
	json_decref(res);
	json_decref(h);
}

/*
 * Injected: this new image is killed once every running guest has run
 * here (each vCPU came out of KVM_RUN at least twice), before it says
 * RUNNING.  Bounded: it dies after WAIT_RAN_MS whatever happened.
 */
#define WAIT_RAN_MS	5000

static bool all_ran(struct newside *s)
{
	unsigned k, i;

	for (k = 0; k < s->nr; k++) {
		struct domain *d = s->doms[k].dom;

		if (d->state != DOM_RUNNING)
			continue;
		for (i = 0; i < d->nr_vcpus; i++)
			if (__atomic_load_n(&d->vcpus[i].exits,
					    __ATOMIC_RELAXED) < 2)
				return false;
	}
	return true;
}

static void die_after_running(struct newside *s)
{
	long long end = now_ns() + WAIT_RAN_MS * 1000000LL;

	while (!all_ran(s) && now_ns() < end)
		usleep(1000);
	log_err("live update: injected failure in phase started: this new "
		"image (pid %d) kills itself after its vCPUs ran", getpid());
	kill(getpid(), SIGKILL);
}

static void discard_all(struct newside *s)
{
	unsigned k;

	for (k = 0; k < s->nr; k++)
		state_restore_abort(s->doms[k].x);
}

int lu_ahead_takeover(int sock, long long t_spawn)
{
	struct newside s = { .sock = sock, .t_main = now_ns() };

	if (build(&s) < 0)
		goto fail;
	s.t_built = now_ns();
	if (lu_msg_send(sock, LU_MSG_BUILT, NULL, 0, NULL, 0) < 0)
		goto fail;
	if (load(&s) < 0)
		goto fail;
	s.t_loaded = now_ns();
	/* Before any vCPU runs here: from now on the old image's state may be
	 * stale, it must not resume it (ahead.h). */
	if (lu_msg_send(sock, LU_MSG_STARTING, NULL, 0, NULL, 0) < 0)
		goto fail;
	if (start_all(&s) < 0)
		goto fail;
	s.t_running = now_ns();
	if (fail_here(&s, "started"))
		die_after_running(&s);
	/* From here on the guests are ours, whatever the old image hears. */
	lu_msg_send(sock, LU_MSG_RUNNING, NULL, 0, NULL, 0);
	go_live(&s);
	close(sock);
	json_decref(s.info);
	json_decref(s.epi);
	json_decref(s.lp);
	return 0;
fail:
	log_err("live update: this new image gives up: %s", s.err);
	lu_msg_send(sock, LU_MSG_ERR, s.err, strlen(s.err), NULL, 0);
	discard_all(&s);
	return -1;
}

void lu_ahead_start_failed(int sock, const char *why)
{
	char msg[600];

	snprintf(msg, sizeof(msg), "the new image failed to start: %s", why);
	lu_msg_send(sock, LU_MSG_ERR, msg, strlen(msg), NULL, 0);
}
