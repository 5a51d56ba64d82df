/*
 * What livepatch offers the rest of the daemon beyond its commands (which
 * it registers itself, lp_commands.c): its payloads across a live update.
 * With CONFIG_LIVEPATCH off, not_built.c implements the same.
 */
#ifndef LIVEPATCH_LIVEPATCH_H
#define LIVEPATCH_LIVEPATCH_H

#include <jansson.h>

/* Live update (carry_over.c): what the old image hands over, and the new
 * image loading it again: {reapplied: [names], dropped: [{name, build_id,
 * reason}]}. */
json_t *livepatch_handover_json(void);
json_t *livepatch_carry_over(json_t *handed);

#endif
