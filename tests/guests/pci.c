/* PCI configuration mechanism #1, bus 0 (see pci.h). */
#include "pci.h"

#define PCI_ADDR_PORT   0xcf8
#define PCI_DATA_PORT   0xcfc

static void pci_select(const struct pci_fn *f, u8 off)
{
    outl(PCI_ADDR_PORT, 0x80000000u | (u32)f->dev << 11 |
         (u32)f->fn << 8 | (off & 0xfc));
}

u32 pci_read32(const struct pci_fn *f, u8 off)
{
    pci_select(f, off);
    return inl(PCI_DATA_PORT);
}

u16 pci_read16(const struct pci_fn *f, u8 off)
{
    pci_select(f, off);
    return inw(PCI_DATA_PORT + (off & 2));
}

u8 pci_read8(const struct pci_fn *f, u8 off)
{
    pci_select(f, off);
    return inb(PCI_DATA_PORT + (off & 3));
}

void pci_write16(const struct pci_fn *f, u8 off, u16 v)
{
    pci_select(f, off);
    outw(PCI_DATA_PORT + (off & 2), v);
}

u64 pci_bar_addr(const struct pci_fn *f, unsigned int bar)
{
    u32 lo;

    if (bar > 5)
        return 0;
    lo = pci_read32(f, PCI_BAR0 + 4 * bar);
    if (lo & 1)                             /* I/O BAR */
        return 0;
    if ((lo & 6) == 4 && bar < 5)           /* 64-bit */
        return (u64)pci_read32(f, PCI_BAR0 + 4 * (bar + 1)) << 32 |
               (lo & ~0xfu);
    return lo & ~0xfu;
}

u8 pci_next_cap(const struct pci_fn *f, u8 pos, u8 id)
{
    if (!pos) {
        if (!(pci_read16(f, PCI_STATUS) & PCI_STATUS_CAP_LIST))
            return 0;
        pos = pci_read8(f, PCI_CAP_PTR);
    } else {
        pos = pci_read8(f, pos + 1);
    }
    for (int steps = 0; steps < 48 && pos >= 0x40; steps++) {
        pos &= 0xfc;
        if (!id || pci_read8(f, pos) == id)
            return pos;
        pos = pci_read8(f, pos + 1);
    }
    return 0;
}

int pci_scan(struct pci_fn *out, int max)
{
    int n = 0;

    for (u8 dev = 0; dev < 32; dev++) {
        for (u8 fn = 0; fn < 8; fn++) {
            struct pci_fn f = { .dev = dev, .fn = fn };
            u32 id = pci_read32(&f, PCI_VENDOR_ID);

            if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
                if (fn == 0)
                    break;
                continue;
            }
            f.vendor = id & 0xffff;
            f.device = id >> 16;
            f.class = pci_read32(&f, PCI_CLASS_REV) >> 8;
            gprintf("PCI: 00:%02x.%u %04x:%04x class=%06x\n", dev, fn,
                    f.vendor, f.device, f.class);
            if (n < max)
                out[n++] = f;
            if (fn == 0 && !(pci_read8(&f, PCI_HEADER_TYPE) & 0x80))
                break;
        }
    }
    return n;
}
