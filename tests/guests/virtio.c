/*
 * Virtio guest: scans PCI bus 0, finds the virtio 1.x (modern) devices,
 * drives virtio-blk, virtio-rng and virtio-net through split virtqueues
 * and reports what it saw, one line per fact (see README.md, "Virtio
 * guest").  Command line: test=NAME[,NAME...] and the tests' options.
 */
#include "virtio.h"

#define MAX_FNS         64
#define MAX_VDEVS       16
#define DMA_POOL_SIZE   (512 * 1024)

u64 tsc_khz;
u64 timeout_ms;
u64 qsize_max;
int failures;

static struct pci_fn fns[MAX_FNS];
static struct vdev vdevs[MAX_VDEVS];
static int nr_vdevs;
static u8 dma_pool[DMA_POOL_SIZE] __attribute__((aligned(4096)));
static u32 dma_used;

static void finish(int code)
{
    if (code == EXIT_OK && failures)
        code = EXIT_FAIL;
    if (code == EXIT_OK)
        gprintf("VIRTIO: result=pass\n");
    else
        gprintf("VIRTIO: result=fail code=%d failures=%d\n", code,
                failures);
    gprintf("VIRTIO: done\n");
    outb(DEBUG_EXIT_PORT, (u8)code);
    gprintf("VIRTIO: still alive\n");
    spin_forever();
}

u64 ms_to_tsc(u64 ms)
{
    return ms * tsc_khz;
}

void check_failed(const char *what)
{
    failures++;
    gprintf("VIRTIO: check failed: %s\n", what);
}

void *dma_alloc(u32 size)
{
    void *p = dma_pool + dma_used;

    size = (size + 4095) & ~4095u;
    if (size > DMA_POOL_SIZE - dma_used) {
        gprintf("VIRTIO: out of DMA memory\n");
        finish(EXIT_NODEV);
    }
    dma_used += size;
    return p;
}

u64 cmdline_num(const char *key, u64 def)
{
    char buf[32];
    u64 v;

    if (!cmdline_get(boot_info.cmdline, key, buf, sizeof(buf)))
        return def;
    if (parse_u64(buf, &v))
        return v;
    gprintf("virtio guest: bad value %s=%s, using the default\n", key, buf);
    return def;
}

u32 crc32(const void *buf, u32 len)
{
    const u8 *p = buf;
    u32 crc = 0xffffffff;

    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
    }
    return ~crc;
}

void print_hex(const u8 *p, u32 len)
{
    for (u32 i = 0; i < len; i++)
        gprintf("%02x", p[i]);
}

static const char *const generic_features[] = {
    [VIRTIO_F_INDIRECT_DESC] = "INDIRECT_DESC",
    [VIRTIO_F_EVENT_IDX] = "EVENT_IDX",
    [VIRTIO_F_VERSION_1] = "VERSION_1",
    [VIRTIO_F_ACCESS_PLATFORM] = "ACCESS_PLATFORM",
    [VIRTIO_F_RING_PACKED] = "RING_PACKED",
    [35] = "IN_ORDER",
    [36] = "ORDER_PLATFORM",
    [37] = "SR_IOV",
    [38] = "NOTIFICATION_DATA",
    [39] = "NOTIF_CONFIG_DATA",
    [40] = "RING_RESET",
};

void print_features(const char *prefix, u64 f, const char *const *names,
                    int nr_names)
{
    const int nr_generic = sizeof(generic_features) /
                           sizeof(generic_features[0]);

    gprintf("%s features=0x%lx", prefix, (unsigned long)f);
    for (int bit = 0; bit < 64; bit++) {
        const char *name = NULL;

        if (!(f & 1ull << bit))
            continue;
        if (bit < nr_names)
            name = names[bit];
        if (!name && bit < nr_generic)
            name = generic_features[bit];
        if (name)
            gprintf(" %s", name);
        else
            gprintf(" bit%d", bit);
    }
    gprintf("\n");
}

