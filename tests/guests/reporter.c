/*
 * Boot reporter: prints on COM1 what the boot loader handed over, one line
 * per fact, then leaves through the debug-exit port with code 0.  The same
 * code is linked behind three entries (see README.md):
 *
 *   mbreport.elf  multiboot1 (bootmagic.S): EBX = multiboot info, EAX magic
 *   pvh.elf       PVH (pvh.S): EBX = hvm_start_info
 *   bzimage       Linux 64-bit boot protocol (linux.S): RSI = boot_params
 *
 * guest_main() gets that pointer; guest_boot_proto says which entry ran.
 * Lines (all numbers in hex have a 0x prefix, the others are decimal):
 *
 *   BOOT protocol=<multiboot|pvh|linux>
 *   BOOT info_addr=0x..                      the mbi / start_info / zero page
 *   BOOT multiboot flags=0x.. mem_lower_kib=N mem_upper_kib=N mods=N
 *   BOOT multiboot loader=<boot_loader_name>  (if the mbi has one)
 *   BOOT pvh version=N flags=0x.. nr_modules=N rsdp=0x..
 *   BOOT linux version=0x.... type_of_loader=0x.. loadflags=0x..
 *        heap_end_ptr=0x.... setup_sects=N syssize=N cmdline_size=N
 *        init_size=0x.. initrd_addr_max=0x..   (one line)
 *   BOOT linux entry=64 cs=0x.... ds=0x.... ss=0x....
 *   BOOT cmdline=<command line>               or  BOOT cmdline none
 *   BOOT e820_entries=N                        as the loader announced it
 *   BOOT e820 <addr 0x..> <size 0x..> <type>   one per entry
 *   BOOT ram_total_kib=N                       sum of the type-1 entries
 *   BOOT initrd addr=0x.. size=N sum=0x........   or  BOOT initrd none
 *   BOOT magic ok                              or  BOOT magic bad
 *   BOOT DONE
 *
 * In the command line, bytes below 0x20, from 0x7f up, and the backslash
 * are printed as \xNN, so the line stays one line.  sum is the 32-bit sum
 * of the initrd's bytes.  Nothing the loader passed is copied first: its
 * structures lie outside the image (below 1 MiB or above the image), and
 * the only memory the guest writes is its own .data/.bss.
 */
#include "entry.h"

#define GIB                     (1ULL << 30)
#define MAPPED_LIMIT            (4 * GIB)       /* our identity map */
#define MAX_MAP                 128
#define MAX_CMDLINE             8192

#define MB_BOOT_MAGIC           0x2BADB002
#define MBI_MEM                 (1u << 0)
#define MBI_CMDLINE             (1u << 2)
#define MBI_MODS                (1u << 3)
#define MBI_MMAP                (1u << 6)
#define MBI_LOADER              (1u << 9)

#define PVH_MAGIC               0x336ec578

#define BP_EXT_RAMDISK_IMAGE    0x0c0
#define BP_EXT_RAMDISK_SIZE     0x0c4
#define BP_EXT_CMD_LINE_PTR     0x0c8
#define BP_E820_ENTRIES         0x1e8
#define BP_E820_TABLE           0x2d0
#define BP_E820_MAX             128
#define HDR_SETUP_SECTS         0x1f1
#define HDR_SYSSIZE             0x1f4
#define HDR_MAGIC               0x202
#define HDR_VERSION             0x206
#define HDR_TYPE_OF_LOADER      0x210
#define HDR_LOADFLAGS           0x211
#define HDR_RAMDISK_IMAGE       0x218
#define HDR_RAMDISK_SIZE        0x21c
#define HDR_HEAP_END_PTR        0x224
#define HDR_CMD_LINE_PTR        0x228
#define HDR_INITRD_ADDR_MAX     0x22c
#define HDR_CMDLINE_SIZE        0x238
#define HDR_INIT_SIZE           0x260
#define HDRS                    0x53726448      /* "HdrS" */

struct map_entry {
    u64 addr, size;
    u32 type;
};

/* What the common part prints, gathered by the protocol parts. */
struct report {
    int have_cmdline;
    u64 cmdline;
    u32 map_announced;          /* entries the loader says it passed */
    unsigned map_n;             /* entries read (at most MAX_MAP) */
    int have_initrd;
    u64 initrd_addr, initrd_size;
    int magic_ok;
};

static struct map_entry map[MAX_MAP];

/* ------------------------------------------------------------ access */

static int mapped(u64 addr, u64 len)
{
    return addr <= MAPPED_LIMIT && len <= MAPPED_LIMIT - addr;
}

