// SPDX-License-Identifier: GPL-2.0
/*
 * counter-watch: measure, from outside the hypervisor, how long each
 * counter guest stood still.  It maps every guest RAM memfd of the daemon
 * through /proc/PID/fd (read-only, shared: it sees the guest's own writes
 * and keeps seeing them across a live update, which keeps the memfds) and
 * samples the counter in the guest's status block (tests/guests/README.md).
 *
 *   counter-watch --pid PID [--interval-us N] [--seconds S]
 *                 [--stall-event-ms MS]
 *
 * Runs until S seconds pass or SIGINT/SIGTERM, then prints one JSON
 * object: per domain the longest stall (time between two samples that saw
 * the counter change), samples, first and last counter, the guest's
 * own longest gap (its max_gap_tsc, in ms by its tsc_khz) and, from its
 * gap log, the longest gap it logged while we watched (window_max_gap_ms;
 * gaps_lost counts entries the ring overwrote before we read them).  An
 * idle guest (idle_us > 0) asked to sleep idle_us between two counter
 * batches: its gaps are already less that sleep, the stalls seen here are
 * not.
 *
 * Beside the maxima, when each happened: "gaps" lists every logged gap as
 * [t, ms], t the CLOCK_MONOTONIC second we read it (its end, within one
 * sampling interval), and "stalls" every stall longer than idle_us plus
 * MS (--stall-event-ms, default 0.5: above the sampling interval, or a
 * spinning guest's every sample would be one) as [t, ms], t its end; the
 * first MAX_EVENTS of each, "events_dropped" counts the rest (a caller
 * picks those of the moment it cares about, e.g. a live update).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define STATUS_GPA	0x200000u
#define STATUS_MAGIC	0x3154534752544e43ULL	/* "CNTRGST1" */
#define MAX_GUESTS	64
/* Status block fields (u64 indexes) and the gap log (README.md). */
#define ST_ERRORS	4
#define ST_TSC_KHZ	7
#define ST_MAX_GAP	10
#define ST_IDLE_US	11
#define ST_SLEEPS	12
#define ST_GAP_COUNT	14
#define GAP_LOG_INDEX	(0x800 / 8)
#define GAP_LOG_SIZE	128
#define MAX_EVENTS	4096

struct event {
	double t, ms;
};

struct guest {
	unsigned domid;
	const volatile uint64_t *status;
	uint64_t first, last, errors;
	double guest_max_gap_ms;	/* the guest's own figure */
	uint64_t log_next;		/* next gap log entry to read */
	uint64_t window_max_gap;	/* TSC ticks, logged while watching */
	uint64_t gaps_logged, gaps_lost, sleeps_first, sleeps_last;
	struct event gaps[MAX_EVENTS], stalls[MAX_EVENTS];
	unsigned ngaps, nstalls;
	unsigned long events_dropped;
	double last_change, max_stall, max_stall_at;
	unsigned long samples;
	bool seen;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static bool known(const struct guest *g, unsigned n, unsigned domid)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (g[i].domid == domid)
			return true;
	return false;
}

/*
 * The domain whose RAM an fd of the daemon is: "/memfd:domN-ram (deleted)"
 * or, with --mem-path, "DIR/domN-ram.XXXXXX (deleted)".
 */
static bool ram_domid(const char *link, unsigned *domid)
{
	const char *base = strrchr(link, '/');
	int end = 0;

	if (!strncmp(link, "/memfd:", 7))
		base = link + 7;
	else if (base)
		base++;
	else
		return false;
	return sscanf(base, "dom%u-ram%n", domid, &end) == 1 && end &&
	       (base[end] == ' ' || base[end] == '.' || !base[end]);
}

/* Map the status page of every domain's RAM the daemon holds. */
static unsigned map_guests(int pid, struct guest *g)
{
	char dir[64], path[320], link[256];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < MAX_GUESTS) {
		ssize_t len;
		unsigned domid;
		void *p;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (!ram_domid(link, &domid) || known(g, n, domid))
			continue;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		p = mmap(NULL, STATUS_GPA + 4096, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			continue;
		g[n].domid = domid;
		g[n].status = (const volatile uint64_t *)((char *)p +
							  STATUS_GPA);
		n++;
	}
	closedir(d);
	return n;
}

static double stall_event_s = 0.5e-3;

static void add_event(struct guest *g, struct event *e, unsigned *n,
		      double t, double ms)
{
	if (*n < MAX_EVENTS)
		e[(*n)++] = (struct event){ t, ms };
	else
		g->events_dropped++;
}

/* The gap log entries the guest wrote since the last look. */
static void read_gap_log(struct guest *g, double t)
{
	uint64_t khz = g->status[ST_TSC_KHZ];
	uint64_t n = g->status[ST_GAP_COUNT], i;

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (n - g->log_next > GAP_LOG_SIZE) {
		g->gaps_lost += n - GAP_LOG_SIZE - g->log_next;
		g->log_next = n - GAP_LOG_SIZE;
	}
	for (i = g->log_next; i < n; i++) {
		uint64_t gap = g->status[GAP_LOG_INDEX +
					 2 * (i % GAP_LOG_SIZE) + 1];

		if (gap > g->window_max_gap)
			g->window_max_gap = gap;
		if (khz)
			add_event(g, g->gaps, &g->ngaps, t,
				  (double)gap / khz);
		g->gaps_logged++;
	}
	g->log_next = n;
}

