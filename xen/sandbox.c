/*
 * The seccomp sandbox (docs/sandbox.md).  Each thread role's filter is
 * built once with libseccomp (sandbox_rules.c) and installed by each
 * thread on itself as it starts: filters are per thread (no TSYNC), and a
 * thread inherits its creator's, so a vCPU thread runs under the main
 * thread's filter and its own, stacked.
 *
 * A refused call fails with EPERM and is logged, once per role and call:
 * SCMP_ACT_TRAP raises SIGSYS in the thread that made it, whose handler
 * sets the call's return value to -EPERM and notes it for the main loop
 * to log.  Killing the thread (SECCOMP_RET_KILL_THREAD) would leave the
 * locks it held (its domain's, the log's) held and hang the daemon;
 * killing the process would take every other guest down; a plain
 * SCMP_ACT_ERRNO would say nothing to the operator.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "log.h"
#include "sandbox_internal.h"
#include "sandbox_rules.h"

#if !defined(__x86_64__)
#error "the sandbox's SIGSYS handler knows x86-64 only"
#endif

const char *const sandbox_role_names[SANDBOX_NR_ROLES] = {
	[SANDBOX_MAIN] = "main",
	[SANDBOX_VCPU] = "vcpu",
	[SANDBOX_DEVICE] = "device",
	[SANDBOX_MIGRATION] = "migration",
};

/* ---------------------------------------------------------- this thread */

#define NAME_LEN	48

struct thread_id {
	int role;		/* -1: never entered (inherits its creator's) */
	int domid;
	char name[NAME_LEN];
};

static __thread struct thread_id self = { .role = -1, .domid = -1 };

/* ------------------------------------------------------------- refusals */

/* Noted by the SIGSYS handler, logged by the main loop. */
struct refusal {
	unsigned long seq;	/* 0: being written; else index + 1 */
	int role, nr, domid;
	pid_t tid;
	char name[NAME_LEN];
};

#define RING		64
#define MAX_NR		512	/* x86-64 syscall numbers are below this */

static struct refusal ring[RING];
static unsigned long ring_head, ring_tail, refused;
static unsigned char logged[SANDBOX_NR_ROLES + 1][MAX_NR / 8];
static int report_fd = -1;

/* Async-signal-safe: a decimal number into buf, returns its length. */
static size_t fmt_uint(char *buf, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* One line on stderr at once: the log may not be served any more. */
static void say_refused(int nr)
{
	char line[160];
	size_t n = 0, k;
	const char *role = self.role >= 0 ? sandbox_role_names[self.role]
					  : "inherited";

#define PUT(s) do { k = strlen(s); memcpy(line + n, s, k); n += k; } while (0)
	PUT("xen: sandbox: refused syscall ");
	n += fmt_uint(line + n, nr);
	PUT(" on a ");
	PUT(role);
	PUT(" thread\n");
#undef PUT
	if (write(2, line, n) < 0)
		return;
}

/*
 * SIGSYS from SCMP_ACT_TRAP: the call is not made; what the thread sees
 * is the return value left in rax.  Only calls every role may make
 * (write, gettid): a refusal inside this handler would find SIGSYS
 * blocked and the kernel would kill the process.
 */
static void sigsys_handler(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	int saved = errno, nr = si->si_syscall;
	unsigned long idx, one = 1;
	struct refusal *r;

	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
	__atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
	idx = __atomic_fetch_add(&ring_head, 1, __ATOMIC_ACQ_REL);
	r = &ring[idx % RING];
	__atomic_store_n(&r->seq, 0, __ATOMIC_RELEASE);
	r->role = self.role;
	r->nr = nr;
	r->domid = self.domid;
	r->tid = syscall(SYS_gettid);
	memcpy(r->name, self.name, NAME_LEN);
	__atomic_store_n(&r->seq, idx + 1, __ATOMIC_RELEASE);
	if (report_fd < 0 || write(report_fd, &one, sizeof(one)) < 0)
		say_refused(nr);
	errno = saved;
}

/*
 * As early as can be: an image exec'd by a live update runs under the
 * old image's filters before its main() (a refusal with no handler
 * would kill it, guests and all).
 */
static void __attribute__((constructor)) sandbox_handler_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
	snprintf(self.name, sizeof(self.name), "main");
}

