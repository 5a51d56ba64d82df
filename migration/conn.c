/* The migration connection's buffered I/O, and its plain TCP transport. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/conn.h"

static void sys_err(struct mig_conn *c, const char *what, ssize_t n)
{
	if (n == 0)
		snprintf(c->err, sizeof(c->err), "the peer closed the "
			 "connection");
	else if (errno == EAGAIN || errno == EWOULDBLOCK)
		snprintf(c->err, sizeof(c->err), "%s timed out", what);
	else
		snprintf(c->err, sizeof(c->err), "%s: %s", what,
			 strerror(errno));
}

static ssize_t plain_send(struct mig_conn *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		sys_err(c, "send", n);
		return -1;
	}
	return n;
}

static ssize_t plain_recv(struct mig_conn *c, void *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		sys_err(c, "receive", n);
		return -1;
	}
	return n;
}

static bool plain_pending(struct mig_conn *c)
{
	return false;
}

static void plain_release(struct mig_conn *c)
{
}

static const struct mig_conn_ops plain_ops = {
	.name = "TCP",
	.send = plain_send,
	.recv = plain_recv,
	.pending = plain_pending,
	.release = plain_release,
};

int mig_conn_init(struct mig_conn *c, int fd, const struct mig_conn_ops *ops)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ops = ops;
	c->wbuf = malloc(MIG_CONN_WBUF);
	if (!c->wbuf) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		return -1;
	}
	return 0;
}

int mig_conn_plain(struct mig_conn *c, int fd)
{
	if (mig_conn_init(c, fd, &plain_ops) < 0) {
		c->fd = -1;		/* the caller's to close */
		mig_conn_close(c);
		return -1;
	}
	return 0;
}

static int send_all(struct mig_conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = c->ops->send(c, p, len);

		if (n < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int mig_conn_flush(struct mig_conn *c)
{
	size_t n = c->wlen;

	c->wlen = 0;
	return n ? send_all(c, c->wbuf, n) : 0;
}

int mig_conn_write(struct mig_conn *c, const void *buf, size_t len)
{
	if (c->wlen + len <= MIG_CONN_WBUF) {
		memcpy(c->wbuf + c->wlen, buf, len);
		c->wlen += len;
		return 0;
	}
	if (mig_conn_flush(c) < 0)
		return -1;
	if (len < MIG_CONN_WBUF) {
		memcpy(c->wbuf, buf, len);
		c->wlen = len;
		return 0;
	}
	return send_all(c, buf, len);	/* a page batch: no copy */
}

int mig_conn_read(struct mig_conn *c, void *buf, size_t len)
{
	char *p = buf;

	if (mig_conn_flush(c) < 0)
		return -1;
	while (len) {
		ssize_t n = c->ops->recv(c, p, len);

		if (n < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int mig_conn_wait(struct mig_conn *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (mig_conn_flush(c) < 0)
		return 1;		/* the read will say why */
	if (c->ops->pending(c))
		return 1;
	return poll(&p, 1, ms) == 1;
}

void mig_conn_close(struct mig_conn *c)
{
	if (c->ops)
		c->ops->release(c);
	c->ops = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->wbuf);
	c->wbuf = NULL;
}

int mig_conn_sink(void *opaque, const void *buf, size_t len)
{
	struct mig_conn *c = opaque;

	return mig_conn_write(c, buf, len) < 0 ? EPIPE : 0;
}

int mig_conn_source(void *opaque, void *buf, size_t len)
{
	return mig_conn_read(opaque, buf, len);
}