static u8 rd8(u64 a)
{
    return *(const volatile u8 *)(uintptr_t)a;
}

static u16 rd16(u64 a)
{
    return (u16)(rd8(a) | rd8(a + 1) << 8);
}

static u32 rd32(u64 a)
{
    return rd16(a) | (u32)rd16(a + 2) << 16;
}

static u64 rd64(u64 a)
{
    return rd32(a) | (u64)rd32(a + 4) << 32;
}

static void add_map(struct report *r, u64 addr, u64 size, u32 type)
{
    if (r->map_n < MAX_MAP)
        map[r->map_n++] = (struct map_entry){ addr, size, type };
}

/* ------------------------------------------------------------ printing */

static void print_cmdline(const struct report *r)
{
    u64 i;

    if (!r->have_cmdline || !r->cmdline || !mapped(r->cmdline, 1)) {
        gprintf("BOOT cmdline none\n");
        return;
    }
    serial_puts("BOOT cmdline=");
    for (i = 0; i < MAX_CMDLINE && mapped(r->cmdline + i, 1); i++) {
        u8 c = rd8(r->cmdline + i);

        if (!c)
            break;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            gprintf("\\x%02x", c);
        else
            serial_putc((char)c);
    }
    gprintf("\n");
}

static void print_map(const struct report *r)
{
    u64 ram = 0;

    gprintf("BOOT e820_entries=%u\n", r->map_announced);
    for (unsigned i = 0; i < r->map_n; i++) {
        gprintf("BOOT e820 0x%lx 0x%lx %u\n", (unsigned long)map[i].addr,
                (unsigned long)map[i].size, map[i].type);
        if (map[i].type == 1)
            ram += map[i].size;
    }
    gprintf("BOOT ram_total_kib=%lu\n", (unsigned long)(ram >> 10));
}

static void print_initrd(const struct report *r)
{
    u32 sum = 0;

    if (!r->have_initrd) {
        gprintf("BOOT initrd none\n");
        return;
    }
    if (!mapped(r->initrd_addr, r->initrd_size)) {
        gprintf("BOOT initrd addr=0x%lx size=%lu sum=unmapped\n",
                (unsigned long)r->initrd_addr,
                (unsigned long)r->initrd_size);
        return;
    }
    const volatile u8 *p = (const volatile u8 *)(uintptr_t)r->initrd_addr;
    for (u64 i = 0; i < r->initrd_size; i++)
        sum += p[i];
    gprintf("BOOT initrd addr=0x%lx size=%lu sum=0x%08x\n",
            (unsigned long)r->initrd_addr, (unsigned long)r->initrd_size,
            sum);
}

static void print_common(const struct report *r)
{
    print_cmdline(r);
    print_map(r);
    print_initrd(r);
    gprintf("BOOT magic %s\n", r->magic_ok ? "ok" : "bad");
}

/* ------------------------------------------------------------ multiboot */

static void report_multiboot(u32 mbi, struct report *r)
{
    u32 flags = rd32(mbi);
    u32 mods = (flags & MBI_MODS) ? rd32(mbi + 20) : 0;

    gprintf("BOOT protocol=multiboot\n");
    gprintf("BOOT info_addr=0x%x\n", mbi);
    gprintf("BOOT multiboot flags=0x%x mem_lower_kib=%u mem_upper_kib=%u "
            "mods=%u\n", flags, (flags & MBI_MEM) ? rd32(mbi + 4) : 0,
            (flags & MBI_MEM) ? rd32(mbi + 8) : 0, mods);
    if ((flags & MBI_LOADER) && rd32(mbi + 64)) {
        char name[64];
        u32 s = rd32(mbi + 64);
        unsigned i;

        for (i = 0; i < sizeof(name) - 1 && rd8(s + i) >= 0x20 &&
                    rd8(s + i) < 0x7f; i++)
            name[i] = (char)rd8(s + i);
        name[i] = 0;
        gprintf("BOOT multiboot loader=%s\n", name);
    }

    r->magic_ok = guest_boot_magic == MB_BOOT_MAGIC;
    r->have_cmdline = !!(flags & MBI_CMDLINE);
    r->cmdline = rd32(mbi + 16);
    if (flags & MBI_MMAP) {
        u64 p = rd32(mbi + 48), end = p + rd32(mbi + 44);

        while (p + 24 <= end) {
            u32 size = rd32(p);

            r->map_announced++;
            add_map(r, rd64(p + 4), rd64(p + 12), rd32(p + 20));
            p += (u64)size + 4;
            if (size < 20)
                break;          /* malformed: do not loop forever */
        }
    }
    if (mods) {
        u32 m = rd32(mbi + 24);

        r->have_initrd = 1;
        r->initrd_addr = rd32(m);
        r->initrd_size = rd32(m + 4) - rd32(m);
    }
}