static bool first_time(int role, int nr)
{
	unsigned r = role < 0 ? SANDBOX_NR_ROLES : (unsigned)role;
	unsigned bit;

	if (nr < 0 || nr >= MAX_NR)
		return true;
	bit = 1u << (nr % 8);
	if (logged[r][nr / 8] & bit)
		return false;
	logged[r][nr / 8] |= bit;
	return true;
}

static void log_refusal(const struct refusal *r)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr);

	/* Every thread's name says its domain: d1v0, "d1 virtio-blk xvda". */
	log_warn("sandbox: refused %s (syscall %d) on a %s thread (%s, "
		 "tid %d): it failed with EPERM; further refusals of it on "
		 "%s threads are counted, not logged",
		 name ? name : "?", r->nr,
		 r->role >= 0 ? sandbox_role_names[r->role] : "inherited",
		 r->name, (int)r->tid,
		 r->role >= 0 ? sandbox_role_names[r->role] : "such");
	free(name);
}

void sandbox_report(int fd, short revents, void *opaque)
{
	unsigned long head, v;
	struct refusal r;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	head = __atomic_load_n(&ring_head, __ATOMIC_ACQUIRE);
	if (head - ring_tail > RING)
		ring_tail = head - RING;	/* overwritten: counted only */
	for (; ring_tail < head; ring_tail++) {
		const struct refusal *slot = &ring[ring_tail % RING];

		if (__atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE) !=
		    ring_tail + 1)
			break;		/* still being written */
		r = *slot;
		if (first_time(r.role, r.nr))
			log_refusal(&r);
	}
}

int sandbox_report_fd(void)
{
	return report_fd;
}

unsigned long sandbox_refused_count(void)
{
	return __atomic_load_n(&refused, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------- programs */

static struct sock_fprog progs[SANDBOX_NR_ROLES];
static bool prepared;
static pid_t prepared_pid;	/* the programs name it (tgkill) */

/* libseccomp 2.5 exports a program to an fd only: through a memfd. */
static int hash_main_program(void);

static int export_program(scmp_filter_ctx ctx, struct sock_fprog *p)
{
	int fd = memfd_create("xkvm-seccomp", MFD_CLOEXEC), ret = -1;
	off_t len;

	if (fd < 0)
		return -1;
	if (seccomp_export_bpf(ctx, fd) < 0)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % sizeof(struct sock_filter) ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS)
		goto out;
	p->filter = malloc(len);
	if (!p->filter || pread(fd, p->filter, len, 0) != len)
		goto out;
	p->len = len / sizeof(struct sock_filter);
	ret = 0;
out:
	close(fd);
	return ret;
}

static int build_program(enum sandbox_role role, pid_t pid,
			 struct sock_fprog *prog)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int ret = -1;

	if (!ctx)
		return -1;
	/* NO_NEW_PRIVS is set by us, per thread, before loading. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0)
		goto out;
	/* A binary tree: KVM_RUN's ioctl is found in a few steps. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	ret = sandbox_rules_add(ctx, role, pid);
	if (ret < 0) {
		log_err("sandbox: the %s thread rules: %s",
			sandbox_role_names[role], strerror(-ret));
		goto out;
	}
	ret = export_program(ctx, prog);
out:
	seccomp_release(ctx);
	return ret;
}

int sandbox_prepare(void)
{
	unsigned r;

	if (prepared && prepared_pid == getpid())
		return 0;
	if (report_fd < 0)
		report_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (report_fd < 0)
		return -1;
	prepared = false;
	for (r = 0; r < SANDBOX_NR_ROLES; r++) {
		free(progs[r].filter);
		progs[r].filter = NULL;
		if (build_program(r, getpid(), &progs[r]) < 0)
			return -1;
	}
	prepared = true;
	prepared_pid = getpid();
	return hash_main_program();
}

/* ------------------------------------------------- the inherited filter */

/*
 * Filters survive execve() and stack: a live update's new image starts
 * under the old image's main-thread filter, and installing its own on
 * top after every update would grow the stack until the kernel refuses
 * (32768 instructions per thread: about 150 updates) and slow every
 * call.  So each image says in its environment which main-thread
 * program it runs under (a hash of the program: pid-independent, see
 * sandbox_rules.c), and an image whose own program is that one does not
 * install it again.  Only a changed rule set stacks a new filter.
 */
#define MAIN_FILTER_ENV	"XKVM_SANDBOX_MAIN_FILTER"

static char main_hash[17];
static bool main_inherited;

/*
 * The hash of the main program built for pid 0: the same for every
 * process of a build, whatever its pid (the installed program names the
 * pid, which a live update's execve keeps).
 */
static int hash_main_program(void)
{
	struct sock_fprog p = { 0 };
	const unsigned char *b;
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	size_t i, n;

	if (build_program(SANDBOX_MAIN, 0, &p) < 0)
		return -1;
	b = (const unsigned char *)p.filter;
	n = p.len * sizeof(struct sock_filter);
	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	free(p.filter);
	snprintf(main_hash, sizeof(main_hash), "%016llx",
		 (unsigned long long)h);
	return 0;
}

/* This thread runs under some seccomp filter (mode 2). */
static bool under_filter(void)
{
	char line[128];
	bool on = false;
	FILE *f = fopen("/proc/thread-self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Seccomp:", 8) == 0)
			on = atoi(line + 8) == SECCOMP_MODE_FILTER;
	fclose(f);
	return on;
}

