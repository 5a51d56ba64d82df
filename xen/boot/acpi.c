/*
 * ACPI tables: RSDP, RSDT, XSDT, FADT, FACS, DSDT and MADT.
 *
 * The RSDP is at BOOT_ACPI, inside the BIOS area 0xE0000-0xFFFFF that
 * guests without a boot protocol's pointer scan (16-byte aligned), and
 * the Linux and PVH loaders pass the same address.
 *
 * The FADT describes a PC with a fixed PM block (the board emulates it at
 * ACPI_PM_BASE, dev/acpi_pm.c: PM1 event and control registers, the
 * fixed-feature power button and the 32-bit PM timer), the SCI on IRQ 9,
 * a reset register at 0xcf9 and no i8042 or VGA; the DSDT says how to
 * enter S5,
 * so that a guest's poweroff writes SLP_TYP/SLP_EN and ends the domain as
 * a poweroff, and holds the AML devices register (ACPI_DSDT_AML).  The
 * MADT lists the vCPUs' local APICs and KVM's in-kernel IOAPIC.  ISA IRQs
 * reach the IOAPIC pin of their own number (KVM's default GSI routing:
 * the PIT's IRQ 0 is on pin 0, so there is no IRQ 0 -> GSI 2 override as
 * on most PCs); the only override makes the SCI level-triggered, active
 * high.
 */
#include <string.h>

#include "boot/boot.h"
#include "boot/tables.h"
#include "domain.h"
#include "memory.h"

#define ACPI_OEM_TABLE_ID	"XENKVM  "
#define ACPI_CREATOR_ID		"XKVM"

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

/* ACPI 6 FADT; the 64-bit PM block fields stay 0: the 32-bit ones say it. */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t facs;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_revision;
	uint64_t x_facs, x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control, sleep_status;
	uint64_t hypervisor_id;
} __attribute__((packed));

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_waking_vector;
	uint8_t version;
	uint8_t reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved2[24];
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length, processor_id, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_override {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length, processor_id;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_fadt) == 276, "ACPI 6 FADT layout");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS layout");

#define FADT_REVISION		6
#define FADT_WBINVD		(1u << 0)
#define FADT_C1_SUPPORTED	(1u << 2)
#define FADT_SLEEP_BUTTON	(1u << 5)	/* no fixed sleep button */
#define FADT_TMR_VAL_EXT	(1u << 8)	/* the PM timer has 32 bits */
#define FADT_RESET_REGISTER	(1u << 10)
#define BOOT_ARCH_LEGACY	(1u << 0)	/* ISA devices (COM1, RTC) */
#define BOOT_ARCH_NO_VGA	(1u << 2)	/* and no 8042: bit 1 clear */
#define GAS_SYSTEM_IO		1
#define GAS_ACCESS_BYTE		1
#define RTC_CENTURY_INDEX	0x32
#define RESET_PORT		0xcf9
#define RESET_VALUE		0x06		/* full reset */

#define MADT_LAPIC		0
#define MADT_IOAPIC		1
#define MADT_OVERRIDE		2
#define MADT_LAPIC_NMI		4
#define MADT_PCAT_COMPAT	1
#define MADT_ENABLED		1
#define MADT_LEVEL_HIGH		0x000d		/* active high, level */

/* DefinitionBlock body: Name (_S5, Package () { 5, 5, 0, 0 }) */
static const uint8_t dsdt_aml[] = {
	0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
	0x0a, ACPI_S5_SLP_TYP, 0x0a, ACPI_S5_SLP_TYP, 0x00, 0x00,
};

static struct acpi_dsdt_aml *dsdt_parts;

/* Kept in registration order (constructors run in link order). */
void acpi_dsdt_register(struct acpi_dsdt_aml *a)
{
	struct acpi_dsdt_aml **p = &dsdt_parts;

	while (*p)
		p = &(*p)->next;
	a->next = NULL;
	*p = a;
}

