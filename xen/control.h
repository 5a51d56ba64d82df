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
ctl_handler ctl_find_command(const char *name);

#endif
