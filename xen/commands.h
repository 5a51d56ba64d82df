/* Shared by the command handlers (commands.c, cmd_state.c, cmd_power.c). */
#ifndef XEN_COMMANDS_H
#define XEN_COMMANDS_H

#include <stdbool.h>

#include "control.h"

struct domain;

int ctl_fail(struct ctl_reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * The control protocol's code for a core error (0 or a negative errno from
 * the domain and state layers, which know nothing of the protocol).
 */
int ctl_code_from_errno(int err);
int ctl_arg_domain(json_t *args, struct ctl_reply *r, struct domain **out);
/* args.key as a bool (dflt when absent or null); code 3 for another type. */
int ctl_arg_bool(json_t *args, const char *key, bool dflt, bool *out,
		 struct ctl_reply *r);

int cmd_save(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_restore(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_shutdown(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_trigger(struct client *c, json_t *args, struct ctl_reply *r);

#endif
