/*
 * Which system calls each thread role may make: every list of the
 * sandbox, in this one file (docs/sandbox.md says how they were found:
 * strace -f of the test suite's scenarios, then the suite run with the
 * filters on and the log searched for refusals).
 *
 * A call not listed for a role is refused with EPERM and logged
 * (sandbox.c); a few are refused silently with the errno that makes the
 * C library take another path (clone3: ENOSYS, and glibc falls back to
 * clone, whose flags a filter can read).
 *
 * The main thread's list is also everything a live-update image may need
 * to start and serve: the image is exec'd by the main thread, keeps its
 * filter (filters survive execve and cannot be removed) and stacks its
 * own on top.  A new image that needs a call this list lacks fails to
 * start and the old image rolls back (docs/sandbox.md, "Live update").
 */
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sandbox_rules.h"

#define M	(1u << SANDBOX_MAIN)
#define V	(1u << SANDBOX_VCPU)
#define D	(1u << SANDBOX_DEVICE)
#define G	(1u << SANDBOX_MIGRATION)
#define ALL	(M | V | D | G)

struct rule {
	const char *name;	/* resolved by libseccomp for this arch */
	unsigned roles;
};

/* Allowed whatever the arguments. */
static const struct rule plain[] = {
	/* every thread: memory, locks, signals, time, the log */
	{ "read", ALL }, { "write", ALL }, { "readv", ALL },
	{ "writev", ALL }, { "pread64", ALL }, { "pwrite64", ALL },
	{ "close", ALL }, { "lseek", ALL }, { "fstat", ALL },
	{ "newfstatat", ALL }, { "statx", M | G },
	{ "munmap", ALL }, { "madvise", ALL }, { "brk", ALL },
	{ "mremap", ALL }, { "futex", ALL }, { "set_robust_list", ALL },
	{ "get_robust_list", M }, { "rseq", ALL },
	{ "rt_sigreturn", ALL }, { "rt_sigprocmask", ALL },
	{ "rt_sigaction", M }, { "sigaltstack", ALL },
	{ "restart_syscall", ALL }, { "exit", ALL }, { "exit_group", ALL },
	{ "gettid", ALL }, { "getpid", ALL }, { "clock_gettime", ALL },
	{ "clock_getres", ALL }, { "gettimeofday", ALL },
	{ "clock_nanosleep", ALL }, { "nanosleep", ALL },
	{ "sched_yield", ALL }, { "getrandom", ALL },
	{ "sched_getaffinity", ALL },
	{ "poll", ALL }, { "ppoll", ALL },
	{ "epoll_wait", M | D | G }, { "epoll_pwait", M | D | G },
	{ "epoll_ctl", M | V | D },
	{ "fcntl", M | D | G }, { "dup", M }, { "dup2", M }, { "dup3", M },

	/* device I/O: disk images, taps */
	{ "preadv", M | D }, { "pwritev", M | D }, { "preadv2", M | D },
	{ "pwritev2", M | D }, { "fdatasync", M | D }, { "fsync", M | D },
	{ "fallocate", M | D },

	/* the network: migration, the control socket, bridges */
	{ "socket", M | G }, { "connect", M | G }, { "setsockopt", M | G },
	{ "getsockopt", M | G }, { "getsockname", M | G },
	{ "getpeername", M | G }, { "sendto", M | G }, { "sendmsg", M | G },
	{ "recvfrom", M | G }, { "recvmsg", M | G }, { "shutdown", M | G },
	{ "openat", M | G }, { "uname", M | G }, { "getuid", M | G },
	{ "geteuid", M | G }, { "getgid", M | G }, { "getegid", M | G },

	/* the main thread: domains, files, the control API, live update */
	{ "bind", M }, { "listen", M }, { "accept", M }, { "accept4", M },
	{ "socketpair", M }, { "pipe", M }, { "pipe2", M },
	{ "epoll_create1", M }, { "eventfd2", M }, { "memfd_create", M },
	{ "timerfd_create", M }, { "timerfd_settime", M },
	{ "timerfd_gettime", M }, { "ftruncate", M }, { "fadvise64", M },
	{ "fstatfs", M }, { "statfs", M }, { "flock", M },
	{ "copy_file_range", M }, { "sendfile", M }, { "splice", M },
	{ "rename", M }, { "renameat", M }, { "renameat2", M },
	{ "unlink", M }, { "unlinkat", M }, { "mkdir", M }, { "mkdirat", M },
	{ "readlink", M }, { "readlinkat", M }, { "getdents64", M },
	{ "access", M }, { "faccessat", M }, { "faccessat2", M },
	{ "fchmod", M }, { "chmod", M }, { "fchmodat", M }, { "umask", M },
	{ "getcwd", M }, { "sysinfo", M }, { "getppid", M },
	{ "getrlimit", M }, { "prlimit64", M }, { "wait4", M },
	{ "waitid", M }, { "kill", M }, { "setsid", M },
	{ "execve", M }, { "execveat", M }, { "membarrier", M },
	{ "arch_prctl", M }, { "set_tid_address", M }, { "prctl", M },
	{ "capget", M }, { "capset", M }, { "seccomp", M },
	{ "getresuid", M }, { "getresgid", M }, { "getgroups", M },
	{ "sched_getparam", M }, { "sched_getscheduler", M },
	{ "sched_setscheduler", M },	/* a live update's old image */
	{ "mincore", M }, { "process_vm_readv", M },
};

