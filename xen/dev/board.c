/*
 * The small board devices: reset (0x64 / 0xCF9), the isa-debug-exit port,
 * PCI configuration space with no devices, the ACPI PM block the FADT
 * describes (boot/acpi.c), and legacy ISA ports that exist on a PC but
 * have nothing behind them here.
 */
#include <generated/autoconf.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "boot/tables.h"
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"
#include "log.h"
#include "stream.h"

#define PORT_KBD_DATA	0x60
#define PORT_KBD_CMD	0x64
#define KBD_CMD_RESET	0xfe
#define PORT_PCI_ADDR	0xcf8
#define PORT_RST_CNT	0xcf9
#define RST_CNT_RESET	0x04
#define PORT_DEBUG_EXIT	0xf4

static uint32_t all_ones(unsigned size)
{
	return size == 4 ? 0xffffffff : (1u << (size * 8)) - 1;
}

/* i8042 with no keyboard: status reads 0, only the reset command acts. */
static int kbd_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		  bool is_write, unsigned size, uint32_t *val)
{
	if (!is_write) {
		*val = 0;
		return 0;
	}
	if (port == PORT_KBD_CMD && (*val & 0xff) == KBD_CMD_RESET)
		domain_raise(vcpu->dom, DOM_EV_REBOOT,
			     "guest reset through the keyboard controller");
	return 0;
}

/* PCI mechanism #1 with an empty bus; 0xCF9 is the reset control. */
static int pci_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		  bool is_write, unsigned size, uint32_t *val)
{
	uint32_t *addr = opaque;

	if (port == PORT_RST_CNT && size == 1) {
		if (is_write && (*val & RST_CNT_RESET))
			domain_raise(vcpu->dom, DOM_EV_REBOOT,
				     "guest reset through port 0xcf9");
		else if (!is_write)
			*val = 0;
		return 0;
	}
	if (port == PORT_PCI_ADDR && size == 4) {
		if (is_write)
			*addr = *val;
		else
			*val = *addr;
		return 0;
	}
	if (!is_write)
		*val = all_ones(size);	/* no device answers */
	return 0;
}

#ifdef CONFIG_DEV_DEBUG_EXIT
static int debug_exit_io(struct vcpu *vcpu, void *opaque, uint16_t port,
			 bool is_write, unsigned size, uint32_t *val)
{
	struct domain *dom = vcpu->dom;
	char why[64];

	if (!is_write) {
		*val = all_ones(size);
		return 0;
	}
	dom->exit_code = ((*val & 0xff) << 1) | 1;
	snprintf(why, sizeof(why), "guest exited with code %d",
		 dom->exit_code);
	domain_raise(dom, DOM_EV_POWEROFF, why);
	return 0;
}
#endif

/*
 * ACPI fixed hardware: PM1 status (always 0: no fixed event ever fires),
 * PM1 enable (kept), PM1 control (SCI_EN reads 1: the board is always in
 * ACPI mode, so SMI_CMD is 0) and the 24-bit 3.579545 MHz PM timer.
 * Writing SLP_EN with the S5 sleep type is the guest's poweroff.
 */
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

static int acpi_pm_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		      bool is_write, unsigned size, uint32_t *val)
{
	struct acpi_pm *pm = opaque;
	unsigned off = port - ACPI_PM_BASE;
	uint32_t v;

	if (is_write) {
		acpi_pm_write(vcpu, pm, off, size, *val);
		return 0;
	}
	switch (off) {
	case 0:			/* status; enable in the upper half */
		v = (uint32_t)pm->en << 16;
		break;
	case 2:
		v = pm->en;
		break;
	case 4:
		v = pm->cnt;
		break;
	case 8:
		v = pm_timer();
		break;
	default:
		v = 0;
		break;
	}
	*val = v & all_ones(size);
	return 0;
}

/* Ports a PC has but that float here: reads all-ones, writes ignored. */
static int absent_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		     bool is_write, unsigned size, uint32_t *val)
{
	if (!is_write)
		*val = all_ones(size);
	return 0;
}

static const struct {
	uint16_t base, len;
	const char *what;
} absent_ports[] = {
	{ 0x80, 1, "POST diagnostic port" },
	{ 0x81, 15, "DMA page registers" },	/* Linux probes 0x87 */
	{ 0x2e, 2, "Super I/O configuration" },	/* 8250_fintek probes */
	{ 0x4e, 2, "Super I/O configuration (alternate)" },
	{ 0x2f8, 8, "COM2" },
	{ 0x3e8, 8, "COM3" },
	{ 0x2e8, 8, "COM4" },
	{ 0x378, 3, "LPT1" },
};

struct board {
	uint32_t pci_addr;		/* latch at 0xcf8 */
	struct acpi_pm pm;
};

static int board_init(struct domain *dom, void *state)
{
	struct ioport_map *m = &dom->ports;
	struct board *b = state;
	struct acpi_pm *pm = &b->pm;
	unsigned i;
	int ret = 0;

	ret |= ioport_register(m, PORT_KBD_DATA, 1, kbd_io, NULL, "i8042");
	ret |= ioport_register(m, PORT_KBD_CMD, 1, kbd_io, NULL, "i8042");
	ret |= ioport_register(m, PORT_PCI_ADDR, 8, pci_io,
			       &b->pci_addr, "pci");
#ifdef CONFIG_DEV_DEBUG_EXIT
	ret |= ioport_register(m, PORT_DEBUG_EXIT, 1, debug_exit_io, NULL,
			       "debug-exit");
#endif
	pm->cnt = PM1_CNT_SCI_EN;
	ret |= ioport_register(m, ACPI_PM_BASE, ACPI_PM_LEN, acpi_pm_io, pm,
			       "acpi-pm");
	for (i = 0; i < sizeof(absent_ports) / sizeof(absent_ports[0]); i++)
		ret |= ioport_register(m, absent_ports[i].base,
				       absent_ports[i].len, absent_io, NULL,
				       absent_ports[i].what);
	return ret ? -1 : 0;
}

static int board_save(struct domain *dom, void *state,
		      struct stream_writer *w)
{
	struct board *b = state;
	struct rec_dev_board r = { .pci_addr = b->pci_addr };

	return stream_write_record(w, REC_DEV_BOARD, 0, &r, sizeof(r));
}

static int board_check(const void *body, size_t len, char *err,
		       size_t errlen)
{
	if (len != sizeof(struct rec_dev_board)) {
		snprintf(err, errlen, "DEV_BOARD: %zu bytes, expected %zu", len,
			 sizeof(struct rec_dev_board));
		return -1;
	}
	return 0;
}

static int board_load(struct domain *dom, void *state, const void *body,
		      size_t len, char *err, size_t errlen)
{
	struct board *b = state;
	struct rec_dev_board r;

	memcpy(&r, body, sizeof(r));
	b->pci_addr = r.pci_addr;
	return 0;
}

static struct device_type board_device = {
	.name = "board",
	.order = 10,
	.state_size = sizeof(struct board),
	.rec_type = REC_DEV_BOARD,
	.init = board_init,
	.save = board_save,
	.check = board_check,
	.load = board_load,
};
DEVICE_REGISTER(board_device);
