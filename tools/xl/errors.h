/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xl exit codes (docs/control-api.md, "xl exit codes").  A daemon error
 * exits with its code (1-12); the rest are xl's own, after sysexits.h.
 */
#ifndef XL_ERRORS_H
#define XL_ERRORS_H

#define XL_EXIT_OK		0
#define XL_EXIT_NO_SUCH_DOMAIN	4	/* as the daemon's no-such-domain */
#define XL_EXIT_DAEMON_MAX	63	/* daemon error codes: 1..63 */
#define XL_EXIT_USAGE		64	/* unknown command/option, bad args */
#define XL_EXIT_CONFIG		65	/* invalid config file */
#define XL_EXIT_NOINPUT		66	/* a named file cannot be read */
#define XL_EXIT_UNAVAILABLE	69	/* cannot reach the daemon */
#define XL_EXIT_PROTOCOL	70	/* bad reply, connection dropped */
#define XL_EXIT_IOERR		74	/* writing our own output failed */

#endif /* XL_ERRORS_H */
