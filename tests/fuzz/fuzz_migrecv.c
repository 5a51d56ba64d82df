/*
 * libFuzzer target for the receiving end of a live migration: what a
 * source sends, over a socket (a socket pair here, all of it in memory),
 * through migration/recv.c as the daemon serves a connection: the hello
 * line and the answer to it (migration/wire.c), the state stream
 * (common/stream.c) through the record table's checks and the restore
 * path (xen/state_restore.c) into a domain that is not running, READY,
 * then GO, commit and RUNNING; or a query of a handover's outcome
 * (migration/outcome.c).
 *
 * The domain and KVM layer is faked (tests/fuzz/fake_domain.c: guest RAM
 * is a real memfd; vCPU, VM and device records are taken as they are).
 * recv.c is compiled into this file so that its serve() is reachable
 * without a listening TCP socket.
 *
 * What must hold: every line the daemon answers is OK n, READY,
 * RUNNING n or ERR reason; a domain is added exactly when RUNNING is
 * said; a refused migration leaves nothing behind (leaks are findings).
 */
#include "migration/recv.c"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_domain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* FUZZ_VERBOSE: the daemon's log on stderr. */
	if (log_open(getenv("FUZZ_VERBOSE") ? NULL : "/dev/null") < 0)
		abort();
	fake_domains_ram = true;
	return 0;
}

/* The whole input into the socket (its buffer holds it). */
static int write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void fail(const char *why, const char *line)
{
	fprintf(stderr, "%s: %.500s\n", why, line);
	abort();
}

/* The daemon's answers; whether it said RUNNING. */
static bool check_answers(int fd)
{
	char buf[4096], *p, *nl;
	size_t len = 0;
	ssize_t n;
	bool running = false;
	unsigned v;

	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
	for (p = buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (sscanf(p, "OK %u", &v) == 1 && v >= STREAM_VERSION_MIN &&
		    v <= STREAM_VERSION)
			continue;
		if (!strcmp(p, "READY"))
			continue;
		if (sscanf(p, "RUNNING %u", &v) == 1 && domain_by_id(v)) {
			running = true;
			continue;
		}
		if (!strncmp(p, "ERR ", 4) && p[4])
			continue;
		/* The answer to an XKVM-QUERY (migration/outcome.c). */
		if (!strcmp(p, "OUTCOME unknown") ||
		    !strcmp(p, "OUTCOME dropped") ||
		    sscanf(p, "OUTCOME running %u", &v) == 1)
			continue;
		fail("an answer outside the protocol", p);
	}
	if (*p)
		fail("an unfinished answer", p);
	return running;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], buf = 1 << 20;
	unsigned before;
	bool running;

	fake_domains_reset();
	before = domain_count();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (write_all(sv[1], data, size) < 0)
		abort();
	shutdown(sv[1], SHUT_WR);
	{
		/* No listener: page connections (conns=N) are refused. */
		struct incoming x = { .lfd = -1 };

		serve(&x, sv[0]);
	}
	close(sv[0]);
	running = check_answers(sv[1]);
	close(sv[1]);
	if (domain_count() != before + running)
		fail("domains", running ? "RUNNING but not listed"
					: "a domain without RUNNING");
	return 0;
}
