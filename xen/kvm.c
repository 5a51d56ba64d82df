#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"
#include "log.h"

#define CPUID_MAX_ENTRIES 256

struct kvm_host kvm_host = { .fd = -1 };

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "IRQCHIP" },
	{ KVM_CAP_PIT2, "PIT2" },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
};

/*
 * kvm-amd re-initializes a vCPU when it intercepts a shutdown, so a triple
 * fault's registers are gone by the time userspace reads them.
 */
static bool kvm_amd_loaded(void)
{
	return access("/sys/module/kvm_amd", F_OK) == 0;
}

static int load_cpuid(void)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) +
		   CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -1;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_host.fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		free(c);
		return -1;
	}
	kvm_host.cpuid = c;
	return 0;
}

/* The TSC rate is a vCPU property; ask a throwaway vCPU once. */
void kvm_probe_tsc_khz(void)
{
	int vm = kvm_create_vm(), vcpu;

	if (vm < 0)
		return;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu >= 0) {
		kvm_host.tsc_khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
		close(vcpu);
	}
	close(vm);
}

int kvm_host_open(bool probe_tsc, char *err, size_t errlen)
{
	unsigned i;

	kvm_host.fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_host.fd < 0) {
		snprintf(err, errlen, "cannot open /dev/kvm: %s",
			 strerror(errno));
		return -1;
	}
	kvm_host.api_version = ioctl(kvm_host.fd, KVM_GET_API_VERSION, 0);
	if (kvm_host.api_version != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM API version %d, need %d",
			 kvm_host.api_version, KVM_API_VERSION);
		return -1;
	}
	for (i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(kvm_host.fd, KVM_CHECK_EXTENSION,
			  required_caps[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks KVM_CAP_%s",
				 required_caps[i].name);
			return -1;
		}
	}
	kvm_host.vcpu_mmap_size = ioctl(kvm_host.fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm_host.vcpu_mmap_size <= 0 || load_cpuid() < 0) {
		snprintf(err, errlen, "KVM setup failed: %s", strerror(errno));
		return -1;
	}
	kvm_host.tsc_deadline = ioctl(kvm_host.fd, KVM_CHECK_EXTENSION,
				      KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	kvm_host.init_on_shutdown = kvm_amd_loaded();
	if (probe_tsc)
		kvm_probe_tsc_khz();
	return 0;
}

int kvm_create_vm(void)
{
	int vm;

	do {
		vm = ioctl(kvm_host.fd, KVM_CREATE_VM, 0);
	} while (vm < 0 && errno == EINTR);
	if (vm >= 0)
		fcntl(vm, F_SETFD, FD_CLOEXEC);
	return vm;
}
