/*
 * migrate, migrate-status and migrate-cancel (docs/control-api.md,
 * docs/migration.md).  A migration runs in its own thread (send.c); the
 * main thread reaps it when it ends, and only then destroys the domain,
 * if the destination said it runs the guest.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "commands.h"
#include "domain.h"
#include "log.h"
#include "loop.h"
#include "migration/mig.h"


static struct migration *migrations;	/* newest first */
static int done_fd = -1;

void mig_finished(struct migration *m)
{
	uint64_t one = 1;

	m->finished = true;
	if (write(done_fd, &one, sizeof(one)) < 0)
		log_warn("migration: eventfd: %s", strerror(errno));
}

static void reap(struct migration *m)
{
	pthread_join(m->thread, NULL);
	m->reaped = true;
	if (m->success) {
		log_info("d%u: migrated to %s:%u as d%u there; destroying it "
			 "here", m->domid, m->o.host, m->o.port, m->p.dest_id);
		domain_destroy(m->dom);
	} else if (m->uncertain) {
		m->dom->state = DOM_PAUSED;
		log_err("d%u: migration: %s", m->domid, m->p.error);
	} else {
		log_warn("d%u: migration %s: %s; it runs here", m->domid,
			 mig_state_name(m->p.state), m->p.error);
	}
	m->dom = NULL;
}

static void on_done(int fd, short revents, void *opaque)
{
	struct migration *m;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	for (m = migrations; m; m = m->next)
		if (m->finished && !m->reaped)
			reap(m);
}

int mig_commands_start(void)
{
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (done_fd < 0 || loop_add(done_fd, POLLIN, on_done, NULL) < 0)
		return -1;
	return 0;
}

/* The newest migration of a domain, by id or by the name it had. */
static struct migration *find(json_t *args)
{
	json_t *v = json_object_get(args, "domain");
	const char *s = json_string_value(v);
	struct migration *m;

	for (m = migrations; m; m = m->next) {
		if (json_is_integer(v) && json_integer_value(v) == m->domid)
			return m;
		if (s && (!strcmp(s, m->name) ||
			  strtoul(s, NULL, 10) == m->domid))
			return m;
	}
	return NULL;
}

static bool migrating(struct domain *dom)
{
	struct migration *m;

	for (m = migrations; m; m = m->next)
		if (m->dom == dom && !m->reaped)
			return true;
	return false;
}

/*
 * The domain is being destroyed while it migrates: cancel, wake the
 * thread from its socket, wait for it, and forget the domain.  The
 * destination, never told GO (or told it: the user destroyed it here
 * all the same), cleans up its copy when the connection goes.
 */
void mig_domain_gone(struct domain *dom)
{
	struct migration *m;

	for (m = migrations; m; m = m->next) {
		if (m->dom != dom || m->reaped)
			continue;
		m->cancel = true;
		pthread_mutex_lock(&m->lock);
		if (m->sock >= 0)
			shutdown(m->sock, SHUT_RDWR);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		m->reaped = true;
		m->dom = NULL;
		log_warn("d%u: destroyed while migrating; migration %s",
			 m->domid, mig_state_name(m->p.state));
	}
}

bool mig_busy(char *why, size_t len)
{
	struct migration *m;

	for (m = migrations; m; m = m->next)
		if (!m->reaped) {
			snprintf(why, len, "d%u is being migrated", m->domid);
			return true;
		}
	return false;
}

