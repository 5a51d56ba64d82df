/* The messages of a build-ahead live update (ahead.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "liveupdate/ahead.h"

int lu_msg_send(int sock, uint32_t type, const void *text, size_t len,
		const int *fds, unsigned nr_fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LU_MSG_MAX_FDS)];
	struct { uint32_t type, len; } head = { type, len };
	struct iovec iov[2] = {
		{ &head, sizeof(head) },
		{ (void *)text, len },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	struct cmsghdr *c;

	if (len > LU_MSG_TEXT_MAX || nr_fds > LU_MSG_MAX_FDS) {
		errno = EMSGSIZE;
		return -1;
	}
	if (nr_fds) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nr_fds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static void take_fds(struct lu_msg *m, struct msghdr *mh)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned n, i;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nr_fds < LU_MSG_MAX_FDS)
				m->fds[m->nr_fds++] = fd;
			else
				close(fd);
		}
	}
}

int lu_msg_recv(int sock, struct lu_msg *m, int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LU_MSG_MAX_FDS)];
	struct { uint32_t type, len; } head;
	struct iovec iov[2] = {
		{ &head, sizeof(head) },
		{ m->text, LU_MSG_TEXT_MAX },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	ssize_t n;
	int got;

	m->nr_fds = 0;
	do
		got = poll(&p, 1, timeout_ms);
	while (got < 0 && errno == EINTR);
	if (got == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (got < 0)
		return -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	take_fds(m, &mh);
	if (n == 0 || (size_t)n < sizeof(head) ||
	    head.len != (size_t)n - sizeof(head) ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		lu_msg_close_fds(m);
		errno = n == 0 ? EPIPE : EPROTO;
		return -1;
	}
	m->type = head.type;
	m->len = head.len;
	m->text[head.len < LU_MSG_TEXT_MAX ? head.len : LU_MSG_TEXT_MAX - 1] =
		'\0';
	return 0;
}

void lu_msg_close_fds(struct lu_msg *m)
{
	unsigned i;

	for (i = 0; i < m->nr_fds; i++)
		close(m->fds[i]);
	m->nr_fds = 0;
}

const char *lu_msg_name(uint32_t type)
{
	static const char *const names[] = {
		[LU_MSG_PROLOGUE] = "PROLOGUE", [LU_MSG_BUILT] = "BUILT",
		[LU_MSG_EPILOGUE] = "EPILOGUE", [LU_MSG_RUNNING] = "RUNNING",
		[LU_MSG_FDS] = "FDS", [LU_MSG_HANDOFF] = "HANDOFF",
		[LU_MSG_DONE] = "DONE", [LU_MSG_ERR] = "ERR",
		[LU_MSG_STARTING] = "STARTING",
	};

	return type < sizeof(names) / sizeof(names[0]) && names[type] ?
	       names[type] : "unknown";
}
