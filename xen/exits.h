/* What a vCPU does with each KVM exit reason. */
#ifndef XEN_EXITS_H
#define XEN_EXITS_H

struct vcpu;

void vcpu_handle_exit(struct vcpu *v);

#endif
