/*
 * The domain's CPUID, built from what KVM supports (docs/cpuid.md): what
 * this hypervisor provides is offered (x2APIC, the TSC-deadline timer,
 * the KVM paravirtual leaves with kvmclock, XSAVE as the host has it),
 * what it does not emulate is taken out (SGX, processor trace, Hyper-V
 * and other hypervisor leaves, KVM features that need a userspace part
 * we lack), and the topology is made for the domain: its vCPUs are the
 * cores of one package, one thread each, APIC id = vCPU index.
 *
 * Pure functions of their arguments, so the unit tests run them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpuid.h"
#include "records.h"

_Static_assert(sizeof(struct kvm_cpuid_entry2) ==
	       sizeof(struct rec_cpuid_entry), "the record is KVM's layout");

#define HV_LEAF_BASE		0x40000000u
#define HV_LEAF_END		0x50000000u
#define KVM_LEAF_FEATURES	0x40000001u

/* Leaf 1 */
#define F1_ECX_X2APIC		(1u << 21)
#define F1_ECX_TSC_DEADLINE	(1u << 24)
#define F1_ECX_OSXSAVE		(1u << 27)	/* CR4.OSXSAVE, set by KVM */
#define F1_ECX_HYPERVISOR	(1u << 31)
#define F1_EDX_HTT		(1u << 28)
/* Leaf 7.0 */
#define F7_EBX_SGX		(1u << 2)
#define F7_EBX_INTEL_PT		(1u << 25)
#define F7_ECX_SGX_LC		(1u << 30)

/*
 * KVM paravirtual features (leaf 0x40000001 EAX) that KVM provides by
 * itself and whose state the vCPU's MSRs carry: kvmclock (0, 3, 24), the
 * NOP I/O delay (1), async page faults (4, 10, 14), steal time (5), PV
 * EOI (6), PV unhalt (7), PV TLB flush (9), PV IPIs (11), poll control
 * (12), PV sched yield (13).  Left out: MSI extended destination ids (15:
 * not needed below 256 vCPUs), the map-GPA-range hypercall (16) and
 * migration control (17), which need userspace exits we do not handle.
 */
#define KVM_FEATURES_PROVIDED	(0x7efbu | (1u << 24))

enum { EAX, EBX, ECX, EDX };

/* The registers that are bitmaps of features: compared bit by bit. */
static const struct {
	uint32_t function, index;
	unsigned regs;			/* bit per register */
} feature_regs[] = {
	{ 0x1, 0, 1 << ECX | 1 << EDX },
	{ 0x6, 0, 1 << EAX },
	{ 0x7, 0, 1 << EBX | 1 << ECX | 1 << EDX },
	{ 0x7, 1, 1 << EAX | 1 << EBX | 1 << ECX | 1 << EDX },
	{ 0x7, 2, 1 << EDX },
	{ 0xd, 0, 1 << EAX | 1 << EDX },	/* XCR0 components */
	{ 0xd, 1, 1 << EAX | 1 << ECX | 1 << EDX },
	{ KVM_LEAF_FEATURES, 0, 1 << EAX | 1 << EDX },
	{ 0x80000001, 0, 1 << ECX | 1 << EDX },
	{ 0x80000007, 0, 1 << EDX },
	{ 0x80000008, 0, 1 << EBX },
	{ 0x8000000a, 0, 1 << EDX },
	{ 0x80000021, 0, 1 << EAX },
};

#define NR_FEATURE_REGS (sizeof(feature_regs) / sizeof(feature_regs[0]))

static struct kvm_cpuid2 *cpuid_alloc(unsigned nent)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
	if (c)
		c->nent = nent;
	return c;
}

static const struct kvm_cpuid_entry2 *
find(const struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	unsigned i;

	for (i = 0; i < c->nent; i++)
		if (c->entries[i].function == function &&
		    c->entries[i].index == index)
			return &c->entries[i];
	return NULL;
}