/*
 * The sanitizer runtime (make sanitize, build-asan/): its own calls, from
 * any thread (an error report reads /proc/self/maps; the leak checker
 * at exit clones a tracer that ptrace()s every thread).
 */
#if defined(__SANITIZE_ADDRESS__)
static const struct rule sanitizer[] = {
	{ "openat", ALL }, { "readlink", ALL }, { "readlinkat", ALL },
	{ "getdents64", ALL },
	/* the leak checker's tracer lists /proc/PID/task with these */
	{ "open", ALL }, { "getdents", ALL }, { "prctl", ALL }, { "sched_getaffinity", ALL },
	{ "getrlimit", ALL }, { "prlimit64", ALL }, { "setrlimit", ALL },
	{ "ptrace", M }, { "wait4", ALL }, { "kill", ALL }, { "tgkill", ALL },
	{ "getppid", M },	/* the tracer checks its parent is alive */
	{ "pipe2", ALL }, { "uname", ALL }, { "fcntl", ALL }, { "dup2", ALL },
	{ "mincore", ALL }, { "process_vm_readv", ALL },
};
#endif

/* KVM (0xAE) and vhost (0xAF): ioctls by their type byte. */
#define IOC_TYPE_MASK	0xff00
#define IOC_KVM		(0xAE << 8)
#define IOC_VHOST	(0xAF << 8)
#define IOC_SOCK	(0x89 << 8)	/* SIOCGIFFLAGS, SIOCBRADDIF, ... */

/* ioctls allowed by their whole number, per role. */
struct ioctl_rule {
	unsigned long cmd;
	unsigned roles;
};

/* <linux/if_tun.h> and <linux/fs.h> pull in too much; their numbers. */
#define XTUNSETIFF		0x400454caUL
#define XTUNSETOFFLOAD		0x400454d0UL
#define XTUNGETIFF		0x800454d2UL
#define XTUNSETVNETHDRSZ	0x400454d8UL
#define XBLKGETSIZE64		0x80081272UL

static const struct ioctl_rule ioctls[] = {
	{ XTUNSETOFFLOAD, M | V | D }, { XTUNSETIFF, M }, { XTUNGETIFF, M },
	{ XTUNSETVNETHDRSZ, M }, { XBLKGETSIZE64, M },
	{ TCGETS, ALL }, { TIOCGWINSZ, ALL }, { FIONBIO, M | G },
	{ FIONREAD, M | G }, { FIOCLEX, M }, { FIONCLEX, M },
};

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name,
	       unsigned n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	/* A name this kernel/arch does not have: nothing to allow. */
	if (nr == __NR_SCMP_ERROR)
		return 0;
	return seccomp_rule_add_array(ctx, action, nr, n, cmp);
}

static int add_table(scmp_filter_ctx ctx, enum sandbox_role role,
		     const struct rule *t, size_t n)
{
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		if (!(t[i].roles & (1u << role)))
			continue;
		ret = add(ctx, SCMP_ACT_ALLOW, t[i].name, 0, NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, enum sandbox_role role)
{
	struct scmp_arg_cmp c;
	size_t i;
	int ret;

	for (i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
		if (!(ioctls[i].roles & (1u << role)))
			continue;
		c = SCMP_A1_64(SCMP_CMP_EQ, ioctls[i].cmd);
		ret = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c);
		if (ret < 0)
			return ret;
	}
	/* Every role drives KVM (a migration reads the dirty log). */
	c = SCMP_A1_64(SCMP_CMP_MASKED_EQ, IOC_TYPE_MASK, IOC_KVM);
	ret = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c);
	if (ret < 0 || role == SANDBOX_MIGRATION)
		return ret;
	c = SCMP_A1_64(SCMP_CMP_MASKED_EQ, IOC_TYPE_MASK, IOC_VHOST);
	ret = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c);
	if (ret < 0 || role != SANDBOX_MAIN)
		return ret;
	c = SCMP_A1_64(SCMP_CMP_MASKED_EQ, IOC_TYPE_MASK, IOC_SOCK);
	return add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c);
}

