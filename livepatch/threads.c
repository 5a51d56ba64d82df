/*
 * Where every thread of the daemon is, checked before bytes of running
 * code are rewritten (docs/livepatch.md, "Where the threads are"): no
 * thread may have its instruction pointer or a return address strictly
 * inside a span about to be written (it would resume in the middle of
 * other instructions), nor anywhere in a payload's code about to be
 * unmapped.
 *
 * The calling (control) thread unwinds itself.  Every other thread is
 * asked with a signal whose handler records the interrupted instruction
 * pointer and unwinds (backtrace(3): DWARF CFI through the signal frame).
 * The signal is SIGUSR1, the vCPU kick (xen/vcpu.c): vCPU threads block
 * every other signal, and the kick's own handler does nothing (delivery
 * is what interrupts KVM_RUN), so while the vCPUs are parked livepatch
 * lends it a handler that samples and otherwise does nothing either.
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "livepatch/internal.h"

#define SAMPLE_SIG	SIGUSR1
#define SAMPLE_DEPTH	64
#define SAMPLE_THREADS	512
#define SAMPLE_WAIT_MS	1000	/* generous: a loaded host schedules late */

struct sample {
	pid_t tid;
	int n;			/* addresses in addr[]; -1 until answered */
	void *addr[SAMPLE_DEPTH];	/* [0]: the interrupted RIP */
};

static struct sample samples[SAMPLE_THREADS];
static unsigned nsamples;
static sem_t answered;

static void sample_handler(int sig, siginfo_t *si, void *ctx)
{
	pid_t tid = syscall(SYS_gettid);
	const ucontext_t *uc = ctx;
	unsigned i, n = __atomic_load_n(&nsamples, __ATOMIC_ACQUIRE);
	int got;

	for (i = 0; i < n; i++) {
		struct sample *s = &samples[i];

		if (s->tid != tid || __atomic_load_n(&s->n, __ATOMIC_ACQUIRE) >= 0)
			continue;
		s->addr[0] = (void *)uc->uc_mcontext.gregs[REG_RIP];
		got = backtrace(s->addr + 1, SAMPLE_DEPTH - 1);
		__atomic_store_n(&s->n, 1 + (got > 0 ? got : 0),
				 __ATOMIC_RELEASE);
		sem_post(&answered);
		return;
	}
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

static void thread_name(pid_t tid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, len - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
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

/* --------------------------------------------------------- sampling */

/* Kernel flags that mark a task of ours that never runs user code. */
#define PF_IO_WORKER	0x00000010
#define PF_USER_WORKER	0x00004000	/* e.g. KVM's kvm-nx-lpage-recovery */
#define PF_KTHREAD	0x00200000

static bool runs_user_code(pid_t tid)
{
	char path[64], buf[512], *rp;
	unsigned long flags;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	rp = strrchr(buf, ')');		/* after "pid (comm" */
	for (i = 0; rp && i < 7; i++)	/* to field 9, flags */
		rp = strchr(rp + 1, ' ');
	if (!rp || sscanf(rp, "%lu", &flags) != 1)
		return true;
	return !(flags & (PF_IO_WORKER | PF_USER_WORKER | PF_KTHREAD));
}

static int list_threads(pid_t self, char *why, size_t len)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	nsamples = 0;
	if (!d) {
		snprintf(why, len, "/proc/self/task: %s", strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || tid == self || !runs_user_code(tid))
			continue;
		if (nsamples == SAMPLE_THREADS) {
			closedir(d);
			snprintf(why, len, "more than %d threads", SAMPLE_THREADS);
			return -E2BIG;
		}
		samples[nsamples].tid = tid;
		samples[nsamples++].n = -1;
	}
	closedir(d);
	return 0;
}

/* Signal every other thread; wait for the answers (or the deadline). */
static void ask_threads(void)
{
	struct timespec dl;
	unsigned i, asked = 0;

	for (i = 0; i < nsamples; i++) {
		if (syscall(SYS_tgkill, getpid(), samples[i].tid, SAMPLE_SIG))
			samples[i].n = 0;	/* it has ended */
		else
			asked++;
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += SAMPLE_WAIT_MS * 1000000L;
	dl.tv_sec += dl.tv_nsec / 1000000000L;
	dl.tv_nsec %= 1000000000L;
	while (asked) {
		if (!sem_timedwait(&answered, &dl))
			asked--;
		else if (errno != EINTR)
			break;
	}
}

static int sample_others(pid_t self, char *why, size_t len)
{
	static bool sem_ready;
	struct sigaction sa, old;
	int ret = list_threads(self, why, len);

	if (ret || !nsamples)
		return ret;
	if (!sem_ready && sem_init(&answered, 0, 0)) {
		snprintf(why, len, "sem_init: %s", strerror(errno));
		return -errno;
	}
	sem_ready = true;
	while (!sem_trywait(&answered))
		;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sample_handler;
	sa.sa_flags = SA_SIGINFO;	/* no SA_RESTART, as the kick */
	sigfillset(&sa.sa_mask);
	sigaction(SAMPLE_SIG, &sa, &old);
	ask_threads();
	sigaction(SAMPLE_SIG, &old, NULL);
	return 0;
}

int lp_threads_check(const struct payload *p, bool whole_text, char *why,
		     size_t len)
{
	pid_t self = syscall(SYS_gettid);
	void *own[SAMPLE_DEPTH];
	char name[32];
	unsigned i;
	int n, ret;

	/* Also loads the unwinder before any signal handler needs it. */
	n = backtrace(own, SAMPLE_DEPTH);
	ret = check_addrs(p, whole_text, self, own, n, why, len);
	if (!ret)
		ret = sample_others(self, why, len);
	for (i = 0; !ret && i < nsamples; i++) {
		struct sample *s = &samples[i];
		int got = __atomic_load_n(&s->n, __ATOMIC_ACQUIRE);

		if (got < 0) {
			thread_name(s->tid, name, sizeof(name));
			snprintf(why, len, "thread %d (%s) did not say where it "
				 "is within %d ms", s->tid, name,
				 SAMPLE_WAIT_MS);
			ret = -ETIMEDOUT;
		} else {
			ret = check_addrs(p, whole_text, s->tid, s->addr, got,
					  why, len);
		}
	}
	__atomic_store_n(&nsamples, 0, __ATOMIC_RELEASE);
	return ret;
}
