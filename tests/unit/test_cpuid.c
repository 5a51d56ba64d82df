// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the domain's CPUID (xen/cpuid.c) on a made-up Intel host
 * with every leaf the builder touches (the test host's own CPUID covers
 * only some): what is offered, taken out and made for the topology; the
 * per-vCPU APIC ids; the feature check that refuses a stream, naming the
 * leaf, register and bit; the record's body read back.
 */
#include <stdlib.h>
#include <string.h>

#include "cpuid.h"
#include "records.h"
#include "unit.h"

#define CHECK_HAS(s, sub) \
	unit_check(strstr((s), (sub)) != NULL, __FILE__, __LINE__, \
		   "\"%s\" does not say \"%s\"", (s), (sub))

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static const struct kvm_cpuid_entry2 host_entries[] = {
	{ .function = 0, .eax = 0x1f, .ebx = 0x756e6547 },
	{ .function = 1, .eax = 0x906ea, .ebx = 0x07100800,
	  .ecx = 0x7ffafbff, .edx = 0xbfebfbff },
	{ .function = 4, .index = 0, .flags = IDX, .eax = 0x1c004121 },
	{ .function = 4, .index = 1, .flags = IDX, .eax = 0x1c07c163 },
	{ .function = 7, .index = 0, .flags = IDX, .ebx = 0x029c6fbf,
	  .ecx = 0x40000000 },
	{ .function = 0xb, .index = 0, .flags = IDX, .eax = 1, .ebx = 2,
	  .ecx = 0x100, .edx = 7 },
	{ .function = 0xd, .index = 0, .flags = IDX, .eax = 0x1f },
	{ .function = 0x12, .index = 0, .flags = IDX, .eax = 1 },
	{ .function = 0x14, .index = 0, .flags = IDX, .eax = 1 },
	{ .function = 0x1f, .index = 0, .flags = IDX, .eax = 1, .ebx = 2,
	  .ecx = 0x100, .edx = 7 },
	{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b,
	  .ecx = 0x564b4d56, .edx = 0x4d },
	{ .function = 0x40000001, .eax = 0x0103ffff, .edx = 1 },
	{ .function = 0x40000100, .eax = 0x40000105 },	/* not KVM's */
	{ .function = 0x80000008, .eax = 0x3027, .ecx = 0x5007 },
	{ .function = 0x80000021, .eax = 0x45 },
};

static struct kvm_cpuid2 *host(void)
{
	unsigned n = sizeof(host_entries) / sizeof(host_entries[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
				      n * sizeof(c->entries[0]));

	c->nent = n;
	memcpy(c->entries, host_entries, sizeof(host_entries));
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t f,
				     uint32_t i)
{
	unsigned k;

	for (k = 0; k < c->nent; k++)
		if (c->entries[k].function == f && c->entries[k].index == i)
			return &c->entries[k];
	return NULL;
}

static struct kvm_cpuid2 *build(unsigned n, bool tsc_deadline)
{
	struct kvm_cpuid2 *s = host();
	struct cpuid_host h = { .supported = s, .tsc_deadline = tsc_deadline };
	struct kvm_cpuid2 *c = cpuid_build(&h, n);

