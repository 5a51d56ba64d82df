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

/* Live update (carry_over.c): what the old image hands over, and the new
 * image loading it again: {reapplied: [names], dropped: [{name, build_id,
 * reason}]}. */
json_t *livepatch_handover_json(void);
json_t *livepatch_carry_over(json_t *handed);

#endif
