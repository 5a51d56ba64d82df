/*
 * The source's side of a handover whose answer was lost: GO went out
 * and no RUNNING (or ERR) came back, so the guest may run on either
 * side.  Ask the destination on a new connection, with the same
 * transport and checks, what became of this migration's id
 * (XKVM-QUERY, outcome.c); it answers once it has decided.  Only a
 * definite answer decides: anything else keeps the guest paused here.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "migration/send.h"

/* One connection's answer: "OUTCOME ..." in line, or -1 (err says why). */
static int ask_once(struct sender *s, char *line, char *err, size_t len)
{
	struct migration *m = s->m;
	struct mig_conn c = { .fd = -1 };
	int fd, rc;

	fd = mig_connect(m->o.host, m->o.port, err, len);
	if (fd < 0)
		return -1;
	mig_set_timeouts(fd, MIG_IO_TIMEOUT_S);
	rc = m->o.insecure ? mig_conn_plain(&c, fd)
			   : mig_tls_client(&c, fd, m->o.host);
	if (rc < 0) {
		snprintf(err, len, "%s", c.err);
		close(fd);
		return -1;
	}
	rc = -1;
	if (mig_send_line(&c, "%s %u id=%s", MIG_QUERY, MIG_PROTO, s->id) < 0 ||
	    mig_recv_line(&c, line, MIG_LINE_MAX) < 0)
		snprintf(err, len, "%s", c.err);
	else if (strncmp(line, "OUTCOME ", 8))
		snprintf(err, len, "it answered '%.100s'", line);
	else
		rc = 0;
	mig_conn_close(&c);
	return rc;
}

int mig_ask_outcome(struct sender *s)
{
	char line[MIG_LINE_MAX], err[300] = "";
	unsigned i, id;

	for (i = 0; i < MIG_QUERY_TRIES && !s->m->cancel; i++) {
		if (i)
			sleep(1);
		if (ask_once(s, line, err, sizeof(err)) < 0)
			continue;
		log_info("d%u: asked after the handover: the destination "
			 "says '%s'", s->m->domid, line);
		if (sscanf(line, "OUTCOME running %u", &id) == 1) {
			s->m->p.dest_id = id;
			return 1;
		}
		if (!strcmp(line, "OUTCOME dropped"))
			return 0;
		snprintf(err, sizeof(err), "it answered '%.100s'", line);
		break;
	}
	log_err("d%u: asked after the handover, no answer that decides: %s",
		s->m->domid, err);
	return -1;
}
