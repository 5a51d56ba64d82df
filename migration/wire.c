/* Migration's TCP side: addresses, connecting, and the protocol lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "migration/mig.h"

/* "HOST:PORT", "[V6]:PORT" or "HOST" (port 0: the caller's default). */
int mig_parse_hostport(const char *s, char *host, size_t hostlen,
		       unsigned *port)
{
	const char *colon, *end = s + strlen(s);
	char *stop;
	long p;

	*port = 0;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || (rb[1] && rb[1] != ':'))
			return -1;
		colon = rb[1] ? rb + 1 : NULL;
		if ((size_t)(rb - s - 1) >= hostlen)
			return -1;
		snprintf(host, hostlen, "%.*s", (int)(rb - s - 1), s + 1);
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return -1;	/* bare IPv6: use brackets */
		if ((size_t)((colon ? colon : end) - s) >= hostlen)
			return -1;
		snprintf(host, hostlen, "%.*s", (int)((colon ? colon : end) - s),
			 s);
	}
	if (!host[0])
		return -1;
	if (!colon)
		return 0;
	p = strtol(colon + 1, &stop, 10);
	if (*stop || p < 1 || p > 65535)
		return -1;
	*port = p;
	return 0;
}

bool mig_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return !strcmp(host, "localhost");
}

void mig_set_timeouts(int fd, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };
	unsigned ms = seconds * 1000;
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mig_connect(const char *host, unsigned port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char ps[8];
	int fd = -1, rc;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		mig_set_timeouts(fd, MIG_IO_TIMEOUT_S);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "cannot connect to %s:%u: %s", host,
			 port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int mig_send_line(struct mig_conn *c, const char *fmt, ...)
{
	char buf[MIG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(buf) - 1)
		return -1;
	buf[n++] = '\n';
	if (mig_conn_write(c, buf, n) < 0)
		return -1;
	return mig_conn_flush(c);
}

int mig_recv_line(struct mig_conn *c, char *buf, size_t len)
{
	size_t i = 0;

	while (i + 1 < len) {
		if (mig_conn_read(c, buf + i, 1) < 0)
			return -1;
		if (buf[i] == '\n') {
			buf[i] = '\0';
			return 0;
		}
		i++;
	}
	snprintf(c->err, sizeof(c->err), "a line longer than %zu bytes",
		 len - 1);
	return -1;
}

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = {
		[MIG_ACTIVE] = "active",
		[MIG_DONE] = "completed",
		[MIG_FAILED] = "failed",
		[MIG_CANCELLED] = "cancelled",
	};

	return names[s];
}

int mig_random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	size_t i;

	if (nbytes > sizeof(b) ||
	    getrandom(b, nbytes, 0) != (ssize_t)nbytes)
		return -1;
	for (i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}
