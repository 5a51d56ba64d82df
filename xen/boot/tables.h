/*
 * Firmware tables the loaders put below 1 MiB for every boot protocol: an
 * MP table (mptable.c) and ACPI tables (acpi.c), and the fixed ACPI
 * power-management block the board emulates (dev/acpi_pm.c).
 */
#ifndef XEN_BOOT_TABLES_H
#define XEN_BOOT_TABLES_H

#include <stddef.h>
#include <stdint.h>

struct domain;

/* Guest-physical layout, all inside the e820 hole [BOOT_EBDA, 1 MiB). */
#define BOOT_BDA_EBDA		0x0040e	/* BDA: EBDA segment */
#define BOOT_BDA_BASEMEM	0x00413	/* BDA: base memory in KiB */
#define BOOT_MPF		0x9fc00	/* MP floating pointer: EBDA start */
#define BOOT_ACPI		0xe0000	/* RSDP, then the other tables */
#define BOOT_ACPI_END		0xf0000
#define BOOT_MPC		0xf0000	/* MP configuration table */
#define BOOT_MPC_END		0xf8000

#define LAPIC_ADDR		0xfee00000u
#define IOAPIC_ADDR		0xfec00000u
#define TABLE_OEM_ID		"XENKVM"	/* six characters */

/* ACPI fixed hardware (PIIX4-like PM block at 0x600). */
#define ACPI_PM_BASE		0x600
#define ACPI_PM1_EVT		(ACPI_PM_BASE + 0)	/* status, enable */
#define ACPI_PM1_CNT		(ACPI_PM_BASE + 4)
#define ACPI_PM_TMR		(ACPI_PM_BASE + 8)
#define ACPI_PM_LEN		12
#define ACPI_SCI_IRQ		9
#define ACPI_S5_SLP_TYP		5	/* what the DSDT's \_S5 says */
#define ACPI_PM_TMR_HZ		3579545

/*
 * AML a device adds to the DSDT (after \_S5), so that the core names no
 * device: a static struct acpi_dsdt_aml registered with ACPI_DSDT_AML().
 */
struct acpi_dsdt_aml {
	const uint8_t *aml;
	size_t len;
	struct acpi_dsdt_aml *next;
};

void acpi_dsdt_register(struct acpi_dsdt_aml *a);

#define ACPI_DSDT_AML(a)						\
	static void __attribute__((constructor)) register_##a(void)	\
	{								\
		acpi_dsdt_register(&a);					\
	}

uint8_t table_checksum(const void *p, size_t len);
size_t mptable_size(unsigned nr_cpus);
int mptable_write(struct domain *dom);
int acpi_write(struct domain *dom);

#endif
