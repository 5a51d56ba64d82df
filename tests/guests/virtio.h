/*
 * Virtio 1.x over PCI (modern interface, virtio 1.2 spec §4.1) for the
 * virtio test guest: device discovery through the vendor capabilities,
 * the §3.1.1 initialisation, split virtqueues polled for completion, and
 * MSI-X delivered to the local APIC.  See README.md, "Virtio guest".
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "lib.h"
#include "pci.h"

#define VIRTIO_VENDOR           0x1af4
#define VIRTIO_ID_NET           1
#define VIRTIO_ID_BLK           2
#define VIRTIO_ID_RNG           4

/* Device status (§2.1). */
#define VIRTIO_ACKNOWLEDGE      0x01
#define VIRTIO_DRIVER           0x02
#define VIRTIO_DRIVER_OK        0x04
#define VIRTIO_FEATURES_OK      0x08
#define VIRTIO_NEEDS_RESET      0x40
#define VIRTIO_FAILED           0x80

/* Device-independent feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_EVENT_IDX      29
#define VIRTIO_F_VERSION_1      32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED    34

#define VIRTIO_NO_VECTOR        0xffff

/* Split virtqueue (§2.7). */
#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4

struct vring_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

struct vring_avail {
    u16 flags;
    u16 idx;
    u16 ring[];
};

struct vring_used_elem {
    u32 id;
    u32 len;
};

struct vring_used {
    u16 flags;
    u16 idx;
    struct vring_used_elem ring[];
};

#define VQ_MAX_SIZE             256

struct vdev;

struct vq {
    struct vdev *dev;
    u16 index;
    u16 size;
    u16 avail_idx;          /* next avail->idx the driver publishes */
    u16 last_used;          /* used->idx consumed so far */
    volatile struct vring_desc *desc;
    volatile struct vring_avail *avail;
    volatile struct vring_used *used;
    u64 notify;             /* MMIO address of this queue's notifier */
};

/* One buffer of a descriptor chain. */
struct vbuf {
    u64 addr;
    u32 len;
    int write;              /* device-writable */
};

struct vdev {
    struct pci_fn pci;
    u16 type;               /* virtio device id */
    const char *name;
    u64 common, notify, isr, devcfg;        /* MMIO addresses, 0: absent */
    u32 notify_mult;
    u8 msix_cap;            /* config-space offset of MSI-X, 0: none */
    u16 msix_size;
    u64 msix_table;
    u64 features;           /* what the device offered */
    u64 accepted;           /* what the driver accepted */
};

/* ---- MMIO accessors (one mov each, so any hypervisor can decode them;
 * the 32-bit ones are in lib.h) */
static inline u8 mmio_read8(u64 a)
{
    u8 v;
    __asm__ __volatile__("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
    return v;
}

static inline u16 mmio_read16(u64 a)
{
    u16 v;
    __asm__ __volatile__("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}

static inline void mmio_write8(u64 a, u8 v)
{
    __asm__ __volatile__("movb %0, (%1)" : : "q"(v), "r"(a) : "memory");
}

static inline void mmio_write16(u64 a, u16 v)
{
    __asm__ __volatile__("movw %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static inline void mb(void)
{
    __asm__ __volatile__("mfence" ::: "memory");
}

/* ---- common configuration (§4.1.4.3) */
#define VCOM_DFSELECT           0x00
#define VCOM_DF                 0x04
#define VCOM_GFSELECT           0x08
#define VCOM_GF                 0x0c
#define VCOM_MSIX_CONFIG        0x10
#define VCOM_NUM_QUEUES         0x12
#define VCOM_STATUS             0x14
#define VCOM_CFG_GENERATION     0x15
#define VCOM_Q_SELECT           0x16
#define VCOM_Q_SIZE             0x18
#define VCOM_Q_MSIX             0x1a
#define VCOM_Q_ENABLE           0x1c
#define VCOM_Q_NOFF             0x1e
#define VCOM_Q_DESCLO           0x20
#define VCOM_Q_DESCHI           0x24
#define VCOM_Q_AVAILLO          0x28
#define VCOM_Q_AVAILHI          0x2c
#define VCOM_Q_USEDLO           0x30
#define VCOM_Q_USEDHI           0x34

/* Debug-exit codes (QEMU exits with code << 1 | 1). */
#define EXIT_OK                 0
#define EXIT_FAIL               1       /* a check failed */
#define EXIT_NODEV              2       /* a needed device missing/unusable */
#define EXIT_USAGE              3       /* unknown test */

/* virtio.c: settings and results shared by the tests */
extern u64 tsc_khz;
extern u64 timeout_ms;      /* bounded wait for one request */
extern u64 qsize_max;       /* queue size cap (power of 2) */
extern int failures;        /* checks that failed */
u64 ms_to_tsc(u64 ms);
void check_failed(const char *what);
/* Finds the `nth` virtio device of `type` found by the scan; NULL if none. */
struct vdev *find_vdev(u16 type, int nth);
/* Static memory for rings and buffers (page-aligned, zeroed). */
void *dma_alloc(u32 size);
/* The value of key=N on the command line, or `def`. */
u64 cmdline_num(const char *key, u64 def);
u32 crc32(const void *buf, u32 len);
void print_hex(const u8 *p, u32 len);
/* "PREFIX features=0x... NAME..." with names[bit] (NULL: generic/bitN). */
void print_features(const char *prefix, u64 f, const char *const *names,
                    int nr_names);
/* A request's status: "timeout" for < 0, else the number. */
void print_status(int st);

/* virtio_pci.c */
int virtio_probe(struct vdev *d, const struct pci_fn *f);
u8 virtio_status(struct vdev *d);
/*
 * Reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 plus those in `want`
 * that the device offers), FEATURES_OK and checks it stuck.  0 or -1.
 */
int virtio_init(struct vdev *d, u64 want);
/* Sets up queue `index` (size min(max, qsize_max)) with MSI-X `vector`. */
int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 vector);
void virtio_driver_ok(struct vdev *d);
/* Writes a chain of `n` buffers at descriptor `head` and publishes it. */
void vq_add(struct vq *q, u16 head, const struct vbuf *b, int n);
/* Publishes the chain at descriptor `head` in the avail ring. */
void vq_push(struct vq *q, u16 head);
void vq_kick(struct vq *q);
/* Waits up to `ms` for a used entry; 0 and its id/len, -1 on timeout. */
int vq_wait(struct vq *q, u64 ms, u32 *id, u32 *len);
/* Adds one chain at descriptor 0, kicks, waits: the used length or -1. */
s64 vq_request(struct vq *q, const struct vbuf *b, int n);

/* MSI-X: table entry `entry` → the local APIC (vector MSI_VECTOR). */
int msix_enable(struct vdev *d, u16 entry);

/*
 * The tests: EXIT_OK when they ran (failed checks go through
 * check_failed()), EXIT_NODEV when the device is missing or unusable.
 */
int test_blk(int msix);
int test_blk_loop(void);
int test_rng(void);
int test_net(void);
int test_bad(const char *kind);

#endif /* GUEST_VIRTIO_H */
