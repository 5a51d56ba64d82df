/*
 * The source side: one thread per migration.  Connect and agree on the
 * stream version, send DOMAIN_CONFIG and MEMORY_LAYOUT, all of RAM, then
 * rounds of the pages KVM's dirty log names, until what is left fits the
 * bandwidth times the allowed downtime; then park the vCPUs, send the
 * last dirty pages and the rest of the domain's records, END, and hand
 * over.  Until the destination says the guest runs there, any failure
 * resumes the guest here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h"
#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "memory.h"
#include "migration/send.h"
#include "sandbox.h"
#include "state.h"

#define PARK_TIMEOUT_MS	5000

double mig_now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

#define SFAIL(s, ...) do { \
	snprintf((s)->err, sizeof((s)->err), __VA_ARGS__); \
	return -1; \
} while (0)

static int check_cancel(struct sender *s)
{
	if (s->m->cancel)
		SFAIL(s, "cancelled");
	return 0;
}

static void set_phase(struct sender *s, const char *phase)
{
	pthread_mutex_lock(&s->m->lock);
	s->m->p.phase = phase;
	pthread_mutex_unlock(&s->m->lock);
}

/*
 * What a destination that gave up said (ERR ...), waiting up to wait_ms;
 * 1 if it said something (s->err then says what), else 0.
 */
int mig_peer_reason(struct sender *s, int wait_ms)
{
	char line[MIG_LINE_MAX];

	if (!mig_conn_wait(&s->conn, wait_ms))
		return 0;
	if (mig_recv_line(&s->conn, line, sizeof(line)) < 0) {
		snprintf(s->err, sizeof(s->err), "the destination closed the "
			 "connection (%s)", s->conn.err);
		return 1;
	}
	snprintf(s->err, sizeof(s->err), "the destination refused: %.300s",
		 strncmp(line, "ERR ", 4) ? line : line + 4);
	return 1;
}

/* Why the stream writer failed: the connection's reason if it has one. */
static const char *write_err(struct sender *s)
{
	if (s->conn.err[0])
		return s->conn.err;
	return strerror(s->w.error ? s->w.error : EIO);
}

/*
 * Fetch (and clear) the dirty log into s->bitmap; the number of dirty
 * pages.  With merge, add to what s->bitmap holds (pages fetched by a
 * round that found pre-copy converged, and not sent yet).
 */
