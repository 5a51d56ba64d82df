/*
 * The audit trail: one log line for each request that changes something,
 * naming who asked (the peer's credentials from SO_PEERCRED) and what came
 * of it.  The format is in docs/control-api.md, "Audit trail".
 */
#ifndef XEN_AUDIT_H
#define XEN_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/socket.h>

/*
 * Log "audit: uid=U pid=P cmd=CMD [dom=D] [name=N] [path=F] [image=F]
 * result=R" for
 * the request @cmd with @args, answered with @code named @code_name
 * (@result: its result, for a domain made by it).  @peer is NULL when the
 * credentials are unknown.
 */
void audit_request(const struct ucred *peer, const char *cmd, json_t *args,
		   json_t *result, int code, const char *code_name);

#endif
