#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "control.h"
#include "dev/uart.h"
#include "domain.h"
#include "log.h"
#include "loop.h"
#include "monotime.h"

#define LINE_MAX_BYTES	(1u << 20)
#define OUT_MAX_BYTES	(4u << 20)
#define CONSOLE_CHUNK	(64u << 10)
#define READ_CHUNK	16384

/*
 * Bounds over all clients (docs/control-api.md): the connections, and the
 * request bytes buffered beyond a small first buffer each, so that many
 * clients each holding a long unfinished line cannot exhaust memory.  An
 * unfinished line nothing was added to for PARTIAL_IDLE_S is dropped.
 */
#define CLIENTS_MAX	256
/* The last of them are kept for root and the daemon's own user, so that
 * the members of a --socket-group cannot lock the operator out. */
#define CLIENTS_RESERVED	16
#define IN_SMALL	(64u << 10)
#define IN_TOTAL_MAX	(32u << 20)
#define PARTIAL_IDLE_S	30
#define STR_(x)		#x
#define STR(x)		STR_(x)

struct client {
	int fd;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_cap;
	bool console;		/* raw console stream mode */
	unsigned console_domid;
	uint64_t console_pos;
	bool closing;		/* close once out is flushed */
	json_t *req_id;		/* id of the request being handled */
	size_t in_next;		/* while handling: where unread input starts */
	long long in_last_ns;	/* when input last arrived */
	struct ucred peer;	/* who connected (SO_PEERCRED) */
	bool peer_known;
	struct client *next;
};

static int listen_fd = -1;
static char *socket_path;
static struct client *clients;
static unsigned nr_clients;
static size_t in_total;		/* every client's c->in_cap */
static int tick_fd = -1;	/* every second: idle lines, the listener */
static int reserve_fd = -1;	/* given up to refuse a client at EMFILE */
static bool accept_failing;	/* logged once until an accept works */
static bool listen_paused;
/* A connection that sent nothing for this long is closed (0: never). */
static unsigned idle_timeout_s = CTL_CLIENT_IDLE_S;

static const char *const error_names[] = {
	[CTL_OK] = "ok",
	[CTL_EBADREQ] = "bad-request",
	[CTL_EUNKNOWN] = "unknown-command",
	[CTL_EINVAL] = "invalid-argument",
	[CTL_ENODOM] = "no-such-domain",
	[CTL_EEXIST] = "domain-exists",
	[CTL_ESTATE] = "bad-state",
	[CTL_ENORES] = "no-resources",
	[CTL_EKERNEL] = "bad-kernel",
	[CTL_ENOTSUP] = "not-supported",
	[CTL_EVERSION] = "version-unsupported",
	[CTL_EINTERNAL] = "internal",
	[CTL_EBUSY] = "busy",
	[CTL_EROLLEDBACK] = "rolled-back",
	[CTL_ESIG] = "bad-signature",
};

const char *ctl_error_name(int code)
{
	if (code < 0 || code > CTL_ESIG)
		return "internal";
	return error_names[code];
}

static void client_free(struct client *c)
{
	struct client **p;

	for (p = &clients; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	loop_del(c->fd);
	close(c->fd);
	in_total -= c->in_cap;
	nr_clients--;
	free(c->in);
	free(c->out);
	free(c);
}

/* Console input waiting for room in the UART, per client. */
#define CONSOLE_IN_MAX	(64u << 10)

static void client_update_events(struct client *c)
{
	short ev = c->closing ? 0 : POLLIN;

	if (c->console && c->in_len >= CONSOLE_IN_MAX)
		ev &= ~POLLIN;		/* the guest reads slower than we type */
	if (c->out_len)
		ev |= POLLOUT;
	loop_set_events(c->fd, ev);
}

/* Write what we can without blocking; false if the client is gone. */
static bool client_flush(struct client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return false;
		}
		memmove(c->out, c->out + n, c->out_len - n);
		c->out_len -= n;
	}
	if (c->closing && !c->out_len)
		return false;
	client_update_events(c);
	return true;
}

