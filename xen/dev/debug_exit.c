/*
 * The isa-debug-exit port (CONFIG_DEV_DEBUG_EXIT): writing a byte ends the
 * domain with exit code (value << 1) | 1, as QEMU's device does.
 */
#include <stdio.h>

#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"

#define PORT_DEBUG_EXIT	0xf4

static int debug_exit_io(struct vcpu *vcpu, void *opaque, uint16_t port,
			 bool is_write, unsigned size, uint32_t *val)
{
	struct domain *dom = vcpu->dom;
	char why[64];

	if (!is_write) {
		*val = ioport_all_ones(size);
		return 0;
	}
	dom->exit_code = ((*val & 0xff) << 1) | 1;
	snprintf(why, sizeof(why), "guest exited with code %d",
		 dom->exit_code);
	domain_raise(dom, DOM_EV_POWEROFF, why);
	return 0;
}

static int debug_exit_init(struct domain *dom, void *state, char *err,
			   size_t errlen)
{
	return ioport_register(&dom->ports, PORT_DEBUG_EXIT, 1, debug_exit_io,
			       NULL, "debug-exit");
}

static struct device_type debug_exit_device = {
	.name = "debug-exit",
	.order = 40,
	.stateless = "a write ends the domain at once; the exit code is the "
		     "domain's",
	.init = debug_exit_init,
};
DEVICE_REGISTER(debug_exit_device);
