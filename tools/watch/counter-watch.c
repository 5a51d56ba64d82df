// SPDX-License-Identifier: GPL-2.0
/*
 * counter-watch: measure, from outside the hypervisor, how long each
 * counter guest stood still.  It maps every guest RAM memfd of the daemon
 * through /proc/PID/fd (read-only, shared: it sees the guest's own writes
 * and keeps seeing them across a live update, which keeps the memfds) and
 * samples the counter in the guest's status block (tests/guests/README.md).
 *
 *   counter-watch --pid PID [--interval-us N] [--seconds S]
 *
 * Runs until S seconds pass or SIGINT/SIGTERM, then prints one JSON
 * object: per domain the longest stall (time between two samples that saw
 * the counter change), samples, first and last counter, and the guest's
 * own longest gap (its max_gap_tsc, in ms by its tsc_khz).
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

struct guest {
	unsigned domid;
	const volatile uint64_t *status;
	uint64_t first, last, errors;
	double guest_max_gap_ms;	/* the guest's own figure */
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

static void sample(struct guest *g, double t)
{
	uint64_t c;

	if (g->status[0] != STATUS_MAGIC)
		return;
	c = g->status[1];
	g->errors = g->status[4];
	if (g->status[7])	/* max_gap_tsc / tsc_khz */
		g->guest_max_gap_ms = (double)g->status[10] / g->status[7];
	g->samples++;
	if (!g->seen) {
		g->seen = true;
		g->first = g->last = c;
		g->last_change = t;
		return;
	}
	if (c != g->last) {
		if (t - g->last_change > g->max_stall) {
			g->max_stall = t - g->last_change;
			g->max_stall_at = t;
		}
		g->last = c;
		g->last_change = t;
	}
}

static void report(struct guest *g, unsigned n, double t0)
{
	unsigned i;

	printf("{\"guests\": [");
	for (i = 0; i < n; i++)
		printf("%s{\"domid\": %u, \"max_stall_ms\": %.3f, \"max_stall_at_s\": %.3f, \"samples\": %lu, \"first\": %llu, \"last\": %llu, \"errors\": %llu, \"guest_max_gap_ms\": %.3f}",
		       i ? ", " : "", g[i].domid, g[i].max_stall * 1e3,
		       g[i].max_stall_at ? g[i].max_stall_at - t0 : 0.0,
		       g[i].samples, (unsigned long long)g[i].first,
		       (unsigned long long)g[i].last,
		       (unsigned long long)g[i].errors,
		       g[i].guest_max_gap_ms);
	printf("], \"seconds\": %.3f}\n", now_s() - t0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "interval-us", required_argument, NULL, 'i' },
		{ "seconds", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct guest g[MAX_GUESTS];
	double seconds = 0, t0, t;
	long interval_us = 100;
	unsigned n, i;
	int pid = 0, c;

	while ((c = getopt_long(argc, argv, "p:i:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pid = atoi(optarg); break;
		case 'i': interval_us = atol(optarg); break;
		case 's': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: counter-watch --pid PID [--interval-us N] [--seconds S]\n");
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
