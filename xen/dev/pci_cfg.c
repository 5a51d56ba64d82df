/*
 * PCI configuration mechanism #1 with an empty bus: the address latch at
 * 0xCF8 and a data window at 0xCFC that no device answers.  The latch is
 * the DEV_BOARD record (named when this lived in the board file).
 */
#include <stdio.h>
#include <string.h>

#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"
#include "stream.h"

#define PORT_PCI_ADDR	0xcf8	/* 0xcf9 is the reset control */
#define PORT_PCI_REST	0xcfa	/* to 0xcff, the data window in it */

struct pci_cfg {
	uint32_t addr;
};

static int pci_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		  bool is_write, unsigned size, uint32_t *val)
{
	struct pci_cfg *p = opaque;

	if (port == PORT_PCI_ADDR && size == 4) {
		if (is_write)
			p->addr = *val;
		else
			*val = p->addr;
		return 0;
	}
	if (!is_write)
		*val = ioport_all_ones(size);	/* no device answers */
	return 0;
}

static int pci_init(struct domain *dom, void *state, char *err,
		    size_t errlen)
{
	if (ioport_register(&dom->ports, PORT_PCI_ADDR, 1, pci_io, state,
			    "pci") < 0)
		return -1;
	return ioport_register(&dom->ports, PORT_PCI_REST, 6, pci_io, state,
			       "pci");
}

static int pci_save(struct domain *dom, void *state, struct stream_writer *w)
{
	struct pci_cfg *p = state;
	struct rec_dev_board r = { .pci_addr = p->addr };

	return stream_write_record(w, REC_DEV_BOARD, 0, &r, sizeof(r));
}

static int pci_load(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen)
{
	struct pci_cfg *p = state;
	struct rec_dev_board r;

	memcpy(&r, body, sizeof(r));
	p->addr = r.pci_addr;
	return 0;
}

/* First of all devices: DEV_BOARD is the first device record. */
static struct device_type pci_cfg_device = {
	.name = "pci-cfg",
	.order = 10,
	.state_size = sizeof(struct pci_cfg),
	.rec_type = REC_DEV_BOARD,
	.init = pci_init,
	.save = pci_save,
	.load = pci_load,
};
DEVICE_REGISTER(pci_cfg_device);
