/*
 * The registry of every emulated device a domain has.  Each device type
 * is one entry; adding a device means adding it here, which is where
 * later state-saving work hooks in.
 */
#ifndef XEN_DEV_DEVICES_H
#define XEN_DEV_DEVICES_H

struct domain;

struct device_type {
	const char *name;
	int (*init)(struct domain *dom);
	void (*destroy)(struct domain *dom);
};

int devices_init(struct domain *dom);
void devices_destroy(struct domain *dom);

/* Reset, debug-exit, PCI config and absent legacy ports (board.c). */
int board_init(struct domain *dom);
void board_destroy(struct domain *dom);

#endif