static int client_queue(struct client *c, const void *data, size_t len)
{
	if (c->out_len + len > OUT_MAX_BYTES)
		return -1;
	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		char *p = realloc(c->out, cap);

		if (!p)
			return -1;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

void control_reply(struct client *c, json_t *id, int code, json_t *result,
		   const char *msg)
{
	json_t *resp = json_object();
	char safe[4 * sizeof(((struct ctl_reply *)0)->msg)];
	char *text;

	json_object_set_new(resp, "version", json_integer(CTL_PROTOCOL_MAX));
	json_object_set(resp, "id", id ? id : json_null());
	json_object_set_new(resp, "ok", json_boolean(code == CTL_OK));
	if (code == CTL_OK) {
		json_object_set_new(resp, "result",
				    result ? json_incref(result) : json_object());
	} else {
		/* A parser's message may quote the request's raw bytes:
		 * JSON strings are UTF-8 (json_pack refuses anything else). */
		log_escape(safe, sizeof(safe), msg ? msg : "");
		json_object_set_new(resp, "error",
				    json_pack("{s:i, s:s, s:s}", "code", code,
					      "name", ctl_error_name(code),
					      "message", safe));
	}
	text = json_dumps(resp, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(resp);
	if (!text || client_queue(c, text, strlen(text)) < 0 ||
	    client_queue(c, "\n", 1) < 0) {
		log_warn("control: client fd %d: reply dropped, closing",
			 c->fd);
		c->closing = true;
	}
	free(text);
}

void control_audit(const struct client *c, const char *cmd, json_t *args,
		   int code, json_t *result)
{
	audit_request(c->peer_known ? &c->peer : NULL, cmd, args, result,
		      code, ctl_error_name(code));
}

static void handle_request(struct client *c, const char *line, size_t len)
{
	struct ctl_reply r = { .result = NULL };
	json_t *req, *id = NULL, *ver, *cmd, *args;
	json_error_t jerr;
	ctl_handler fn;
	bool query = false;
	int code;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req || !json_is_object(req)) {
		snprintf(r.msg, sizeof(r.msg), "request is not a JSON object%s%s",
			 req ? "" : ": ", req ? "" : jerr.text);
		control_reply(c, NULL, CTL_EBADREQ, NULL, r.msg);
		goto out;
	}
	id = json_object_get(req, "id");
	ver = json_object_get(req, "version");
	cmd = json_object_get(req, "command");
	args = json_object_get(req, "args");
	if (ver && (!json_is_integer(ver) ||
		    json_integer_value(ver) < CTL_PROTOCOL_MIN)) {
		control_reply(c, id, CTL_EBADREQ, NULL, "'version' must be an integer >= 1");
		goto out;
	}
	if (ver && json_integer_value(ver) > CTL_PROTOCOL_MAX) {
		snprintf(r.msg, sizeof(r.msg),
			 "protocol version %lld is newer than this daemon's %d",
			 (long long)json_integer_value(ver), CTL_PROTOCOL_MAX);
		control_reply(c, id, CTL_EVERSION, NULL, r.msg);
		goto out;
	}
	if (!json_is_string(cmd)) {
		control_reply(c, id, CTL_EBADREQ, NULL, "'command' must be a string");
		goto out;
	}
	if (args && !json_is_object(args)) {
		control_reply(c, id, CTL_EINVAL, NULL, "'args' must be an object");
		goto out;
	}
	fn = ctl_find_command(json_string_value(cmd), &query);
	if (!fn) {
		snprintf(r.msg, sizeof(r.msg), "unknown command '%.100s'",
			 json_string_value(cmd));
		control_reply(c, id, CTL_EUNKNOWN, NULL, r.msg);
		goto out;
	}
	c->req_id = id;
	code = fn(c, args, &r);
	c->req_id = NULL;
	if (!query || r.audit)
		control_audit(c, json_string_value(cmd), args, code, r.result);
	control_reply(c, id, code, r.result, r.msg);
	json_decref(r.result);
out:
	json_decref(req);
}

static void console_feed(struct client *c);

static void client_take_lines(struct client *c)
{
	size_t start = 0;
	char *nl;

	while (!c->console && start < c->in_len &&
	       (nl = memchr(c->in + start, '\n', c->in_len - start))) {
		size_t len = nl - (c->in + start);

		if (len > LINE_MAX_BYTES) {
			control_reply(c, NULL, CTL_EBADREQ, NULL,
				      "request line too long");
			c->closing = true;
			c->in_len = 0;
			return;
		}
		c->in_next = start + len + 1;
		if (len)
			handle_request(c, c->in + start, len);
		c->in_next = 0;
		start += len + 1;
	}
	/* Bytes after a console request stay in c->in as console input. */
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->console) {
		console_feed(c);
		return;
	}
	if (c->in_len >= LINE_MAX_BYTES) {
		control_reply(c, NULL, CTL_EBADREQ, NULL, "request line too long");
		c->closing = true;
	}
}

