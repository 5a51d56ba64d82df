/*
 * Auto-converge: a timed duty cycle on a guest that dirties its memory
 * faster than the link carries it.  A thread of the migration parks the
 * guest's vCPUs (quiesce()) for pct % of every MIG_THROTTLE_PERIOD_MS
 * period and lets them run the rest, as QEMU's cpu-throttle does; the
 * sender raises pct round by round (send.c).  Short periods matter: a
 * guest that paces its writes by its clock (the counter guest keeps up
 * to 1 s of credit) catches up after a long pause, but in a 10 ms period
 * it can only write what it manages in its running share of it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "domain.h"
#include "log.h"
#include "migration/mig.h"
#include "quiesce.h"

#define PARK_TIMEOUT_MS		1000

static void add_ns(struct timespec *t, long long ns)
{
	ns += t->tv_nsec;
	t->tv_sec += ns / 1000000000;
	t->tv_nsec = ns % 1000000000;
}

static long long ns_between(const struct timespec *a,
			    const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL +
	       (b->tv_nsec - a->tv_nsec);
}

static void sleep_until(const struct timespec *t)
{
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) ==
	       EINTR)
		;
}

/* The share of the period to park for; waits while it is 0.  -1: stop. */
static int wanted_pct(struct mig_throttle *t)
{
	int pct;

	pthread_mutex_lock(&t->lock);
	while (!t->stop && !t->pct)
		pthread_cond_wait(&t->cond, &t->lock);
	pct = t->stop ? -1 : (int)t->pct;
	pthread_mutex_unlock(&t->lock);
	return pct;
}

/* One period: parked for pct %, running for the rest. */
static void one_period(struct mig_throttle *t, unsigned pct)
{
	const long long period = MIG_THROTTLE_PERIOD_MS * 1000000LL;
	struct timespec start, wake, parked_at;
	struct quiesce q;
	char why[128];

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (quiesce(&q, t->dom, PARK_TIMEOUT_MS, why, sizeof(why)) < 0) {
		/* Ending, or a vCPU that does not come out: let it be. */
		quiesce_resume(&q);
		wake = start;
		add_ns(&wake, period);
		sleep_until(&wake);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &parked_at);
	wake = start;
	add_ns(&wake, period * pct / 100);
	sleep_until(&wake);
	quiesce_resume(&q);
	clock_gettime(CLOCK_MONOTONIC, &wake);
	pthread_mutex_lock(&t->lock);
	t->parked_ns += ns_between(&parked_at, &wake);
	t->periods++;
	pthread_mutex_unlock(&t->lock);
	wake = start;
	add_ns(&wake, period);
	sleep_until(&wake);
}

static void *throttle_thread(void *arg)
{
	struct mig_throttle *t = arg;
	int pct;

	/* The filter is the migration thread's, inherited. */
	prctl(PR_SET_NAME, "mig throttle", 0, 0, 0);
	while ((pct = wanted_pct(t)) >= 0)
		one_period(t, pct);
	return NULL;
}

int mig_throttle_start(struct mig_throttle *t, struct domain *dom)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->dom = dom;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	rc = pthread_create(&t->thread, NULL, throttle_thread, t);
	if (rc) {
		errno = rc;
		return -1;
	}
	t->started = true;
	return 0;
}

void mig_throttle_set(struct mig_throttle *t, unsigned pct)
{
	pthread_mutex_lock(&t->lock);
	t->pct = pct > MIG_THROTTLE_MAX ? MIG_THROTTLE_MAX : pct;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

uint64_t mig_throttle_parked_ms(struct mig_throttle *t)
{
	uint64_t ns;

	if (!t->started)		/* never started, or joined */
		return t->parked_ns / 1000000;
	pthread_mutex_lock(&t->lock);
	ns = t->parked_ns;
	pthread_mutex_unlock(&t->lock);
	return ns / 1000000;
}

/* Stop the duty cycle: when this returns, the throttle holds no vCPU. */
void mig_throttle_stop(struct mig_throttle *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->started = false;
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
}