void sandbox_note_inherited(bool will_install)
{
	const char *prev = getenv(MAIN_FILTER_ENV);

	main_inherited = will_install && prev && main_hash[0] &&
			 strcmp(prev, main_hash) == 0 && under_filter();
	/* Single-threaded here (the daemon's early start-up). */
	if (will_install)
		setenv(MAIN_FILTER_ENV, main_hash, 1);
	else
		unsetenv(MAIN_FILTER_ENV);
}

/* ------------------------------------------------------------- threads */

struct entry {
	int role, domid;
	pid_t tid;
	char name[NAME_LEN];
	struct entry *next;
};

static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *threads;

static void registry_add(int role, int domid, const char *name)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return;
	e->role = role;
	e->domid = domid;
	e->tid = syscall(SYS_gettid);
	snprintf(e->name, sizeof(e->name), "%s", name);
	pthread_mutex_lock(&threads_lock);
	e->next = threads;
	threads = e;
	pthread_mutex_unlock(&threads_lock);
}

static void registry_del(pid_t tid)
{
	struct entry **p, *e;

	pthread_mutex_lock(&threads_lock);
	for (p = &threads; (e = *p); p = &e->next) {
		if (e->tid == tid) {
			*p = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&threads_lock);
}

/* The first thread of role (of domid, unless -1): its tid and name. */
static pid_t find_thread(int role, int domid, char *name, size_t len)
{
	struct entry *e;
	pid_t tid = -1;

	pthread_mutex_lock(&threads_lock);
	for (e = threads; e; e = e->next) {
		if (e->role == role && (domid < 0 || e->domid == domid)) {
			tid = e->tid;
			snprintf(name, len, "%s", e->name);
		}
	}
	pthread_mutex_unlock(&threads_lock);
	return tid;
}

json_t *sandbox_threads_json(void)
{
	unsigned n[SANDBOX_NR_ROLES] = { 0 }, r;
	json_t *o = json_object();
	struct entry *e;

	pthread_mutex_lock(&threads_lock);
	for (e = threads; e; e = e->next)
		n[e->role]++;
	pthread_mutex_unlock(&threads_lock);
	for (r = 0; r < SANDBOX_NR_ROLES; r++)
		json_object_set_new(o, sandbox_role_names[r],
				    json_integer(n[r]));
	return o;
}

/* SIGSYS (and the probe's signal) reach every thread, whatever it blocks. */
#define PROBE_SIG	SIGUSR2

static int install(enum sandbox_role role)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGSYS);
	sigaddset(&s, PROBE_SIG);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[role]);
}

static void enter(enum sandbox_role role, int domid, const char *name)
{
	self.role = role;
	self.domid = domid;
	snprintf(self.name, sizeof(self.name), "%s", name);
	if (!sandbox_on() || !prepared)
		return;
	if (role != SANDBOX_MAIN && sandbox_caps_drop_thread() < 0)
		log_err("sandbox: %s: cannot drop capabilities: %s", name,
			strerror(errno));
	if (install(role) < 0) {
		log_err("sandbox: %s: cannot install the %s filter: %s", name,
			sandbox_role_names[role], strerror(errno));
		return;
	}
	registry_add(role, domid, name);
}

void sandbox_thread_enter(enum sandbox_role role, int domid,
			  const char *name)
{
	enter(role, domid, name);
}

