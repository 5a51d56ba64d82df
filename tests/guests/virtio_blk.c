/*
 * Virtio guest: virtio-blk (device id 2).  Config, GET_ID, reads with a
 * CRC32 each, write + read back, FLUSH, DISCARD, WRITE_ZEROES; on a
 * read-only disk the write must fail with IOERR.  test=blk-msix does the
 * same with the queue's interrupts delivered through MSI-X.  test=blk-loop
 * keeps a region of the disk busy with several requests in flight until
 * a byte arrives on COM1, then verifies it (README.md, "blk-loop").
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

/* Finds the disk and sets it up (queue 0, polled or on MSI-X vector 0). */
static int blk_setup(int msix)
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
    return EXIT_OK;
}

int test_blk(int msix)
{
    int rc = blk_setup(msix);

    if (rc != EXIT_OK)
        return rc;
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

/* ------------------------------------------------------------ blk-loop */

/*
 * test=blk-loop: writes, reads back and re-checks the sectors of a region
 * with several requests in flight, until a byte arrives on COM1; then it
 * drains, reads the whole region back and verifies it.  Every request
 * must complete exactly once (the used ring's ids are checked), whatever
 * the host does meanwhile (save, restore, live update, migration): the
 * guest does not know.  See README.md, "blk-loop".
 */
#define LOOP_MAGIC          0x31504f4f4c4b4c42ull   /* "BLKLOOP1" */
#define LOOP_MAX_SECTORS    16384
#define LOOP_MAX_DEPTH      32
#define LOOP_MAX_ERROR_LINES 20
#define LOOP_WORDS          (512 / 8)
#define LOOP_CRC_BYTES      (512 - 8)
#define LOOP_JUMP_MS        50      /* a longer gap: the guest was stopped */

enum { OP_NONE, OP_WRITE, OP_READBACK, OP_CHECK, OP_SCAN, OP_FINAL };

static const char *const op_names[] = {
    [OP_NONE] = "none", [OP_WRITE] = "write", [OP_READBACK] = "readback",
    [OP_CHECK] = "check", [OP_SCAN] = "scan", [OP_FINAL] = "final",
};

struct loop_slot {
    int op;                 /* in flight, or OP_NONE */
    int next;               /* what the slot does next in the loop */
    int dead;               /* never completed: not used again */
    u32 idx;                /* sector - base */
    u32 gen;                /* written or expected generation */
    struct blk_hdr *hdr;
    u8 *data, *status;
};

static struct {
    u64 base;
    u32 sectors, depth;
    u32 gen[LOOP_MAX_SECTORS];      /* last generation; 0: not stamped */
    u8 claimed[LOOP_MAX_SECTORS];   /* a slot works on the sector */
    struct loop_slot slot[LOOP_MAX_DEPTH];
    u32 inflight, live;
    u32 cursor;                     /* next sector to write */
    u64 n, writes, errors, error_lines, print_every, next_print;
    u64 verified, stamped;
    u64 rng;
    u64 kick_delay;                 /* TSC ticks from publish to notify */
    u16 added;                      /* chains not yet published */
} lp;

static u64 loop_rand(void)
{
    lp.rng ^= lp.rng << 13;
    lp.rng ^= lp.rng >> 7;
    lp.rng ^= lp.rng << 17;
    return lp.rng;
}

/* An error line (the first LOOP_MAX_ERROR_LINES of them) and the count. */
static int loop_error_line(void)
{
    lp.errors++;
    if (lp.error_lines >= LOOP_MAX_ERROR_LINES)
        return 0;
    if (++lp.error_lines == LOOP_MAX_ERROR_LINES) {
        gprintf("BLKLOOP: further errors are not printed\n");
        return 0;
    }
    return 1;
}

/*
 * The stamp of `sector` at `gen`: u64 words magic, sector, gen, then
 * ((sector << 32) | gen) ^ (i * 0x9E3779B97F4A7C15) for words 3..62, and
 * word 63 the CRC-32 of bytes 0..503.
 */
static void stamp(u8 *buf, u64 sector, u32 gen)
{
    u64 *w = (u64 *)buf;

    w[0] = LOOP_MAGIC;
    w[1] = sector;
    w[2] = gen;
    for (u64 i = 3; i < LOOP_WORDS - 1; i++)
        w[i] = (sector << 32 | gen) ^ (i * 0x9E3779B97F4A7C15ull);
    w[LOOP_WORDS - 1] = crc32(buf, LOOP_CRC_BYTES);
}

enum { ST_OK, ST_NONE, ST_SECTOR, ST_CRC, ST_PATTERN };

/* What a sector holds: ST_OK and its generation if it is a stamp of it. */
static int stamp_check(const u8 *buf, u64 sector, u32 *gen, u64 *other)
{
    const u64 *w = (const u64 *)buf;

    *gen = (u32)w[2];
    *other = w[1];
    if (w[0] != LOOP_MAGIC)
        return ST_NONE;
    if (w[1] != sector)
        return ST_SECTOR;
    if (w[2] >> 32 || w[LOOP_WORDS - 1] != crc32(buf, LOOP_CRC_BYTES))
        return ST_CRC;
    for (u64 i = 3; i < LOOP_WORDS - 1; i++)
        if (w[i] != ((sector << 32 | *gen) ^ (i * 0x9E3779B97F4A7C15ull)))
            return ST_PATTERN;
    return ST_OK;
}

/* The sector must hold generation `want` (0: no stamp of it at all). */
static int verify(struct loop_slot *s, u32 want)
{
    u64 sector = lp.base + s->idx, other;
    u32 got;
    int st = stamp_check(s->data, sector, &got, &other);

    if (want ? st == ST_OK && got == want : st != ST_OK)
        return 1;
    if (!loop_error_line())
        return 0;
    gprintf("BLKLOOP: error sector=%lu want_gen=%u got=", (unsigned long)sector,
            want);
    switch (st) {
    case ST_OK:
        gprintf("gen:%u", got);
        break;
    case ST_NONE:
        gprintf("unstamped");
        break;
    case ST_SECTOR:
        gprintf("sector:%lu,gen:%u", (unsigned long)other, got);
        break;
    default:
        gprintf("%s,gen:%u", st == ST_CRC ? "bad-crc" : "bad-pattern", got);
    }
    gprintf(" op=%s\n", op_names[s->op]);
    return 0;
}

/* Puts the slot's request in the avail ring; loop_publish() shows it. */
static void loop_issue(struct loop_slot *s, int op, u32 idx, u32 gen)
{
    struct vq *q = &blk.q;
    u16 head = (u16)((s - lp.slot) * 3);
    int is_write = op == OP_WRITE;
    struct vbuf b[3] = {
        { (u64)(uintptr_t)s->hdr, sizeof(*s->hdr), 0 },
        { (u64)(uintptr_t)s->data, 512, !is_write },
        { (u64)(uintptr_t)s->status, 1, 1 },
    };

    s->op = op;
    s->idx = idx;
    s->gen = gen;
    s->hdr->type = is_write ? BLK_T_OUT : BLK_T_IN;
    s->hdr->reserved = 0;
    s->hdr->sector = lp.base + idx;
    *s->status = 0xee;
    if (is_write)
        stamp(s->data, lp.base + idx, gen);
    else
        memset(s->data, 0xa5, 512);
    for (int i = 0; i < 3; i++) {
        q->desc[head + i].addr = b[i].addr;
        q->desc[head + i].len = b[i].len;
        q->desc[head + i].flags = (b[i].write ? VRING_DESC_F_WRITE : 0) |
                                  (i < 2 ? VRING_DESC_F_NEXT : 0);
        q->desc[head + i].next = (u16)(head + i + 1);
    }
    q->avail->ring[q->avail_idx % q->size] = head;
    q->avail_idx++;
    lp.added++;
    lp.inflight++;
}

/*
 * Every chain added before one notify; loop-kick-delay keeps them
 * available but unnotified for a while (a host that stops the guest
 * then finds requests the device has not seen).
 */
static void loop_publish(void)
{
    struct vq *q = &blk.q;
    u64 until;

    if (!lp.added)
        return;
    mb();
    q->avail->idx = q->avail_idx;
    mb();
    for (until = rdtsc() + lp.kick_delay; rdtsc() < until;)
        cpu_relax();
    vq_kick(q);
    lp.added = 0;
}

/*
 * Waits for completions and hands each to done(); returns how many.  A
 * request still in flight after `timeout` of the guest's own running
 * time without any completion is lost: an error, its slot is not used
 * again.  (Time the guest did not run, e.g. while the host had it saved,
 * shows as one long gap between two polls and is not counted.)
 */
static u32 loop_reap(void (*done)(struct loop_slot *s, u32 len))
{
    struct vq *q = &blk.q;
    u64 last = rdtsc(), quiet = 0, jump = ms_to_tsc(LOOP_JUMP_MS);
    u16 used;
    u32 got = 0;

    while ((used = q->used->idx) == q->last_used) {
        u64 now = rdtsc();

        if (now - last < jump)
            quiet += now - last;
        last = now;
        if (quiet > ms_to_tsc(timeout_ms)) {
            for (u32 i = 0; i < lp.depth; i++) {
                struct loop_slot *s = &lp.slot[i];

                if (s->op == OP_NONE)
                    continue;
                if (loop_error_line())
                    gprintf("BLKLOOP: error missing completion id=%u "
                            "op=%s sector=%lu\n", i * 3, op_names[s->op],
                            (unsigned long)(lp.base + s->idx));
                s->op = OP_NONE;
                s->dead = 1;
                lp.inflight--;
                lp.live--;
            }
            return 0;
        }
        cpu_relax();
    }
    if ((u16)(used - q->last_used) > lp.inflight && loop_error_line())
        gprintf("BLKLOOP: error used idx=%u is %u ahead of %u with %u in "
                "flight\n", used, (u16)(used - q->last_used), q->last_used,
                lp.inflight);
    mb();
    while (q->last_used != used) {
        volatile struct vring_used_elem *e =
            &q->used->ring[q->last_used % q->size];
        u32 id = e->id, len = e->len;
        struct loop_slot *s = &lp.slot[id / 3 < lp.depth ? id / 3 : 0];

        q->last_used++;
        if (id % 3 || id / 3 >= lp.depth || s->op == OP_NONE) {
            if (loop_error_line())
                gprintf("BLKLOOP: error used id=%u len=%u is not in "
                        "flight (used idx %u)\n", id, len,
                        (u16)(q->last_used - 1));
            continue;
        }
        lp.inflight--;
        got++;
        if (*s->status != 0 || len != (s->op == OP_WRITE ? 1u : 513u)) {
            if (loop_error_line())
                gprintf("BLKLOOP: error status=%u len=%u op=%s "
                        "sector=%lu\n", *s->status, len, op_names[s->op],
                        (unsigned long)(lp.base + s->idx));
            lp.claimed[s->idx] = 0;
            s->op = OP_NONE;
            s->next = OP_WRITE;
            continue;
        }
        done(s, len);
        s->op = OP_NONE;
    }
    return got;
}

/* ---- the loop: write, read back, check an earlier sector, again */

static int pick_write(u32 *idx)
{
    for (u32 tries = 0; tries < lp.sectors; tries++) {
        u32 i = lp.cursor;

        lp.cursor = (lp.cursor + 1) % lp.sectors;
        if (!lp.claimed[i]) {
            *idx = i;
            return 1;
        }
    }
    return 0;
}

static int pick_check(u32 *idx)
{
    for (int tries = 0; tries < 8; tries++) {
        u32 i = (u32)(loop_rand() % lp.sectors);

        if (lp.gen[i] && !lp.claimed[i]) {
            *idx = i;
            return 1;
        }
    }
    return 0;
}

static void loop_done(struct loop_slot *s, u32 len)
{
    (void)len;
    lp.n++;
    switch (s->op) {
    case OP_WRITE:
        lp.gen[s->idx] = s->gen;
        lp.writes++;
        s->next = OP_READBACK;
        return;
    case OP_READBACK:
    case OP_CHECK:
        verify(s, lp.gen[s->idx]);
        lp.claimed[s->idx] = 0;
        s->next = s->op == OP_READBACK ? OP_CHECK : OP_WRITE;
        return;
    }
}

static void loop_fill(void)
{
    for (u32 i = 0; i < lp.depth; i++) {
        struct loop_slot *s = &lp.slot[i];
        u32 idx;

        if (s->dead || s->op != OP_NONE)
            continue;
        if (s->next == OP_READBACK) {
            loop_issue(s, OP_READBACK, s->idx, s->gen);
            continue;
        }
        if (s->next == OP_CHECK && pick_check(&idx)) {
            lp.claimed[idx] = 1;
            loop_issue(s, OP_CHECK, idx, lp.gen[idx]);
            continue;
        }
        if (pick_write(&idx)) {
            lp.claimed[idx] = 1;
            loop_issue(s, OP_WRITE, idx, lp.gen[idx] + 1);
        }
    }
    loop_publish();
}

/* ---- whole-region passes: the scan at the start, the final check */

static void scan_done(struct loop_slot *s, u32 len)
{
    u64 other;
    u32 g;

    (void)len;
    if (stamp_check(s->data, lp.base + s->idx, &g, &other) == ST_OK) {
        lp.gen[s->idx] = g;
        lp.stamped++;
    }
}

static void final_done(struct loop_slot *s, u32 len)
{
    (void)len;
    lp.verified += verify(s, lp.gen[s->idx]);
}

static void region_pass(int op, void (*done)(struct loop_slot *s, u32 len))
{
    u32 next = 0;

    while (next < lp.sectors || lp.inflight) {
        for (u32 i = 0; i < lp.depth && next < lp.sectors; i++)
            if (!lp.slot[i].dead && lp.slot[i].op == OP_NONE)
                loop_issue(&lp.slot[i], op, next++, 0);
        loop_publish();
        loop_reap(done);
        if (!lp.live)
            return;
    }
}

static void loop_status(void)
{
    gprintf("BLKLOOP: n=%lu errors=%lu\n", (unsigned long)lp.n,
            (unsigned long)lp.errors);
}

static int loop_setup(void)
{
    u8 *pg;

    lp.base = cmdline_num("loop-base", 1024);
    lp.sectors = (u32)cmdline_num("loop-sectors", 256);
    lp.depth = (u32)cmdline_num("loop-depth", 8);
    lp.print_every = cmdline_num("loop-print", 200);
    lp.kick_delay = cmdline_num("loop-kick-delay", 0) * tsc_khz / 1000;
    if (!lp.sectors || lp.sectors > LOOP_MAX_SECTORS) {
        gprintf("virtio guest: bad value loop-sectors=%u, using 256\n",
                lp.sectors);
        lp.sectors = 256;
    }
    if (!lp.depth || lp.depth > LOOP_MAX_DEPTH || lp.depth * 3 > blk.q.size) {
        gprintf("virtio guest: bad value loop-depth=%u, using %u\n",
                lp.depth, blk.q.size / 3 < 8 ? blk.q.size / 3 : 8);
        lp.depth = blk.q.size / 3 < 8 ? blk.q.size / 3 : 8;
    }
    if (!lp.print_every)
        lp.print_every = 200;
    if (!lp.depth || lp.base + lp.sectors > blk.capacity ||
        offered(BLK_F_RO)) {
        gprintf("BLKLOOP: sectors %lu..%lu do not fit a writable disk of "
                "%lu sectors (or the queue is too small)\n",
                (unsigned long)lp.base,
                (unsigned long)(lp.base + lp.sectors - 1),
                (unsigned long)blk.capacity);
        return -1;
    }
    /* Headers and status bytes in one page, the data in the next ones. */
    pg = dma_alloc(LOOP_MAX_DEPTH * (sizeof(struct blk_hdr) + 1));
    lp.slot[0].data = dma_alloc(512 * lp.depth);
    for (u32 i = 0; i < lp.depth; i++) {
        struct loop_slot *s = &lp.slot[i];

        s->hdr = (struct blk_hdr *)(pg + i * sizeof(struct blk_hdr));
        s->status = pg + LOOP_MAX_DEPTH * sizeof(struct blk_hdr) + i;
        s->data = lp.slot[0].data + 512 * i;
        s->next = OP_WRITE;
    }
    lp.live = lp.depth;
    lp.rng = rdtsc() | 1;
    return 0;
}

int test_blk_loop(void)
{
    int rc = blk_setup(0);
    int stop = 0;

    if (rc != EXIT_OK)
        return rc;
    if (loop_setup() < 0) {
        check_failed("blk-loop region");
        return EXIT_OK;
    }
    gprintf("BLKLOOP: base=%lu sectors=%u depth=%u kick_delay_us=%lu\n",
            (unsigned long)lp.base, lp.sectors, lp.depth,
            (unsigned long)(lp.kick_delay * 1000 / tsc_khz));
    region_pass(OP_SCAN, scan_done);
    gprintf("BLKLOOP: scanned stamped=%lu\n", (unsigned long)lp.stamped);
    lp.next_print = lp.print_every;
    gprintf("BLKLOOP: running\n");
    while (lp.live) {
        if (!stop && (inb(COM1_LSR) & LSR_DR)) {
            inb(COM1);
            stop = 1;
            gprintf("BLKLOOP: stopping n=%lu inflight=%u\n",
                    (unsigned long)lp.n, lp.inflight);
        }
        if (!stop)
            loop_fill();
        else if (!lp.inflight)
            break;
        loop_reap(loop_done);
        if (lp.n >= lp.next_print) {
            loop_status();
            lp.next_print = lp.n + lp.print_every;
        }
    }
    if (!lp.live) {
        gprintf("BLKLOOP: error no request slot left\n");
        check_failed("blk-loop: requests lost");
        return EXIT_OK;
    }
    region_pass(OP_FINAL, final_done);
    gprintf("BLKLOOP: final n=%lu errors=%lu verified=%lu writes=%lu "
            "gencrc=0x%08x\n", (unsigned long)lp.n, (unsigned long)lp.errors,
            (unsigned long)lp.verified, (unsigned long)lp.writes,
            crc32(lp.gen, 4 * lp.sectors));
    if (lp.errors)
        check_failed("blk-loop errors");
    if (lp.verified != lp.sectors)
        check_failed("blk-loop final verification");
    return EXIT_OK;
}
