/*
 * Virtio guest: virtio-blk (device id 2).  Config, GET_ID, reads with a
 * CRC32 each, write + read back, FLUSH, DISCARD, WRITE_ZEROES; on a
 * read-only disk the write must fail with IOERR.  test=blk-msix does the
 * same with the queue's interrupts delivered through MSI-X.
 */
#include "virtio.h"

#define BLK_F_SIZE_MAX          1
#define BLK_F_SEG_MAX           2
#define BLK_F_GEOMETRY          4
#define BLK_F_RO                5
#define BLK_F_BLK_SIZE          6
#define BLK_F_FLUSH             9
#define BLK_F_TOPOLOGY          10
#define BLK_F_DISCARD           13
#define BLK_F_WRITE_ZEROES      14

#define BLK_T_IN                0
#define BLK_T_OUT               1
#define BLK_T_FLUSH             4
#define BLK_T_GET_ID            8
#define BLK_T_DISCARD           11
#define BLK_T_WRITE_ZEROES      13

#define BLK_S_IOERR             1

#define BLK_CFG_CAPACITY        0x00
#define BLK_CFG_SIZE_MAX        0x08
#define BLK_CFG_SEG_MAX         0x0c
#define BLK_CFG_BLK_SIZE        0x14
#define BLK_CFG_MAX_DISCARD     0x24
#define BLK_CFG_DISCARD_SEG     0x28
#define BLK_CFG_DISCARD_ALIGN   0x2c
#define BLK_CFG_MAX_WZ          0x30
#define BLK_CFG_WZ_SEG          0x34
#define BLK_CFG_WZ_UNMAP        0x38

#define IO_MAX                  4096
#define MAX_READS               8

static const char *const blk_features[] = {
    [0] = "BARRIER", [BLK_F_SIZE_MAX] = "SIZE_MAX",
    [BLK_F_SEG_MAX] = "SEG_MAX", [BLK_F_GEOMETRY] = "GEOMETRY",
    [BLK_F_RO] = "RO", [BLK_F_BLK_SIZE] = "BLK_SIZE", [7] = "SCSI",
    [BLK_F_FLUSH] = "FLUSH", [BLK_F_TOPOLOGY] = "TOPOLOGY",
    [11] = "CONFIG_WCE", [12] = "MQ", [BLK_F_DISCARD] = "DISCARD",
    [BLK_F_WRITE_ZEROES] = "WRITE_ZEROES", [15] = "LIFETIME",
    [16] = "SECURE_ERASE", [17] = "ZONED",
};

struct blk_hdr {
    u32 type;
    u32 reserved;
    u64 sector;
};

struct blk_range {
    u64 sector;
    u32 num_sectors;
    u32 flags;
};

struct blk {
    struct vdev *d;
    struct vq q;
    u64 capacity;           /* 512-byte sectors */
    u32 io;                 /* bytes per read/write: the block size */
    struct blk_hdr *hdr;
    u8 *data, *pattern, *status;
    int requests;
};

static struct blk blk;

static int offered(int bit)
{
    return !!(blk.d->features & 1ull << bit);
}

/*
 * One request: header, an optional data buffer (device-writable for
 * reads), status.  Returns the status byte or -1 on timeout.
 */
static int blk_req(u32 type, u64 sector, void *data, u32 len, int dev_writes)
{
    struct vbuf b[3];
    int n = 0;

    blk.hdr->type = type;
    blk.hdr->reserved = 0;
    blk.hdr->sector = sector;
    *blk.status = 0xee;
    b[n++] = (struct vbuf) { (u64)(uintptr_t)blk.hdr, sizeof(*blk.hdr), 0 };
    if (len)
        b[n++] = (struct vbuf) { (u64)(uintptr_t)data, len, dev_writes };
    b[n++] = (struct vbuf) { (u64)(uintptr_t)blk.status, 1, 1 };
    blk.requests++;
    if (vq_request(&blk.q, b, n) < 0)
        return -1;
    return *blk.status;
}

static u64 cfg64(u32 off)
{
    u64 c = blk.d->devcfg + off;

    return mmio_read32(c) | (u64)mmio_read32(c + 4) << 32;
}

static u32 cfg32(u32 off)
{
    return mmio_read32(blk.d->devcfg + off);
}

