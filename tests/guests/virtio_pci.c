/*
 * Virtio over PCI, modern interface: capabilities, initialisation,
 * split virtqueues, MSI-X (see virtio.h).
 */
#include "virtio.h"

#define VIRTIO_PCI_CAP_COMMON   1
#define VIRTIO_PCI_CAP_NOTIFY   2
#define VIRTIO_PCI_CAP_ISR      3
#define VIRTIO_PCI_CAP_DEVICE   4
#define VIRTIO_PCI_CAP_PCI      5

#define LAPIC_ID                0x20

#define PIC1_DATA               0x21
#define PIC2_DATA               0xa1

static const char *const cap_names[] = {
    "?", "common", "notify", "isr", "device", "pci", "?", "?", "shm",
};

static void print_bdf(const struct vdev *d)
{
    gprintf("VIRTIO: 00:%02x.%u ", d->pci.dev, d->pci.fn);
}

/* One vendor capability: records the first of each type. */
static void probe_cap(struct vdev *d, u8 pos)
{
    const struct pci_fn *f = &d->pci;
    u8 type = pci_read8(f, pos + 3), bar = pci_read8(f, pos + 4);
    u32 off = pci_read32(f, pos + 8), len = pci_read32(f, pos + 12);
    u64 base = bar <= 5 ? pci_bar_addr(f, bar) : 0;
    u64 addr = base && type != VIRTIO_PCI_CAP_PCI ? base + off : 0;
    u32 mult = 0;
    u64 *slot = NULL;

    print_bdf(d);
    gprintf("cap %s bar=%u offset=0x%x length=0x%x addr=0x%lx",
            type < sizeof(cap_names) / sizeof(cap_names[0]) ?
            cap_names[type] : "?", bar, off, len, (unsigned long)addr);
    switch (type) {
    case VIRTIO_PCI_CAP_COMMON:
        slot = &d->common;
        break;
    case VIRTIO_PCI_CAP_NOTIFY:
        mult = pci_read32(f, pos + 16);
        gprintf(" multiplier=%u", mult);
        if (!d->notify)
            d->notify_mult = mult;
        slot = &d->notify;
        break;
    case VIRTIO_PCI_CAP_ISR:
        slot = &d->isr;
        break;
    case VIRTIO_PCI_CAP_DEVICE:
        slot = &d->devcfg;
        break;
    }
    gprintf("\n");
    if (addr + len > 0x100000000ull) {
        print_bdf(d);
        gprintf("cap %s above 4 GiB, not mapped\n", cap_names[type]);
        return;
    }
    if (slot && !*slot && bar <= 5)
        *slot = addr;
}

static void probe_msix(struct vdev *d, u8 pos)
{
    const struct pci_fn *f = &d->pci;
    u16 ctl = pci_read16(f, pos + 2);
    u32 table = pci_read32(f, pos + 4), pba = pci_read32(f, pos + 8);
    u64 base = pci_bar_addr(f, table & 7);

    d->msix_cap = pos;
    d->msix_size = (ctl & 0x7ff) + 1;
    d->msix_table = base ? base + (table & ~7u) : 0;
    print_bdf(d);
    gprintf("msix size=%u table_bar=%u table_offset=0x%x pba_bar=%u "
            "pba_offset=0x%x table=0x%lx\n", d->msix_size, table & 7,
            table & ~7u, pba & 7, pba & ~7u, (unsigned long)d->msix_table);
}

int virtio_probe(struct vdev *d, const struct pci_fn *f)
{
    u16 cmd;

    d->pci = *f;
    for (u8 pos = pci_next_cap(f, 0, 0); pos; pos = pci_next_cap(f, pos, 0)) {
        u8 id = pci_read8(f, pos);

        if (id == PCI_CAP_ID_VNDR)
            probe_cap(d, pos);
        else if (id == PCI_CAP_ID_MSIX)
            probe_msix(d, pos);
    }
    cmd = pci_read16(f, PCI_COMMAND);
    if ((cmd & (PCI_CMD_MEM | PCI_CMD_MASTER)) !=
        (PCI_CMD_MEM | PCI_CMD_MASTER))
        pci_write16(f, PCI_COMMAND, cmd | PCI_CMD_MEM | PCI_CMD_MASTER);
    print_bdf(d);
    gprintf("command=0x%04x was=0x%04x\n", pci_read16(f, PCI_COMMAND), cmd);
    if (!d->common || !d->notify || !d->isr) {
        print_bdf(d);
        gprintf("unusable: common/notify/isr capability missing\n");
        return -1;
    }
    return 0;
}

