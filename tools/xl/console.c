// SPDX-License-Identifier: GPL-2.0
/*
 * Console sessions.  With a terminal on stdin the terminal is put in raw
 * mode (restored on every way out, signals included) and Ctrl-] detaches;
 * otherwise stdin is copied to the guest until EOF and output is printed
 * until the daemon closes the stream or a signal ends the session.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "console.h"
#include "xl.h"

#define SESSION_END	(-1)	/* pump result: leave with XL_EXIT_OK */

struct session {
	int sock;
	bool tty;		/* stdin is a terminal, now raw */
	bool stdin_open;
	struct termios saved;
	sigset_t wait_mask;	/* mask while waiting: signals let in */
	sigset_t old_mask;
	struct sigaction old_act[3];
};

static const int session_signals[] = { SIGINT, SIGTERM, SIGHUP };
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Handle SIGINT/SIGTERM/SIGHUP only inside ppoll(), and ignore SIGPIPE. */
static void signals_setup(struct session *s)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;
	size_t i;

	got_signal = 0;
	sigemptyset(&block);
	for (i = 0; i < 3; i++)
		sigaddset(&block, session_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &s->old_mask);
	s->wait_mask = s->old_mask;
	for (i = 0; i < 3; i++) {
		sigdelset(&s->wait_mask, session_signals[i]);
		sigaction(session_signals[i], &sa, &s->old_act[i]);
	}
	signal(SIGPIPE, SIG_IGN);
}

static void signals_restore(struct session *s)
{
	size_t i;

	for (i = 0; i < 3; i++)
		sigaction(session_signals[i], &s->old_act[i], NULL);
	sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
}

static void tty_raw(struct session *s)
{
	struct termios raw;

	s->tty = isatty(STDIN_FILENO) &&
		 tcgetattr(STDIN_FILENO, &s->saved) == 0;
	if (!s->tty)
		return;
	raw = s->saved;
	cfmakeraw(&raw);
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void tty_restore(struct session *s)
{
	if (s->tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &s->saved);
}

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Guest output to stdout. */
static int from_guest(struct session *s)
{
	char buf[16384];
	ssize_t n;

	n = read(s->sock, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return XL_EXIT_OK;
	if (n == 0)
		return SESSION_END;	/* domain gone */
	if (n < 0) {
		xl_err("console connection lost: %s", strerror(errno));
		return XL_EXIT_PROTOCOL;
	}
	if (xl_write_all(STDOUT_FILENO, buf, n) == 0)
		return XL_EXIT_OK;
	if (errno == EPIPE)
		return SESSION_END;
	xl_err("writing output: %s", strerror(errno));
	return XL_EXIT_IOERR;
}

/* Keyboard (or piped input) to the guest. */
static int to_guest(struct session *s)
{
	char buf[4096], *esc = NULL;
	ssize_t n;

	n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return XL_EXIT_OK;
	if (n <= 0) {
		s->stdin_open = false;
		return s->tty ? SESSION_END : XL_EXIT_OK;
	}
	if (s->tty)
		esc = memchr(buf, XL_CONSOLE_ESCAPE, n);
	if (esc)
		n = esc - buf;
	if (send_all(s->sock, buf, n)) {
		xl_err("console connection lost: %s", strerror(errno));
		return XL_EXIT_PROTOCOL;
	}
	return esc ? SESSION_END : XL_EXIT_OK;
}

static int pump(struct session *s)
{
	struct pollfd fds[2];
	int rc = XL_EXIT_OK;

	while (rc == XL_EXIT_OK && !got_signal) {
		fds[0] = (struct pollfd){ .fd = s->sock, .events = POLLIN };
		fds[1] = (struct pollfd){
			.fd = s->stdin_open ? STDIN_FILENO : -1,
			.events = POLLIN,
		};
		if (ppoll(fds, 2, NULL, &s->wait_mask) < 0) {
			if (errno == EINTR)
				continue;
			xl_err("poll: %s", strerror(errno));
			return XL_EXIT_PROTOCOL;
		}
		if (fds[0].revents)
			rc = from_guest(s);
		if (rc == XL_EXIT_OK && fds[1].revents)
			rc = to_guest(s);
	}
	return rc == SESSION_END ? XL_EXIT_OK : rc;
}

/* Console bytes that arrived with the reply to `console`. */
static int flush_pending(struct xl_conn *conn)
{
	const char *data;
	size_t len;

	data = jsonline_pending(&conn->in, &len);
	if (len && xl_write_all(STDOUT_FILENO, data, len) && errno != EPIPE) {
		xl_err("writing output: %s", strerror(errno));
		return XL_EXIT_IOERR;
	}
	jsonline_drop(&conn->in);
	return XL_EXIT_OK;
}

int xl_console_attach(struct xl_conn *conn, const char *dom, bool history)
{
	return xl_console_attach_then(conn, dom, history, NULL);
}

int xl_console_attach_then(struct xl_conn *conn, const char *dom,
			   bool history, int (*attached)(const char *dom))
{
	struct session s = { .sock = conn->fd, .stdin_open = true };
	json_t *args, *res = NULL;
	int rc;

	args = json_pack("{s:s, s:b}", "domain", dom, "history", history);
	rc = xl_request(conn, "console", args, &res);
	json_decref(res);
	if (!rc && attached)
		rc = attached(dom);
	if (rc)
		return rc;
	fflush(stdout);
	signals_setup(&s);
	tty_raw(&s);
	rc = flush_pending(conn);
	if (!rc)
		rc = pump(&s);
	tty_restore(&s);
	signals_restore(&s);
	return rc;
}
