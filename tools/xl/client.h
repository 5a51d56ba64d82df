/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Client side of the control protocol: one connection to the daemon,
 * requests and their replies (docs/control-api.md).  Every function
 * returning an int returns an xl exit code, having printed the message.
 */
#ifndef XL_CLIENT_H
#define XL_CLIENT_H

#include <jansson.h>

#include "jsonline.h"

/* Largest reply accepted (console history is at most a few MiB). */
#define XL_REPLY_MAX	(256u << 20)

struct xl_conn {
	int fd;
	long long next_id;
	struct jsonline in;	/* after `console`: raw bytes already read */
};

int xl_connect(struct xl_conn *conn);
void xl_disconnect(struct xl_conn *conn);

/*
 * Send @command with @args (a reference taken over; may be NULL) and wait
 * for its reply.  On success *result is the reply's result object (the
 * caller's reference).  A daemon error prints "xl: <message>" and returns
 * its code.
 */
int xl_request(struct xl_conn *conn, const char *command, json_t *args,
	       json_t **result);

/* xl_connect() + xl_request() + xl_disconnect(); @result may be NULL. */
int xl_call(const char *command, json_t *args, json_t **result);

/* {"domain": DOM}, or NULL when out of memory. */
json_t *xl_domain_args(const char *dom);

#endif /* XL_CLIENT_H */
