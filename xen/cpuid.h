/*
 * A domain's CPUID (docs/cpuid.md): made once, when the domain is
 * created, from KVM_GET_SUPPORTED_CPUID filtered to what this hypervisor
 * provides; the same for every vCPU but for its APIC id; part of the
 * domain's state (the CPUID record), so save/restore, live update and
 * migration keep it.
 */
#ifndef XEN_CPUID_H
#define XEN_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>

#include "stream.h"

struct domain;
struct vcpu;

/* What KVM offers beyond KVM_GET_SUPPORTED_CPUID (KVM_CHECK_EXTENSION). */
struct cpuid_host {
	const struct kvm_cpuid2 *supported;
	bool tsc_deadline;		/* KVM_CAP_TSC_DEADLINE_TIMER */
};

/* The domain's CPUID for nr_vcpus vCPUs, APIC ids zero; NULL: no memory. */
struct kvm_cpuid2 *cpuid_build(const struct cpuid_host *h,
			       unsigned nr_vcpus);
/* Its copy for the vCPU with APIC id `id`, for KVM_SET_CPUID2. */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *c, unsigned id);
/*
 * 0 if every feature bit of `want` is in `offer`; else -1 with `err`
 * naming the first leaf, subleaf, register and bit that is not.
 */
int cpuid_check_offer(const struct kvm_cpuid2 *want,
		      const struct kvm_cpuid2 *offer, char *err,
		      size_t errlen);
/* The CPUID record's body as a kvm_cpuid2 (the record checked out). */
struct kvm_cpuid2 *cpuid_from_record(const void *body, size_t len);

/* The domain's part (cpuid_state.c). */
int cpuid_domain_init(struct domain *dom);
int cpuid_vcpu_set(struct vcpu *v);
int cpuid_save(struct domain *dom, struct stream_writer *w);
/*
 * Give the domain the CPUID of a record, on every vCPU; refused, with
 * `err` saying why, when this host cannot offer it.
 */
int cpuid_load(struct domain *dom, const void *body, size_t len, char *err,
	       size_t errlen);

#endif
