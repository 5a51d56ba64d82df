/*
 * libFuzzer target for the control protocol: what a client sends, as
 * request lines, through the daemon's own framing, JSON parsing and
 * command dispatch (xen/control.c, xen/commands.c, the domain config
 * checks of common/domcfg*.c) over a fake domain table
 * (tests/fuzz/fake_domain.c: "alpha" running, "beta" paused).
 *
 * Each input is the input of one client, adopted as if handed over by
 * a live update (control_adopt_client(), control_process_adopted(): the
 * daemon's path that serves received bytes without a poll loop), over
 * one end of a socket pair.  Every reply read back from the other end
 * must be one JSON object line as docs/control-api.md describes it, and
 * there are never more replies than request lines.
 *
 * Not reached: save and restore (they open files the client names) and
 * the commands of features (live update, livepatch, migration), which
 * this target does not link; their parsers have targets of their own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "log.h"

#include "fake_domain.h"

#define REPLIES_MAX	(1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int sv[2] = { -1, -1 };
static char *replies;

int cmd_save(struct client *c, json_t *args, struct ctl_reply *r)
{
	return ctl_fail(r, CTL_ENOTSUP, "%s", "fuzz: save is not linked");
}

int cmd_restore(struct client *c, json_t *args, struct ctl_reply *r)
{
	return ctl_fail(r, CTL_ENOTSUP, "%s", "fuzz: restore is not linked");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (log_open("/dev/null") < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		abort();
	replies = malloc(REPLIES_MAX + 1);
	if (!replies)
		abort();
	return 0;
}

static void bad_reply(const char *why, const char *line)
{
	fprintf(stderr, "bad reply (%s): %.500s\n", why, line);
	abort();
}

/* One reply line: {"version":1,"id":..,"ok":true,"result":{..}} or
 * {"version":1,"id":..,"ok":false,"error":{"code","name","message"}}. */
static void check_reply(const char *line)
{
	json_t *o, *ok, *err;
	json_error_t jerr;

	o = json_loads(line, 0, &jerr);
	if (!json_is_object(o))
		bad_reply("not a JSON object", line);
	ok = json_object_get(o, "ok");
	if (!json_is_integer(json_object_get(o, "version")) ||
	    !json_object_get(o, "id") || !json_is_boolean(ok))
		bad_reply("version, id or ok missing", line);
	if (json_is_true(ok)) {
		if (!json_is_object(json_object_get(o, "result")))
			bad_reply("ok without a result object", line);
	} else {
		err = json_object_get(o, "error");
		if (!json_is_integer(json_object_get(err, "code")) ||
		    json_integer_value(json_object_get(err, "code")) <= 0 ||
		    !json_is_string(json_object_get(err, "name")) ||
		    !json_is_string(json_object_get(err, "message")))
			bad_reply("a malformed error", line);
	}
	json_decref(o);
}

/* Read back every reply; the last may be cut short by a full buffer. */
static unsigned check_replies(void)
{
	size_t len = 0;
	ssize_t n;
	unsigned count = 0;
	char *p, *nl;

	while (len < REPLIES_MAX &&
	       (n = read(sv[1], replies + len, REPLIES_MAX - len)) > 0)
		len += n;
	replies[len] = '\0';
	for (p = replies; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		check_reply(p);
		count++;
	}
	while (read(sv[1], replies, REPLIES_MAX) > 0)
		;
	return count;
}

static unsigned count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < size; i++)
		n += data[i] == '\n';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_client_state s = {
		.input = data,
		.input_len = size,
	};
	unsigned got;

	/* Each input from the same state: dmesg shows this input's log. */
	fake_domains_reset();
	log_clear();
	s.fd = dup(sv[0]);
	if (s.fd < 0 || !control_adopt_client(&s))
		abort();
	control_process_adopted();
	control_close();
	got = check_replies();
	/* One per line at most, plus "request line too long". */
	if (got > count_lines(data, size) + 1) {
		fprintf(stderr, "%u replies to %u lines\n", got,
			count_lines(data, size));
		abort();
	}
	return 0;
}
