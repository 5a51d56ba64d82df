/*
 * Legacy ISA ports a PC has but that have nothing behind them here: they
 * float (reads are all-ones, writes are dropped), so probing guests find
 * no device instead of the domain crashing on an unknown port.
 */
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"

static int absent_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		     bool is_write, unsigned size, uint32_t *val)
{
	if (!is_write)
		*val = ioport_all_ones(size);
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

static int absent_init(struct domain *dom, void *state, char *err,
		       size_t errlen)
{
	unsigned i;

	for (i = 0; i < sizeof(absent_ports) / sizeof(absent_ports[0]); i++)
		if (ioport_register(&dom->ports, absent_ports[i].base,
				    absent_ports[i].len, absent_io, NULL,
				    absent_ports[i].what) < 0)
			return -1;
	return 0;
}

static struct device_type absent_ports_device = {
	.name = "absent-ports",
	.order = 60,
	.stateless = "nothing is there: reads float high, writes are dropped",
	.init = absent_init,
};
DEVICE_REGISTER(absent_ports_device);