void print_status(int st)
{
    if (st < 0)
        gprintf("timeout");
    else
        gprintf("%d", st);
}

static const char *type_name(u16 type)
{
    switch (type) {
    case VIRTIO_ID_NET:
        return "net";
    case VIRTIO_ID_BLK:
        return "blk";
    case 3:
        return "console";
    case VIRTIO_ID_RNG:
        return "rng";
    case 5:
        return "balloon";
    case 8:
        return "scsi";
    case 9:
        return "9p";
    case 16:
        return "gpu";
    case 18:
        return "input";
    case 19:
        return "vsock";
    default:
        return "other";
    }
}

struct vdev *find_vdev(u16 type, int nth)
{
    for (int i = 0; i < nr_vdevs; i++)
        if (vdevs[i].type == type && nth-- == 0)
            return &vdevs[i];
    return NULL;
}

static void scan(void)
{
    int n = pci_scan(fns, MAX_FNS);

    gprintf("PCI: functions=%d\n", n);
    for (int i = 0; i < n && nr_vdevs < MAX_VDEVS; i++) {
        const struct pci_fn *f = &fns[i];
        struct vdev *d = &vdevs[nr_vdevs];
        int legacy = f->device < 0x1040;

        if (f->vendor != VIRTIO_VENDOR || f->device < 0x1000 ||
            f->device > 0x107f)
            continue;
        d->type = legacy ? pci_read16(f, PCI_SUBSYS_ID) :
                  (u16)(f->device - 0x1040);
        d->name = type_name(d->type);
        gprintf("VIRTIO: found 00:%02x.%u %04x:%04x %s%s\n", f->dev, f->fn,
                f->vendor, f->device, d->name,
                legacy ? " transitional" : "");
        if (virtio_probe(d, f) == 0)
            nr_vdevs++;
        else
            memset(d, 0, sizeof(*d));
    }
    gprintf("VIRTIO: devices=%d\n", nr_vdevs);
}

/* Runs one named test: 0 done, -1 unknown name. */
static int run_test(const char *t)
{
    gprintf("VIRTIO: test %s\n", t);
    if (!strcmp(t, "scan"))
        return 0;
    if (!strcmp(t, "blk"))
        return test_blk(0);
    if (!strcmp(t, "blk-msix"))
        return test_blk(1);
    if (!strcmp(t, "blk-loop"))
        return test_blk_loop();
    if (!strcmp(t, "rng"))
        return test_rng();
    if (!strcmp(t, "net"))
        return test_net();
    if (!memcmp(t, "bad-", 4))
        return test_bad(t + 4);
    return -1;
}

void guest_main(u32 mbi_phys)
{
    char tests[128], *t;
    int rc = EXIT_OK;

    boot_info_init(mbi_phys);
    if (!cmdline_get(boot_info.cmdline, "test", tests, sizeof(tests)))
        memcpy(tests, "scan", 5);
    timeout_ms = cmdline_num("timeout", 2000);
    qsize_max = cmdline_num("qsize", VQ_MAX_SIZE);
    if (qsize_max < 1 || qsize_max > VQ_MAX_SIZE) {
        gprintf("virtio guest: bad value qsize=%lu, using the default\n",
                (unsigned long)qsize_max);
        qsize_max = VQ_MAX_SIZE;
    }
    tsc_khz = tsc_calibrate();
    gprintf("VIRTIO: guest test=%s tsc_khz=%lu timeout_ms=%lu qsize=%lu\n",
            tests, (unsigned long)tsc_khz, (unsigned long)timeout_ms,
            (unsigned long)qsize_max);
    scan();
    t = tests;
    while (*t && rc == EXIT_OK) {
        char *end = t;

        while (*end && *end != ',')
            end++;
        if (*end)
            *end++ = 0;
        if (*t) {
            int r = run_test(t);

            if (r < 0) {
                gprintf("VIRTIO: unknown test=%s\n", t);
                rc = EXIT_USAGE;
            } else if (r > 0) {
                rc = r;
            }
        }
        t = end;
    }
    finish(rc);
}
