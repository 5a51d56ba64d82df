/*
 * fw_cfg guest: reads QEMU's firmware configuration interface at port
 * 0x510 both ways, through the data register and through DMA, and
 * prints what it found (see README.md, "fw_cfg guest").  Command line:
 * split=N to stop after N bytes of the first file read through the data
 * register and wait for a byte on COM1 before reading the rest (the
 * selector and offset must survive a save/restore meanwhile).
 */
#include "lib.h"

#define FW_CFG_CTL      0x510
#define FW_CFG_DATA     0x511
#define FW_CFG_DMA      0x514

#define KEY_SIGNATURE   0x00
#define KEY_ID          0x01
#define KEY_RAM_SIZE    0x03
#define KEY_NB_CPUS     0x05
#define KEY_MAX_CPUS    0x0f
#define KEY_FILE_DIR    0x19

#define DMA_ERROR       0x01
#define DMA_READ        0x02
#define DMA_SKIP        0x04
#define DMA_SELECT      0x08
#define DMA_WRITE       0x10

#define MAX_FILES       32
#define DIR_ENTRY       64
#define HEAD_MAX        48
#define CHUNK           4096

struct dma_access {
    u32 control;
    u32 length;
    u64 address;
} __attribute__((packed, aligned(16)));

static volatile struct dma_access access;
static u8 dir_io[4 + MAX_FILES * DIR_ENTRY];
static u8 dir_dma[4 + MAX_FILES * DIR_ENTRY];
static u8 chunk[CHUNK];

