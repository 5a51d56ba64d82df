/*
 * The small board devices: reset (0x64 / 0xCF9), the isa-debug-exit port,
 * PCI configuration space with no devices, and legacy ISA ports that
 * exist on a PC but have nothing behind them here.
 */
#include <generated/autoconf.h>
#include <stdio.h>
#include <string.h>

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
	{ 0x2f8, 8, "COM2" },
	{ 0x3e8, 8, "COM3" },
	{ 0x2e8, 8, "COM4" },
	{ 0x378, 3, "LPT1" },
};

int board_init(struct domain *dom)
{
	struct ioport_map *m = &dom->ports;
	unsigned i;
	int ret = 0;

	ret |= ioport_register(m, PORT_KBD_DATA, 1, kbd_io, NULL, "i8042");
	ret |= ioport_register(m, PORT_KBD_CMD, 1, kbd_io, NULL, "i8042");
	ret |= ioport_register(m, PORT_PCI_ADDR, 8, pci_io,
			       &dom->pci_addr, "pci");
#ifdef CONFIG_DEV_DEBUG_EXIT
	ret |= ioport_register(m, PORT_DEBUG_EXIT, 1, debug_exit_io, NULL,
			       "debug-exit");
#endif
	for (i = 0; i < sizeof(absent_ports) / sizeof(absent_ports[0]); i++)
		ret |= ioport_register(m, absent_ports[i].base,
				       absent_ports[i].len, absent_io, NULL,
				       absent_ports[i].what);
	return ret ? -1 : 0;
}

void board_destroy(struct domain *dom)
{
	dom->ports.nr = 0;
}


struct board_record {
	uint32_t pci_addr;
	uint32_t reserved;
};

int board_save(struct domain *dom, struct stream_writer *w)
{
	struct board_record r = { .pci_addr = dom->pci_addr };

	return stream_write_record(w, REC_DEV_BOARD, 0, &r, sizeof(r));
}

int board_load(struct domain *dom, const void *body, size_t len, char *err,
	       size_t errlen)
{
	struct board_record r;

	if (len != sizeof(r)) {
		snprintf(err, errlen, "DEV_BOARD: %zu bytes, expected %zu", len,
			 sizeof(r));
		return -1;
	}
	memcpy(&r, body, sizeof(r));
	dom->pci_addr = r.pci_addr;
	return 0;
}
