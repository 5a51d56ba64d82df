/* Livepatch runtime: the control commands and what `info` shows. */
#ifndef LIVEPATCH_LIVEPATCH_H
#define LIVEPATCH_LIVEPATCH_H

#include <jansson.h>

#include "control.h"

int cmd_lp_upload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_apply(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_revert(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_replace(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_unload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_load(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_list(struct client *c, json_t *args, struct ctl_reply *r);

/* Names of the applied payloads, bottom of the stack first. */
json_t *livepatch_applied_json(void);

#endif