/* ------------------------------------------------------------ PVH */

static void report_pvh(u32 si, struct report *r)
{
    u32 version = rd32(si + 4), nr_modules = rd32(si + 12);

    gprintf("BOOT protocol=pvh\n");
    gprintf("BOOT info_addr=0x%x\n", si);
    gprintf("BOOT pvh version=%u flags=0x%x nr_modules=%u rsdp=0x%lx\n",
            version, rd32(si + 8), nr_modules,
            (unsigned long)rd64(si + 32));

    r->magic_ok = rd32(si) == PVH_MAGIC;
    r->have_cmdline = 1;
    r->cmdline = rd64(si + 24);
    if (version >= 1) {                 /* memmap_* exist from version 1 */
        u64 mm = rd64(si + 40);

        r->map_announced = rd32(si + 48);
        for (u32 i = 0; i < r->map_announced && i < MAX_MAP; i++) {
            u64 e = mm + (u64)i * 24;

            if (!mapped(e, 24))
                break;
            add_map(r, rd64(e), rd64(e + 8), rd32(e + 16));
        }
    }
    if (nr_modules) {
        u64 m = rd64(si + 16);

        if (mapped(m, 32)) {
            r->have_initrd = 1;
            r->initrd_addr = rd64(m);
            r->initrd_size = rd64(m + 8);
        }
    }
}

/* ------------------------------------------------------------ Linux */

static void report_linux(u32 bp, struct report *r)
{
    u32 n;

    gprintf("BOOT protocol=linux\n");
    gprintf("BOOT info_addr=0x%x\n", bp);
    gprintf("BOOT linux version=0x%04x type_of_loader=0x%02x "
            "loadflags=0x%02x heap_end_ptr=0x%04x setup_sects=%u syssize=%u "
            "cmdline_size=%u init_size=0x%x initrd_addr_max=0x%x\n",
            rd16(bp + HDR_VERSION), rd8(bp + HDR_TYPE_OF_LOADER),
            rd8(bp + HDR_LOADFLAGS), rd16(bp + HDR_HEAP_END_PTR),
            rd8(bp + HDR_SETUP_SECTS), rd32(bp + HDR_SYSSIZE),
            rd32(bp + HDR_CMDLINE_SIZE), rd32(bp + HDR_INIT_SIZE),
            rd32(bp + HDR_INITRD_ADDR_MAX));
    gprintf("BOOT linux entry=64 cs=0x%04x ds=0x%04x ss=0x%04x\n",
            guest_entry_cs, guest_entry_ds, guest_entry_ss);

    r->magic_ok = rd32(bp + HDR_MAGIC) == HDRS;
    r->have_cmdline = 1;
    r->cmdline = rd32(bp + HDR_CMD_LINE_PTR) |
                 (u64)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
    n = rd8(bp + BP_E820_ENTRIES);
    r->map_announced = n;
    for (u32 i = 0; i < n && i < BP_E820_MAX; i++) {
        u64 e = bp + BP_E820_TABLE + i * 20;

        add_map(r, rd64(e), rd64(e + 8), rd32(e + 16));
    }
    r->initrd_addr = rd32(bp + HDR_RAMDISK_IMAGE) |
                     (u64)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
    r->initrd_size = rd32(bp + HDR_RAMDISK_SIZE) |
                     (u64)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
    r->have_initrd = r->initrd_addr || r->initrd_size;
}

/* ------------------------------------------------------------ main */

void guest_main(u32 ptr)
{
    struct report r;

    memset(&r, 0, sizeof(r));
    switch (guest_boot_proto) {
    case BOOT_PROTO_MULTIBOOT:
        report_multiboot(ptr, &r);
        break;
    case BOOT_PROTO_PVH:
        report_pvh(ptr, &r);
        break;
    case BOOT_PROTO_LINUX:
        report_linux(ptr, &r);
        break;
    default:
        gprintf("BOOT protocol=unknown (%u)\n", guest_boot_proto);
        break;
    }
    print_common(&r);
    gprintf("BOOT DONE\n");
    outb(DEBUG_EXIT_PORT, 0);
    gprintf("BOOT still alive\n");
    spin_forever();
}