static int64_t fetch_dirty(struct sender *s, bool merge)
{
	int64_t n = 0;
	unsigned slot;
	uint64_t i;

	for (slot = 0; slot < 2; slot++) {
		uint64_t words = (s->slot_pages[slot] + 63) / 64;

		if (!s->slot_pages[slot])
			continue;
		memset(s->fetched[slot], 0, words * 8);
		if (guest_mem_get_dirty(s->dom, slot, s->fetched[slot]) < 0) {
			snprintf(s->err, sizeof(s->err),
				 "KVM_GET_DIRTY_LOG: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < words; i++) {
			s->bitmap[slot][i] = s->fetched[slot][i] |
					     (merge ? s->bitmap[slot][i] : 0);
			n += __builtin_popcountll(s->bitmap[slot][i]);
		}
	}
	return n;
}

/* The first pass over RAM, or a round's dirty pages, on every stream. */
static int send_pages(struct sender *s, bool all)
{
	int rc;

	if (s->pool.n)
		return pool_run(s, all ? POOL_ALL : POOL_DIRTY);
	rc = all ? page_out_all(&s->out) : page_out_dirty(&s->out);
	if (rc < 0)
		snprintf(s->err, sizeof(s->err), "%s", s->out.err);
	return rc;
}

static int setup_dirty_log(struct sender *s)
{
	struct guest_mem *mem = &s->dom->mem;
	unsigned slot;

	s->slot_pages[0] = mem->low_size / PAGE;
	s->slot_pages[1] = (mem->size - mem->low_size) / PAGE;
	for (slot = 0; slot < 2; slot++) {
		s->bitmap[slot] = calloc((s->slot_pages[slot] + 63) / 64 + 1, 8);
		s->fetched[slot] = calloc((s->slot_pages[slot] + 63) / 64 + 1, 8);
		s->sent_hash[slot] = calloc(s->slot_pages[slot] + 1, 8);
		if (!s->bitmap[slot] || !s->fetched[slot] ||
		    !s->sent_hash[slot])
			SFAIL(s, "out of memory");
	}
	if (getrandom(&s->seed, sizeof(s->seed), 0) != sizeof(s->seed))
		SFAIL(s, "getrandom: %s", strerror(errno));
	if (guest_mem_log_dirty(s->dom, true) < 0)
		SFAIL(s, "cannot turn on dirty logging: %s", strerror(errno));
	devices_log_changed(s->dom);
	s->logging = true;
	return 0;
}
/* The bandwidth the last round measured, bounded by --bandwidth. */
static double link_rate(struct sender *s, double dt, uint64_t bytes,
			double prev)
{
	double bw = prev;

	if (bytes >= (1u << 20) || prev <= 0)
		bw = bytes / (dt > 1e-4 ? dt : 1e-4);
	if (s->m->o.bandwidth_mib && bw > s->m->o.bandwidth_mib * 1048576.0)
		bw = s->m->o.bandwidth_mib * 1048576.0;
	return bw;
}

static void note_round(struct sender *s, unsigned iter, uint64_t ndirty,
		       double dt, double bw, unsigned pct)
{
	struct mig_progress *p = &s->m->p;

	pthread_mutex_lock(&s->m->lock);
	p->iteration = iter;
	p->remaining_pages = ndirty;
	p->rate_mib_s = bw / 1048576.0;
	p->dirty_rate_mib_s = ndirty * (double)PAGE / 1048576.0 /
			      (dt > 1e-4 ? dt : 1e-4);
	p->expected_downtime_ms = bw > 0 ? ndirty * (double)PAGE / bw * 1e3 : 0;
	p->throttle_pct = pct;
	p->throttle_ms = mig_throttle_parked_ms(&s->throttle);
	p->unchanged_pages = page_out_unchanged(s);
	pthread_mutex_unlock(&s->m->lock);
}

static int park(struct sender *s)
{
	char why[128];

	if (quiesce(&s->q, s->dom, PARK_TIMEOUT_MS, why, sizeof(why)) < 0) {
		quiesce_resume(&s->q);
		SFAIL(s, "%s", why);
	}
	s->parked = true;
	return 0;
}

/* Is another round worth it?  1 to stop and copy, 0 to go on, -1 never. */
static int converged(struct sender *s, unsigned iter, uint64_t ndirty,
		     double bw)
{
	const struct mig_opts *o = &s->m->o;

	if (ndirty * (double)PAGE <= bw * o->max_downtime_ms / 1e3)
		return 1;
	if (iter < MIG_MAX_ROUNDS || (o->auto_converge &&
				      iter < 4 * MIG_MAX_ROUNDS))
		return 0;
	SFAIL(s, "does not converge: %llu pages (%.1f MiB) still dirty after "
	      "%u rounds at %.1f MiB/s, more than %u ms of downtime%s",
	      (unsigned long long)ndirty, ndirty * (double)PAGE / 1048576.0,
	      iter, bw / 1048576.0, o->max_downtime_ms,
	      o->auto_converge ? "" : "; try --auto-converge");
}

/*
 * Auto-converge: a round that dirtied more than half of what it sent
 * raises the throttle's duty cycle (QEMU's rule, by one step a round).
 */
static int raise_throttle(struct sender *s, uint64_t ndirty,
			  uint64_t sent, unsigned *pct)
{
	if (!s->m->o.auto_converge || ndirty * (double)PAGE <= sent / 2.0)
		return 0;
	if (!s->throttle.started &&
	    mig_throttle_start(&s->throttle, s->dom) < 0)
		SFAIL(s, "cannot start the throttle: %s", strerror(errno));
	*pct = *pct ? *pct + MIG_THROTTLE_STEP : MIG_THROTTLE_INITIAL;
	if (*pct > MIG_THROTTLE_MAX)
		*pct = MIG_THROTTLE_MAX;
	mig_throttle_set(&s->throttle, *pct);
	return 0;
}

static int precopy(struct sender *s)
{
	unsigned iter = 0, pct = 0;
	double t, dt, bw = 0;
	uint64_t b0;
	int64_t nd;
	int c;

	set_phase(s, "precopy");
	t = mig_now_s();
	b0 = page_out_wire_bytes(s);
	if (send_pages(s, true) < 0)
		return -1;
	for (;;) {
		dt = mig_now_s() - t;
		bw = link_rate(s, dt, page_out_wire_bytes(s) - b0, bw);
		nd = fetch_dirty(s, false);
		if (nd < 0)
			return -1;
		note_round(s, ++iter, nd, dt, bw, pct);
		c = converged(s, iter, nd, bw);
		if (c)
			return c < 0 ? -1 : 0;
		if (raise_throttle(s, nd, page_out_wire_bytes(s) - b0,
				   &pct) < 0)
			return -1;
		t = mig_now_s();
		b0 = page_out_wire_bytes(s);
		if (send_pages(s, false) < 0)
			return -1;
	}
}

static int expect(struct sender *s, const char *what, char *line)
{
	if (mig_recv_line(&s->conn, line, MIG_LINE_MAX) < 0)
		SFAIL(s, "the destination closed the connection before %s "
		      "(%s)", what, s->conn.err);
	if (!strncmp(line, "ERR ", 4))
		SFAIL(s, "the destination refused: %.300s", line + 4);
	return 0;
}

/*
 * GO went out and no answer came: ask the destination again (its answer
 * to the first connection may be what was lost).  Running there: done.
 * Dropped there: the guest resumes here.  Otherwise it stays paused
 * here, never running on both sides.
 */
static int after_lost_answer(struct sender *s)
{
	char why[256];
	int rc;

	snprintf(why, sizeof(why), "%s", s->conn.err);
	set_phase(s, "asking");
	rc = mig_ask_outcome(s);
	if (rc > 0)
		return 0;
	if (rc == 0)
		SFAIL(s, "the connection dropped at the handover (%.200s); "
		      "the destination did not start the guest (it says so "
		      "when asked): it runs on here", why);
	s->m->uncertain = true;
	SFAIL(s, "no answer from the destination after the handover (%.200s); "
	      "the guest is kept paused here: check the destination, then "
	      "destroy or unpause it here", why);
}

/* Park, send the rest, and hand over: READY, GO, RUNNING. */
static int stop_and_copy(struct sender *s, double *t_stop)
{
	char line[MIG_LINE_MAX];
	int64_t nd;

	set_phase(s, "stop-copy");
	*t_stop = mig_now_s();
	/* The throttle lets go before the final park takes the vCPUs. */
	mig_throttle_stop(&s->throttle);
	if (park(s) < 0)
		return -1;
	/* What the last round fetched and the pages dirtied since. */
	nd = fetch_dirty(s, true);
	if (nd < 0 || send_pages(s, false) < 0)
		return -1;
	/* Every page connection applied at the destination (SYNCED) before
	 * the device state goes out. */
	if (s->pool.n && pool_run(s, POOL_FINISH) < 0)
		return -1;
	if (state_save_epilogue(s->dom, &s->w) < 0 ||
	    stream_writer_finish(&s->w) < 0)
		SFAIL(s, "sending the domain state failed: %s", write_err(s));
	s->writer_open = false;
	set_phase(s, "handover");
	if (expect(s, "taking the state", line) < 0)
		return -1;
	if (strcmp(line, "READY"))
		SFAIL(s, "the destination said '%.100s', not READY", line);
	pthread_mutex_lock(&s->m->lock);
	s->m->committing = !s->m->cancel;
	pthread_mutex_unlock(&s->m->lock);
	if (check_cancel(s) < 0)
		return -1;
	if (mig_send_line(&s->conn, "GO") < 0)
		SFAIL(s, "the destination went away before GO");
	/* From here on the destination may run the guest. */
	if (mig_recv_line(&s->conn, line, sizeof(line)) < 0)
		return after_lost_answer(s);
	if (sscanf(line, "RUNNING %u", &s->m->p.dest_id) != 1) {
		if (!strncmp(line, "ERR ", 4))
			SFAIL(s, "the destination failed to start it: %.300s",
			      line + 4);
		SFAIL(s, "the destination said '%.100s', not RUNNING", line);
	}
	return 0;
}

/*
 * Connect, plain (--insecure, loopback only: args.c checked) or TLS: the
 * destination's certificate is checked here, before anything is sent.
 */
static int connect_transport(struct sender *s)
{
	struct migration *m = s->m;
	int fd, rc;

	set_phase(s, "connecting");
	fd = mig_connect(m->o.host, m->o.port, s->err, sizeof(s->err));
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&m->lock);
	m->sock = fd;			/* closed by finish() */
	pthread_mutex_unlock(&m->lock);
	if (check_cancel(s) < 0)
		return -1;
	if (m->o.insecure)
		rc = mig_conn_plain(&s->conn, fd);
	else
		rc = mig_tls_client(&s->conn, fd, m->o.host);
	if (rc < 0)
		SFAIL(s, "%.100s:%u: %.250s", m->o.host, m->o.port,
		      s->conn.err);
	s->have_conn = true;
	return check_cancel(s);
}