/*
 * Hand buffered console input to the UART as it makes room: nothing typed
 * or pasted is dropped; the client is throttled instead.
 */
static void console_feed(struct client *c)
{
	struct domain *dom = domain_by_id(c->console_domid);
	size_t n;

	if (!dom) {
		c->in_len = 0;
		return;
	}
	n = uart_receive(dom, c->in, c->in_len);
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* Room for @need input bytes, within the bound over all clients. */
static int client_reserve(struct client *c, size_t need)
{
	size_t cap = need * 2, most = LINE_MAX_BYTES + READ_CHUNK;
	char *p;

	if (need <= c->in_cap)
		return 0;
	if (cap > most)
		cap = need > most ? need : most;
	if (cap > IN_SMALL && in_total - c->in_cap + cap > IN_TOTAL_MAX)
		return -1;
	p = realloc(c->in, cap);
	if (!p)
		return -1;
	in_total += cap - c->in_cap;
	c->in = p;
	c->in_cap = cap;
	return 0;
}

/* A large buffer goes back once its request is served. */
static void client_trim(struct client *c)
{
	if (c->in_len || c->in_cap <= IN_SMALL)
		return;
	in_total -= c->in_cap;
	free(c->in);
	c->in = NULL;
	c->in_cap = 0;
}

/* Refuse what the client sent, say why, and hang up. */
static void client_drop_input(struct client *c, int code, const char *why)
{
	control_reply(c, NULL, code, NULL, why);
	c->closing = true;
	c->in_len = 0;
	client_trim(c);
}

static bool client_read(struct client *c)
{
	char buf[READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n == 0) {
		/* Half-closed: answer what was asked, then hang up. */
		c->closing = true;
		return c->out_len > 0;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (client_reserve(c, c->in_len + n) < 0) {
		client_drop_input(c, CTL_ENORES, "the daemon holds too much "
				  "unfinished request input (all connections "
				  "together): try again");
		return true;
	}
	memcpy(c->in + c->in_len, buf, n);
	c->in_len += n;
	c->in_last_ns = now_ns();
	client_take_lines(c);
	client_trim(c);
	return true;
}

static void pump_one(struct client *c);

static void on_client(int fd, short revents, void *opaque)
{
	struct client *c = opaque;
	bool alive = true;

	if (revents & (POLLERR | POLLNVAL))
		alive = false;
	if (alive && (revents & (POLLIN | POLLHUP)) && !c->closing)
		alive = client_read(c);
	if (alive && c->console)
		pump_one(c);
	if (alive)
		alive = client_flush(c);
	if (!alive)
		client_free(c);
}

static struct client *client_add(int cfd)
{
	struct client *c = calloc(1, sizeof(*c));
	socklen_t len = sizeof(c->peer);

	if (!c || loop_add(cfd, POLLIN, on_client, c) < 0) {
		free(c);
		close(cfd);
		return NULL;
	}
	c->fd = cfd;
	c->in_last_ns = now_ns();
	/* Who connected (also for a connection adopted in a live update:
	 * the credentials are the socket's, taken at connect()). */
	c->peer_known = !getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->peer,
				    &len);
	c->next = clients;
	clients = c;
	nr_clients++;
	return c;
}

/* Tell a connection we do not take why, and hang up. */
static void refuse_connection(int cfd, const char *why)
{
	json_t *resp = json_pack("{s:i, s:n, s:b, s:{s:i, s:s, s:s}}",
				 "version", CTL_PROTOCOL_MAX, "id", "ok", 0,
				 "error", "code", CTL_ENORES, "name",
				 ctl_error_name(CTL_ENORES), "message", why);
	char *text = resp ? json_dumps(resp, JSON_COMPACT |
				       JSON_ENSURE_ASCII) : NULL;
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "%s\n", text ? text : "");
	if (text && n < (int)sizeof(line) &&
	    send(cfd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusing a connection: %s",
			  strerror(errno));
	free(text);
	json_decref(resp);
	close(cfd);
}

/*
 * Out of file descriptors (or memory): say so once, then refuse the
 * waiting connection with the reserve fd given up for it, else stop
 * polling the listener until the next tick.  Either way no spinning.
 */
static void accept_failed(int fd, int err)
{
	int cfd;

	if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
		return;
	if (!accept_failing)
		log_warn("control: cannot accept connections: %s; refusing "
			 "them until it passes", strerror(err));
	accept_failing = true;
	if ((err == EMFILE || err == ENFILE) && reserve_fd >= 0) {
		close(reserve_fd);
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd >= 0)
			refuse_connection(cfd, "the daemon is out of file "
					  "descriptors: try again");
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (reserve_fd >= 0)
			return;
	}
	loop_set_events(fd, 0);
	listen_paused = true;
}

