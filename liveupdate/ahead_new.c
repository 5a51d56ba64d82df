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
	int ret;			/* of its part of the last stream */
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
	/* Inside the blackout, for blackout_steps_ms (result_json()). */
	json_t *times;			/* the old image's: t_blackout_ns... */
	long long t_checked;		/* the state stream checked here */
	long long t_release;		/* every domain listed, none released */
	long long t_last_ran;		/* the last vCPU released ran, or -1 */
	long long slowest_load;		/* ns: the longest one domain loaded */
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

/*
 * The next message, which must be `type` carrying a stream: mapped into
 * sm (0), or why not in s->err (-1).  Its text, a JSON object if any,
 * into *text (NULL if none).
 */
static int recv_stream(struct newside *s, uint32_t type, const char *what,
		       struct stream_map *sm, json_t **text)
{
	struct lu_msg *m = malloc(sizeof(*m));
	int ret = -1;

	if (!m || lu_msg_recv(s->sock, m, WAIT_EPILOGUE_MS) < 0 ||
	    m->type != type) {
		snprintf(s->err, sizeof(s->err), "no %s from the old image",
			 what);
		goto out;
	}
	if (text)
		*text = m->len ? json_loads(m->text, 0, NULL) : NULL;
	ret = map_stream(m, sm, s->err, sizeof(s->err));
out:
	if (m)
		lu_msg_close_fds(m);
	free(m);
	return ret;
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

/*
 * One stream's domains, shared by the threads that load them: each takes
 * the next domain not yet taken until none is left.
 */
struct pool {
	struct newside *s;
	const struct stream_map *sm;
	bool prologue;
	unsigned next;			/* atomic: the next domain to take */
	long long slowest;		/* atomic: ns, the longest domain */
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

static int build_one(struct pool *p, unsigned k, struct stream_reader *r,
		     struct nd *nd)
{
	struct restore_opts o = {
		.no_start = true, .inherit_fds = true,
		.ram_fd = nd->b.ram_fd, .domid = nd->b.domid,
		.clock = STATE_CLOCK_SAME_HOST,	/* time runs through it */
	};

