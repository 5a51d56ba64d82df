/*
 * The destination side.  The listener is served on the main thread, one
 * migration at a time, start to end: agree on the version, build the
 * domain from the stream without starting it, say READY, start it on
 * GO and say RUNNING; a source that heard nothing after GO asks on a
 * connection of its own what became of the guest (outcome.c).  With
 * TLS, the source's certificate is checked before anything else
 * (tls.c).  Any failure discards the half-built
 * domain and tells the source (ERR), which then resumes its guest.
 * Reads and writes time out (MIG_IO_TIMEOUT_S), so a stalled source
 * cannot hold the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "domain.h"
#include "log.h"
#include "loop.h"
#include "migration/recv.h"
#include "state.h"

struct incoming {
	struct mig_conn c;
	char peer[80];			/* its address, for the log */
	char name[64];
	bool paused;
	unsigned version;
	unsigned conns;			/* 1 + page connections */
	char token[40];			/* a page connection names it */
	char id[MIG_ID_LEN + 1];	/* the source's name for it, or "" */
	struct pages_in pages;
	int lfd;			/* the listener, for the page ones */
	struct domain *dom;
	char err[400];
};

#define IFAIL(x, ...) do { \
	snprintf((x)->err, sizeof((x)->err), __VA_ARGS__); \
	return -1; \
} while (0)

/* A fresh token for the page connections of this migration. */
static int make_token(struct incoming *x)
{
	if (mig_random_hex(x->token, 16) < 0)
		IFAIL(x, "getrandom: %s", strerror(errno));
	return 0;
}

/* conns=N, said by a source with --connections N (N > 1). */
static int parse_conns(struct incoming *x, const char *line)
{
	const char *p = strstr(line, " conns=");

	x->conns = 1;
	if (!p)
		return 0;
	if (sscanf(p, " conns=%u", &x->conns) != 1 || x->conns < 1 ||
	    x->conns > MIG_CONNECTIONS_MAX)
		IFAIL(x, "conns: 1..%u connections", MIG_CONNECTIONS_MAX);
	if (x->conns > 1 &&
	    (make_token(x) < 0 || pages_in_init(&x->pages, x->conns - 1,
						x->version, x->c.fd) < 0))
		IFAIL(x, "out of memory");
	return 0;
}

/* The hello: protocol, the versions the source writes, the options. */
static int agree(struct incoming *x, const char *line)
{
	char hello[32];
	unsigned proto, lo, hi;
	int paused;

	if (sscanf(line, "%31s %u min=%u max=%u paused=%d name=%63s", hello,
		   &proto, &lo, &hi, &paused, x->name) != 6 ||
	    strcmp(hello, MIG_HELLO))
		IFAIL(x, "not a migration hello: '%.80s'", line);
	if (proto != MIG_PROTO)
		IFAIL(x, "migration protocol %u, this daemon speaks %u", proto,
		      MIG_PROTO);
	x->version = hi < STREAM_VERSION ? hi : STREAM_VERSION;
	if (x->version < lo || x->version < STREAM_VERSION_MIN)
		IFAIL(x, "no common stream version: the source writes %u..%u, "
		      "this daemon reads %u..%u", lo, hi, STREAM_VERSION_MIN,
		      STREAM_VERSION);
	if (!domcfg_valid_name(x->name))
		IFAIL(x, "'%s' is not a valid domain name", x->name);
	x->paused = paused;
	/* A source that predates ids sends none: it cannot ask later. */
	if (mig_parse_id(line, x->id) < 0)
		x->id[0] = '\0';
	if (parse_conns(x, line) < 0)
		return -1;
	if (x->conns > 1)
		return mig_send_line(&x->c, "OK %u token=%s", x->version,
				     x->token);
	return mig_send_line(&x->c, "OK %u", x->version);
}

static int receive(struct incoming *x)
{
	struct restore_opts o = {
		.rename = x->name,
		.ram_fd = -1,
		.no_start = true,
		.clock = STATE_CLOCK_OTHER_HOST,
	};
	struct stream_source src = { mig_conn_source, &x->c };
	struct stream_reader r;
	int ret = -1, rc;

	if (x->conns > 1) {
		o.prepared = pages_in_prepared;
		o.opaque = &x->pages;
	}

	if (stream_reader_open(&r, src) < 0) {
		snprintf(x->err, sizeof(x->err), "%s", r.err);
		goto out;
	}
	if (r.hdr.version != x->version) {
		snprintf(x->err, sizeof(x->err), "stream version %u, agreed %u",
			 r.hdr.version, x->version);
		goto out;
	}
	rc = state_restore_domain(&r, &o, &x->dom, x->err, sizeof(x->err));
	/* Every page connection applied to its END before READY. */
	if (x->conns > 1 &&
	    pages_in_finish(&x->pages, !rc && r.ended, x->err,
			    sizeof(x->err)) < 0) {
		if (x->pages.err[0])	/* the cause, not the main read's */
			snprintf(x->err, sizeof(x->err), "%s", x->pages.err);
		if (!rc) {
			domain_discard(x->dom);
			x->dom = NULL;
			goto out;
		}
	}
	if (rc)
		goto out;
	if (!r.ended) {
		snprintf(x->err, sizeof(x->err), "records after the domain's end");
		domain_discard(x->dom);
		x->dom = NULL;
		goto out;
	}
	ret = 0;
out:
	stream_reader_close(&r);
	return ret;
}