/* The peer is root or the daemon's own user. */
static bool privileged(int cfd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void on_listen(int fd, short revents, void *opaque)
{
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0) {
		accept_failed(fd, errno);
		return;
	}
	if (accept_failing)
		log_info("control: accepting connections again");
	accept_failing = false;
	if (nr_clients >= CLIENTS_MAX) {
		refuse_connection(cfd, "too many connections to the daemon "
				  "(at most " STR(CLIENTS_MAX) ")");
		return;
	}
	if (nr_clients >= CLIENTS_MAX - CLIENTS_RESERVED && !privileged(cfd)) {
		refuse_connection(cfd, "too many connections to the daemon "
				  "(the last " STR(CLIENTS_RESERVED) " of "
				  STR(CLIENTS_MAX) " are kept for root)");
		return;
	}
	client_add(cfd);
}

void control_set_idle_timeout(unsigned seconds)
{
	idle_timeout_s = seconds;
}

/*
 * Unfinished request lines nothing was added to for PARTIAL_IDLE_S, and
 * connections that sent nothing for idle_timeout_s (each holds one of
 * CLIENTS_MAX; a console stream is not idle).
 */
static void drop_idle_clients(void)
{
	long long now = now_ns();
	long long partial = now - PARTIAL_IDLE_S * 1000000000LL;
	long long idle = now - idle_timeout_s * 1000000000LL;
	struct client *c, *next;
	char why[96];

	for (c = clients; c; c = next) {
		next = c->next;
		if (c->console || c->closing)
			continue;
		if (c->in_len && c->in_last_ns <= partial) {
			client_drop_input(c, CTL_EBADREQ, "request line left "
					  "unfinished for " STR(PARTIAL_IDLE_S)
					  " s");
		} else if (!c->in_len && idle_timeout_s &&
			   c->in_last_ns <= idle) {
			snprintf(why, sizeof(why), "connection idle for %u s: "
				 "closed", idle_timeout_s);
			client_drop_input(c, CTL_EBUSY, why);
		} else {
			continue;
		}
		if (!client_flush(c))
			client_free(c);
	}
}

static void on_tick(int fd, short revents, void *opaque)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("control: timer: %s", strerror(errno));
	if (reserve_fd < 0)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (listen_paused && listen_fd >= 0) {
		loop_set_events(listen_fd, POLLIN);
		listen_paused = false;
	}
	drop_idle_clients();
}

/* What serving a listener needs besides it: the tick, the reserve fd. */
static int control_start(int fd, const char *path)
{
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };

	if (loop_add(fd, POLLIN, on_listen, NULL) < 0)
		return -1;
	listen_fd = fd;
	socket_path = strdup(path);
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tick_fd < 0 || timerfd_settime(tick_fd, 0, &its, NULL) < 0 ||
	    loop_add(tick_fd, POLLIN, on_tick, NULL) < 0) {
		log_warn("control: no timer (%s): unfinished request lines "
			 "are not timed out", strerror(errno));
		if (tick_fd >= 0)
			close(tick_fd);
		tick_fd = -1;
	}
	return 0;
}

/* --socket-group: a group name, or a number. */
static int group_id(const char *group, gid_t *gid, char *err, size_t errlen)
{
	struct group *gr = getgrnam(group);
	char *end;
	unsigned long n;

	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	n = strtoul(group, &end, 10);
	if (*group && !*end && n < (gid_t)-1) {
		*gid = n;
		return 0;
	}
	snprintf(err, errlen, "--socket-group %.100s: no such group", group);
	return -1;
}

