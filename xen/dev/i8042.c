/*
 * The i8042 keyboard controller with no keyboard behind it: status reads
 * 0 and the only command that acts is the pulse of the reset line.
 */
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"

#define PORT_KBD_DATA	0x60
#define PORT_KBD_CMD	0x64
#define KBD_CMD_RESET	0xfe

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

static int kbd_init(struct domain *dom, void *state, char *err,
		    size_t errlen)
{
	if (ioport_register(&dom->ports, PORT_KBD_DATA, 1, kbd_io, NULL,
			    "i8042") < 0)
		return -1;
	return ioport_register(&dom->ports, PORT_KBD_CMD, 1, kbd_io, NULL,
			       "i8042");
}

static struct device_type i8042_device = {
	.name = "i8042",
	.order = 20,
	.stateless = "nothing is latched: reads are 0, a reset acts at once",
	.init = kbd_init,
};
DEVICE_REGISTER(i8042_device);
