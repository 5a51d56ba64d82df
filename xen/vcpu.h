/* vCPU threads: KVM_RUN loops that can be parked and resumed. */
#ifndef XEN_VCPU_H
#define XEN_VCPU_H

#include <linux/kvm.h>
#include <stdbool.h>

struct domain;
struct vcpu;

/* Registers the boot loader hands to vCPU 0. */
struct boot_cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
};

int vcpu_create(struct domain *dom, unsigned id);
int vcpu_set_boot_state(struct vcpu *v, const struct boot_cpu_state *st);
int vcpu_start(struct vcpu *v);
void vcpu_kick(struct vcpu *v);
/*
 * The start gate, one per process: a vCPU started with v->gated waits
 * there before anything else, until vcpu_gate_open() lets every gated
 * vCPU of every domain go with one FUTEX_WAKE (live update's build
 * ahead: all domains at once, so that the first guest let go cannot
 * take the CPU from the thread releasing the others).  Past it, a vCPU
 * parks as usual while its domain's run_ok is false.  Once open it stays
 * open.
 */
void vcpu_gate_open(void);
/* Any thread: the vCPU's own thread queues an NMI (KVM_NMI) and runs on. */
void vcpu_nmi(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
void vcpu_dump(struct vcpu *v, const char *why);
void vcpu_signals_init(void);

#endif
