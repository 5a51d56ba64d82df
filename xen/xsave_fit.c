#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm.h"
#include "xsave_fit.h"

/* XSAVE header: XSTATE_BV right after the 512-byte legacy region. */
#define XSTATE_BV_OFFSET 512

/*
 * Components whose offset and size in the standard (non-compacted) format
 * are the same on every CPU that has them (Intel SDM vol. 1, 13.4; AMD
 * APM vol. 2, 11.5): enough to see that a saved component is in its
 * initial state, which for each of these is all zeroes.  A saving host
 * with PKU reports PKRU (bit 9) even when the guest never touched it.
 */
static const struct {
	unsigned bit, offset, size;
	const char *name;
} fixed_components[] = {
	{ 2, 576, 256, "AVX" },
	{ 5, 1088, 64, "AVX-512 opmask" },
	{ 6, 1152, 512, "AVX-512 ZMM_Hi256" },
	{ 7, 1664, 1024, "AVX-512 Hi16_ZMM" },
	{ 9, 2688, 8, "PKRU" },
};

/* x87 and SSE live in the legacy region: every host has them. */
#define XSAVE_LEGACY_COMPONENTS 0x3ULL

uint64_t host_xsave_components(void)
{
	const struct kvm_cpuid2 *c = kvm_host.cpuid;
	uint64_t mask = XSAVE_LEGACY_COMPONENTS;
	unsigned i;

	for (i = 0; c && i < c->nent; i++) {
		if (c->entries[i].function == 0xd && c->entries[i].index == 0)
			mask |= c->entries[i].eax |
				(uint64_t)c->entries[i].edx << 32;
	}
	return mask;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Whether component `bit` is saved in its initial state in `x`. */
static bool in_init_state(const uint8_t *x, size_t size, unsigned bit,
			  const char **name)
{
	unsigned i;

	*name = NULL;
	for (i = 0; i < sizeof(fixed_components) /
		    sizeof(fixed_components[0]); i++) {
		if (fixed_components[i].bit != bit)
			continue;
		*name = fixed_components[i].name;
		return fixed_components[i].offset +
		       fixed_components[i].size <= size &&
		       all_zero(x + fixed_components[i].offset,
				fixed_components[i].size);
	}
	return false;
}

int xsave_fit_host(void *x, size_t size, char *err, size_t errlen)
{
	uint64_t host = host_xsave_components(), bv, extra;
	const char *name;
	unsigned bit;

	if (size < XSTATE_BV_OFFSET + sizeof(bv))
		return 0;
	memcpy(&bv, (uint8_t *)x + XSTATE_BV_OFFSET, sizeof(bv));
	extra = bv & ~host;
	for (bit = 0; bit < 64; bit++) {
		if (!(extra & (1ULL << bit)))
			continue;
		if (!in_init_state(x, size, bit, &name)) {
			snprintf(err, errlen, "VCPU_XSAVE: the vCPU has state "
				 "in XSAVE component %u%s%s%s, which this "
				 "host's KVM does not support (it has %#llx)",
				 bit, name ? " (" : "", name ? name : "",
				 name ? ")" : "", (unsigned long long)host);
			return -1;
		}
		bv &= ~(1ULL << bit);
	}
	memcpy((uint8_t *)x + XSTATE_BV_OFFSET, &bv, sizeof(bv));
	return 0;
}

int xcrs_fit_host(const struct kvm_xcrs *x, char *err, size_t errlen)
{
	uint64_t host = host_xsave_components();
	unsigned i;

	if (ioctl(kvm_host.fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		for (i = 0; i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
			if (x->xcrs[i].xcr == 0 && (x->xcrs[i].value & ~host)) {
				snprintf(err, errlen, "VCPU_XCRS: the vCPU "
					 "enabled XSAVE components %#llx; this "
					 "host's KVM has %#llx",
					 (unsigned long long)x->xcrs[i].value,
					 (unsigned long long)host);
				return -1;
			}
		}
		return x->nr_xcrs > 0;
	}
	for (i = 0; i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
		if (x->xcrs[i].xcr != 0 || x->xcrs[i].value != 1) {
			snprintf(err, errlen, "VCPU_XCRS: XCR%u=%#llx, and this "
				 "host has no XSAVE", x->xcrs[i].xcr,
				 (unsigned long long)x->xcrs[i].value);
			return -1;
		}
	}
	return 0;
}
