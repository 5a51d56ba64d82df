/*
 * PCI bus 0 of a domain: configuration mechanism #1 (pci_cfg.c) in front
 * of up to 32 single-function devices, each with a 256-byte configuration
 * space, BARs the bus places in the 32-bit MMIO window (as firmware
 * would) and the guest may move, and a capability list.
 */
#ifndef XEN_DEV_PCI_H
#define XEN_DEV_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mmio.h"

struct domain;

#define PCI_SLOTS		32
/* Where BARs live: 1 MiB per slot from the start of the 32-bit hole. */
#define PCI_MMIO_WINDOW		0xC0000000ULL
#define PCI_MMIO_WINDOW_END	0xFC000000ULL	/* below the IOAPIC */
#define PCI_SLOT_MMIO		0x100000ULL

#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define  PCI_COMMAND_IO		0x1
#define  PCI_COMMAND_MEMORY	0x2
#define  PCI_COMMAND_MASTER	0x4
#define PCI_STATUS		0x06
#define  PCI_STATUS_CAP_LIST	0x10
#define PCI_REVISION_ID		0x08
#define PCI_CLASS_PROG		0x09
#define PCI_HEADER_TYPE		0x0e
#define PCI_BAR0		0x10
#define PCI_SUBSYSTEM_VENDOR_ID	0x2c
#define PCI_SUBSYSTEM_ID	0x2e
#define PCI_CAPABILITY_LIST	0x34
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_INTERRUPT_PIN	0x3d

#define PCI_CAP_ID_MSIX		0x11
#define PCI_CAP_ID_VNDR		0x09

struct pci_function;

struct pci_bar {
	uint64_t size;			/* 0: no BAR here */
	bool mem64;			/* takes this and the next BAR */
	int mmio;			/* range in the domain's MMIO map */
	uint64_t addr;			/* where it decodes, if mapped */
	bool mapped;
	mmio_fn fn;
	void *opaque;
};

struct pci_function {
	struct domain *dom;
	int slot;			/* -1 until plugged */
	const char *name;
	uint8_t cfg[256];
	uint8_t wmask[256];		/* bits the guest may write */
	struct pci_bar bar[6];
	uint8_t last_cap;		/* offset of the last capability */
	uint16_t cap_free;		/* where the next one goes */
	void *opaque;
	/* Optional: after a guest write of [off, off + len). */
	void (*config_written)(struct pci_function *f, unsigned off,
			       unsigned len);
	/* Optional: before a guest read of [off, off + len). */
	void (*config_read)(struct pci_function *f, unsigned off,
			    unsigned len);
	/* Optional: bar `i` was mapped, unmapped or moved. */
	void (*bar_changed)(struct pci_function *f, unsigned i);
};

static inline uint16_t pci_get16(const struct pci_function *f, unsigned off)
{
	uint16_t v;

	memcpy(&v, f->cfg + off, 2);
	return v;
}

static inline uint32_t pci_get32(const struct pci_function *f, unsigned off)
{
	uint32_t v;

	memcpy(&v, f->cfg + off, 4);
	return v;
}

static inline void pci_set16(struct pci_function *f, unsigned off,
			     uint16_t v)
{
	memcpy(f->cfg + off, &v, 2);
}

static inline void pci_set32(struct pci_function *f, unsigned off,
			     uint32_t v)
{
	memcpy(f->cfg + off, &v, 4);
}

/* A function's header: ids, class (class << 16 | subclass << 8 | prog). */
void pci_function_init(struct pci_function *f, const char *name,
		       uint16_t vendor, uint16_t device, uint8_t revision,
		       uint32_t class_code, uint16_t subsys_vendor,
		       uint16_t subsys_id);
/* A memory BAR of `size` bytes (a power of two >= 4 KiB). */
int pci_add_bar(struct pci_function *f, unsigned i, uint64_t size,
		bool mem64, mmio_fn fn, void *opaque);
/* A capability of `len` bytes (id and next included): its offset, or 0
 * when the space is full. */
unsigned pci_add_cap(struct pci_function *f, uint8_t id, unsigned len);
/*
 * Put f on the domain's bus at `slot` (1..31), placing its BARs in the
 * slot's part of the MMIO window with memory decoding on.  0 or -1.
 */
int pci_plug(struct domain *dom, struct pci_function *f, int slot);
void pci_unplug(struct pci_function *f);
/* Set the whole configuration space (restore) and map the BARs it says. */
void pci_load_config(struct pci_function *f, const uint8_t cfg[256]);

#endif
