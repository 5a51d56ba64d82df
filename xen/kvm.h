/* The host's /dev/kvm: opened once, shared by every domain. */
#ifndef XEN_KVM_H
#define XEN_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>

struct kvm_host {
	int fd;
	int api_version;
	int vcpu_mmap_size;
	int tsc_khz;
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID */
	bool tsc_deadline;		/* KVM_CAP_TSC_DEADLINE_TIMER */
	/* kvm-amd: a vCPU's registers after a triple fault are INIT's. */
	bool init_on_shutdown;
};

extern struct kvm_host kvm_host;

/*
 * Open /dev/kvm and check what we need.  probe_tsc measures the TSC rate
 * with a throwaway VM, which costs tens of milliseconds to close: a new
 * image taking over from a live update is told the rate instead.
 */
int kvm_host_open(bool probe_tsc, char *err, size_t errlen);
int kvm_create_vm(void);
void kvm_probe_tsc_khz(void);

#endif