	if (k == 0 && fail_here(p->s, "kvm")) {
		snprintf(nd->err, sizeof(nd->err), "d%u: KVM_CREATE_VM failed "
			 "(injected failure in phase kvm)", nd->b.domid);
		return -1;
	}
	/* The record both images refuse (KVM_SET_XCRS on a host without
	 * XSAVE, say): only this new image ever tries it. */
	if (k == 0 && fail_here(p->s, "record"))
		o.refuse_type = REC_VCPU_XCRS;
	if (state_restore_begin(r, &o, &nd->x, nd->err, sizeof(nd->err)))
		return -1;
	/* Threads and their filters now, not in the blackout. */
	if (domain_start_parked(state_restore_domain_of(nd->x), nd->err,
				sizeof(nd->err)))
		return -1;
	return 0;
}

/* Domain k's part of the pool's stream: built, or its state loaded. */
static void run_one(struct pool *p, unsigned k)
{
	struct nd *nd = &p->s->doms[k];
	long long t0 = now_ns(), took, prev;
	struct mem_source ms;
	struct stream_reader r;

	nd->ret = -1;
	if (open_mem(&r, &ms, p->sm) < 0 || seek_domain(&r, k) < 0) {
		snprintf(nd->err, sizeof(nd->err), "d%u: %s", nd->b.domid,
			 r.err);
	} else if (p->prologue) {
		nd->ret = build_one(p, k, &r, nd);
	} else {
		nd->ret = state_restore_finish(&r, nd->x, nd->err,
					       sizeof(nd->err)) ? -1 : 0;
	}
	stream_reader_close(&r);
	took = now_ns() - t0;
	prev = __atomic_load_n(&p->slowest, __ATOMIC_RELAXED);
	while (took > prev &&
	       !__atomic_compare_exchange_n(&p->slowest, &prev, took, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void *run_worker(void *arg)
{
	struct pool *p = arg;
	unsigned k;

	while ((k = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) <
	       p->s->nr)
		run_one(p, k);
	return NULL;
}

/*
 * Every domain's part of a stream at once; the first failure into s->err.
 * Building (the guests run meanwhile) takes a thread per domain: most of
 * it is KVM creating things, which sleeps.  Loading the state (inside the
 * blackout) is short work on the CPU: as many threads as this process may
 * use CPUs, this one among them, so that no thread waits for a CPU that
 * a sibling holds and none is started for nothing.
 */
static int run_parallel(struct newside *s, const struct stream_map *sm,
			bool prologue, long long *slowest)
{
	struct pool p = { .s = s, .sm = sm, .prologue = prologue };
	pthread_t tids[CONFIG_MAX_DOMAINS];
	unsigned width = prologue ? s->nr : state_default_workers();
	unsigned k, nr_threads = 0;

	if (width > s->nr)
		width = s->nr;
	while (nr_threads + 1 < width &&
	       !pthread_create(&tids[nr_threads], NULL, run_worker, &p))
		nr_threads++;
	run_worker(&p);
	for (k = 0; k < nr_threads; k++)
		pthread_join(tids[k], NULL);
	if (slowest)
		*slowest = p.slowest;
	for (k = 0; k < s->nr; k++) {
		if (s->doms[k].ret < 0) {
			snprintf(s->err, sizeof(s->err), "%s", s->doms[k].err);
			return -1;
		}
	}
	return 0;
}

/* ---- build-ahead */

static int build(struct newside *s)
{
	struct rec_domain_begin begins[CONFIG_MAX_DOMAINS];
	struct stream_map sm = { 0 };
	unsigned k;
	int ret = -1;

	if (recv_stream(s, LU_MSG_PROLOGUE, "prologue", &sm, NULL) < 0)
		goto out;
	s->t_prologue = now_ns();
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
	if (run_parallel(s, &sm, true, NULL) < 0)
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
	return ret;
}

/* ---- the blackout */

static int load(struct newside *s)
{
	struct rec_domain_begin begins[CONFIG_MAX_DOMAINS];
	struct stream_map sm = { 0 };
	unsigned n, k;
	int ret = -1;

	/* Its text: the old image's times (ahead.c, send_state()). */
	if (recv_stream(s, LU_MSG_EPILOGUE, "state", &sm, &s->times) < 0)
		goto out;
	s->t_epilogue = now_ns();
	s->epi = check_stream(s, &sm, begins, &n);
	if (!s->epi)
		goto out;
	s->t_checked = now_ns();
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
	if (run_parallel(s, &sm, false, &s->slowest_load) < 0)
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
	return ret;
}

/*
 * Every domain listed as the old image had it, then every vCPU let go at
 * once (domain_commit_parked()): the blackout ends with the last one.
 */
static void start_all(struct newside *s)
{
	struct domain *doms[CONFIG_MAX_DOMAINS];
	enum dom_state st[CONFIG_MAX_DOMAINS];
	bool paused[CONFIG_MAX_DOMAINS];
	unsigned k;

	for (k = 0; k < s->nr; k++) {
		struct nd *nd = &s->doms[k];
		struct domain *d = state_restore_done(nd->x);

		nd->x = NULL;
		nd->dom = doms[k] = d;
		d->exit_code = nd->b.exit_code;
		d->shutdown_reason = nd->b.shutdown_reason;
		st[k] = nd->b.state <= DOM_CRASHED ? nd->b.state : DOM_PAUSED;
		paused[k] = st[k] != DOM_RUNNING;
		lu_restore_created(s->info, d);
	}
	s->t_release = now_ns();
	s->t_running = domain_commit_parked(doms, paused, s->nr);
	for (k = 0; k < s->nr; k++)
		doms[k]->state = st[k];
}

/*
 * When the last vCPU start_all() let go left its park to run (each vCPU
 * thread notes the time): at most RESUMED_WAIT_MS after t_release, or -1.
 */
#define RESUMED_WAIT_MS	1000

static long long last_resumed(struct newside *s)
{
	long long last = s->t_release, t;
	unsigned k;

	for (k = 0; k < s->nr; k++) {
		struct domain *d = s->doms[k].dom;

		if (d->state != DOM_RUNNING)
			continue;
		t = domain_wait_resumed(d, s->t_release, RESUMED_WAIT_MS);
		if (t < 0) {
			log_warn("live update: d%u: a vCPU did not run within "
				 "%d ms of its release", d->id, RESUMED_WAIT_MS);
			return -1;
		}
		if (t > last)
			last = t;
	}
	return last;
}

/*
 * The blackout ends once the last vCPU is let go.  This thread's clock
 * once the gate is open (start_all()) is late whenever a guest let go
 * took its CPU before it read it; the last vCPU to run again is late
 * whenever the host had no CPU free for it at once.  Both come after the
 * last release: the earlier of the two is the closer, and never early.
 */
static void end_blackout(struct newside *s)
{
	s->t_last_ran = last_resumed(s);
	if (s->t_last_ran > 0 && s->t_last_ran < s->t_running)
		s->t_running = s->t_last_ran;
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

/*
 * One of the old image's times: in the state message's text, or (an
 * image before it wrote them there) in the state's HANDOVER record.
 */
static long long old_ns(struct newside *s, const char *key)
{
	json_t *v = json_object_get(s->times, key);

	return v ? json_integer_value(v) : info_ns(s->epi, key);
}

static double ms(long long a, long long b)
{
	return a && b ? (b - a) / 1e6 : 0;
}

static json_t *result_json(struct newside *s, long long t_done)
{
	long long t_start = info_ns(s->info, "t_start_ns");
	long long t_spawn = info_ns(s->info, "t_spawn_ns");
	long long t_bo = old_ns(s, "t_blackout_ns");
	long long t_q = old_ns(s, "t_quiesced_ns");
	long long t_saved = old_ns(s, "t_saved_ns");
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
	/* Finer: where the blackout's phases go (docs/live-update.md). */
	json_object_set_new(res, "blackout_steps_ms",
			    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
				      "save_records", ms(t_q, t_saved),
				      "save_pass", ms(t_saved, s->t_epilogue),
				      "load_check", ms(s->t_epilogue,
						       s->t_checked),
				      "load_slowest_domain",
				      s->slowest_load / 1e6,
				      "start_list", ms(s->t_loaded,
						       s->t_release),
				      "start_release", ms(s->t_release,
							  s->t_running),
				      "start_last_vcpu_ran",
				      s->t_last_ran > 0 ?
				      ms(s->t_release, s->t_last_ran) : -1.0));
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
	int ret = -1;

	if (build(&s) < 0)
		goto out;
	s.t_built = now_ns();
	if (lu_msg_send(sock, LU_MSG_BUILT, NULL, 0, NULL, 0) < 0 ||
	    load(&s) < 0)
		goto out;
	s.t_loaded = now_ns();
	/* Before any vCPU runs here: from now on the old image's state may be
	 * stale, it must not resume it (ahead.h). */
	if (lu_msg_send(sock, LU_MSG_STARTING, NULL, 0, NULL, 0) < 0)
		goto out;
	start_all(&s);
	if (fail_here(&s, "started"))
		die_after_running(&s);
	/* From here on the guests are ours, whatever the old image hears. */
	lu_msg_send(sock, LU_MSG_RUNNING, NULL, 0, NULL, 0);
	end_blackout(&s);
	go_live(&s);
	close(sock);
	ret = 0;
out:
	if (ret < 0) {
		log_err("live update: this new image gives up: %s", s.err);
		lu_msg_send(sock, LU_MSG_ERR, s.err, strlen(s.err), NULL, 0);
		discard_all(&s);
	}
	json_decref(s.info);
	json_decref(s.epi);
	json_decref(s.times);
	json_decref(s.lp);
	return ret;
}

void lu_ahead_start_failed(int sock, const char *why)
{
	char msg[600];

	snprintf(msg, sizeof(msg), "the new image failed to start: %s", why);
	lu_msg_send(sock, LU_MSG_ERR, msg, strlen(msg), NULL, 0);
}