/* READY, wait for GO, start the guest, RUNNING. */
static int hand_over(struct incoming *x)
{
	char line[MIG_LINE_MAX];
	unsigned id;

	if (mig_send_line(&x->c, "READY") < 0)
		IFAIL(x, "the source went away before the handover");
	if (mig_recv_line(&x->c, line, sizeof(line)) < 0 || strcmp(line, "GO")) {
		mig_outcome_note(x->id, false, 0);
		IFAIL(x, "the source did not say GO");
	}
	if (domain_commit(x->dom, x->paused, x->err, sizeof(x->err))) {
		mig_outcome_note(x->id, false, 0);
		return -1;
	}
	mig_outcome_note(x->id, true, x->dom->id);
	log_info("d%u: migrated in as '%s'%s", x->dom->id, x->dom->name,
		 x->paused ? " (paused)" : "");
	id = x->dom->id;
	x->dom = NULL;		/* it runs here now, whatever the source hears */
	mig_send_line(&x->c, "RUNNING %u", id);
	return 0;
}

/*
 * After ERR: let the source read it before the close (closing with its
 * data unread would reset the connection and lose the reason).  The
 * source stops at its next batch; give it a second.
 */
static void drain(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[65536];
	int i;

	shutdown(fd, SHUT_WR);
	for (i = 0; i < 100 && poll(&p, 1, 10) >= 0; i++)
		if ((p.revents & POLLIN) && read(fd, buf, sizeof(buf)) <= 0)
			break;
}

/*
 * The transport first: with TLS, a source whose certificate does not
 * chain to our CA is refused here, before a byte of the protocol.
 */
static int open_transport(struct mig_conn *c, int fd, const char *peer)
{
	char what[400];

	mig_set_timeouts(fd, MIG_IO_TIMEOUT_S);
	if (!mig_tls_loaded())
		return mig_conn_plain(c, fd);
	if (mig_tls_server(c, fd) < 0)
		return -1;
	mig_tls_peer(c, what, sizeof(what));
	log_info("incoming migration from %s: %s", peer, what);
	return 0;
}

static void peer_name(const struct sockaddr_storage *sa, socklen_t len,
		      char *buf, size_t buflen)
{
	char host[64], port[8];

	if (getnameinfo((const struct sockaddr *)sa, len, host, sizeof(host),
			port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, buflen, "?");
	else
		snprintf(buf, buflen, strchr(host, ':') ? "[%s]:%s" : "%s:%s",
			 host, port);
}

/*
 * One connection to the listener while a migration with page
 * connections is set up: authenticated as the main one, and taken if
 * its hello names this migration's token and a free index.  1 taken,
 * 0 refused (and closed).
 */
static int take_page_conn(struct incoming *x, int fd, const char *peer)
{
	struct mig_conn c = { .fd = -1 };
	char line[MIG_LINE_MAX], hello[32], token[40], why[300];
	unsigned proto, idx;

	if (open_transport(&c, fd, peer) < 0) {
		log_err("incoming migration from %s refused: %s", peer, c.err);
		drain(fd);
		close(fd);
		return 0;
	}
	if (mig_recv_line(&c, line, sizeof(line)) < 0)
		snprintf(why, sizeof(why), "no hello (%.250s)", c.err);
	else if (sscanf(line, "%31s %u token=%39s index=%u", hello, &proto,
			token, &idx) != 4 || strcmp(hello, MIG_PAGES_HELLO) ||
		 proto != MIG_PROTO)
		snprintf(why, sizeof(why), "busy with another migration");
	else if (strcmp(token, x->token) || idx >= x->pages.n ||
		 x->pages.pi[idx].c.ops)
		snprintf(why, sizeof(why), "not a page connection of the "
			 "migration in progress");
	else {
		x->pages.pi[idx].c = c;
		return mig_send_line(&x->pages.pi[idx].c, "OK") < 0 ? 0 : 1;
	}
	log_err("connection from %s during the migration of %s refused: %s",
		peer, x->name, why);
	mig_send_line(&c, "ERR %s", why);
	drain(fd);
	mig_conn_close(&c);
	return 0;
}

static long ms_left(const struct timespec *end)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (end->tv_sec - now.tv_sec) * 1000 +
	       (end->tv_nsec - now.tv_nsec) / 1000000;
}