/* This migration's random id, the name a later XKVM-QUERY gives it. */
static int make_id(struct sender *s)
{
	if (mig_random_hex(s->id, MIG_ID_LEN / 2) < 0)
		SFAIL(s, "getrandom: %s", strerror(errno));
	return 0;
}

/* Hello with the versions we write; the destination picks one. */
static int connect_and_agree(struct sender *s)
{
	struct migration *m = s->m;
	char line[MIG_LINE_MAX];
	unsigned v;
	char conns[24] = "";

	if (make_id(s) < 0 || connect_transport(s) < 0)
		return -1;
	/* Said only when asked for: a destination that predates it reads
	 * the hello as before, and gives no token. */
	if (m->o.connections > 1)
		snprintf(conns, sizeof(conns), " conns=%u", m->o.connections);
	/* id= last: a destination that predates it reads the rest. */
	if (mig_send_line(&s->conn, "%s %u min=%u max=%u paused=%d name=%s%s "
			  "id=%s", MIG_HELLO, MIG_PROTO, STREAM_VERSION_MIN,
			  STREAM_VERSION, m->o.paused,
			  m->o.new_name[0] ? m->o.new_name : m->name,
			  conns, s->id) < 0) {
		snprintf(s->err, sizeof(s->err), "cannot send to %.100s: "
			 "%.250s", m->o.host, s->conn.err);
		mig_peer_reason(s, 1000);	/* a TLS alert may say why */
		return -1;
	}
	if (expect(s, "agreeing on a version", line) < 0)
		return -1;
	if (sscanf(line, "OK %u", &v) != 1 || v < STREAM_VERSION_MIN ||
	    v > STREAM_VERSION)
		SFAIL(s, "the destination answered '%.100s'", line);
	if (m->o.connections > 1 &&
	    sscanf(line, "OK %*u token=%32[0-9a-f]", s->token) != 1)
		SFAIL(s, "the destination does not take --connections "
		      "(it answered '%.100s')", line);
	pthread_mutex_lock(&m->lock);
	m->p.version = v;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int open_stream(struct sender *s)
{
	uint8_t bid[20];
	unsigned n = build_id_bytes(bid, sizeof(bid));

	struct stream_sink sink = { .write = mig_conn_sink,
				    .opaque = &s->conn };

	if (stream_writer_open_sink(&s->w, sink, s->m->p.version,
				    XEN_VERSION, bid, n) < 0)
		SFAIL(s, "cannot start the stream: %s", write_err(s));
	s->writer_open = true;
	if (state_save_prologue(s->dom, &s->w) < 0)
		SFAIL(s, "sending the config failed: %s", write_err(s));
	pthread_mutex_lock(&s->m->lock);
	s->m->p.wire_bytes = s->w.bytes;
	pthread_mutex_unlock(&s->m->lock);
	if (page_out_init(&s->out, s, &s->w, &s->conn, 0, 1) < 0)
		SFAIL(s, "out of memory");
	if (s->m->o.connections > 1)
		return pool_open(s);
	return 0;
}

static void finish(struct sender *s, int ret, double t_stop)
{
	struct migration *m = s->m;
	enum mig_state st = ret ? (m->cancel ? MIG_CANCELLED : MIG_FAILED)
				: MIG_DONE;

	mig_throttle_stop(&s->throttle);
	pthread_mutex_lock(&m->lock);
	m->p.throttle_ms = mig_throttle_parked_ms(&s->throttle);
	pthread_mutex_unlock(&m->lock);
	if (s->logging && ret) {
		guest_mem_log_dirty(s->dom, false);
		devices_log_changed(s->dom);
	}
	if (s->parked) {
		if (ret && !m->uncertain)
			quiesce_resume(&s->q);
		else
			quiesce_keep(&s->q);
	}
	m->p.wire_bytes = page_out_wire_bytes(s);
	m->p.unchanged_pages = page_out_unchanged(s);
	pool_close(s);
	page_out_free(&s->out);
	free(s->sent_hash[0]);
	free(s->sent_hash[1]);
	if (s->writer_open)
		stream_writer_free(&s->w);
	free(s->bitmap[0]);
	free(s->bitmap[1]);
	free(s->fetched[0]);
	free(s->fetched[1]);
	pthread_mutex_lock(&m->lock);
	if (s->have_conn)
		mig_conn_close(&s->conn);	/* and m->sock */
	else if (m->sock >= 0)
		close(m->sock);
	m->sock = -1;
	m->success = !ret;
	m->p.state = st;
	if (ret)
		m->p.failed_phase = m->p.phase;
	m->p.phase = mig_state_name(st);
	m->p.total_s = mig_now_s() - s->t0;
	if (!ret)
		m->p.downtime_ms = (mig_now_s() - t_stop) * 1e3;
	if (ret)
		snprintf(m->p.error, sizeof(m->p.error), "%s",
			 m->cancel ? "cancelled" : s->err);
	pthread_mutex_unlock(&m->lock);
}

void *mig_send_thread(void *arg)
{
	struct migration *m = arg;
	struct sender s = { .m = m, .dom = m->dom };
	double t_stop = 0;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "d%u migration", m->domid);
	sandbox_thread_enter(SANDBOX_MIGRATION, m->domid, name);
	s.t0 = mig_now_s();
	ret = connect_and_agree(&s);
	if (!ret)
		ret = open_stream(&s);
	if (!ret)
		ret = setup_dirty_log(&s);
	if (!ret)
		ret = precopy(&s);
	if (!ret)
		ret = stop_and_copy(&s, &t_stop);
	/* A write failed: the destination may have said why. */
	if (ret && !m->cancel && !m->uncertain && s.have_conn &&
	    !strncmp(s.err, "sending", 7))
		mig_peer_reason(&s, 1000);
	finish(&s, ret, t_stop);
	sandbox_thread_leave();
	mig_finished(m);
	return NULL;
}
