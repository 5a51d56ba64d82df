/* The device registry: every emulated device type of a domain. */
#include <stdio.h>

#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "rec_table.h"
#include "stream.h"

static const struct device_type device_types[] = {
	{ "board", REC_DEV_BOARD, board_init, board_destroy, board_save,
	  board_load },
	{ "uart", REC_DEV_UART, uart_init, uart_destroy, uart_save,
	  uart_load },
	{ "rtc", REC_DEV_RTC, rtc_init, rtc_destroy, rtc_save, rtc_load },
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

int devices_check(void)
{
	unsigned i, j;

	for (i = 0; i < NR_DEVICE_TYPES; i++) {
		const struct device_type *t = &device_types[i];

		const struct rec_desc *d = rec_desc(t->rec_type);

		/* Restore refuses a stream without the record (rec_table.c). */
		if (!t->save || !t->load || !d || d->phase != PH_DEVICES ||
		    !(d->flags & REC_REQUIRED)) {
			log_err("device %s has no state record: refusing to run",
				t->name);
			return -1;
		}
		for (j = 0; j < i; j++) {
			if (device_types[j].rec_type == t->rec_type) {
				log_err("devices %s and %s share record %#x",
					device_types[j].name, t->name,
					t->rec_type);
				return -1;
			}
		}
	}
	return 0;
}

int devices_index(uint32_t rec_type)
{
	unsigned i;

	for (i = 0; i < NR_DEVICE_TYPES; i++)
		if (device_types[i].rec_type == rec_type)
			return i;
	return -1;
}

const char *device_type_name(unsigned i)
{
	return i < NR_DEVICE_TYPES ? device_types[i].name : NULL;
}

int devices_save(struct domain *dom, struct stream_writer *w)
{
	unsigned i;

	for (i = 0; i < NR_DEVICE_TYPES; i++)
		if (device_types[i].save(dom, w) < 0)
			return -1;
	return 0;
}

int devices_load(struct domain *dom, uint32_t type, const void *body,
		 size_t len, char *err, size_t errlen)
{
	unsigned i;

	for (i = 0; i < NR_DEVICE_TYPES; i++) {
		if (device_types[i].rec_type != type)
			continue;
		return device_types[i].load(dom, body, len, err, errlen) < 0 ?
		       -1 : 1;
	}
	return 0;
}
