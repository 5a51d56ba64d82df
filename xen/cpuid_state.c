/*
 * The domain's CPUID on its vCPUs and in the state stream: built once
 * when the domain is made (a reboot keeps it), written as the CPUID
 * record, and on restore taken from the record only when this host can
 * offer every feature it names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "cpuid.h"
#include "domain.h"
#include "kvm.h"
#include "log.h"
#include "records.h"

static struct kvm_cpuid2 *host_cpuid(unsigned nr_vcpus)
{
	struct cpuid_host h = {
		.supported = kvm_host.cpuid,
		.tsc_deadline = kvm_host.tsc_deadline,
	};

	return cpuid_build(&h, nr_vcpus);
}

int cpuid_domain_init(struct domain *dom)
{
	if (dom->cpuid)
		return 0;
	dom->cpuid = host_cpuid(dom->nr_vcpus);
	return dom->cpuid ? 0 : -1;
}

static int set_vcpu(struct vcpu *v, const struct kvm_cpuid2 *c)
{
	struct kvm_cpuid2 *mine = cpuid_for_vcpu(c, v->id);
	int ret;

	if (!mine)
		return -1;
	ret = ioctl(v->fd, KVM_SET_CPUID2, mine);
	free(mine);
	return ret;
}

int cpuid_vcpu_set(struct vcpu *v)
{
	return set_vcpu(v, v->dom->cpuid);
}

int cpuid_save(struct domain *dom, struct stream_writer *w)
{
	struct rec_cpuid h = { .nent = dom->cpuid->nent };

	return stream_write_record2(w, REC_CPUID, REC_F_OPTIONAL, &h,
				    sizeof(h), dom->cpuid->entries,
				    h.nent * sizeof(struct rec_cpuid_entry));
}

int cpuid_load(struct domain *dom, const void *body, size_t len, char *err,
	       size_t errlen)
{
	struct kvm_cpuid2 *want = cpuid_from_record(body, len);
	struct kvm_cpuid2 *offer = host_cpuid(dom->nr_vcpus);
	unsigned i;
	int ret = -1;

	if (!want || !offer) {
		snprintf(err, errlen, "CPUID: out of memory");
		goto out;
	}
	if (cpuid_check_offer(want, offer, err, errlen) < 0)
		goto out;
	for (i = 0; i < dom->nr_vcpus; i++) {
		if (set_vcpu(&dom->vcpus[i], want) < 0) {
			snprintf(err, errlen, "KVM refused the stream's CPUID for vCPU %u: %s",
				 i, strerror(errno));
			goto out;
		}
	}
	free(dom->cpuid);
	dom->cpuid = want;
	want = NULL;
	ret = 0;
out:
	free(want);
	free(offer);
	return ret;
}