u8 virtio_status(struct vdev *d)
{
    return mmio_read8(d->common + VCOM_STATUS);
}

static void set_status(struct vdev *d, u8 bits)
{
    mmio_write8(d->common + VCOM_STATUS, virtio_status(d) | bits);
}

int virtio_init(struct vdev *d, u64 want)
{
    u64 c = d->common, deadline = rdtsc() + ms_to_tsc(timeout_ms);
    u8 st;

    mmio_write8(c + VCOM_STATUS, 0);
    while ((st = virtio_status(d)) != 0 && rdtsc() < deadline)
        cpu_relax();
    print_bdf(d);
    gprintf("reset status=0x%02x\n", st);
    set_status(d, VIRTIO_ACKNOWLEDGE);
    set_status(d, VIRTIO_DRIVER);
    mmio_write32(c + VCOM_DFSELECT, 0);
    d->features = mmio_read32(c + VCOM_DF);
    mmio_write32(c + VCOM_DFSELECT, 1);
    d->features |= (u64)mmio_read32(c + VCOM_DF) << 32;
    d->accepted = d->features & (want | 1ull << VIRTIO_F_VERSION_1);
    print_bdf(d);
    gprintf("device_features=0x%lx driver_features=0x%lx\n",
            (unsigned long)d->features, (unsigned long)d->accepted);
    if (!(d->features & 1ull << VIRTIO_F_VERSION_1)) {
        print_bdf(d);
        gprintf("no VERSION_1\n");
        set_status(d, VIRTIO_FAILED);
        return -1;
    }
    mmio_write32(c + VCOM_GFSELECT, 0);
    mmio_write32(c + VCOM_GF, (u32)d->accepted);
    mmio_write32(c + VCOM_GFSELECT, 1);
    mmio_write32(c + VCOM_GF, (u32)(d->accepted >> 32));
    set_status(d, VIRTIO_FEATURES_OK);
    st = virtio_status(d);
    print_bdf(d);
    gprintf("features_ok=%d status=0x%02x\n",
            !!(st & VIRTIO_FEATURES_OK), st);
    if (!(st & VIRTIO_FEATURES_OK)) {
        set_status(d, VIRTIO_FAILED);
        return -1;
    }
    mmio_write16(c + VCOM_MSIX_CONFIG, VIRTIO_NO_VECTOR);
    return 0;
}

static u16 pow2_floor(u16 n)
{
    u16 p = 1;

    while (p <= n / 2)
        p <<= 1;
    return p;
}

int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 vector)
{
    u64 c = d->common;
    u16 max, size, noff, vec;
    u64 desc, avail, used;

    mmio_write16(c + VCOM_Q_SELECT, index);
    max = mmio_read16(c + VCOM_Q_SIZE);
    if (!max) {
        print_bdf(d);
        gprintf("queue=%u absent\n", index);
        return -1;
    }
    size = pow2_floor(max < qsize_max ? max : (u16)qsize_max);
    desc = (u64)(uintptr_t)dma_alloc(16u * size);
    avail = (u64)(uintptr_t)dma_alloc(6u + 2u * size);
    used = (u64)(uintptr_t)dma_alloc(6u + 8u * size);
    mmio_write16(c + VCOM_Q_SIZE, size);
    mmio_write32(c + VCOM_Q_DESCLO, (u32)desc);
    mmio_write32(c + VCOM_Q_DESCHI, (u32)(desc >> 32));
    mmio_write32(c + VCOM_Q_AVAILLO, (u32)avail);
    mmio_write32(c + VCOM_Q_AVAILHI, (u32)(avail >> 32));
    mmio_write32(c + VCOM_Q_USEDLO, (u32)used);
    mmio_write32(c + VCOM_Q_USEDHI, (u32)(used >> 32));
    mmio_write16(c + VCOM_Q_MSIX, vector);
    vec = mmio_read16(c + VCOM_Q_MSIX);
    noff = mmio_read16(c + VCOM_Q_NOFF);
    mmio_write16(c + VCOM_Q_ENABLE, 1);
    *q = (struct vq) {
        .dev = d, .index = index, .size = size,
        .desc = (volatile struct vring_desc *)(uintptr_t)desc,
        .avail = (volatile struct vring_avail *)(uintptr_t)avail,
        .used = (volatile struct vring_used *)(uintptr_t)used,
        .notify = d->notify + (u64)noff * d->notify_mult,
    };
    print_bdf(d);
    gprintf("queue=%u max_size=%u size=%u notify_off=%u msix_vector=0x%x "
            "enable=%u\n", index, max, size, noff, vec,
            mmio_read16(c + VCOM_Q_ENABLE));
    if (vec != vector)
        return -1;
    return 0;
}

