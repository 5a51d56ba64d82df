/*
 * PCI configuration mechanism #1 (ports 0xCF8/0xCFC) for the test guests:
 * bus 0 only, BARs used as the firmware left them.
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "lib.h"

#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define PCI_STATUS              0x06
#define PCI_CLASS_REV           0x08
#define PCI_HEADER_TYPE         0x0e
#define PCI_BAR0                0x10
#define PCI_SUBSYS_ID           0x2e
#define PCI_CAP_PTR             0x34

#define PCI_CMD_IO              0x0001
#define PCI_CMD_MEM             0x0002
#define PCI_CMD_MASTER          0x0004
#define PCI_STATUS_CAP_LIST     0x0010

#define PCI_CAP_ID_MSIX         0x11
#define PCI_CAP_ID_VNDR         0x09

struct pci_fn {
    u8 dev, fn;
    u16 vendor, device;
    u32 class;              /* class << 16 | subclass << 8 | prog-if */
};

u32 pci_read32(const struct pci_fn *f, u8 off);
u16 pci_read16(const struct pci_fn *f, u8 off);
u8 pci_read8(const struct pci_fn *f, u8 off);
void pci_write16(const struct pci_fn *f, u8 off, u16 v);

/* Address of BAR `bar` (memory BARs, 64-bit ones combined); 0 if none. */
u64 pci_bar_addr(const struct pci_fn *f, unsigned int bar);
/*
 * Next capability after the one at `pos` (0: the first), any id if `id`
 * is 0; returns its offset or 0.  At most 48 steps (a looping list ends).
 */
u8 pci_next_cap(const struct pci_fn *f, u8 pos, u8 id);

/*
 * Scans bus 0 (every function of multi-function devices), printing one
 * line per function; fills at most `max` entries, returns the count.
 */
int pci_scan(struct pci_fn *out, int max);

#endif /* GUEST_PCI_H */
