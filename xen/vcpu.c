#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpuid.h"
#include "domain.h"
#include "exits.h"
#include "kvm.h"
#include "log.h"
#include "monotime.h"
#include "sandbox.h"
#include "vcpu.h"

/* Sent to a vCPU thread to kick it out of KVM_RUN. */
#define SIG_KICK SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;	/* no SA_RESTART: KVM_RUN returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIG_KICK, &sa, NULL);
}

int vcpu_create(struct domain *dom, unsigned id)
{
	struct vcpu *v = &dom->vcpus[id];

	v->dom = dom;
	v->id = id;
	v->fd = ioctl(dom->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return -1;
	v->run = mmap(NULL, kvm_host.vcpu_mmap_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -1;
	}
	return cpuid_vcpu_set(v);
}

int vcpu_set_boot_state(struct vcpu *v, const struct boot_cpu_state *st)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = st->regs;

	/* Keep KVM's reset values for what the loader did not set. */
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	sregs.cs = st->sregs.cs;
	sregs.ds = st->sregs.ds;
	sregs.es = st->sregs.es;
	sregs.fs = st->sregs.fs;
	sregs.gs = st->sregs.gs;
	sregs.ss = st->sregs.ss;
	sregs.tr = st->sregs.tr;
	sregs.gdt = st->sregs.gdt;
	if (st->sregs.idt.limit)	/* else KVM's reset IDTR */
		sregs.idt = st->sregs.idt;
	sregs.cr0 = st->sregs.cr0;
	sregs.cr3 = st->sregs.cr3;
	sregs.cr4 = st->sregs.cr4;
	sregs.efer = st->sregs.efer;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -1;
	return ioctl(v->fd, KVM_SET_REGS, &regs);
}

/*
 * KVM finishes an I/O or MMIO exit (moves RIP past an OUT, stores the
 * value of an IN or an MMIO read) only when KVM_RUN is entered again.  A
 * vCPU about to park, whose state may then be saved, enters once with
 * immediate_exit set: KVM completes the exit and returns EINTR without
 * running the guest (KVM API documentation, struct kvm_run).  Saved
 * before that, the guest would repeat the OUT after a restore: a console
 * byte printed twice across a live update.
 */
static void vcpu_complete_exit(struct vcpu *v)
{
	uint32_t reason = v->run->exit_reason;

	if (reason != KVM_EXIT_IO && reason != KVM_EXIT_MMIO)
		return;
	v->run->immediate_exit = 1;
	if (ioctl(v->fd, KVM_RUN, 0) == 0 || errno != EINTR)
		log_err("d%uv%u: completing an exit before parking: %s",
			v->dom->id, v->id, strerror(errno));
	v->run->immediate_exit = 0;
}

static uint32_t gate_open;

void vcpu_gate_open(void)
{
	__atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &gate_open, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		NULL, 0);
}

