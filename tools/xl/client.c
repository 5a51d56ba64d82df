// SPDX-License-Identifier: GPL-2.0
/*
 * Control socket client: connect, send one request line, read one reply
 * line (however many reads that takes) and check it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "xl.h"

int xl_connect(struct xl_conn *conn)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = xl_socket_path;

	conn->fd = -1;
	conn->next_id = 1;
	jsonline_init(&conn->in, XL_REPLY_MAX);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		xl_err("socket path too long: %s", path);
		return XL_EXIT_UNAVAILABLE;
	}
	strcpy(sa.sun_path, path);
	conn->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (conn->fd < 0) {
		xl_err("socket: %s", strerror(errno));
		return XL_EXIT_UNAVAILABLE;
	}
	if (connect(conn->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		xl_err("cannot connect to %s: %s (is the daemon running?)",
		       path, strerror(errno));
		xl_disconnect(conn);
		return XL_EXIT_UNAVAILABLE;
	}
	return XL_EXIT_OK;
}

void xl_disconnect(struct xl_conn *conn)
{
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	jsonline_free(&conn->in);
}

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			xl_err("connection to the daemon lost: %s",
			       strerror(errno));
			return XL_EXIT_PROTOCOL;
		}
		buf += n;
		len -= n;
	}
	return XL_EXIT_OK;
}

static int send_request(struct xl_conn *conn, const char *command,
			json_t *args)
{
	json_t *req;
	char *line;
	size_t len;
	int rc;

	req = json_pack("{s:i, s:I, s:s}", "version", XL_PROTOCOL,
			"id", (json_int_t)conn->next_id, "command", command);
	if (req && args && json_object_set(req, "args", args)) {
		json_decref(req);
		req = NULL;
	}
	line = req ? jsonline_encode(req, &len) : NULL;
	json_decref(req);
	if (!line) {
		xl_err("out of memory");
		return XL_EXIT_PROTOCOL;
	}
	rc = send_all(conn->fd, line, len);
	free(line);
	return rc;
}

/* Read until a whole line is buffered; *line points into conn->in. */
static int read_line(struct xl_conn *conn, char **line, size_t *len)
{
	size_t room;
	ssize_t n;
	char *p;
	int rc;

	for (;;) {
		rc = jsonline_next(&conn->in, line, len);
		if (rc > 0)
			return XL_EXIT_OK;
		p = rc ? NULL : jsonline_space(&conn->in, &room);
		if (!p) {
			xl_err("reply from the daemon too large");
			return XL_EXIT_PROTOCOL;
		}
		n = read(conn->fd, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			xl_err("connection to the daemon lost%s%s",
			       n ? ": " : "", n ? strerror(errno) : "");
			return XL_EXIT_PROTOCOL;
		}
		jsonline_commit(&conn->in, n);
	}
}

static int malformed(const char *what)
{
	xl_err("malformed reply from the daemon: %s", what);
	return XL_EXIT_PROTOCOL;
}

/* An error reply: print its message, return its code. */
static int daemon_error(json_t *error)
{
	json_t *code = json_object_get(error, "code");
	const char *msg = json_string_value(json_object_get(error, "message"));
	json_int_t c;

	if (!json_is_integer(code))
		return malformed("error without a code");
	c = json_integer_value(code);
	if (c < 1 || c > XL_EXIT_DAEMON_MAX)
		return malformed("error code out of range");
	if (!msg)
		msg = json_string_value(json_object_get(error, "name"));
	if (msg)
		xl_err("%s", msg);
	else
		xl_err("error %lld", (long long)c);
	return (int)c;
}

static int check_reply(json_t *reply, long long id, json_t **result)
{
	json_t *ok = json_object_get(reply, "ok");
	json_t *res = json_object_get(reply, "result");
	json_t *rid = json_object_get(reply, "id");

	if (!json_is_object(reply))
		return malformed("not a JSON object");
	if (!json_is_integer(rid) || json_integer_value(rid) != id)
		return malformed("wrong id");
	if (!json_is_boolean(ok))
		return malformed("no \"ok\"");
	if (!json_is_true(ok))
		return daemon_error(json_object_get(reply, "error"));
	if (!json_is_object(res))
		return malformed("result is not an object");
	if (result)
		*result = json_incref(res);
	return XL_EXIT_OK;
}

int xl_request(struct xl_conn *conn, const char *command, json_t *args,
	       json_t **result)
{
	long long id = conn->next_id;
	json_error_t jerr;
	json_t *reply;
	char *line;
	size_t len;
	int rc;

	if (result)
		*result = NULL;
	rc = send_request(conn, command, args);
	json_decref(args);
	conn->next_id++;
	if (!rc)
		rc = read_line(conn, &line, &len);
	if (rc)
		return rc;
	reply = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
	if (!reply)
		return malformed(jerr.text);
	rc = check_reply(reply, id, result);
	json_decref(reply);
	return rc;
}

int xl_call(const char *command, json_t *args, json_t **result)
{
	struct xl_conn conn;
	int rc;

	rc = xl_connect(&conn);
	if (rc) {
		json_decref(args);
		return rc;
	}
	rc = xl_request(&conn, command, args, result);
	xl_disconnect(&conn);
	return rc;
}

json_t *xl_domain_args(const char *dom)
{
	return json_pack("{s:s}", "domain", dom);
}