void virtio_driver_ok(struct vdev *d)
{
    set_status(d, VIRTIO_DRIVER_OK);
    print_bdf(d);
    gprintf("driver_ok status=0x%02x\n", virtio_status(d));
}

void vq_add(struct vq *q, u16 head, const struct vbuf *b, int n)
{
    for (int i = 0; i < n; i++) {
        u16 at = (u16)((head + i) % q->size);

        q->desc[at].addr = b[i].addr;
        q->desc[at].len = b[i].len;
        q->desc[at].flags = (b[i].write ? VRING_DESC_F_WRITE : 0) |
                            (i + 1 < n ? VRING_DESC_F_NEXT : 0);
        q->desc[at].next = (u16)((at + 1) % q->size);
    }
    vq_push(q, head);
}

void vq_push(struct vq *q, u16 head)
{
    q->avail->ring[q->avail_idx % q->size] = head;
    mb();
    q->avail->idx = ++q->avail_idx;
    mb();
}

void vq_kick(struct vq *q)
{
    mmio_write16(q->notify, q->index);
}

int vq_wait(struct vq *q, u64 ms, u32 *id, u32 *len)
{
    u64 deadline = rdtsc() + ms_to_tsc(ms);

    while (q->used->idx == q->last_used) {
        if (rdtsc() > deadline)
            return -1;
        cpu_relax();
    }
    mb();
    *id = q->used->ring[q->last_used % q->size].id;
    *len = q->used->ring[q->last_used % q->size].len;
    q->last_used++;
    return 0;
}

s64 vq_request(struct vq *q, const struct vbuf *b, int n)
{
    u32 id, len;

    vq_add(q, 0, b, n);
    vq_kick(q);
    if (vq_wait(q, timeout_ms, &id, &len) < 0)
        return -1;
    return len;
}

int msix_enable(struct vdev *d, u16 entry)
{
    u64 e = d->msix_table + 16u * entry;
    u32 id, svr;
    u16 ctl;

    if (!d->msix_cap || !d->msix_table || entry >= d->msix_size) {
        gprintf("MSIX: no usable MSI-X capability\n");
        return -1;
    }
    /* The 8259s stay masked: their vectors have no IDT gate. */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    id = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
    svr = mmio_read32(LAPIC_BASE + LAPIC_SVR);
    mmio_write32(e + 0, LAPIC_BASE | id << 12);
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, MSI_VECTOR);
    mmio_write32(e + 12, 0);                        /* unmasked */
    ctl = pci_read16(&d->pci, d->msix_cap + 2);
    ctl = (ctl | 0x8000) & ~0x4000;                 /* enable, no mask */
    pci_write16(&d->pci, d->msix_cap + 2, ctl);
    gprintf("MSIX: apic_id=%u svr=0x%x entry=%u address=0x%x data=0x%x "
            "control=0x%04x\n", id, svr, entry, mmio_read32(e),
            mmio_read32(e + 8), pci_read16(&d->pci, d->msix_cap + 2));
    return 0;
}
