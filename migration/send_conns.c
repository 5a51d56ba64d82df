/*
 * --connections N: N-1 page connections beside the main one, as QEMU's
 * multifd channels.  Each is connected and authenticated as the main one
 * (TLS, or plain TCP to a loopback address), says which migration it
 * belongs to by the token the destination gave (XKVM-PAGES), and carries
 * a stream of PAGE_BATCH records of its shard of RAM, written by a
 * thread of its own.  The migration thread gives all of them the same
 * job (the first pass, a round, the end) and waits until each has done
 * it; the end is END and the destination's SYNCED, once it has applied
 * every page of that connection (docs/migration.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h"
#include "migration/send.h"

#define WAIT_SLICE_MS	100

static int finish_stream(struct page_conn *pc)
{
	char line[MIG_LINE_MAX];

	if (stream_writer_finish(&pc->w) < 0) {
		snprintf(pc->out.err, sizeof(pc->out.err), "page connection "
			 "%u: END: %s", pc->out.shard + 1, pc->conn.err);
		return -1;
	}
	pc->writer_open = false;
	if (mig_recv_line(&pc->conn, line, sizeof(line)) < 0 ||
	    strcmp(line, "SYNCED")) {
		snprintf(pc->out.err, sizeof(pc->out.err), "page connection "
			 "%u: no SYNCED from the destination (%.200s)",
			 pc->out.shard + 1, pc->conn.err[0] ? pc->conn.err :
			 line);
		return -1;
	}
	return 0;
}

static int run_job(struct page_conn *pc, enum pool_job job)
{
	int rc;

	switch (job) {
	case POOL_ALL:
		rc = page_out_all(&pc->out);
		break;
	case POOL_DIRTY:
		rc = page_out_dirty(&pc->out);
		break;
	default:
		return finish_stream(pc);
	}
	if (rc < 0 && strncmp(pc->out.err, "page connection", 15)) {
		char why[400];

		snprintf(why, sizeof(why), "%s", pc->out.err);
		snprintf(pc->out.err, sizeof(pc->out.err), "page connection "
			 "%u: %.370s", pc->out.shard + 1, why);
	}
	return rc;
}

static void *conn_thread(void *arg)
{
	struct page_conn *pc = arg;
	struct conn_pool *pool = &pc->out.s->pool;
	enum pool_job job;
	int rc;

	/* The filter is the migration thread's, inherited. */
	prctl(PR_SET_NAME, "mig pages", 0, 0, 0);
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		while (!pool->stop && pc->seen == pool->gen)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->stop) {
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		pc->seen = pool->gen;
		job = pool->job;
		pthread_mutex_unlock(&pool->lock);
		rc = run_job(pc, job);
		pthread_mutex_lock(&pool->lock);
		pool->done++;
		if (rc < 0 && !pool->failed)
			pool->first = pc;	/* by itself, not by a cut */
		pool->failed |= rc < 0;
		pthread_cond_broadcast(&pool->cond);
		pthread_mutex_unlock(&pool->lock);
	}
}

/* Connect, authenticate, and join the migration by its token. */
static int open_one(struct sender *s, struct page_conn *pc, unsigned i)
{
	struct migration *m = s->m;
	char line[MIG_LINE_MAX];
	int fd, rc;

	fd = mig_connect(m->o.host, m->o.port, s->err, sizeof(s->err));
	if (fd < 0)
		return -1;
	if (m->o.insecure)
		rc = mig_conn_plain(&pc->conn, fd);
	else
		rc = mig_tls_client(&pc->conn, fd, m->o.host);
	if (rc < 0) {
		close(fd);
		snprintf(s->err, sizeof(s->err), "page connection %u: "
			 "%.300s", i + 1, pc->conn.err);
		return -1;
	}
	pc->have_conn = true;
	if (mig_send_line(&pc->conn, "%s %u token=%s index=%u", MIG_PAGES_HELLO,
			  MIG_PROTO, s->token, i) < 0 ||
	    mig_recv_line(&pc->conn, line, sizeof(line)) < 0) {
		snprintf(s->err, sizeof(s->err), "page connection %u: %.300s",
			 i + 1, pc->conn.err);
		return -1;
	}
	if (strcmp(line, "OK")) {
		snprintf(s->err, sizeof(s->err), "page connection %u: the "
			 "destination refused: %.300s", i + 1,
			 strncmp(line, "ERR ", 4) ? line : line + 4);
		return -1;
	}
	return 0;
}