	free(s);
	return c;
}

static void test_offered_and_removed(void)
{
	struct kvm_cpuid2 *c = build(4, true);
	struct kvm_cpuid_entry2 *e;

	e = leaf(c, 1, 0);
	CHECK(e && e->ecx & 1u << 31 && e->ecx & 1u << 21 &&
	      e->ecx & 1u << 24 && !(e->ecx & 1u << 27));
	CHECK(e && e->ebx == 0x00040800 && e->edx & 1u << 28);
	e = leaf(c, 7, 0);
	CHECK(e && e->ebx == (0x029c6fbfu & ~(1u << 2 | 1u << 25)) &&
	      e->ecx == 0);
	CHECK(!leaf(c, 0x12, 0) && !leaf(c, 0x14, 0) &&
	      !leaf(c, 0x40000100, 0));
	e = leaf(c, 0x40000001, 0);
	CHECK(e && e->eax == (0x7efbu | 1u << 24) && e->edx == 0);
	CHECK(leaf(c, 0x40000000, 0)->eax == 0x40000001);
	CHECK(leaf(c, 0xd, 0)->eax == 0x1f);	/* XSAVE as the host has it */
	CHECK(leaf(c, 0x80000021, 0)->eax == 0x45);
	free(c);

	c = build(1, false);
	e = leaf(c, 1, 0);
	CHECK(e && !(e->ecx & 1u << 24) && !(e->edx & 1u << 28) &&
	      e->ebx == 0x00010800);
	free(c);
}

static void test_topology(void)
{
	struct kvm_cpuid2 *c = build(5, true);
	uint32_t f, i;

	for (f = 0xb; f <= 0x1f; f += 0x1f - 0xb) {
		struct kvm_cpuid_entry2 *s0 = leaf(c, f, 0), *s1 = leaf(c, f, 1),
					*s2 = leaf(c, f, 2);

		CHECK(s0 && s0->eax == 0 && s0->ebx == 1 && s0->ecx == 0x100 &&
		      s0->edx == 0 && s0->flags == IDX);
		CHECK(s1 && s1->eax == 3 && s1->ebx == 5 && s1->ecx == 0x201);
		CHECK(s2 && s2->eax == 0 && s2->ebx == 0 && s2->ecx == 2);
		CHECK(!leaf(c, f, 3));
	}
	/* Leaf 4: cores per package 2^3 - 1; L1 per core, L3 shared. */
	CHECK(leaf(c, 4, 0)->eax == ((0x1c004121u & 0x3fff) | 7u << 26));
	CHECK(leaf(c, 4, 1)->eax ==
	      ((0x1c07c163u & 0x3fff) | 7u << 14 | 7u << 26));
	CHECK(leaf(c, 0x80000008, 0)->ecx == (3u << 12 | 4));
	for (i = 0; i < c->nent; i++)
		CHECK(!(c->entries[i].function == 0xb &&
			c->entries[i].edx == 7));
	free(c);
}

static void test_per_vcpu(void)
{
	struct kvm_cpuid2 *c = build(4, true), *v = cpuid_for_vcpu(c, 3);
	unsigned i;

	CHECK(v && v->nent == c->nent);
	CHECK(leaf(v, 1, 0)->ebx == 0x03040800);
	CHECK(leaf(v, 0xb, 1)->edx == 3 && leaf(v, 0x1f, 0)->edx == 3);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 a = c->entries[i], b = v->entries[i];

		if (a.function == 1 || a.function == 0xb || a.function == 0x1f)
			continue;
		CHECK(!memcmp(&a, &b, sizeof(a)));
	}
	free(v);
	free(c);
}

static void test_offer(void)
{
	struct kvm_cpuid2 *offer = build(2, true), *want = build(2, true);
	char err[320] = "";

	CHECK(cpuid_check_offer(want, offer, err, sizeof(err)) == 0);
	/* Fewer features than offered is fine. */
	leaf(want, 7, 0)->ebx = 0;
	CHECK(cpuid_check_offer(want, offer, err, sizeof(err)) == 0);
	leaf(want, 7, 0)->ebx = 1u << 2;
	CHECK(cpuid_check_offer(want, offer, err, sizeof(err)) < 0);
	CHECK_HAS(err, "CPUID leaf 0x7 subleaf 0 EBX bit 2: the stream's "
		  "CPUID has it and this host does not offer it");
	leaf(want, 7, 0)->ebx = 0;
	leaf(offer, 0x80000021, 0)->function = 0x80000022;
	CHECK(cpuid_check_offer(want, offer, err, sizeof(err)) < 0);
	CHECK_HAS(err, "leaf 0x80000021 subleaf 0 EAX bit 0:");
	/* Not a feature register: the vendor is taken as it is. */
	leaf(offer, 0x80000022, 0)->function = 0x80000021;
	leaf(want, 0, 0)->ebx = 0x68747541;
	CHECK(cpuid_check_offer(want, offer, err, sizeof(err)) == 0);
	free(offer);
	free(want);
}

static void test_record(void)
{
	struct kvm_cpuid2 *c = build(3, true), *back;
	size_t len = sizeof(struct rec_cpuid) +
		     c->nent * sizeof(struct rec_cpuid_entry);
	uint8_t *body = malloc(len);
	struct rec_cpuid h = { .nent = c->nent };

	memcpy(body, &h, sizeof(h));
	memcpy(body + sizeof(h), c->entries, len - sizeof(h));
	back = cpuid_from_record(body, len);
	CHECK(back && back->nent == c->nent &&
	      !memcmp(back->entries, c->entries, len - sizeof(h)));
	CHECK(cpuid_from_record(body, len - 1) == NULL);
	free(back);
	free(body);
	free(c);
}

int main(void)
{
	test_offered_and_removed();
	test_topology();
	test_per_vcpu();
	test_offer();
	test_record();
	return unit_done();
}