int control_listen(const char *path, const char *group, char *err,
		   size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t mode = group ? 0660 : 0600;
	gid_t gid = (gid_t)-1;
	struct stat sb;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	if (group && group_id(group, &gid, err, errlen) < 0)
		return -1;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* A stale socket from a dead daemon is replaced; a live one is not. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		snprintf(err, errlen, "%s: another daemon is listening", path);
		close(fd);
		return -1;
	}
	if (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		close(fd);
		return -1;
	}
	unlink(path);
	/* Created 0600: the group gets it only once it is the right group. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		goto fail;
	}
	umask(old);
	if ((group && chown(path, (uid_t)-1, gid) < 0) ||
	    chmod(path, mode) < 0 || listen(fd, 64) < 0 ||
	    control_start(fd, path) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

void control_close(void)
{
	while (clients)
		client_free(clients);
	if (listen_fd >= 0) {
		loop_del(listen_fd);
		close(listen_fd);
		unlink(socket_path);
	}
	if (tick_fd >= 0) {
		loop_del(tick_fd);
		close(tick_fd);
	}
	if (reserve_fd >= 0)
		close(reserve_fd);
	free(socket_path);
	listen_fd = tick_fd = reserve_fd = -1;
}

/* Copy new console output of the client's domain into its buffer. */
static void pump_one(struct client *c)
{
	struct domain *dom = domain_by_id(c->console_domid);
	char buf[CONSOLE_CHUNK];
	size_t n;

	if (!dom)
		return;
	while (c->out_len < OUT_MAX_BYTES / 2) {
		pthread_mutex_lock(&dom->console_lock);
		n = ring_read(&dom->console, &c->console_pos, buf, sizeof(buf));
		pthread_mutex_unlock(&dom->console_lock);
		if (!n || client_queue(c, buf, n) < 0)
			break;
	}
}

void control_console_pump(void)
{
	struct client *c, *next;

	for (c = clients; c; c = next) {
		next = c->next;
		if (!c->console)
			continue;
		if (c->in_len)
			console_feed(c);
		pump_one(c);
		if (!client_flush(c))
			client_free(c);
	}
}

/* The domain is going away: send its last output, then hang up. */
void control_domain_gone(struct domain *dom)
{
	struct client *c, *next;

	for (c = clients; c; c = next) {
		next = c->next;
		if (!c->console || c->console_domid != dom->id)
			continue;
		pump_one(c);
		c->closing = true;
		c->console_domid = 0;
		if (!client_flush(c))
			client_free(c);
	}
}

int control_listen_fd(void)
{
	return listen_fd;
}

const char *control_socket_path(void)
{
	return socket_path;
}

void control_client_console(struct client *c, unsigned domid, uint64_t pos)
{
	c->console = true;
	c->console_domid = domid;
	c->console_pos = pos;
}

int control_client_fd(const struct client *c)
{
	return c->fd;
}

json_t *control_client_request_id(const struct client *c)
{
	return c->req_id;
}

int control_export_clients(int (*fn)(const struct ctl_client_state *s,
				     void *opaque), void *opaque)
{
	struct client *c;
	int ret;

	for (c = clients; c; c = c->next) {
		struct ctl_client_state s = {
			.fd = c->fd,
			.console_domid = c->console ? c->console_domid : 0,
			.console_pos = c->console_pos,
			.input = c->in ? c->in + c->in_next : NULL,
			.input_len = c->in_len - c->in_next,
		};

		client_flush(c);	/* best effort: old replies go first */
		ret = fn(&s, opaque);
		if (ret)
			return ret;
	}
	return 0;
}

static void set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC
				      : flags & ~FD_CLOEXEC);
}

void control_set_cloexec(bool on)
{
	struct client *c;

	if (listen_fd >= 0)
		set_cloexec(listen_fd, on);
	for (c = clients; c; c = c->next)
		set_cloexec(c->fd, on);
}

int control_adopt_listener(int fd, const char *path)
{
	set_cloexec(fd, true);
	return control_start(fd, path);
}

void control_reply_now(struct client *c, json_t *id, int code,
		       json_t *result, const char *msg)
{
	control_reply(c, id, code, result, msg);
	if (!client_flush(c))
		client_free(c);
}

struct client *control_adopt_client(const struct ctl_client_state *s)
{
	struct client *c;

	set_cloexec(s->fd, true);
	c = client_add(s->fd);
	if (!c)
		return NULL;
	if (s->console_domid)
		control_client_console(c, s->console_domid, s->console_pos);
	if (s->input_len) {
		c->in = malloc(s->input_len);
		if (c->in) {
			memcpy(c->in, s->input, s->input_len);
			c->in_len = c->in_cap = s->input_len;
			in_total += c->in_cap;
			c->in_last_ns = now_ns();
		}
	}
	return c;
}

void control_process_adopted(void)
{
	struct client *c, *next;

	for (c = clients; c; c = next) {
		next = c->next;
		if (c->in_len)
			client_take_lines(c);
		if (!client_flush(c))
			client_free(c);
	}
}
