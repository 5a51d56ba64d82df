/*
 * The ACPI fixed hardware the FADT describes (boot/acpi.c): PM1 status
 * (always 0: no fixed event ever fires), PM1 enable (kept), PM1 control
 * (SCI_EN reads 1: the board is always in ACPI mode, so SMI_CMD is 0) and
 * the 24-bit 3.579545 MHz PM timer.  Writing SLP_EN with the S5 sleep
 * type is the guest's poweroff.
 */
#include <time.h>

#include "boot/tables.h"
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"

#define PM1_CNT_SCI_EN		0x0001
#define PM1_CNT_SLP_TYP_SHIFT	10
#define PM1_CNT_SLP_EN		0x2000

struct acpi_pm {
	uint16_t en;
	uint16_t cnt;
};

static uint32_t pm_timer(void)
{
	struct timespec ts;
	uint64_t ticks;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ticks = (uint64_t)ts.tv_sec * ACPI_PM_TMR_HZ +
		(uint64_t)ts.tv_nsec * ACPI_PM_TMR_HZ / 1000000000;
	return ticks & 0xffffff;
}

static void acpi_pm_write(struct vcpu *vcpu, struct acpi_pm *pm,
			  unsigned off, unsigned size, uint32_t val)
{
	/* PM1 status bits are write-1-to-clear and never set: no-op. */
	if (off == 0 && size == 4)
		pm->en = val >> 16;
	else if (off == 2 && size == 2)
		pm->en = val;
	if (off != 4 || size > 2)
		return;
	pm->cnt = (val & ~PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN;
	if ((val & PM1_CNT_SLP_EN) &&
	    ((val >> PM1_CNT_SLP_TYP_SHIFT) & 7) == ACPI_S5_SLP_TYP)
		domain_raise(vcpu->dom, DOM_EV_POWEROFF,
			     "guest powered off (ACPI S5)");
}

static uint32_t acpi_pm_read(const struct acpi_pm *pm, unsigned off)
{
	switch (off) {
	case 0:			/* status; enable in the upper half */
		return (uint32_t)pm->en << 16;
	case 2:
		return pm->en;
	case 4:
		return pm->cnt;
	case 8:
		return pm_timer();
	default:
		return 0;
	}
}

static int acpi_pm_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		      bool is_write, unsigned size, uint32_t *val)
{
	struct acpi_pm *pm = opaque;
	unsigned off = port - ACPI_PM_BASE;

	if (is_write)
		acpi_pm_write(vcpu, pm, off, size, *val);
	else
		*val = acpi_pm_read(pm, off) & ioport_all_ones(size);
	return 0;
}

static int acpi_pm_init(struct domain *dom, void *state, char *err,
			size_t errlen)
{
	struct acpi_pm *pm = state;

	pm->cnt = PM1_CNT_SCI_EN;
	return ioport_register(&dom->ports, ACPI_PM_BASE, ACPI_PM_LEN,
			       acpi_pm_io, pm, "acpi-pm");
}

static struct device_type acpi_pm_device = {
	.name = "acpi-pm",
	.order = 50,
	.state_size = sizeof(struct acpi_pm),
	.stateless = "PM1 enable and control have no record yet; they fire "
		     "nothing (no fixed event sets a status bit, SCI_EN always "
		     "reads 1), so a restored guest reads them back as reset",
	.init = acpi_pm_init,
};
DEVICE_REGISTER(acpi_pm_device);
