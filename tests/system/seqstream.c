/*
 * seqstream: a TCP stream of numbered lines, checked at both ends, for the
 * system tier's network workload (tests/system/README.md).  Static, so that
 * the same binary runs in the host VM (an initramfs) and in the busybox
 * guests.
 *
 *   seqstream recv PORT [-t IDLE_S] [-p PROGRESS_S]
 *       Accepts one connection on PORT and reads lines "N\n".  Every line
 *       must be the one after the last: a larger number is a gap, a smaller
 *       one a duplicate, anything else is bad.  It echoes every byte back.
 *       With -p it prints "SYSTEST: seq progress lines=.." every PROGRESS_S
 *       seconds.  At the end (the peer's FIN, a reset, an error, or IDLE_S
 *       seconds without data) it prints one line
 *         SYSTEST: seq lines=.. last=.. gaps=.. dups=.. bad=.. end=eof|reset|..
 *                  longest_pause_ms=.. pause_at=.. seconds=..
 *       and, after a clean end, sends it to the sender before it closes.
 *       Its longest_pause_ms is on the receiver's clock: a guest whose clock
 *       stops while the VM is stopped (kvmclock across QEMU's stop/cont)
 *       does not see that pause.
 *
 *   seqstream send HOST PORT [-i INTERVAL_MS] [-t SECONDS] [-w CONNECT_S]
 *       Connects to HOST:PORT (retrying for CONNECT_S seconds) and writes
 *       "0\n", "1\n", ... one line every INTERVAL_MS ms until SECONDS have
 *       passed (0: until SIGTERM or SIGINT).  It checks the echo the same
 *       way and measures, on its own clock, the longest time between two
 *       reads that brought echoed data: the pause the peer's side of the
 *       network took, whatever its clock says.  Then it half-closes, reads
 *       the rest of the echo and the receiver's line, prints that line and
 *       one of its own
 *         seqstream send: sent=.. echoed=.. gaps=.. dups=.. bad=..
 *                  longest_pause_ms=.. pause_at=.. longest_write_ms=..
 *                  result=ok|<error>
 *       It exits 0 only when every write succeeded, every line came back
 *       once and in order, and the receiver's line arrived.  A peer that
 *       stops acknowledging fails the stream after 60 s (TCP_USER_TIMEOUT)
 *       instead of hanging.
 *
 * Throughput, for the benchmarks (bench/virtio.py):
 *
 *   seqstream sink PORT
 *       Accepts one connection on PORT and reads (and drops) everything
 *       until the peer's FIN, then prints and sends back one line
 *         SYSTEST: pump recv bytes=.. seconds=.. mibps=..
 *       timed on its own clock from the first byte to the FIN.
 *
 *   seqstream source HOST PORT MIB [-w CONNECT_S]
 *       Connects to HOST:PORT and writes MIB MiB (zeros, 256 KiB writes)
 *       as fast as the connection takes them, half-closes, then waits for
 *       the sink's line and its close.  Prints that line and one of its own
 *         seqstream source: bytes=.. seconds=.. mibps=.. result=ok|<error>
 *       timed on its own clock from the connection to the sink's line (so
 *       every byte has arrived at the sink).
 *
 *   seqstream randread DEV COUNT [-b BLOCK]
 *       COUNT reads of BLOCK bytes (4096) with O_DIRECT at block-aligned
 *       offsets spread over DEV (a fixed xorshift sequence, the same every
 *       run), one at a time (queue depth 1), then
 *         SYSTEST: randread count=.. block=.. seconds=.. iops=.. mibps=..
 */
#define _GNU_SOURCE		/* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPORT_PREFIX "SYSTEST: seq "

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "seqstream: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static void usage(void)
{
	die("usage: seqstream recv PORT [-t IDLE_S] [-p PROGRESS_S]\n"
	    "       seqstream send HOST PORT [-i INTERVAL_MS] [-t SECONDS] "
	    "[-w CONNECT_S]\n"
	    "       seqstream sink PORT\n"
	    "       seqstream source HOST PORT MIB [-w CONNECT_S]\n"
	    "       seqstream randread DEV COUNT [-b BLOCK]");
}

static long num_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < 0)
		usage();
	return v;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *sock_error(int err)
{
	return err == ECONNRESET ? "reset" : err == EPIPE ? "broken-pipe" :
	       err == ETIMEDOUT ? "timed-out" : "error";
}

/* ------------------------------------------------------------ checker */

