/*
 * The destination's memory of its last handovers, so that a source
 * that sent GO and heard nothing back can ask what became of the guest
 * (docs/migration.md, "Nothing is lost").  A source names each
 * migration by a random id in its hello; the destination notes, once it
 * has decided, whether the guest of that id runs here or was dropped,
 * and answers XKVM-QUERY with it.  Only the main thread serves the
 * listener, one connection at a time, so a query is answered only after
 * the migration it asks about has been decided.  The table lives in the
 * daemon's memory: a restarted daemon, or a live update, answers
 * "unknown", and the source then keeps its copy paused.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "migration/mig.h"

#define OUTCOMES	32	/* the newest handovers remembered */

struct outcome {
	char id[MIG_ID_LEN + 1];
	bool running;
	unsigned domid;
};

static struct outcome outcomes[OUTCOMES];
static unsigned next_slot;

void mig_outcome_note(const char *id, bool running, unsigned domid)
{
	struct outcome *o = &outcomes[next_slot++ % OUTCOMES];

	if (!id[0])		/* a source that names no id cannot ask */
		return;
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->running = running;
	o->domid = domid;
}

static const struct outcome *find(const char *id)
{
	unsigned i;

	for (i = 0; i < OUTCOMES; i++)
		if (outcomes[i].id[0] && !strcmp(outcomes[i].id, id))
			return &outcomes[i];
	return NULL;
}

/* " id=<hex>" in a hello or a query: 0 and the id, or -1. */
int mig_parse_id(const char *line, char *id)
{
	const char *p = strstr(line, " id=");
	size_t n;

	if (!p)
		return -1;
	p += 4;
	n = strspn(p, "0123456789abcdef");
	if (n != MIG_ID_LEN || (p[n] && p[n] != ' '))
		return -1;
	memcpy(id, p, n);
	id[n] = '\0';
	return 0;
}

void mig_outcome_answer(struct mig_conn *c, const char *line,
			const char *peer)
{
	char id[MIG_ID_LEN + 1];
	const struct outcome *o;
	unsigned proto;

	if (sscanf(line, MIG_QUERY " %u", &proto) != 1 ||
	    proto != MIG_PROTO || mig_parse_id(line, id) < 0) {
		log_err("migration query from %s refused: '%.80s'", peer,
			line);
		mig_send_line(c, "ERR not a migration query");
		return;
	}
	o = find(id);
	if (!o) {
		log_info("migration query from %s: %s is unknown here", peer,
			 id);
		mig_send_line(c, "OUTCOME unknown");
	} else if (o->running) {
		log_info("migration query from %s: %s runs here as d%u", peer,
			 id, o->domid);
		mig_send_line(c, "OUTCOME running %u", o->domid);
	} else {
		log_info("migration query from %s: %s was dropped here", peer,
			 id);
		mig_send_line(c, "OUTCOME dropped");
	}
}