static void read_config(void)
{
    u64 gen = blk.d->common + VCOM_CFG_GENERATION;
    u8 g;

    print_features("BLK:", blk.d->features, blk_features,
                   sizeof(blk_features) / sizeof(blk_features[0]));
    for (int tries = 0; tries < 100; tries++) {     /* a stable read */
        g = mmio_read8(gen);
        blk.capacity = cfg64(BLK_CFG_CAPACITY);
        if (g == mmio_read8(gen))
            break;
    }
    u32 bs = offered(BLK_F_BLK_SIZE) ? cfg32(BLK_CFG_BLK_SIZE) : 512;

    blk.io = bs >= 512 && bs <= IO_MAX && !(bs & (bs - 1)) ? bs : 512;
    gprintf("BLK: capacity=%lu blk_size=%u size_max=%u seg_max=%u ro=%d\n",
            (unsigned long)blk.capacity, bs, cfg32(BLK_CFG_SIZE_MAX),
            cfg32(BLK_CFG_SEG_MAX), offered(BLK_F_RO));
    if (offered(BLK_F_DISCARD))
        gprintf("BLK: discard max_sectors=%u max_seg=%u alignment=%u\n",
                cfg32(BLK_CFG_MAX_DISCARD), cfg32(BLK_CFG_DISCARD_SEG),
                cfg32(BLK_CFG_DISCARD_ALIGN));
    if (offered(BLK_F_WRITE_ZEROES))
        gprintf("BLK: write_zeroes max_sectors=%u max_seg=%u "
                "may_unmap=%u\n", cfg32(BLK_CFG_MAX_WZ),
                cfg32(BLK_CFG_WZ_SEG),
                mmio_read8(blk.d->devcfg + BLK_CFG_WZ_UNMAP));
}

static void get_id(void)
{
    int st;

    memset(blk.data, 0, 20);
    st = blk_req(BLK_T_GET_ID, 0, blk.data, 20, 1);
    gprintf("BLK: get_id status=");
    print_status(st);
    gprintf(" serial=");
    for (int i = 0; i < 20 && blk.data[i]; i++) {
        u8 c = blk.data[i];

        if (c > 0x20 && c < 0x7f && c != '\\')
            gprintf("%c", c);
        else
            gprintf("\\x%02x", c);
    }
    gprintf("\n");
    if (st != 0)
        check_failed("get_id");
}

/* Reads one block; prints "BLK: <what> sector=N len=N status=S crc=C". */
static int read_block(const char *what, u64 sector)
{
    int st;

    memset(blk.data, 0xa5, blk.io);
    st = blk_req(BLK_T_IN, sector, blk.data, blk.io, 1);
    gprintf("BLK: %s sector=%lu len=%u status=", what, (unsigned long)sector,
            blk.io);
    print_status(st);
    gprintf(" crc=0x%08x", crc32(blk.data, blk.io));
    return st;
}

static u64 align_sector(u64 s)
{
    u64 per = blk.io / 512, last = blk.capacity >= per ?
              blk.capacity - per : 0;

    s &= ~(per - 1);
    return s > last ? last & ~(per - 1) : s;
}

static void read_one(u64 sector)
{
    int st = read_block("read", align_sector(sector));

    gprintf("\n");
    if (st != 0)
        check_failed("read");
}

/* blk-read=S[,S...] (at most 8), default: 0, 8 blocks in, the last. */
static void reads(void)
{
    char list[128], *p = list;
    u64 per = blk.io / 512;
    int n = 0;

    if (!cmdline_get(boot_info.cmdline, "blk-read", list, sizeof(list)))
        list[0] = 0;
    while (*p && n < MAX_READS) {
        char *end = p;
        u64 s;

        while (*end && *end != ',')
            end++;
        if (*end)
            *end++ = 0;
        if (parse_u64(p, &s))
            read_one(s);
        else
            gprintf("virtio guest: bad value blk-read=%s, skipped\n", p);
        p = end;
        n++;
    }
    if (!n) {
        read_one(0);
        read_one(8 * per);
        read_one(blk.capacity - per);
    }
}

static void fill_pattern(u64 sector)
{
    for (u32 i = 0; i < blk.io; i++)
        blk.pattern[i] = (u8)((i * 7 + sector * 13) ^ (i >> 8) ^ 0x5a);
}

