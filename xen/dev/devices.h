/*
 * The registry of every emulated device a domain has.  Each device type
 * is one entry; adding a device means adding it here, which is where
 * later state-saving work hooks in.
 */
#ifndef XEN_DEV_DEVICES_H
#define XEN_DEV_DEVICES_H

#include <stddef.h>
#include <stdint.h>

struct domain;
struct stream_writer;

/*
 * Every device type must be able to save and load itself: a device with
 * no record would silently lose its state across save/restore, live
 * update and migration.  devices_check() refuses such a registry at
 * start-up and tests/test_save.py checks each type's record in a stream.
 */
struct device_type {
	const char *name;
	uint32_t rec_type;		/* its record in the state stream */
	int (*init)(struct domain *dom);
	void (*destroy)(struct domain *dom);
	int (*save)(struct domain *dom, struct stream_writer *w);
	int (*load)(struct domain *dom, const void *body, size_t len,
		    char *err, size_t errlen);
};

int devices_check(void);
int devices_init(struct domain *dom);
void devices_destroy(struct domain *dom);
int devices_save(struct domain *dom, struct stream_writer *w);
/* 1 if the record belongs to a device and was loaded, 0 if not a device
 * record, -1 on error. */
int devices_load(struct domain *dom, uint32_t type, const void *body,
		 size_t len, char *err, size_t errlen);
/* Registry index of the device whose record type this is (or -1). */
int devices_index(uint32_t rec_type);
/* Names of all registered device types, NULL-terminated. */
const char *device_type_name(unsigned i);

/* Reset, debug-exit, PCI config and absent legacy ports (board.c). */
int board_init(struct domain *dom);
void board_destroy(struct domain *dom);
int board_save(struct domain *dom, struct stream_writer *w);
int board_load(struct domain *dom, const void *body, size_t len, char *err,
	       size_t errlen);

#endif
