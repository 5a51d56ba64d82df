/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Console sessions: switch a connection to a domain's raw console stream
 * and copy it to and from the terminal.
 */
#ifndef XL_CONSOLE_H
#define XL_CONSOLE_H

#include <stdbool.h>

#include "client.h"

/* The detach key of interactive sessions (Ctrl-]). */
#define XL_CONSOLE_ESCAPE	0x1d

/*
 * Send `console` for @dom on @conn and run the session until the daemon
 * closes the stream, the user detaches (terminal), or SIGINT/SIGTERM/
 * SIGHUP arrives.  Returns an xl exit code.
 */
int xl_console_attach(struct xl_conn *conn, const char *dom, bool history);
/* The same, calling attached(dom) once the console stream is open (before
 * any output is shown): xl create -c unpauses the new domain there, so not
 * a byte of a guest that ends at once is missed. */
int xl_console_attach_then(struct xl_conn *conn, const char *dom,
			   bool history, int (*attached)(const char *dom));

#endif /* XL_CONSOLE_H */
