/* The host's /dev/kvm: opened once, shared by every domain. */
#ifndef XEN_KVM_H
#define XEN_KVM_H

#include <linux/kvm.h>

struct kvm_host {
	int fd;
	int api_version;
	int vcpu_mmap_size;
	int tsc_khz;
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID */
};

extern struct kvm_host kvm_host;

int kvm_host_open(char *err, size_t errlen);
int kvm_create_vm(void);

#endif
