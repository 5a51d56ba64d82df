#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dev/devices.h"
#include "domain.h"
#include "monotime.h"
#include "quiesce.h"
#include "vcpu.h"

static unsigned started_vcpus(const struct domain *d)
{
	unsigned i, n = 0;

	for (i = 0; i < d->nr_vcpus; i++)
		n += d->vcpus[i].thread_started;
	return n;
}

/* Stop `d` from entering KVM_RUN and kick its vCPUs out; false if ending. */
static bool hold(struct quiesce *q, struct domain *d)
{
	unsigned k;

	if (!d->vcpus || d->state == DOM_DYING)
		return false;
	pthread_mutex_lock(&d->lock);
	if (d->stopping) {
		pthread_mutex_unlock(&d->lock);
		return false;
	}
	q->held[q->nr].dom = d;
	q->held[q->nr].parked = d->nr_parked;
	q->held[q->nr++].was_running = d->run_ok;
	d->run_ok = false;
	pthread_mutex_unlock(&d->lock);
	for (k = 0; k < d->nr_vcpus; k++)
		if (!d->vcpus[k].parked)
			vcpu_kick(&d->vcpus[k]);
	return true;
}

static void deadline_in(struct timespec *dl, long ms)
{
	clock_gettime(CLOCK_REALTIME, dl);
	dl->tv_sec += ms / 1000;
	dl->tv_nsec += (ms % 1000) * 1000000;
	if (dl->tv_nsec >= 1000000000) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000;
	}
}

/* Wait until every started vCPU thread of `d` is parked, or the deadline. */
static bool wait_parked(struct quiesce_held *h, const struct timespec *dl,
			long timeout_ms, unsigned *want)
{
	struct domain *d = h->dom;
	bool ok = true;

	*want = started_vcpus(d);
	/* How fast a kicked vCPU parks is the host's: 0 ms means no wait. */
	if (timeout_ms == 0)
		return h->parked >= *want || d->stopping;
	pthread_mutex_lock(&d->lock);
	while (d->nr_parked < *want && !d->stopping) {
		if (dl ? pthread_cond_timedwait(&d->cond, &d->lock, dl) ==
			 ETIMEDOUT
		       : pthread_cond_wait(&d->cond, &d->lock) != 0) {
			ok = d->nr_parked >= *want;
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return ok;
}

/* Hold `dom`, or every domain when NULL: kick them all before any wait. */
static int hold_all(struct quiesce *q, struct domain *dom, char *err,
		    size_t errlen)
{
	struct domain *d;
	unsigned n = 0;

	for (d = dom ? dom : domain_first(); d; d = dom ? NULL : d->next)
		n++;
	q->nr = q->vcpus = 0;
	q->held = calloc(n ? n : 1, sizeof(*q->held));
	if (!q->held) {
		snprintf(err, errlen, "%s", "out of memory");
		return -ENOMEM;
	}
	for (d = dom ? dom : domain_first(); d; d = dom ? NULL : d->next)
		hold(q, d);
	return 0;
}

/* Held domain i parked (its device threads too), or -ETIMEDOUT. */
static int park_one(struct quiesce *q, unsigned i, const struct timespec *dl,
		    long timeout_ms, char *err, size_t errlen)
{
	struct domain *d = q->held[i].dom;
	unsigned want;

	if (!wait_parked(&q->held[i], dl, timeout_ms, &want)) {
		snprintf(err, errlen, "d%u has %u of %u vCPUs parked after "
			 "%ld ms", d->id, d->nr_parked, want, timeout_ms);
		return -ETIMEDOUT;
	}
	q->vcpus += want;
	/* Then the device threads, between two requests. */
	devices_pause(d);
	return 0;
}

int quiesce(struct quiesce *q, struct domain *dom, long timeout_ms,
	    char *err, size_t errlen)
{
	long long t0 = now_ns();
	struct timespec dl;
	unsigned i;
	int ret = hold_all(q, dom, err, errlen);

	if (ret)
		return ret;
	if (timeout_ms >= 0)
		deadline_in(&dl, timeout_ms);
	for (i = 0; i < q->nr; i++) {
		ret = park_one(q, i, timeout_ms >= 0 ? &dl : NULL, timeout_ms,
			       err, errlen);
		if (ret)
			return ret;
	}
	q->park_ns = now_ns() - t0;
	return 0;
}

int quiesce_each(struct quiesce *q, long timeout_ms,
		 int (*each)(struct domain *d, void *arg), void *arg,
		 char *err, size_t errlen)
{
	long long t0 = now_ns();
	struct timespec dl;
	struct domain *d;
	unsigned i = 0;
	int ret = hold_all(q, NULL, err, errlen);

	if (ret)
		return ret;
	if (timeout_ms >= 0)
		deadline_in(&dl, timeout_ms);
	/* The held domains are in the list's order, a subset of it. */
	for (d = domain_first(); d; d = d->next) {
		if (i < q->nr && q->held[i].dom == d) {
			ret = park_one(q, i++, timeout_ms >= 0 ? &dl : NULL,
				       timeout_ms, err, errlen);
			if (ret)
				return ret;
		}
		ret = each(d, arg);
		if (ret)
			return ret;
	}
	q->park_ns = now_ns() - t0;
	return 0;
}

void quiesce_resume(struct quiesce *q)
{
	unsigned i;

	for (i = 0; i < q->nr; i++) {
		struct domain *d = q->held[i].dom;

		bool run;

		pthread_mutex_lock(&d->lock);
		run = q->held[i].was_running && d->pending == DOM_EV_NONE;
		d->run_ok = run;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		if (q->held[i].was_running)
			devices_resume(d);
	}
	quiesce_keep(q);
}

void quiesce_keep(struct quiesce *q)
{
	free(q->held);
	q->held = NULL;
	q->nr = 0;
}
