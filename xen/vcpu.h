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
/* Any thread: the vCPU's own thread queues an NMI (KVM_NMI) and runs on. */
void vcpu_nmi(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
void vcpu_dump(struct vcpu *v, const char *why);
void vcpu_signals_init(void);

#endif