/*
 * Executable memory is the main thread's alone (livepatch maps a
 * payload's code; a new image's loader maps its own): other threads map
 * and protect memory only without PROT_EXEC.
 */
static int add_memory(scmp_filter_ctx ctx, enum sandbox_role role)
{
	struct scmp_arg_cmp no_exec = SCMP_A2_64(SCMP_CMP_MASKED_EQ,
						 PROT_EXEC, 0);
	int ret;

	if (role == SANDBOX_MAIN) {
		ret = add(ctx, SCMP_ACT_ALLOW, "mmap", 0, NULL);
		if (ret == 0)
			ret = add(ctx, SCMP_ACT_ALLOW, "mprotect", 0, NULL);
		return ret;
	}
	ret = add(ctx, SCMP_ACT_ALLOW, "mmap", 1, &no_exec);
	if (ret == 0)
		ret = add(ctx, SCMP_ACT_ALLOW, "mprotect", 1, &no_exec);
	return ret;
}

/*
 * Signals to our own threads: a vCPU kicks the others of its domain out
 * of KVM_RUN (pause, reboot; SIGUSR1, as livepatch's stack sampling), the
 * probe uses SIGUSR2, abort() raises SIGABRT.  The threads' programs name
 * our pid (they are built again if it changes: the daemon forks to
 * detach).  The main thread's program names these signals instead, not
 * the pid: a live update's new image is a child process (build-ahead)
 * that inherits it (filters survive fork and execve) under another pid,
 * and every thread it makes runs under it.  The price: the main filter
 * lets a subverted daemon send these three signals to another process of
 * its user (docs/sandbox.md).
 */
static int add_signals(scmp_filter_ctx ctx, enum sandbox_role role,
		       pid_t pid)
{
	static const int ours[] = { SIGUSR1, SIGUSR2, SIGABRT };
	struct scmp_arg_cmp pinned = SCMP_A0_64(SCMP_CMP_EQ, pid);
	unsigned i;
	int ret = 0;

	if (role != SANDBOX_MAIN)
		return add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &pinned);
	for (i = 0; i < sizeof(ours) / sizeof(ours[0]) && ret == 0; i++) {
		struct scmp_arg_cmp sig = SCMP_A2_64(SCMP_CMP_EQ, ours[i]);

		ret = add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &sig);
	}
	return ret;
}

/*
 * A thread takes its name (prctl PR_SET_NAME) once confined, so that a
 * name in /proc means the filter is on; the main thread may use prctl.
 */
static int add_thread_name(scmp_filter_ctx ctx, enum sandbox_role role)
{
	struct scmp_arg_cmp set_name = SCMP_A0_64(SCMP_CMP_EQ, PR_SET_NAME);

	if (role == SANDBOX_MAIN)
		return 0;
	return add(ctx, SCMP_ACT_ALLOW, "prctl", 1, &set_name);
}

/*
 * Threads (CLONE_THREAD) and, on the main thread only, the children live
 * update forks (a dry run).  clone3 passes its flags in memory, where a
 * filter cannot look: ENOSYS makes glibc use clone.
 */
static int add_clone(scmp_filter_ctx ctx, enum sandbox_role role)
{
	struct scmp_arg_cmp thread = SCMP_A0_64(SCMP_CMP_MASKED_EQ,
						CLONE_THREAD, CLONE_THREAD);
	int ret = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);

	if (ret < 0)
		return ret;
	if (role == SANDBOX_MAIN)
		return add(ctx, SCMP_ACT_ALLOW, "clone", 0, NULL);
	return add(ctx, SCMP_ACT_ALLOW, "clone", 1, &thread);
}

int sandbox_rules_add(scmp_filter_ctx ctx, enum sandbox_role role,
		      pid_t pid)
{
	int ret;

	ret = add_table(ctx, role, plain, sizeof(plain) / sizeof(plain[0]));
#if defined(__SANITIZE_ADDRESS__)
	if (ret == 0)
		ret = add_table(ctx, role, sanitizer,
				sizeof(sanitizer) / sizeof(sanitizer[0]));
#endif
	if (ret == 0)
		ret = add_ioctls(ctx, role);
	if (ret == 0)
		ret = add_memory(ctx, role);
	if (ret == 0)
		ret = add_clone(ctx, role);
	if (ret == 0)
		ret = add_signals(ctx, role, pid);
	if (ret == 0)
		ret = add_thread_name(ctx, role);
	return ret;
}
