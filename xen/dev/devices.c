/* The device registry: every emulated device type of a domain. */
#include "dev/devices.h"
#include "domain.h"
#include "log.h"

static const struct device_type device_types[] = {
	{ "board", board_init, board_destroy },
	{ "uart", uart_init, uart_destroy },
	{ "rtc", rtc_init, rtc_destroy },
};

#define NR_DEVICE_TYPES (sizeof(device_types) / sizeof(device_types[0]))

int devices_init(struct domain *dom)
{
	unsigned i;

	for (i = 0; i < NR_DEVICE_TYPES; i++) {
		if (device_types[i].init(dom) < 0) {
			log_err("d%u: device %s failed to initialise", dom->id,
				device_types[i].name);
			return -1;
		}
	}
	dom->devices_ready = true;
	return 0;
}

void devices_destroy(struct domain *dom)
{
	unsigned i;

	if (!dom->devices_ready)
		return;
	for (i = NR_DEVICE_TYPES; i-- > 0;)
		device_types[i].destroy(dom);
	dom->devices_ready = false;
}
