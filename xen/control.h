/* The control socket: versioned line-delimited JSON, many clients. */
#ifndef XEN_CONTROL_H
#define XEN_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_PROTOCOL_MIN 1
#define CTL_PROTOCOL_MAX 1

enum ctl_error {
	CTL_OK = 0,
	CTL_EBADREQ = 1,
	CTL_EUNKNOWN = 2,
	CTL_EINVAL = 3,
	CTL_ENODOM = 4,
	CTL_EEXIST = 5,
	CTL_ESTATE = 6,
	CTL_ENORES = 7,
	CTL_EKERNEL = 8,
	CTL_ENOTSUP = 9,
	CTL_EVERSION = 10,
	CTL_EINTERNAL = 11,
	CTL_EBUSY = 12,
	CTL_EROLLEDBACK = 13,
};

struct domain;

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
	struct client *next;
};

/* A command handler fills *result or returns an error with a message. */
struct ctl_reply {
	json_t *result;
	char msg[512];
};

typedef int (*ctl_handler)(struct client *c, json_t *args,
			   struct ctl_reply *r);

int control_listen(const char *path, char *err, size_t errlen);
void control_close(void);
void control_domain_gone(struct domain *dom);
void control_console_pump(void);
const char *ctl_error_name(int code);
void control_reply(struct client *c, json_t *id, int code, json_t *result,
		   const char *msg);

/* Live update: hand the listener and every connection to the next image. */
struct stream_writer;
int control_listen_fd(void);
const char *control_socket_path(void);
int control_handover_save(struct stream_writer *w);
void control_set_cloexec(bool on);
int control_adopt_listener(int fd, const char *path);
/* Reply outside a request handler (after a live update) and flush. */
void control_reply_now(struct client *c, json_t *id, int code,
		       json_t *result, const char *msg);
struct client *control_adopt_client(int fd, unsigned console_domid,
				    uint64_t console_pos, const void *input,
				    size_t input_len);
/* Serve input adopted clients had sent before a live update. */
void control_process_adopted(void);
ctl_handler ctl_find_command(const char *name);

#endif