static void vcpu_wait_gate(void)
{
	while (!__atomic_load_n(&gate_open, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &gate_open, FUTEX_WAIT_PRIVATE, 0, NULL,
			NULL, 0);
}

/*
 * Wait while the domain is paused or quiescing.  Returns true when the
 * thread must end.
 */
static bool vcpu_wait_runnable(struct vcpu *v)
{
	struct domain *dom = v->dom;
	bool stop, waited = false;

	if (v->gated) {
		vcpu_wait_gate();
		v->gated = false;
		waited = true;
	}
	pthread_mutex_lock(&dom->lock);
	if (!dom->run_ok && !dom->stopping) {
		pthread_mutex_unlock(&dom->lock);
		vcpu_complete_exit(v);
		pthread_mutex_lock(&dom->lock);
	}
	while (!dom->run_ok && !dom->stopping) {
		v->parked = true;
		dom->nr_parked++;
		pthread_cond_broadcast(&dom->cond);
		pthread_cond_wait(&dom->cond, &dom->lock);
		dom->nr_parked--;
		v->parked = false;
		waited = true;
	}
	if (waited && dom->run_ok) {
		/* Running again, for domain_wait_resumed(). */
		v->resumed_ns = now_ns();
		pthread_cond_broadcast(&dom->cond);
	}
	stop = dom->stopping;
	pthread_mutex_unlock(&dom->lock);
	return stop;
}

/*
 * KVM_NMI is a vCPU ioctl: only this thread may issue it.  Queued before
 * the thread parks too, so that a save finds the NMI in VCPU_EVENTS.
 */
static void vcpu_take_nmi(struct vcpu *v)
{
	if (!__atomic_exchange_n(&v->nmi_pending, false, __ATOMIC_ACQ_REL))
		return;
	if (ioctl(v->fd, KVM_NMI) < 0)
		log_err("d%uv%u: KVM_NMI: %s", v->dom->id, v->id,
			strerror(errno));
}

void vcpu_nmi(struct vcpu *v)
{
	__atomic_store_n(&v->nmi_pending, true, __ATOMIC_RELEASE);
	vcpu_kick(v);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "d%uv%u", v->dom->id, v->id);
	/* Named once confined: what shows the name has its filter. */
	sandbox_thread_enter(SANDBOX_VCPU, v->dom->id, name);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		vcpu_take_nmi(v);
		if (vcpu_wait_runnable(v))
			break;
		vcpu_take_nmi(v);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			log_err("d%uv%u: KVM_RUN failed: %s", v->dom->id,
				v->id, strerror(errno));
			vcpu_dump(v, "KVM_RUN failed");
			domain_raise(v->dom, DOM_EV_CRASH, "KVM_RUN failed");
			continue;
		}
		vcpu_handle_exit(v);
		__atomic_add_fetch(&v->exits, 1, __ATOMIC_RELAXED);
	}
	sandbox_thread_leave();
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	sigset_t all, old;
	int ret;

	/* The thread starts with every signal but the kick blocked. */
	sigfillset(&all);
	sigdelset(&all, SIG_KICK);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		errno = ret;
		return -1;
	}
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->thread_started || !v->run)
		return;
	v->run->immediate_exit = 1;
	pthread_kill(v->thread, SIG_KICK);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->thread_started) {
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
	if (v->run)
		munmap(v->run, kvm_host.vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

static void dump_seg(char *buf, size_t len, const char *n,
		     const struct kvm_segment *s)
{
	snprintf(buf, len, "%s=%04x(base=%llx limit=%x dpl=%u l=%u db=%u)", n,
		 s->selector, (unsigned long long)s->base, s->limit, s->dpl,
		 s->l, s->db);
}

void vcpu_dump(struct vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	char cs[96], ss[96];
	unsigned d = v->dom->id;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		log_err("d%uv%u: %s (registers unavailable: %s)", d, v->id,
			why, strerror(errno));
		return;
	}
	dump_seg(cs, sizeof(cs), "cs", &s.cs);
	dump_seg(ss, sizeof(ss), "ss", &s.ss);
	log_err("d%uv%u: %s: rip=%016llx rsp=%016llx rflags=%08llx", d,
		v->id, why, r.rip, r.rsp, r.rflags);
	log_err("d%uv%u:  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx",
		d, v->id, r.rax, r.rbx, r.rcx, r.rdx);
	log_err("d%uv%u:  rsi=%016llx rdi=%016llx rbp=%016llx r8=%016llx",
		d, v->id, r.rsi, r.rdi, r.rbp, r.r8);
	log_err("d%uv%u:  r9=%016llx r10=%016llx r11=%016llx r12=%016llx",
		d, v->id, r.r9, r.r10, r.r11, r.r12);
	log_err("d%uv%u:  r13=%016llx r14=%016llx r15=%016llx", d, v->id,
		r.r13, r.r14, r.r15);
	log_err("d%uv%u:  cr0=%llx cr2=%llx cr3=%llx cr4=%llx efer=%llx",
		d, v->id, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
	log_err("d%uv%u:  %s %s", d, v->id, cs, ss);
}
