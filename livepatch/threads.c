/*
 * Where every thread of the daemon is, checked before bytes of running
 * code are rewritten (docs/livepatch.md, "Where the threads are"): no
 * thread may have its instruction pointer or a return address strictly
 * inside a span about to be written (it would resume in the middle of
 * other instructions), nor anywhere in a payload's code about to be
 * unmapped.
 *
 * The calling (control) thread unwinds itself.  Every other thread gets
 * a cheap look first: one blocked in a system call (a parked vCPU waits
 * in futex) shows its stack and instruction pointers in
 * /proc/self/task/TID/syscall, and when no word of its stack, from there
 * to the top of its mapping, is an address inside what is to be written
 * (or in a payload's code), none of its return addresses can be.  Only a
 * thread that fails that look (a return address, or stale data that
 * looks like one) or is not in a system call is asked exactly
 * (thread_sample.c).
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "livepatch/internal.h"

#define MAX_THREADS	512
#define MAPS_MAX	(1u << 20)

/* Kernel flags that mark a task of ours that never runs user code. */
#define PF_IO_WORKER	0x00000010
#define PF_USER_WORKER	0x00004000	/* e.g. KVM's kvm-nx-lpage-recovery */
#define PF_KTHREAD	0x00200000

static struct lp_sample to_ask[MAX_THREADS];

