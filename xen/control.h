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
	CTL_ESIG = 14,		/* no good signature by a trusted key */
};

struct domain;

struct client;

/* A command handler fills *result or returns an error with a message. */
struct ctl_reply {
	json_t *result;
	char msg[512];
	bool audit;	/* a query that changed something: audit it */
};

typedef int (*ctl_handler)(struct client *c, json_t *args,
			   struct ctl_reply *r);

/* Close a connection that sent nothing for this many seconds (0: never);
 * --client-idle-timeout, default: */
#define CTL_CLIENT_IDLE_S	600
void control_set_idle_timeout(unsigned seconds);

/*
 * Listen on @path, a socket made mode 0600, or 0660 with group @group
 * (a name or a number; NULL: none).
 */
int control_listen(const char *path, const char *group, char *err,
		   size_t errlen);
void control_close(void);
void control_domain_gone(struct domain *dom);
void control_console_pump(void);
const char *ctl_error_name(int code);
void control_reply(struct client *c, json_t *id, int code, json_t *result,
		   const char *msg);

/* The client starts streaming a domain's console from pos (`console`). */
void control_client_console(struct client *c, unsigned domid, uint64_t pos);
int control_client_fd(const struct client *c);
/* The id of the request the client is having handled, or NULL. */
json_t *control_client_request_id(const struct client *c);

/*
 * Handing the listener and every connection to another process image
 * (exec keeps the fds open), which adopts them.  A connection travels as:
 */
struct ctl_client_state {
	int fd;
	unsigned console_domid;		/* 0: not streaming a console */
	uint64_t console_pos;
	const void *input;		/* received and not yet served */
	size_t input_len;
};

/*
 * Call fn with each client's state, having first sent what can be sent of
 * its queued output; stops at the first nonzero return of fn and returns
 * it.  A client in a request handler travels with the input after it.
 */
int control_export_clients(int (*fn)(const struct ctl_client_state *s,
				     void *opaque), void *opaque);
int control_listen_fd(void);
const char *control_socket_path(void);
void control_set_cloexec(bool on);
int control_adopt_listener(int fd, const char *path);
struct client *control_adopt_client(const struct ctl_client_state *s);
/* Reply outside a request handler (to an adopted client) and flush. */
void control_reply_now(struct client *c, json_t *id, int code,
		       json_t *result, const char *msg);
/* Serve the input adopted clients had sent before they were handed over. */
void control_process_adopted(void);
/* The handler of command @name (*@query: it only answers), or NULL. */
ctl_handler ctl_find_command(const char *name, bool *query);
/* An audit line (xen/audit.h) for @cmd answered @code to client @c. */
void control_audit(const struct client *c, const char *cmd, json_t *args,
		   int code, json_t *result);

#endif