/* Checks a stream of "N\n" lines and times the reads that bring them. */
struct checker {
	uint64_t lines, expect, gaps, dups, bad;
	int64_t last, pause_at;
	double longest, last_data;
	char partial[256];
	size_t plen;
	char report[256];	/* a "SYSTEST: seq " line met in the stream */
};

static void checker_init(struct checker *c)
{
	memset(c, 0, sizeof(*c));
	c->last = c->pause_at = -1;
	c->last_data = now_ms();
}

static void check_line(struct checker *c, const char *s, size_t len)
{
	uint64_t v = 0;
	size_t i;

	if (len > strlen(REPORT_PREFIX) &&
	    !memcmp(s, REPORT_PREFIX, strlen(REPORT_PREFIX)) &&
	    len < sizeof(c->report)) {
		memcpy(c->report, s, len);
		c->report[len] = 0;
		return;
	}
	if (!len || len > 20) {
		c->bad++;
		return;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			c->bad++;
			return;
		}
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	c->lines++;
	if (v > c->expect)
		c->gaps += v - c->expect;
	else if (v < c->expect)
		c->dups++;
	if (v >= c->expect)
		c->expect = v + 1;
	c->last = (int64_t)v;
}

/* Bytes just read: time the read, then check the lines they complete. */
static void feed(struct checker *c, const char *buf, size_t len)
{
	double t = now_ms();
	size_t i;

	if (t - c->last_data > c->longest) {
		c->longest = t - c->last_data;
		c->pause_at = (int64_t)c->expect;
	}
	c->last_data = t;
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			check_line(c, c->partial, c->plen);
			c->plen = 0;
		} else if (c->plen < sizeof(c->partial)) {
			/* A line longer than the buffer stays at its full
			 * length, which check_line() counts as bad. */
			c->partial[c->plen++] = buf[i];
		}
	}
}

/* ------------------------------------------------------------ receiver */

/* Listen on sa's port, take one connection and stop listening. */
static int accept_one(const struct sockaddr_in *sa, const char *mode)
{
	int ls, fd, one = 1;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (const struct sockaddr *)sa, sizeof(*sa)) ||
	    listen(ls, 1))
		die("listen on port %u: %s", ntohs(sa->sin_port),
		    strerror(errno));
	printf("seqstream %s: listening on %u\n", mode, ntohs(sa->sin_port));
	fd = accept(ls, NULL, NULL);
	if (fd < 0)
		die("accept: %s", strerror(errno));
	close(ls);
	return fd;
}

static int cmd_recv(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long idle_s = 120, progress_s = 0;
	int fd, one = 1, opt;
	double started, next_progress = 0;
	const char *end = "eof";
	char buf[4096], report[512];
	struct checker c;

	if (argc < 2)
		usage();
	sa.sin_port = htons((uint16_t)num_arg(argv[1]));
	optind = 2;
	while ((opt = getopt(argc, argv, "t:p:")) != -1) {
		if (opt == 't')
			idle_s = num_arg(optarg);
		else if (opt == 'p')
			progress_s = num_arg(optarg);
		else
			usage();
	}
	signal(SIGPIPE, SIG_IGN);
	fd = accept_one(&sa, "recv");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	checker_init(&c);
	started = c.last_data;
	if (progress_s)
		next_progress = started + progress_s * 1e3;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, progress_s ? (int)progress_s * 1000 :
						 (int)idle_s * 1000);
		double t = now_ms();
		ssize_t got;

		if (progress_s && t >= next_progress) {
			printf(REPORT_PREFIX "progress lines=%llu last=%lld "
			       "longest_pause_ms=%.0f\n",
			       (unsigned long long)c.lines, (long long)c.last,
			       c.longest);
			next_progress = t + progress_s * 1e3;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			end = "poll-error";
			break;
		}
		if (n == 0) {
			if (t - c.last_data >= idle_s * 1e3) {
				end = "idle-timeout";
				break;
			}
			continue;
		}
		got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			end = errno == ECONNRESET ? "reset" : "read-error";
			break;
		}
		if (got == 0)
			break;
		feed(&c, buf, (size_t)got);
		if (write_all(fd, buf, (size_t)got)) {
			end = errno == ECONNRESET ? "reset" : "echo-error";
			break;
		}
	}
	if (c.plen)
		c.bad++;		/* a last line without its newline */
	snprintf(report, sizeof(report),
		 REPORT_PREFIX "lines=%llu last=%lld gaps=%llu dups=%llu "
		 "bad=%llu end=%s longest_pause_ms=%.0f pause_at=%lld "
		 "seconds=%.1f\n",
		 (unsigned long long)c.lines, (long long)c.last,
		 (unsigned long long)c.gaps, (unsigned long long)c.dups,
		 (unsigned long long)c.bad, end, c.longest,
		 (long long)c.pause_at, (now_ms() - started) / 1e3);
	fputs(report, stdout);
	if (!strcmp(end, "eof"))
		(void)write_all(fd, report, strlen(report));
	close(fd);
	return !strcmp(end, "eof") && !c.gaps && !c.dups && !c.bad ? 0 : 1;
}

