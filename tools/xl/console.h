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

#endif /* XL_CONSOLE_H */