/* The page connections of --connections N, within the I/O timeout. */
static int accept_pages(struct incoming *x)
{
	struct pollfd p = { .fd = x->lfd, .events = POLLIN };
	struct sockaddr_storage sa;
	struct timespec end;
	unsigned joined = 0;
	char peer[80];
	socklen_t len;
	long left;
	int fd;

	if (x->conns < 2)
		return 0;
	if (x->lfd < 0)		/* served without a listener (the fuzzer) */
		IFAIL(x, "no listener for %u page connections", x->pages.n);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += MIG_IO_TIMEOUT_S;
	while (joined < x->pages.n) {
		left = ms_left(&end);
		if (left <= 0 || poll(&p, 1, left) <= 0)
			IFAIL(x, "%u of %u page connections came", joined,
			      x->pages.n);
		len = sizeof(sa);
		fd = accept4(x->lfd, (struct sockaddr *)&sa, &len,
			     SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		peer_name(&sa, len, peer, sizeof(peer));
		joined += take_page_conn(x, fd, peer);
	}
	if (pages_in_start(&x->pages) < 0)
		IFAIL(x, "cannot start a thread");
	log_info("incoming migration of %s: %u page connections", x->name,
		 joined);
	return 0;
}

static void serve(struct incoming *x, int fd)
{
	char line[MIG_LINE_MAX];

	if (open_transport(&x->c, fd, x->peer) < 0) {
		log_err("incoming migration from %s refused: %s", x->peer,
			x->c.err);
		drain(fd);	/* the source reads our alert, not a reset */
		close(fd);
		return;
	}
	if (mig_recv_line(&x->c, line, sizeof(line)) < 0) {
		snprintf(x->err, sizeof(x->err), "no hello from the source "
			 "(%s)", x->c.err);
		goto fail;
	}
	if (!strncmp(line, MIG_QUERY " ", strlen(MIG_QUERY) + 1)) {
		mig_outcome_answer(&x->c, line, x->peer);
		goto out;
	}
	if (agree(x, line) == 0 && accept_pages(x) == 0 && receive(x) == 0 &&
	    hand_over(x) == 0)
		goto out;
fail:
	log_err("incoming migration%s%s from %s failed: %s",
		x->name[0] ? " of " : "", x->name, x->peer, x->err);
	if (x->dom)
		domain_discard(x->dom);
	if (x->pages.pi)
		pages_in_finish(&x->pages, false, x->err, sizeof(x->err));
	mig_send_line(&x->c, "ERR %.400s", x->err);
	drain(fd);
out:
	if (x->pages.pi)
		pages_in_free(&x->pages);
	mig_conn_close(&x->c);
}

static void on_accept(int lfd, short revents, void *opaque)
{
	struct incoming x = { .c.fd = -1, .lfd = lfd };
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	peer_name(&sa, len, x.peer, sizeof(x.peer));
	serve(&x, fd);
}

static int listen_fd = -1;

int mig_listen_fd(void)
{
	return listen_fd;
}

/* The old image's listener: a listening stream socket, close-on-exec. */
static int adopt_listener(const char *addr, int fd)
{
	int yes = 0;
	socklen_t len = sizeof(yes);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &yes, &len) < 0 ||
	    !yes) {
		log_err("--migrate-listen %s: fd %d handed over is not a "
			"listening socket", addr, fd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (loop_add(fd, POLLIN, on_accept, NULL) < 0) {
		log_err("--migrate-listen %s: %s", addr, strerror(errno));
		return -1;
	}
	listen_fd = fd;
	log_info("accepting migrations on %s (%s), the socket handed over by "
		 "a live update", addr, mig_tls_loaded() ?
		 "TLS 1.3, mutual X.509" : "plain TCP, loopback");
	return 0;
}

int mig_listen_start(const char *addr, bool insecure, int inherited_fd)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *ai;
	char host[256], ps[8];
	unsigned port;
	int fd, one = 1;

	if (mig_parse_hostport(addr, host, sizeof(host), &port) < 0 || !port) {
		log_err("--migrate-listen %s: want ADDR:PORT", addr);
		return -1;
	}
	if (insecure && mig_tls_loaded()) {
		log_err("--migrate-listen %s: --migrate-insecure and "
			"--migrate-tls: the listener is one or the other", addr);
		return -1;
	}
	if (!mig_tls_loaded() && (!insecure || !mig_host_is_loopback(host))) {
		log_err("--migrate-listen %s: needs --migrate-tls DIR (plain "
			"TCP, --migrate-insecure, is for a loopback address "
			"only)", addr);
		return -1;
	}
	if (inherited_fd >= 0)
		return adopt_listener(addr, inherited_fd);
	snprintf(ps, sizeof(ps), "%u", port);
	if (getaddrinfo(host, ps, &hints, &ai)) {
		log_err("--migrate-listen %s: cannot resolve", addr);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0 ||
	    loop_add(fd, POLLIN, on_accept, NULL) < 0) {
		log_err("--migrate-listen %s: %s", addr, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	listen_fd = fd;
	log_info("accepting migrations on %s (%s)", addr, mig_tls_loaded() ?
		 "TLS 1.3, mutual X.509" : "plain TCP, loopback");
	return 0;
}