/* ------------------------------------------------------------ sender */

static int connect_retry(const char *host, long port, long wait_s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	double deadline = now_ms() + wait_s * 1e3;
	unsigned int user_timeout = 60000;
	int fd, one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("not an IPv4 address: %s", host);
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			break;
		if (now_ms() > deadline || stop_requested)
			die("connect to %s:%ld: %s", host, port,
			    strerror(errno));
		close(fd);
		usleep(200000);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
		   sizeof(user_timeout));
	return fd;
}

/* Read what is there of the echo; 0 at EOF, -1 on an error, else 1. */
static int read_echo(int fd, struct checker *echo)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (n == 0)
		return 0;
	feed(echo, buf, (size_t)n);
	return 1;
}

static int cmd_send(int argc, char **argv)
{
	long interval = 10, seconds = 0, wait_s = 30, port;
	struct sigaction sa = { .sa_handler = on_stop };
	double start, next, longest_write = 0;
	const char *result = "ok";
	struct checker echo;
	uint64_t seq = 0;
	int fd, opt, r;

	if (argc < 3)
		usage();
	port = num_arg(argv[2]);
	optind = 3;
	while ((opt = getopt(argc, argv, "i:t:w:")) != -1) {
		if (opt == 'i')
			interval = num_arg(optarg);
		else if (opt == 't')
			seconds = num_arg(optarg);
		else if (opt == 'w')
			wait_s = num_arg(optarg);
		else
			usage();
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fd = connect_retry(argv[1], port, wait_s);
	printf("seqstream send: connected to %s:%ld\n", argv[1], port);
	checker_init(&echo);
	start = next = now_ms();
	while (!stop_requested &&
	       (!seconds || now_ms() - start < seconds * 1e3)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double wait = next - now_ms();

		if (wait <= 0) {
			char line[24];
			int len = snprintf(line, sizeof(line), "%llu\n",
					   (unsigned long long)seq);
			double t0 = now_ms();

			if (write_all(fd, line, (size_t)len)) {
				result = sock_error(errno);
				break;
			}
			if (now_ms() - t0 > longest_write)
				longest_write = now_ms() - t0;
			seq++;
			/* The next line is due one interval after this one;
			 * after a stall, no burst to catch up. */
			next += interval;
			if (next < now_ms())
				next = now_ms() + interval;
			continue;
		}
		if (poll(&p, 1, (int)wait + 1) > 0) {
			r = read_echo(fd, &echo);
			if (r <= 0) {
				result = r ? sock_error(errno) : "eof-early";
				break;
			}
		}
	}
	if (!strcmp(result, "ok")) {
		shutdown(fd, SHUT_WR);
		/* The rest of the echo, the receiver's report, its close. */
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			if (poll(&p, 1, 60000) <= 0) {
				result = "no-report";
				break;
			}
			r = read_echo(fd, &echo);
			if (r < 0)
				result = sock_error(errno);
			if (r <= 0)
				break;
		}
		if (echo.report[0])
			printf("%s\n", echo.report);
		if (!strcmp(result, "ok")) {
			if (!echo.report[0])
				result = "no-report";
			else if (echo.lines != seq || echo.gaps ||
				 echo.dups || echo.bad || echo.plen)
				result = "echo-differs";
		}
	}
	close(fd);
	printf("seqstream send: sent=%llu echoed=%llu gaps=%llu dups=%llu "
	       "bad=%llu longest_pause_ms=%.0f pause_at=%lld "
	       "longest_write_ms=%.0f result=%s\n",
	       (unsigned long long)seq, (unsigned long long)echo.lines,
	       (unsigned long long)echo.gaps, (unsigned long long)echo.dups,
	       (unsigned long long)echo.bad, echo.longest,
	       (long long)echo.pause_at, longest_write, result);
	return strcmp(result, "ok") ? 1 : 0;
}

/* ------------------------------------------------------------ throughput */

#define PUMP_CHUNK (256 * 1024)

