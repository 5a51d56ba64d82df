/*
 * The reset control register at port 0xCF9: a byte write with the reset
 * bit reboots the domain.  Other sizes find nothing there.
 */
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"

#define PORT_RST_CNT	0xcf9
#define RST_CNT_RESET	0x04

static int rst_cnt_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		      bool is_write, unsigned size, uint32_t *val)
{
	if (size != 1) {
		if (!is_write)
			*val = ioport_all_ones(size);
		return 0;
	}
	if (!is_write)
		*val = 0;
	else if (*val & RST_CNT_RESET)
		domain_raise(vcpu->dom, DOM_EV_REBOOT,
			     "guest reset through port 0xcf9");
	return 0;
}

static int rst_cnt_init(struct domain *dom, void *state, char *err,
			size_t errlen)
{
	return ioport_register(&dom->ports, PORT_RST_CNT, 1, rst_cnt_io, NULL,
			       "reset-cf9");
}

static struct device_type reset_cf9_device = {
	.name = "reset-cf9",
	.order = 30,
	.stateless = "nothing is latched: reads are 0, a reset acts at once",
	.init = rst_cnt_init,
};
DEVICE_REGISTER(reset_cf9_device);