static ssize_t read_file(const char *path, char *buf, size_t len)
{
	ssize_t n, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((size_t)got < len - 1 &&
	       (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return got;
}

static void thread_name(pid_t tid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
	n = read_file(path, buf, len);
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	else if (n < 0)
		buf[0] = 0;
}

static bool runs_user_code(pid_t tid)
{
	char path[64], buf[512], *rp;
	unsigned long flags;
	int i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return true;
	rp = strrchr(buf, ')');		/* after "pid (comm" */
	for (i = 0; rp && i < 7; i++)	/* to field 9, flags */
		rp = strchr(rp + 1, ' ');
	if (!rp || sscanf(rp, "%lu", &flags) != 1)
		return true;
	return !(flags & (PF_IO_WORKER | PF_USER_WORKER | PF_KTHREAD));
}

/* ------------------------------------------------------------ checks */

/* The span of p that a lies strictly inside (or its code), or NULL. */
static const char *inside(const struct payload *p, bool whole_text,
			  uint64_t a, uint64_t *off)
{
	struct lp_span s;
	unsigned i;

	if (whole_text) {
		*off = a - (uint64_t)p->mem;
		return a >= (uint64_t)p->mem &&
		       a < (uint64_t)p->mem + p->text_size ? p->name : NULL;
	}
	for (i = 0; i < lp_nspans(p); i++) {
		lp_span_at(p, i, &s);
		*off = a - (uint64_t)s.addr;
		if (a > (uint64_t)s.addr && a < (uint64_t)s.addr + s.len)
			return s.what;
	}
	return NULL;
}

/* A loaded payload whose code holds a: it has no unwind tables. */
static const struct payload *payload_code(uint64_t a)
{
	unsigned i;

	for (i = 0; i < lp_nloaded; i++)
		if (a >= (uint64_t)lp_loaded[i]->mem &&
		    a < (uint64_t)lp_loaded[i]->mem + lp_loaded[i]->text_size)
			return lp_loaded[i];
	return NULL;
}

static int check_addrs(const struct payload *p, bool whole_text, pid_t tid,
		       void *const *addr, int n, char *why, size_t len)
{
	const struct payload *other = NULL;
	const char *what;
	char name[32];
	uint64_t off;
	int i;

	for (i = 0; i < n; i++) {
		what = inside(p, whole_text, (uint64_t)addr[i], &off);
		if (!what && !other)
			other = payload_code((uint64_t)addr[i]);
		if (!what)
			continue;
		thread_name(tid, name, sizeof(name));
		snprintf(why, len, "thread %d (%s) has %s inside %s (at +%#lx)",
			 tid, name, i ? "a return address" :
			 "its instruction pointer", what, (unsigned long)off);
		return -EAGAIN;
	}
	/* The unwinder stops in payload code: what called it is unseen. */
	if (other && !whole_text) {
		thread_name(tid, name, sizeof(name));
		snprintf(why, len, "thread %d (%s) is in the code of payload %s, "
			 "where its callers cannot be seen", tid, name,
			 other->name);
		return -EAGAIN;
	}
	return 0;
}

/* ------------------------------------------------------- a cheap look */

/* Stack and instruction pointers of a thread blocked in a system call. */
static bool blocked_at(pid_t tid, uint64_t *sp, uint64_t *pc)
{
	char path[64], buf[512], *last, *prev;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	if (read_file(path, buf, sizeof(buf)) <= 0 ||
	    !strncmp(buf, "running", 7))
		return false;
	last = strrchr(buf, ' ');
	if (!last)
		return false;
	*last = 0;
	prev = strrchr(buf, ' ');
	return prev && sscanf(prev + 1, "%" SCNx64, sp) == 1 &&
	       sscanf(last + 1, "%" SCNx64, pc) == 1 && *sp;
}

/* The end of the mapping (in /proc/self/maps text) that holds a. */
static uint64_t mapping_end(const char *maps, uint64_t a)
{
	const char *l;
	uint64_t lo, hi;

	for (l = maps; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (sscanf(l, "%" SCNx64 "-%" SCNx64, &lo, &hi) == 2 &&
		    a >= lo && a < hi)
			return hi;
	return 0;
}

/* Any word of [sp, end) that could be a return address that matters.
 * Other threads' stacks hold redzones ASan would report: not ours. */
__attribute__((no_sanitize_address))
static bool stack_has(const struct payload *p, bool whole_text,
		      uint64_t sp, uint64_t end)
{
	const volatile uint64_t *w = (const uint64_t *)(sp & ~7ull);
	uint64_t off;

	for (; (uint64_t)w + 8 <= end; w++)
		if (inside(p, whole_text, *w, &off) || payload_code(*w))
			return true;
	return false;
}

/* 0: thread tid is clear; 1: ask it exactly; -EAGAIN: it is inside. */
static int quick_look(const struct payload *p, bool whole_text, pid_t tid,
		      const char *maps, char *why, size_t len)
{
	uint64_t sp, pc, end;
	void *ip;

	if (!maps || !blocked_at(tid, &sp, &pc))
		return 1;
	ip = (void *)pc;
	if (check_addrs(p, whole_text, tid, &ip, 1, why, len))
		return -EAGAIN;
	end = mapping_end(maps, sp);
	return !end || stack_has(p, whole_text, sp, end);
}

/* ------------------------------------------------------------ threads */

/* Every other thread that runs user code, looked at; those to ask in
 * to_ask[]; their number, or -errno. */
static int look_at_all(const struct payload *p, bool whole_text, pid_t self,
		       char *why, size_t len)
{
	DIR *d = opendir("/proc/self/task");
	char *maps = malloc(MAPS_MAX);
	struct dirent *de;
	int n = 0, r = 0;

	if (maps && read_file("/proc/self/maps", maps, MAPS_MAX) <= 0) {
		free(maps);
		maps = NULL;
	}
	if (!d)
		r = -errno;
	while (!r && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || tid == self || !runs_user_code(tid))
			continue;
		r = quick_look(p, whole_text, tid, maps, why, len);
		if (r != 1)
			continue;
		r = n < MAX_THREADS ? 0 : -E2BIG;
		if (!r)
			to_ask[n++].tid = tid;
	}
	if (r == -E2BIG)
		snprintf(why, len, "more than %d threads", MAX_THREADS);
	else if (!d)
		snprintf(why, len, "/proc/self/task: %s", strerror(-r));
	if (d)
		closedir(d);
	free(maps);
	return r ? r : n;
}

int lp_threads_check(const struct payload *p, bool whole_text, char *why,
		     size_t len)
{
	pid_t self = syscall(SYS_gettid);
	void *own[LP_SAMPLE_DEPTH];
	int n, i, ret;

	n = backtrace(own, LP_SAMPLE_DEPTH);
	ret = check_addrs(p, whole_text, self, own, n, why, len);
	if (ret)
		return ret;
	n = look_at_all(p, whole_text, self, why, len);
	if (n < 0)
		return n;
	ret = lp_sample_threads(to_ask, n, why, len);
	for (i = 0; !ret && i < n; i++)
		ret = check_addrs(p, whole_text, to_ask[i].tid,
				  to_ask[i].addr, to_ask[i].n, why, len);
	return ret;
}