static void simple(const char *what, u32 type, u64 sector, int need)
{
    struct blk_range *r = (struct blk_range *)blk.data;
    int st;

    r->sector = sector;
    r->num_sectors = blk.io / 512;
    r->flags = 0;
    if (type == BLK_T_FLUSH)
        st = blk_req(type, 0, NULL, 0, 0);
    else
        st = blk_req(type, 0, r, sizeof(*r), 0);
    gprintf("BLK: %s", what);
    if (type != BLK_T_FLUSH)
        gprintf(" sector=%lu count=%u", (unsigned long)sector,
                blk.io / 512);
    gprintf(" status=");
    print_status(st);
    gprintf("\n");
    if (need && st != 0)
        check_failed(what);
}

static void writes(void)
{
    char arg[24];
    u64 sector = 100;
    int st;

    if (cmdline_get(boot_info.cmdline, "blk-write", arg, sizeof(arg))) {
        if (!strcmp(arg, "none")) {
            gprintf("BLK: write skipped\n");
            return;
        }
        sector = cmdline_num("blk-write", 100);
    }
    sector = align_sector(sector);
    fill_pattern(sector);
    st = blk_req(BLK_T_OUT, sector, blk.pattern, blk.io, 0);
    gprintf("BLK: write sector=%lu len=%u status=", (unsigned long)sector,
            blk.io);
    print_status(st);
    gprintf(" crc=0x%08x\n", crc32(blk.pattern, blk.io));
    if (offered(BLK_F_RO)) {
        if (st != BLK_S_IOERR)
            check_failed("write to a read-only disk not refused with IOERR");
        read_block("readback", sector);
        gprintf("\n");
        return;
    }
    if (st != 0)
        check_failed("write");
    st = read_block("readback", sector);
    int match = st == 0 && !memcmp(blk.data, blk.pattern, blk.io);

    gprintf(" match=%d\n", match);
    if (!match)
        check_failed("readback");
    if (offered(BLK_F_FLUSH))
        simple("flush", BLK_T_FLUSH, 0, 1);
    if (offered(BLK_F_DISCARD)) {
        simple("discard", BLK_T_DISCARD, sector, 1);
        read_block("readback", sector);
        gprintf("\n");
    }
    if (offered(BLK_F_WRITE_ZEROES)) {
        blk_req(BLK_T_OUT, sector, blk.pattern, blk.io, 0);
        simple("write_zeroes", BLK_T_WRITE_ZEROES, sector, 1);
        st = read_block("readback", sector);
        int zero = st == 0;

        for (u32 i = 0; i < blk.io; i++)
            zero &= !blk.data[i];
        gprintf(" zero=%d\n", zero);
        if (!zero)
            check_failed("write_zeroes readback");
    }
}

int test_blk(int msix)
{
    u64 want = 1ull << BLK_F_SIZE_MAX | 1ull << BLK_F_SEG_MAX |
               1ull << BLK_F_GEOMETRY | 1ull << BLK_F_RO |
               1ull << BLK_F_BLK_SIZE | 1ull << BLK_F_FLUSH |
               1ull << BLK_F_TOPOLOGY | 1ull << BLK_F_DISCARD |
               1ull << BLK_F_WRITE_ZEROES;

    blk.d = find_vdev(VIRTIO_ID_BLK, cmdline_num("blk", 0));
    if (!blk.d || !blk.d->devcfg) {
        gprintf("BLK: no device\n");
        return EXIT_NODEV;
    }
    gprintf("BLK: device 00:%02x.%u\n", blk.d->pci.dev, blk.d->pci.fn);
    if (!blk.hdr) {
        blk.hdr = dma_alloc(sizeof(*blk.hdr));
        blk.status = dma_alloc(1);
        blk.data = dma_alloc(IO_MAX);
        blk.pattern = dma_alloc(IO_MAX);
    }
    if (virtio_init(blk.d, want) < 0 || (msix && msix_enable(blk.d, 0)) ||
        vq_setup(blk.d, &blk.q, 0, msix ? 0 : VIRTIO_NO_VECTOR) < 0) {
        gprintf("BLK: init failed\n");
        return EXIT_NODEV;
    }
    virtio_driver_ok(blk.d);
    if (msix)
        irq_enable();
    blk.requests = 0;
    read_config();
    get_id();
    reads();
    writes();
    if (msix) {
        u64 deadline = rdtsc() + ms_to_tsc(timeout_ms);

        while (!guest_msi_count && rdtsc() < deadline)
            cpu_relax();
        gprintf("MSIX: irqs=%lu requests=%d\n",
                (unsigned long)guest_msi_count, blk.requests);
        if (!guest_msi_count)
            check_failed("no MSI-X interrupt");
    }
    return EXIT_OK;
}