static void sample(struct guest *g, double t)
{
	uint64_t c;

	if (g->status[0] != STATUS_MAGIC)
		return;
	c = g->status[1];
	g->errors = g->status[ST_ERRORS];
	if (g->status[ST_TSC_KHZ])	/* max_gap_tsc / tsc_khz */
		g->guest_max_gap_ms = (double)g->status[ST_MAX_GAP] /
				      g->status[ST_TSC_KHZ];
	g->sleeps_last = g->status[ST_SLEEPS];
	g->samples++;
	if (!g->seen) {
		g->seen = true;
		g->first = g->last = c;
		g->last_change = t;
		g->log_next = g->status[ST_GAP_COUNT];	/* from now on */
		g->sleeps_first = g->sleeps_last;
		return;
	}
	read_gap_log(g, t);
	if (c != g->last) {
		double idle_s = g->status[ST_IDLE_US] / 1e6;

		if (t - g->last_change > idle_s + stall_event_s)
			add_event(g, g->stalls, &g->nstalls, t,
				  (t - g->last_change) * 1e3);
		if (t - g->last_change > g->max_stall) {
			g->max_stall = t - g->last_change;
			g->max_stall_at = t;
		}
		g->last = c;
		g->last_change = t;
	}
}

static void print_events(const char *key, const struct event *e, unsigned n)
{
	unsigned i;

	printf("\"%s\": [", key);
	for (i = 0; i < n; i++)
		printf("%s[%.6f, %.3f]", i ? ", " : "", e[i].t, e[i].ms);
	printf("]");
}

static void report(struct guest *g, unsigned n, double t0)
{
	unsigned i;

	printf("{\"guests\": [");
	for (i = 0; i < n; i++) {
		uint64_t khz = g[i].status[ST_TSC_KHZ];

		printf("%s{\"domid\": %u, \"max_stall_ms\": %.3f, \"max_stall_at_s\": %.3f, \"samples\": %lu, \"first\": %llu, \"last\": %llu, \"errors\": %llu, \"guest_max_gap_ms\": %.3f, ",
		       i ? ", " : "", g[i].domid, g[i].max_stall * 1e3,
		       g[i].max_stall_at ? g[i].max_stall_at - t0 : 0.0,
		       g[i].samples, (unsigned long long)g[i].first,
		       (unsigned long long)g[i].last,
		       (unsigned long long)g[i].errors,
		       g[i].guest_max_gap_ms);
		printf("\"window_max_gap_ms\": %.3f, \"gaps_logged\": %llu, \"gaps_lost\": %llu, \"idle_us\": %llu, \"sleeps\": %llu, ",
		       khz ? (double)g[i].window_max_gap / khz : 0.0,
		       (unsigned long long)g[i].gaps_logged,
		       (unsigned long long)g[i].gaps_lost,
		       (unsigned long long)g[i].status[ST_IDLE_US],
		       (unsigned long long)(g[i].sleeps_last -
					    g[i].sleeps_first));
		print_events("gaps", g[i].gaps, g[i].ngaps);
		printf(", ");
		print_events("stalls", g[i].stalls, g[i].nstalls);
		printf(", \"events_dropped\": %lu}", g[i].events_dropped);
	}
	printf("], \"seconds\": %.3f}\n", now_s() - t0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "interval-us", required_argument, NULL, 'i' },
		{ "seconds", required_argument, NULL, 's' },
		{ "stall-event-ms", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	static struct guest g[MAX_GUESTS];
	double seconds = 0, t0, t;
	long interval_us = 100;
	unsigned n, i;
	int pid = 0, c;

	while ((c = getopt_long(argc, argv, "p:i:s:e:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pid = atoi(optarg); break;
		case 'i': interval_us = atol(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'e': stall_event_s = atof(optarg) / 1e3; break;
		default:
			fprintf(stderr, "usage: counter-watch --pid PID [--interval-us N] [--seconds S] [--stall-event-ms MS]\n");
			return 2;
		}
	}
	if (pid <= 0) {
		fprintf(stderr, "counter-watch: --pid is required\n");
		return 2;
	}
	memset(g, 0, sizeof(g));
	n = map_guests(pid, g);
	if (!n) {
		fprintf(stderr, "counter-watch: no guest RAM memfd in /proc/%d/fd\n",
			pid);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* Tell a parent that we are watching (it may wait for this). */
	fprintf(stderr, "counter-watch: watching %u guest(s)\n", n);
	t0 = now_s();
	while (!stop && (!seconds || now_s() - t0 < seconds)) {
		t = now_s();
		for (i = 0; i < n; i++)
			sample(&g[i], t);
		usleep(interval_us);
	}
	report(g, n, t0);
	return 0;
}