static size_t dsdt_parts_len(void)
{
	const struct acpi_dsdt_aml *a;
	size_t len = 0;

	for (a = dsdt_parts; a; a = a->next)
		len += a->len;
	return len;
}

static void dsdt_fill(struct acpi_header *dsdt)
{
	uint8_t *p = (uint8_t *)(dsdt + 1);
	const struct acpi_dsdt_aml *a;

	memcpy(p, dsdt_aml, sizeof(dsdt_aml));
	p += sizeof(dsdt_aml);
	for (a = dsdt_parts; a; a = a->next) {
		memcpy(p, a->aml, a->len);
		p += a->len;
	}
}

/* Hands out table space in [BOOT_ACPI, BOOT_ACPI_END). */
struct acpi_builder {
	struct domain *dom;
	uint64_t next;
};

static void *acpi_alloc(struct acpi_builder *b, size_t len, size_t align,
			uint64_t *gpa)
{
	void *p;

	b->next = (b->next + align - 1) & ~(uint64_t)(align - 1);
	if (b->next + len > BOOT_ACPI_END)
		return NULL;
	p = gpa_to_hva(&b->dom->mem, b->next, len);
	if (!p)
		return NULL;
	memset(p, 0, len);
	*gpa = b->next;
	b->next += len;
	return p;
}