static int cmd_sink(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	static char buf[PUMP_CHUNK];
	char report[256];
	uint64_t bytes = 0;
	double first = 0, last;
	int fd;

	if (argc != 2)
		usage();
	sa.sin_port = htons((uint16_t)num_arg(argv[1]));
	signal(SIGPIPE, SIG_IGN);
	fd = accept_one(&sa, "sink");
	last = now_ms();
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read: %s", strerror(errno));
		if (n == 0)
			break;
		if (!bytes)
			first = now_ms();
		bytes += (uint64_t)n;
	}
	last = now_ms();
	if (!bytes)
		first = last;
	snprintf(report, sizeof(report),
		 "SYSTEST: pump recv bytes=%llu seconds=%.3f mibps=%.2f\n",
		 (unsigned long long)bytes, (last - first) / 1e3,
		 last > first ? bytes / 1048576.0 / ((last - first) / 1e3) : 0);
	fputs(report, stdout);
	(void)write_all(fd, report, strlen(report));
	close(fd);
	return 0;
}

static int cmd_source(int argc, char **argv)
{
	static char buf[PUMP_CHUNK];
	long port, mib, wait_s = 30;
	uint64_t bytes = 0, total;
	const char *result = "ok";
	char reply[256];
	size_t rlen = 0;
	double t0, t1;
	int fd, opt;

	if (argc < 4)
		usage();
	port = num_arg(argv[2]);
	mib = num_arg(argv[3]);
	optind = 4;
	while ((opt = getopt(argc, argv, "w:")) != -1) {
		if (opt == 'w')
			wait_s = num_arg(optarg);
		else
			usage();
	}
	signal(SIGPIPE, SIG_IGN);
	total = (uint64_t)mib << 20;
	fd = connect_retry(argv[1], port, wait_s);
	t0 = now_ms();
	while (bytes < total) {
		size_t len = total - bytes < sizeof(buf) ?
			     (size_t)(total - bytes) : sizeof(buf);

		if (write_all(fd, buf, len)) {
			result = sock_error(errno);
			break;
		}
		bytes += len;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n = read(fd, reply + rlen, sizeof(reply) - 1 - rlen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		rlen += (size_t)n;
		if (rlen == sizeof(reply) - 1)
			break;
	}
	t1 = now_ms();
	reply[rlen] = 0;
	if (!strcmp(result, "ok") && !strstr(reply, "SYSTEST: pump recv"))
		result = "no-report";
	fputs(reply, stdout);
	printf("seqstream source: bytes=%llu seconds=%.3f mibps=%.2f "
	       "result=%s\n", (unsigned long long)bytes, (t1 - t0) / 1e3,
	       t1 > t0 ? bytes / 1048576.0 / ((t1 - t0) / 1e3) : 0, result);
	close(fd);
	return strcmp(result, "ok") ? 1 : 0;
}

static int cmd_randread(int argc, char **argv)
{
	long count, block = 4096, i;
	uint64_t x = 0x9e3779b97f4a7c15ull, blocks;
	off_t size;
	void *buf;
	double t0, t1;
	int fd, opt;

	if (argc < 3)
		usage();
	count = num_arg(argv[2]);
	optind = 3;
	while ((opt = getopt(argc, argv, "b:")) != -1) {
		if (opt == 'b')
			block = num_arg(optarg);
		else
			usage();
	}
	if (block < 512 || block % 512)
		die("block must be a multiple of 512");
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0)
		die("open %s with O_DIRECT: %s", argv[1], strerror(errno));
	size = lseek(fd, 0, SEEK_END);
	if (size < block)
		die("%s: size %lld", argv[1], (long long)size);
	blocks = (uint64_t)size / (uint64_t)block;
	if (posix_memalign(&buf, 4096, (size_t)block))
		die("no memory");
	t0 = now_ms();
	for (i = 0; i < count; i++) {
		ssize_t n;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		n = pread(fd, buf, (size_t)block,
			  (off_t)((x % blocks) * (uint64_t)block));
		if (n != block)
			die("pread: %s", n < 0 ? strerror(errno) : "short");
	}
	t1 = now_ms();
	printf("SYSTEST: randread count=%ld block=%ld seconds=%.3f "
	       "iops=%.1f mibps=%.2f\n", count, block, (t1 - t0) / 1e3,
	       t1 > t0 ? count / ((t1 - t0) / 1e3) : 0,
	       t1 > t0 ? count * (double)block / 1048576.0 /
			 ((t1 - t0) / 1e3) : 0);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "recv"))
		return cmd_recv(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "send"))
		return cmd_send(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "sink"))
		return cmd_sink(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "source"))
		return cmd_source(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "randread"))
		return cmd_randread(argc - 1, argv + 1);
	usage();
	return 2;
}
