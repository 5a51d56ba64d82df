/*
 * Asking threads exactly where they are: each is sent a signal whose
 * handler records the interrupted instruction pointer and unwinds from
 * there (backtrace(3): DWARF CFI through the signal frame).
 *
 * The signal is SIGUSR1, the vCPU kick (xen/vcpu.c): vCPU threads block
 * every other signal, and the kick's own handler does nothing (delivery
 * is what interrupts KVM_RUN), so while the vCPUs are parked livepatch
 * lends it a handler that samples and otherwise does nothing either.
 */
#include <errno.h>
#include <execinfo.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "livepatch/internal.h"

#define SAMPLE_SIG	SIGUSR1
#define SAMPLE_WAIT_MS	1000	/* generous: a loaded host schedules late */

static struct lp_sample *asked;
static unsigned nasked;
static sem_t answered;

static void sample_handler(int sig, siginfo_t *si, void *ctx)
{
	pid_t tid = syscall(SYS_gettid);
	const ucontext_t *uc = ctx;
	unsigned i, n = __atomic_load_n(&nasked, __ATOMIC_ACQUIRE);
	int got;

	for (i = 0; i < n; i++) {
		struct lp_sample *s = &asked[i];

		if (s->tid != tid ||
		    __atomic_load_n(&s->n, __ATOMIC_ACQUIRE) >= 0)
			continue;
		s->addr[0] = (void *)uc->uc_mcontext.gregs[REG_RIP];
		got = backtrace(s->addr + 1, LP_SAMPLE_DEPTH - 1);
		__atomic_store_n(&s->n, 1 + (got > 0 ? got : 0),
				 __ATOMIC_RELEASE);
		sem_post(&answered);
		return;
	}
}

/* Signal every thread asked; wait for the answers (or the deadline). */
static void ask(struct lp_sample *s, unsigned n)
{
	struct timespec dl;
	unsigned i, left = 0;

	for (i = 0; i < n; i++) {
		if (syscall(SYS_tgkill, getpid(), s[i].tid, SAMPLE_SIG))
			s[i].n = 0;	/* it has ended */
		else
			left++;
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += SAMPLE_WAIT_MS * 1000000L;
	dl.tv_sec += dl.tv_nsec / 1000000000L;
	dl.tv_nsec %= 1000000000L;
	while (left) {
		if (!sem_timedwait(&answered, &dl))
			left--;
		else if (errno != EINTR)
			break;
	}
}

int lp_sample_threads(struct lp_sample *s, unsigned n, char *why,
		      size_t len)
{
	static bool sem_ready;
	struct sigaction sa, old;
	void *warm[1];
	unsigned i;

	if (!n)
		return 0;
	if (!sem_ready && sem_init(&answered, 0, 0)) {
		snprintf(why, len, "sem_init: %s", strerror(errno));
		return -errno;
	}
	sem_ready = true;
	while (!sem_trywait(&answered))
		;
	backtrace(warm, 1);	/* loads the unwinder outside any handler */
	for (i = 0; i < n; i++)
		s[i].n = -1;
	asked = s;
	__atomic_store_n(&nasked, n, __ATOMIC_RELEASE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sample_handler;
	sa.sa_flags = SA_SIGINFO;	/* no SA_RESTART, as the kick */
	sigfillset(&sa.sa_mask);
	sigaction(SAMPLE_SIG, &sa, &old);
	ask(s, n);
	sigaction(SAMPLE_SIG, &old, NULL);
	__atomic_store_n(&nasked, 0, __ATOMIC_RELEASE);
	for (i = 0; i < n; i++) {
		if (__atomic_load_n(&s[i].n, __ATOMIC_ACQUIRE) < 0) {
			snprintf(why, len, "thread %d did not say where it is "
				 "within %d ms", s[i].tid, SAMPLE_WAIT_MS);
			return -ETIMEDOUT;
		}
	}
	return 0;
}