void sandbox_thread_leave(void)
{
	if (self.role >= 0)
		registry_del(syscall(SYS_gettid));
}

int sandbox_start_main(void)
{
	if (sandbox_caps_drop_main() < 0) {
		log_err("sandbox: cannot drop capabilities: %s",
			strerror(errno));
		return -1;
	}
	if (main_inherited) {
		/* NO_NEW_PRIVS came with it; SIGSYS must reach us. */
		sigset_t s;

		sigemptyset(&s);
		sigaddset(&s, SIGSYS);
		sigaddset(&s, PROBE_SIG);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
		log_info("sandbox: the main thread already runs under this "
			 "image's filter (%s, inherited: rules unchanged), not "
			 "stacked again", main_hash);
	} else if (install(SANDBOX_MAIN) < 0) {
		log_err("sandbox: cannot install the main thread's filter: %s",
			strerror(errno));
		return -1;
	}
	self.role = SANDBOX_MAIN;
	registry_add(SANDBOX_MAIN, -1, "main");
	return 0;
}

/* ---------------------------------------------------------------- probe */

static int probe_call = -1;
static int probe_errno;
static pid_t probe_tid;
static int probe_pipe[2] = { -1, -1 };

static int try_call(enum sandbox_probe_call call)
{
	static char *const argv[] = { "/", NULL };
	static char *const envp[] = { NULL };
	long ret = -1;

	switch (call) {
	case PROBE_SOCKET:
		ret = syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
			      0);
		if (ret >= 0)
			close(ret);
		break;
	case PROBE_EXECVE:	/* a directory: EACCES if let through */
		ret = syscall(SYS_execve, "/", argv, envp);
		break;
	case PROBE_PTRACE:	/* no process 0 to peek at: ESRCH */
		ret = syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 0, 0, 0);
		break;
	default:
		return EINVAL;
	}
	return ret < 0 ? errno : 0;
}

/* In the thread asked; answers through a pipe (write is async-safe). */
static void probe_handler(int sig)
{
	int saved = errno, err;

	if (syscall(SYS_gettid) != __atomic_load_n(&probe_tid,
						   __ATOMIC_ACQUIRE))
		return;
	err = try_call(__atomic_load_n(&probe_call, __ATOMIC_ACQUIRE));
	if (write(probe_pipe[1], &err, sizeof(err)) < 0)
		probe_errno = err;
	errno = saved;
}

static int probe_setup(void)
{
	struct sigaction sa;

	if (probe_pipe[0] >= 0)
		return 0;
	if (pipe2(probe_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sigemptyset(&sa.sa_mask);
	return sigaction(PROBE_SIG, &sa, NULL);
}

#define PROBE_WAIT_MS	5000

static int probe_wait(int *err)
{
	struct timespec ts = { 0, 1000000 };
	int i;

	for (i = 0; i < PROBE_WAIT_MS; i++) {
		if (read(probe_pipe[0], err, sizeof(*err)) == sizeof(*err))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

int sandbox_probe(enum sandbox_role role, int domid,
		  enum sandbox_probe_call call, int *err, char *name,
		  size_t name_len, char *why, size_t why_len)
{
	pid_t tid;

	if (role == SANDBOX_MAIN) {
		snprintf(name, name_len, "main");
		*err = try_call(call);
		return 0;
	}
	tid = find_thread(role, domid, name, name_len);
	if (tid < 0) {
		snprintf(why, why_len, "no %s thread%s", sandbox_role_names[role],
			 domid >= 0 ? " in that domain" : "");
		return -1;
	}
	if (probe_setup() < 0) {
		snprintf(why, why_len, "%s", strerror(errno));
		return -1;
	}
	while (read(probe_pipe[0], err, sizeof(*err)) > 0)
		;	/* a late answer to an earlier probe */
	__atomic_store_n(&probe_call, call, __ATOMIC_RELEASE);
	__atomic_store_n(&probe_tid, tid, __ATOMIC_RELEASE);
	if (syscall(SYS_tgkill, getpid(), tid, PROBE_SIG) < 0 ||
	    probe_wait(err) < 0) {
		snprintf(why, why_len, "thread %s (tid %d) did not answer",
			 name, (int)tid);
		__atomic_store_n(&probe_tid, 0, __ATOMIC_RELEASE);
		return -1;
	}
	__atomic_store_n(&probe_tid, 0, __ATOMIC_RELEASE);
	return 0;
}
