/*
 * Intel MultiProcessor Specification 1.4 tables: the floating pointer in
 * the first KiB of the EBDA and the configuration table in the BIOS area.
 * They describe the vCPUs (local APIC ids 0..n-1), one ISA bus, KVM's
 * in-kernel IOAPIC (id n) and how the ISA IRQs reach it, and the 8259
 * (ExtINT) and NMI on every local APIC's LINT0 and LINT1.  Kernels without ACPI
 * (or booted with acpi=off) find their CPUs and the IOAPIC here.
 */
#include <string.h>

#include "boot/boot.h"
#include "boot/tables.h"
#include "domain.h"
#include "memory.h"

#define MPC_SIG		"PCMP"
#define MPF_SIG		"_MP_"
#define MP_SPEC_REV	4		/* 1.4 */

#define MP_PROCESSOR	0
#define MP_BUS		1
#define MP_IOAPIC	2
#define MP_INTSRC	3
#define MP_LINTSRC	4

#define CPU_ENABLED	1
#define CPU_BOOTPROC	2
#define MP_INT		0
#define MP_NMI		1
#define MP_EXTINT	3
#define MP_IRQ_DEFAULT	0		/* conforming polarity and trigger */
#define MP_ALL_APICS	0xff

struct mpf {
	char signature[4];
	uint32_t physptr;
	uint8_t length;			/* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_header {
	char signature[4];
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t count;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

uint8_t table_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

size_t mptable_size(unsigned nr_cpus)
{
	return sizeof(struct mpc_header) + nr_cpus * sizeof(struct mpc_cpu) +
	       sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
	       (15 + 2) * sizeof(struct mpc_intsrc);	/* ISA IRQs, LINT0/1 */
}

static void intsrc(uint8_t **p, uint8_t type, uint8_t irqtype, uint8_t irq,
		   uint8_t dstapic, uint8_t dstirq, unsigned *count)
{
	struct mpc_intsrc e = {
		.type = type, .irqtype = irqtype, .irqflag = MP_IRQ_DEFAULT,
		.srcbus = 0, .srcbusirq = irq, .dstapic = dstapic,
		.dstirq = dstirq,
	};

	memcpy(*p, &e, sizeof(e));
	*p += sizeof(e);
	(*count)++;
}

int mptable_write(struct domain *dom)
{
	unsigned n = dom->nr_vcpus, i;
	size_t size = mptable_size(n);
	struct mpf *mpf = gpa_to_hva(&dom->mem, BOOT_MPF, sizeof(*mpf));
	uint8_t *base = gpa_to_hva(&dom->mem, BOOT_MPC, size), *p;
	struct mpc_header *h = (struct mpc_header *)base;
	uint8_t ioapic_id = n;
	unsigned count = n + 2;		/* CPUs, the bus, the IOAPIC */

	if (!mpf || !base || BOOT_MPC + size > BOOT_MPC_END)
		return -1;
	memset(base, 0, size);
	p = base + sizeof(*h);
	for (i = 0; i < n; i++) {
		struct mpc_cpu c = {
			.type = MP_PROCESSOR, .apicid = i, .apicver = 0x14,
			.cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROC : 0),
			.cpufeature = 0x600,		/* family 6 */
			.featureflag = 0x201,		/* FPU, APIC */
		};

		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
	}
	memcpy(p, &(struct mpc_bus){ .type = MP_BUS, .busid = 0,
				      .bustype = "ISA   " },
	       sizeof(struct mpc_bus));
	p += sizeof(struct mpc_bus);
	memcpy(p, &(struct mpc_ioapic){ .type = MP_IOAPIC,
					 .apicid = ioapic_id,
					 .apicver = 0x11, .flags = 1,
					 .apicaddr = IOAPIC_ADDR },
	       sizeof(struct mpc_ioapic));
	p += sizeof(struct mpc_ioapic);
	/*
	 * Every ISA IRQ on the IOAPIC pin of its own number, as KVM's default
	 * GSI routing wires them (the PIT's IRQ 0 reaches pin 0, not pin 2 as
	 * on most PCs); IRQ 2 is the cascade and has no device.
	 */
	for (i = 0; i < 16; i++) {
		if (i != 2)
			intsrc(&p, MP_INTSRC, MP_INT, i, ioapic_id, i, &count);
	}
	intsrc(&p, MP_LINTSRC, MP_EXTINT, 0, MP_ALL_APICS, 0, &count);
	intsrc(&p, MP_LINTSRC, MP_NMI, 0, MP_ALL_APICS, 1, &count);

	memcpy(h->signature, MPC_SIG, 4);
	h->length = p - base;
	h->count = count;
	h->spec = MP_SPEC_REV;
	memcpy(h->oem, TABLE_OEM_ID "  ", 8);
	memcpy(h->product, "HVM         ", 12);
	h->lapic = LAPIC_ADDR;
	h->checksum = table_checksum(base, h->length);

	memset(mpf, 0, sizeof(*mpf));
	memcpy(mpf->signature, MPF_SIG, 4);
	mpf->physptr = BOOT_MPC;
	mpf->length = 1;
	mpf->specification = MP_SPEC_REV;
	mpf->checksum = table_checksum(mpf, sizeof(*mpf));
	return 0;
}