static uint32_t reg(const struct kvm_cpuid_entry2 *e, unsigned r)
{
	const uint32_t v[] = { e->eax, e->ebx, e->ecx, e->edx };

	return v[r];
}

/* Bits for APIC ids of n vCPUs: ceil(log2(n)). */
static unsigned id_bits(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

/* Leaves made again (topology) or not emulated. */
static bool dropped(const struct kvm_cpuid_entry2 *e)
{
	uint32_t f = e->function;

	if (f == 0xb || f == 0x1f)	/* made by add_topology() */
		return true;
	if (f == 0x12 || f == 0x14)	/* SGX, processor trace */
		return true;
	/* Only KVM's own leaves in the hypervisor range: no Hyper-V. */
	return f >= HV_LEAF_BASE && f < HV_LEAF_END &&
	       f != HV_LEAF_BASE && f != KVM_LEAF_FEATURES;
}

static void fix_leaf1(struct kvm_cpuid_entry2 *e, const struct cpuid_host *h,
		      unsigned n)
{
	e->ebx = (e->ebx & 0xffff) | ((n > 255 ? 255 : n) << 16);
	e->edx = n > 1 ? e->edx | F1_EDX_HTT : e->edx & ~F1_EDX_HTT;
	e->ecx |= F1_ECX_HYPERVISOR | F1_ECX_X2APIC;
	e->ecx &= ~(F1_ECX_OSXSAVE | F1_ECX_TSC_DEADLINE);
	if (h->tsc_deadline)
		e->ecx |= F1_ECX_TSC_DEADLINE;
}

/* Cache leaves (Intel 4, AMD 0x8000001D): L3 shared by all vCPUs. */
static void fix_cache(struct kvm_cpuid_entry2 *e, unsigned n)
{
	uint32_t ids = (1u << id_bits(n)) - 1;
	uint32_t level = (e->eax >> 5) & 7;

	if (!(e->eax & 0x1f))		/* no cache at this subleaf */
		return;
	e->eax &= ~(0xfffu << 14);
	if (level >= 3)
		e->eax |= ids << 14;
	if (e->function == 4)
		e->eax = (e->eax & 0x03ffffff) | (ids << 26);
}

static void fix_entry(struct kvm_cpuid_entry2 *e, const struct cpuid_host *h,
		      unsigned n)
{
	switch (e->function) {
	case 0x1:
		fix_leaf1(e, h, n);
		break;
	case 0x4:
	case 0x8000001d:
		fix_cache(e, n);
		break;
	case 0x7:
		if (e->index == 0) {
			e->ebx &= ~(F7_EBX_SGX | F7_EBX_INTEL_PT);
			e->ecx &= ~F7_ECX_SGX_LC;
		}
		break;
	case HV_LEAF_BASE:
		e->eax = KVM_LEAF_FEATURES;	/* the last one we keep */
		break;
	case KVM_LEAF_FEATURES:
		e->eax &= KVM_FEATURES_PROVIDED;
		e->edx = 0;			/* no "never preempted" hint */
		break;
	case 0x80000008:		/* cores - 1, APIC id bits */
		e->ecx = (e->ecx & ~0xf0ffu) | (id_bits(n) << 12) | (n - 1);
		break;
	case 0x8000001e:		/* one thread per core, node 0 */
		e->ebx &= ~0xff00u;
		e->ecx = 0;
		break;
	}
	rec_cpuid_put_apic_id(e->function, &e->eax, &e->ebx, &e->edx, 0);
}

/* Leaf 0xB or 0x1F: an SMT level of one thread, a core level of n. */
static void add_topology(struct kvm_cpuid2 *c, uint32_t function, unsigned n)
{
	const struct kvm_cpuid_entry2 levels[] = {
		{ .eax = 0, .ebx = 1, .ecx = 1 << 8 | 0 },
		{ .eax = id_bits(n), .ebx = n, .ecx = 2 << 8 | 1 },
		{ .eax = 0, .ebx = 0, .ecx = 2 },	/* the end */
	};
	unsigned i;

	for (i = 0; i < 3; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];

		*e = levels[i];
		e->function = function;
		e->index = i;
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	}
}