static u32 be32(const u8 *p)
{
    return (u32)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* ------------------------------------------------------------ access */

static void io_select(u16 key)
{
    outw(FW_CFG_CTL, key);
}

static void io_read(void *buf, u32 len)
{
    u8 *p = buf;

    for (u32 i = 0; i < len; i++)
        p[i] = inb(FW_CFG_DATA);
}

/* One DMA operation; returns the control word it ended with. */
static u32 dma(u32 control, void *buf, u32 len)
{
    u64 a = (u64)(uintptr_t)&access;

    access.control = __builtin_bswap32(control);
    access.length = __builtin_bswap32(len);
    access.address = __builtin_bswap64((u64)(uintptr_t)buf);
    barrier();
    outl(FW_CFG_DMA, __builtin_bswap32((u32)(a >> 32)));
    outl(FW_CFG_DMA + 4, __builtin_bswap32((u32)a));
    barrier();
    return __builtin_bswap32(access.control);
}

static int dma_read(u16 key, int select, void *buf, u32 len)
{
    u32 ctl = DMA_READ | (select ? DMA_SELECT | (u32)key << 16 : 0);

    return dma(ctl, buf, len) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ report */

static void print_head(const u8 *p, u32 len)
{
    for (u32 i = 0; i < len && i < HEAD_MAX; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            serial_putc((char)p[i]);
        else
            gprintf("\\x%02x", p[i]);
    }
}

static void fixed_items(void)
{
    u32 id = 0, dma_id = 0;
    u16 cpus = 0, max_cpus = 0, dma_cpus = 0;
    u64 ram = 0, dma_ram = 0;
    char sig[5] = { 0 }, dma_sig[5] = { 0 }, reg[9] = { 0 };
    u32 hi = inl(FW_CFG_DMA), lo = inl(FW_CFG_DMA + 4);

    io_select(KEY_SIGNATURE);
    io_read(sig, 4);
    io_select(KEY_ID);
    io_read(&id, 4);
    io_select(KEY_NB_CPUS);
    io_read(&cpus, 2);
    io_select(KEY_MAX_CPUS);
    io_read(&max_cpus, 2);
    io_select(KEY_RAM_SIZE);
    io_read(&ram, 8);
    memcpy(reg, &hi, 4);
    memcpy(reg + 4, &lo, 4);
    gprintf("FWCFG io signature=%s id=0x%x nb_cpus=%u max_cpus=%u "
            "ram_size=%lu dma_register=%s\n", sig, id, cpus, max_cpus,
            (unsigned long)ram, reg);
    if (!(id & 2))
        return;
    dma_read(KEY_SIGNATURE, 1, dma_sig, 4);
    dma_read(KEY_ID, 1, &dma_id, 4);
    dma_read(KEY_NB_CPUS, 1, &dma_cpus, 2);
    dma_read(KEY_RAM_SIZE, 1, &dma_ram, 8);
    gprintf("FWCFG dma signature=%s id=0x%x nb_cpus=%u ram_size=%lu\n",
            dma_sig, dma_id, dma_cpus, (unsigned long)dma_ram);
    /* Skip two bytes of the signature, read two; a write is refused. */
    char mu[3] = { 0 };
    dma(DMA_SELECT | DMA_SKIP, 0, 2);
    dma_read(0, 0, mu, 2);
    u32 wr = dma(DMA_SELECT | DMA_WRITE, mu, 1);
    gprintf("FWCFG dma skip=%s write_control=0x%x\n", mu, wr);
}

/* Sum and head of a file read through the data register. */
static u32 io_file(u16 key, u32 size, u8 *head)
{
    u32 sum = 0;

    io_select(key);
    for (u32 i = 0; i < size; i++) {
        u8 b = inb(FW_CFG_DATA);

        sum += b;
        if (i < HEAD_MAX)
            head[i] = b;
    }
    return sum;
}

static int dma_file(u16 key, u32 size, u32 *sum)
{
    *sum = 0;
    for (u32 done = 0; done < size || done == 0; ) {
        u32 n = size - done < CHUNK ? size - done : CHUNK;

        if (dma_read(key, done == 0, chunk, n) < 0)
            return -1;
        for (u32 i = 0; i < n; i++)
            *sum += chunk[i];
        done += n;
        if (!size)
            break;
    }
    return 0;
}

static void files(u32 id)
{
    u8 head[HEAD_MAX];
    u32 count;

    io_select(KEY_FILE_DIR);
    io_read(dir_io, 4);
    count = be32(dir_io);
    if (count > MAX_FILES)
        count = MAX_FILES;
    io_read(dir_io + 4, count * DIR_ENTRY);
    gprintf("FWCFG files=%u\n", count);
    if (id & 2) {
        dma_read(KEY_FILE_DIR, 1, dir_dma, 4 + count * DIR_ENTRY);
        gprintf("FWCFG dir dma=%s\n",
                memcmp(dir_io, dir_dma, 4 + count * DIR_ENTRY) ?
                "differs" : "same");
    }
    for (u32 f = 0; f < count; f++) {
        const u8 *e = dir_io + 4 + f * DIR_ENTRY;
        u32 size = be32(e), io_sum, dma_sum = 0;
        u16 key = (u16)(e[4] << 8 | e[5]);
        int dma_ok = (id & 2) ? dma_file(key, size, &dma_sum) : -1;

        io_sum = io_file(key, size, head);
        gprintf("FWCFG file key=0x%x size=%u name=%s io_sum=0x%08x "
                "dma_sum=", key, size, (const char *)e + 8, io_sum);
        if (dma_ok < 0)
            gprintf("error");
        else
            gprintf("0x%08x", dma_sum);
        gprintf(" head=");
        print_head(head, size);
        gprintf("\n");
    }
}

/*
 * The first file through the data register, stopping after `split`
 * bytes until a byte arrives on COM1.
 */
static void split_read(u64 split)
{
    const u8 *e = dir_io + 4;
    u32 size = be32(e), sum = 0;
    u8 head[HEAD_MAX];

    io_select((u16)(e[4] << 8 | e[5]));
    for (u32 i = 0; i < size; i++) {
        if (i == split) {
            gprintf("FWCFG split at=%u WAITING\n", i);
            while (!(inb(COM1_LSR) & LSR_DR))
                cpu_relax();
            inb(COM1);
        }
        u8 b = inb(FW_CFG_DATA);

        sum += b;
        if (i < HEAD_MAX)
            head[i] = b;
    }
    gprintf("FWCFG split size=%u sum=0x%08x head=", size, sum);
    print_head(head, size);
    gprintf("\n");
}

void guest_main(u32 mbi_phys)
{
    char buf[32];
    u64 split = 0;
    u32 id = 0;

    boot_info_init(mbi_phys);
    if (cmdline_get(boot_info.cmdline, "split", buf, sizeof(buf)) &&
        !parse_u64(buf, &split))
        gprintf("fwcfg guest: bad value split=%s, using 0\n", buf);
    fixed_items();
    io_select(KEY_ID);
    io_read(&id, 4);
    if (id != 0 && id != 0xffffffff) {
        files(id);
        if (split && be32(dir_io))
            split_read(split);
    }
    gprintf("FWCFG DONE\n");
    outb(DEBUG_EXIT_PORT, 0);
    gprintf("FWCFG still alive\n");
    spin_forever();
}