int cmd_migrate(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	struct migration *m;
	char why[200];
	int code = ctl_arg_domain(args, r, &dom);

	if (code)
		return code;
	if (mig_others_busy(why, sizeof(why)))
		return ctl_fail(r, CTL_EBUSY, "%s: no migration now", why);
	if (dom->state != DOM_RUNNING && dom->state != DOM_PAUSED)
		return ctl_fail(r, CTL_ESTATE, "domain is %s",
				dom_state_name(dom->state));
	if (migrating(dom))
		return ctl_fail(r, CTL_EBUSY, "d%u is already being migrated",
				dom->id);
	m = calloc(1, sizeof(*m));
	if (!m)
		return ctl_fail(r, CTL_ENORES, "out of memory");
	code = mig_parse_args(args, &m->o, r);
	if (code) {
		free(m);
		return code;
	}
	m->dom = dom;
	m->domid = dom->id;
	snprintf(m->name, sizeof(m->name), "%s", dom->name);
	m->sock = -1;
	m->p.phase = "starting";
	m->p.ram_bytes = dom->mem.size;
	pthread_mutex_init(&m->lock, NULL);
	if (pthread_create(&m->thread, NULL, mig_send_thread, m)) {
		free(m);
		return ctl_fail(r, CTL_ENORES, "cannot start a thread");
	}
	m->next = migrations;
	migrations = m;
	log_info("d%u: migrating to %s:%u", dom->id, m->o.host, m->o.port);
	r->result = json_pack("{s:i, s:s}", "id", m->domid, "name", m->name);
	return CTL_OK;
}

static json_t *progress_json(struct migration *m)
{
	struct mig_progress *p = &m->p;
	json_t *j;

	pthread_mutex_lock(&m->lock);
	j = json_pack("{s:i, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:f, s:I, "
		      "s:I, s:f, s:f, s:f, s:i, s:I, s:i, s:f, s:f}",
		      "id", m->domid, "name", m->name,
		      "state", mig_state_name(p->state), "phase", p->phase,
		      "iteration", p->iteration,
		      "ram_bytes", (json_int_t)p->ram_bytes,
		      "sent_bytes", (json_int_t)p->sent_bytes,
		      "wire_bytes", (json_int_t)p->wire_bytes,
		      "percent", p->ram_bytes ? 100.0 * (p->sent_bytes >
				p->ram_bytes ? p->ram_bytes : p->sent_bytes) /
				p->ram_bytes : 0.0,
		      "remaining_pages", (json_int_t)p->remaining_pages,
		      "unchanged_pages", (json_int_t)p->unchanged_pages,
		      "rate_mib_s", p->rate_mib_s,
		      "dirty_rate_mib_s", p->dirty_rate_mib_s,
		      "expected_downtime_ms", p->expected_downtime_ms,
		      "throttle_pct", p->throttle_pct,
		      "throttle_ms", (json_int_t)p->throttle_ms,
		      "format_version", p->version,
		      "downtime_ms", p->downtime_ms, "total_s", p->total_s);
	if (j && p->state == MIG_DONE)
		json_object_set_new(j, "dest_id", json_integer(p->dest_id));
	if (j && p->error[0])
		json_object_set_new(j, "error", json_string(p->error));
	if (j && p->failed_phase)
		json_object_set_new(j, "failed_phase",
				    json_string(p->failed_phase));
	pthread_mutex_unlock(&m->lock);
	return j;
}

int cmd_migrate_status(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct migration *m = find(args);

	if (!m)
		return ctl_fail(r, CTL_ENODOM, "no migration of that domain");
	r->result = progress_json(m);
	return r->result ? CTL_OK : ctl_fail(r, CTL_ENORES, "out of memory");
}

int cmd_migrate_cancel(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct migration *m = find(args);

	if (!m || m->finished)
		return ctl_fail(r, CTL_ESTATE, "no migration of that domain "
				"is running");
	pthread_mutex_lock(&m->lock);
	if (m->committing) {
		pthread_mutex_unlock(&m->lock);
		return ctl_fail(r, CTL_ESTATE, "too late to cancel: the "
				"destination is starting the guest");
	}
	m->cancel = true;
	if (m->sock >= 0)
		shutdown(m->sock, SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
	log_info("d%u: migration cancel requested", m->domid);
	r->result = json_object();
	return CTL_OK;
}