struct kvm_cpuid2 *cpuid_build(const struct cpuid_host *h, unsigned nr_vcpus)
{
	const struct kvm_cpuid2 *s = h->supported;
	const struct kvm_cpuid_entry2 *leaf0 = find(s, 0, 0);
	uint32_t max = leaf0 ? leaf0->eax : 0;
	struct kvm_cpuid2 *c = cpuid_alloc(s->nent + 6);
	unsigned i;

	if (!c)
		return NULL;
	c->nent = 0;
	for (i = 0; i < s->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[c->nent];

		if (dropped(&s->entries[i]))
			continue;
		*e = s->entries[i];
		memset(e->padding, 0, sizeof(e->padding));
		fix_entry(e, h, nr_vcpus);
		c->nent++;
	}
	if (max >= 0xb)
		add_topology(c, 0xb, nr_vcpus);
	if (max >= 0x1f)
		add_topology(c, 0x1f, nr_vcpus);
	return c;
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *c, unsigned id)
{
	struct kvm_cpuid2 *v = cpuid_alloc(c->nent);
	unsigned i;

	if (!v)
		return NULL;
	memcpy(v->entries, c->entries, c->nent * sizeof(c->entries[0]));
	for (i = 0; i < v->nent; i++) {
		struct kvm_cpuid_entry2 *e = &v->entries[i];

		rec_cpuid_put_apic_id(e->function, &e->eax, &e->ebx, &e->edx,
				      id);
	}
	return v;
}

static int check_reg(const struct kvm_cpuid_entry2 *w,
		     const struct kvm_cpuid_entry2 *o, unsigned r, char *err,
		     size_t errlen)
{
	static const char *const names[] = { "EAX", "EBX", "ECX", "EDX" };
	uint32_t missing = reg(w, r) & ~(o ? reg(o, r) : 0);

	if (!missing)
		return 0;
	snprintf(err, errlen, "CPUID leaf %#x subleaf %u %s bit %d: the "
		 "stream's CPUID has it and this host does not offer it "
		 "(KVM_GET_SUPPORTED_CPUID as filtered for domains, "
		 "docs/cpuid.md)", w->function, w->index, names[r],
		 __builtin_ctz(missing));
	return -1;
}

int cpuid_check_offer(const struct kvm_cpuid2 *want,
		      const struct kvm_cpuid2 *offer, char *err,
		      size_t errlen)
{
	unsigned i, r;

	for (i = 0; i < NR_FEATURE_REGS; i++) {
		const struct kvm_cpuid_entry2 *w, *o;

		w = find(want, feature_regs[i].function, feature_regs[i].index);
		o = find(offer, feature_regs[i].function,
			 feature_regs[i].index);
		if (!w)
			continue;
		for (r = EAX; r <= EDX; r++)
			if (feature_regs[i].regs & (1u << r) &&
			    check_reg(w, o, r, err, errlen) < 0)
				return -1;
	}
	return 0;
}

struct kvm_cpuid2 *cpuid_from_record(const void *body, size_t len)
{
	struct rec_cpuid h;
	struct kvm_cpuid2 *c;

	if (len < sizeof(h))
		return NULL;
	memcpy(&h, body, sizeof(h));
	if (h.nent > REC_CPUID_ENTRIES_MAX ||
	    len != sizeof(h) + h.nent * sizeof(struct rec_cpuid_entry))
		return NULL;
	c = cpuid_alloc(h.nent);
	if (c)
		memcpy(c->entries, (const uint8_t *)body + sizeof(h),
		       h.nent * sizeof(c->entries[0]));
	return c;
}