static void acpi_header(struct acpi_header *h, const char *sig,
			uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, TABLE_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

static void acpi_finish(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = table_checksum(h, h->length);
}

static int write_fadt(struct acpi_builder *b, uint64_t *fadt_gpa)
{
	struct acpi_facs *facs;
	struct acpi_header *dsdt;
	struct acpi_fadt *f;
	uint64_t facs_gpa, dsdt_gpa;
	size_t dsdt_len = sizeof(*dsdt) + sizeof(dsdt_aml) + dsdt_parts_len();

	facs = acpi_alloc(b, sizeof(*facs), 64, &facs_gpa);
	dsdt = acpi_alloc(b, dsdt_len, 16, &dsdt_gpa);
	f = acpi_alloc(b, sizeof(*f), 16, fadt_gpa);
	if (!facs || !dsdt || !f)
		return -1;

	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2;

	acpi_header(dsdt, "DSDT", dsdt_len, 2);
	dsdt_fill(dsdt);
	acpi_finish(dsdt);

	acpi_header(&f->h, "FACP", sizeof(*f), FADT_REVISION);
	f->facs = facs_gpa;
	f->dsdt = dsdt_gpa;
	f->x_facs = facs_gpa;
	f->x_dsdt = dsdt_gpa;
	f->sci_int = ACPI_SCI_IRQ;
	f->pm1a_evt_blk = ACPI_PM1_EVT;
	f->pm1a_cnt_blk = ACPI_PM1_CNT;
	f->pm_tmr_blk = ACPI_PM_TMR;
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->p_lvl2_lat = 0x0fff;		/* no C2 */
	f->p_lvl3_lat = 0x0fff;		/* no C3 */
	f->century = RTC_CENTURY_INDEX;
	f->iapc_boot_arch = BOOT_ARCH_LEGACY | BOOT_ARCH_NO_VGA;
	/* PWR_BUTTON clear: the power button is the fixed-feature one. */
	f->flags = FADT_WBINVD | FADT_C1_SUPPORTED | FADT_SLEEP_BUTTON |
		   FADT_TMR_VAL_EXT | FADT_RESET_REGISTER;
	f->reset_reg = (struct acpi_gas){ .space_id = GAS_SYSTEM_IO,
					  .bit_width = 8,
					  .access_size = GAS_ACCESS_BYTE,
					  .address = RESET_PORT };
	f->reset_value = RESET_VALUE;
	memcpy(&f->hypervisor_id, "XENKVM\0\0", 8);
	acpi_finish(&f->h);
	return 0;
}

static int write_madt(struct acpi_builder *b, uint64_t *gpa)
{
	unsigned n = b->dom->nr_vcpus, i;
	size_t len = sizeof(struct acpi_header) + 8 +
		     n * sizeof(struct madt_lapic) +
		     sizeof(struct madt_ioapic) +
		     sizeof(struct madt_override) +
		     sizeof(struct madt_lapic_nmi);
	struct acpi_header *h = acpi_alloc(b, len, 16, gpa);
	uint8_t *p;
	uint32_t v;

	if (!h)
		return -1;
	acpi_header(h, "APIC", len, 3);
	p = (uint8_t *)(h + 1);
	v = LAPIC_ADDR;
	memcpy(p, &v, 4);
	v = MADT_PCAT_COMPAT;		/* dual 8259s present */
	memcpy(p + 4, &v, 4);
	p += 8;
	for (i = 0; i < n; i++) {
		struct madt_lapic l = {
			.type = MADT_LAPIC, .length = sizeof(l),
			.processor_id = i, .apic_id = i, .flags = MADT_ENABLED,
		};

		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
	}
	memcpy(p, &(struct madt_ioapic){ .type = MADT_IOAPIC,
					  .length = sizeof(struct madt_ioapic),
					  .id = n, .address = IOAPIC_ADDR },
	       sizeof(struct madt_ioapic));
	p += sizeof(struct madt_ioapic);
	memcpy(p, &(struct madt_override){ .type = MADT_OVERRIDE,
					    .length = sizeof(struct madt_override),
					    .source = ACPI_SCI_IRQ,
					    .gsi = ACPI_SCI_IRQ,
					    .flags = MADT_LEVEL_HIGH },
	       sizeof(struct madt_override));
	p += sizeof(struct madt_override);
	memcpy(p, &(struct madt_lapic_nmi){ .type = MADT_LAPIC_NMI,
					     .length = sizeof(struct madt_lapic_nmi),
					     .processor_id = 0xff, .lint = 1 },
	       sizeof(struct madt_lapic_nmi));
	acpi_finish(h);
	return 0;
}

int acpi_write(struct domain *dom)
{
	struct acpi_builder b = { .dom = dom, .next = BOOT_ACPI };
	struct acpi_header *rsdt, *xsdt;
	struct acpi_rsdp *rsdp;
	uint64_t rsdp_gpa, rsdt_gpa, xsdt_gpa, tables[2];
	uint32_t t32;
	unsigned i;

	rsdp = acpi_alloc(&b, sizeof(*rsdp), 16, &rsdp_gpa);
	if (!rsdp || write_fadt(&b, &tables[0]) < 0 ||
	    write_madt(&b, &tables[1]) < 0)
		return -1;
	rsdt = acpi_alloc(&b, sizeof(*rsdt) + 2 * 4, 16, &rsdt_gpa);
	xsdt = acpi_alloc(&b, sizeof(*xsdt) + 2 * 8, 16, &xsdt_gpa);
	if (!rsdt || !xsdt)
		return -1;
	acpi_header(rsdt, "RSDT", sizeof(*rsdt) + 2 * 4, 1);
	acpi_header(xsdt, "XSDT", sizeof(*xsdt) + 2 * 8, 1);
	for (i = 0; i < 2; i++) {
		t32 = tables[i];
		memcpy((uint8_t *)(rsdt + 1) + 4 * i, &t32, 4);
		memcpy((uint8_t *)(xsdt + 1) + 8 * i, &tables[i], 8);
	}
	acpi_finish(rsdt);
	acpi_finish(xsdt);

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, TABLE_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->rsdt = rsdt_gpa;
	rsdp->xsdt = xsdt_gpa;
	rsdp->length = sizeof(*rsdp);
	rsdp->checksum = table_checksum(rsdp, 20);
	rsdp->ext_checksum = table_checksum(rsdp, sizeof(*rsdp));
	return rsdp_gpa == BOOT_ACPI ? 0 : -1;
}