static int open_stream(struct sender *s, struct page_conn *pc, unsigned i)
{
	struct stream_sink sink = { .write = mig_conn_sink,
				    .opaque = &pc->conn };
	uint8_t bid[20];
	unsigned n = build_id_bytes(bid, sizeof(bid));

	if (stream_writer_open_sink(&pc->w, sink, s->m->p.version,
				    XEN_VERSION, bid, n) < 0) {
		snprintf(s->err, sizeof(s->err), "page connection %u: %.300s",
			 i + 1, pc->conn.err);
		return -1;
	}
	pc->writer_open = true;
	if (page_out_init(&pc->out, s, &pc->w, &pc->conn, i, s->pool.n) < 0) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	return 0;
}

int pool_open(struct sender *s)
{
	struct conn_pool *pool = &s->pool;
	unsigned i, n = s->m->o.connections - 1;

	pool->pc = calloc(n, sizeof(*pool->pc));
	if (!pool->pc) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->n = n;
	for (i = 0; i < n; i++)
		pool->pc[i].conn.fd = -1;
	for (i = 0; i < n; i++)
		if (open_one(s, &pool->pc[i], i) < 0 ||
		    open_stream(s, &pool->pc[i], i) < 0)
			return -1;
	for (i = 0; i < n; i++) {
		if (pthread_create(&pool->pc[i].thread, NULL, conn_thread,
				   &pool->pc[i])) {
			snprintf(s->err, sizeof(s->err), "cannot start a "
				 "thread");
			return -1;
		}
		pool->pc[i].started = true;
	}
	return 0;
}

/* Fail every page connection's next read or write at once. */
static void cut_all(struct conn_pool *pool)
{
	unsigned i;

	for (i = 0; i < pool->n; i++)
		if (pool->pc[i].have_conn)
			shutdown(pool->pc[i].conn.fd, SHUT_RDWR);
}

static void deadline_in(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_nsec += ms * 1000000;
	t->tv_sec += t->tv_nsec / 1000000000;
	t->tv_nsec %= 1000000000;
}

/*
 * Every page connection does the job; meanwhile the main connection is
 * watched for the destination's ERR, and a cancel cuts them all.
 */
int pool_run(struct sender *s, enum pool_job job)
{
	struct conn_pool *pool = &s->pool;
	bool cut = false, said = false;
	struct timespec t;

	pthread_mutex_lock(&pool->lock);
	pool->job = job;
	pool->gen++;
	pool->done = 0;
	pthread_cond_broadcast(&pool->cond);
	while (pool->done < pool->n) {
		deadline_in(&t, WAIT_SLICE_MS);
		pthread_cond_timedwait(&pool->cond, &pool->lock, &t);
		if (cut || pool->done == pool->n)
			continue;
		pthread_mutex_unlock(&pool->lock);
		said = job != POOL_FINISH && mig_peer_reason(s, 0);
		if (said || s->m->cancel || pool->failed) {
			cut_all(pool);
			cut = true;
		}
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	if (s->m->cancel) {
		snprintf(s->err, sizeof(s->err), "cancelled");
		return -1;
	}
	if (said)
		return -1;		/* s->err says what the peer said */
	if (!pool->failed)
		return 0;
	snprintf(s->err, sizeof(s->err), "%s", pool->first->out.err);
	mig_peer_reason(s, 1000);	/* the destination may know why */
	return -1;
}

void pool_close(struct sender *s)
{
	struct conn_pool *pool = &s->pool;
	unsigned i;

	if (!pool->pc)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < pool->n; i++) {
		struct page_conn *pc = &pool->pc[i];

		if (pc->started)
			pthread_join(pc->thread, NULL);
		if (pc->writer_open)
			stream_writer_free(&pc->w);
		page_out_free(&pc->out);
		if (pc->have_conn)
			mig_conn_close(&pc->conn);
	}
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->pc);
	pool->pc = NULL;
	pool->n = 0;
}
