/*
 * Multiboot info guest (mbinfo.elf; mbaout.bin is the same guest behind an
 * a.out-kludge header): reports, on COM1, the registers the loader left,
 * the whole multiboot information structure, what fw_cfg says, and then
 * starts the application processors with INIT-SIPI-SIPI and counts them.
 * See README.md, "Multiboot info guest".
 */
#include "entry.h"

#define MBI_MEM         (1u << 0)
#define MBI_BOOTDEV     (1u << 1)
#define MBI_CMDLINE     (1u << 2)
#define MBI_MODS        (1u << 3)
#define MBI_MMAP        (1u << 6)
#define MBI_LOADER      (1u << 9)

#define STR_MAX         4096
#define MMAP_MAX        64
#define MODS_MAX        64

#define FW_CFG_CTL      0x510
#define FW_CFG_DATA     0x511
#define KEY_SIGNATURE   0x00
#define KEY_RAM_SIZE    0x03
#define KEY_NB_CPUS     0x05

#define LAPIC           0xfee00000UL
#define LAPIC_ID        0x020
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define ICR_BUSY        (1u << 12)
#define ICR_ALL_BUT_SELF 0x000c0000u
#define ICR_ASSERT      0x00004000u
#define ICR_INIT        0x00000500u
#define ICR_STARTUP     0x00000600u

/* The AP trampoline (real mode) and what it writes, below 1 MiB. */
#define TRAMP_ADDR      0x8000
#define TRAMP_COUNT     0x80f0          /* u32: APs that ran it */
#define TRAMP_BITMAP    0x8100          /* 256 bits: their APIC IDs */

extern u32 mbinfo_regs[20];
extern volatile u32 mbinfo_entries;
extern const u8 mbinfo_tramp[], mbinfo_tramp_end[];

static u64 tsc_khz;

static u8 rd8(u64 a)
{
    return *(const volatile u8 *)(uintptr_t)a;
}

static u32 rd32(u64 a)
{
    return *(const volatile u32 *)(uintptr_t)a;
}

static u64 rd64(u64 a)
{
    return rd32(a) | (u64)rd32(a + 4) << 32;
}

static void wr32(u64 a, u32 v)
{
    *(volatile u32 *)(uintptr_t)a = v;
}

static void delay_us(u64 us)
{
    u64 end = rdtsc() + us * tsc_khz / 1000;

    while (rdtsc() < end)
        cpu_relax();
}

/* A NUL-terminated guest string, escaped as the reporter does. */
static void print_str(const char *prefix, u32 addr)
{
    serial_puts(prefix);
    if (!addr) {
        gprintf("(null)\n");
        return;
    }
    for (u32 i = 0; i < STR_MAX; i++) {
        u8 c = rd8(addr + i);

        if (!c)
            break;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            gprintf("\\x%02x", c);
        else
            serial_putc((char)c);
    }
    gprintf("\n");
}

static void report_regs(void)
{
    const u32 *r = mbinfo_regs;
    const u8 *g = (const u8 *)&r[16], *i = (const u8 *)&r[18];

    gprintf("MBINFO regs eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x esi=0x%x "
            "edi=0x%x ebp=0x%x esp=0x%x\n", r[0], r[1], r[2], r[3], r[4],
            r[5], r[6], r[7]);
    gprintf("MBINFO segs cs=0x%x ds=0x%x es=0x%x fs=0x%x gs=0x%x ss=0x%x "
            "cr0=0x%x gdt_limit=0x%x idt_base=0x%x idt_limit=0x%x\n",
            r[9], r[10], r[11], r[12], r[13], r[14], r[15],
            g[0] | g[1] << 8,
            i[2] | i[3] << 8 | i[4] << 16 | (u32)i[5] << 24,
            i[0] | i[1] << 8);
    gprintf("MBINFO entries=%u\n", mbinfo_entries);
}

static void report_mods(u32 mbi)
{
    u32 n = rd32(mbi + 20), m = rd32(mbi + 24);

    gprintf("MBINFO mods count=%u addr=0x%x\n", n, m);
    for (u32 k = 0; k < n && k < MODS_MAX; k++, m += 16) {
        u32 start = rd32(m), end = rd32(m + 4), sum = 0;

        for (u32 a = start; a < end; a++)
            sum += rd8(a);
        gprintf("MBINFO mod %u start=0x%x end=0x%x sum=0x%08x ", k, start,
                end, sum);
        print_str("string=", rd32(m + 8));
    }
}

static void report_mmap(u32 mbi)
{
    u32 p = rd32(mbi + 48), end = p + rd32(mbi + 44), n = 0;

    gprintf("MBINFO mmap addr=0x%x length=%u\n", rd32(mbi + 48),
            rd32(mbi + 44));
    while (p + 24 <= end && n++ < MMAP_MAX) {
        u32 size = rd32(p);

        gprintf("MBINFO mmap size=%u 0x%lx 0x%lx %u\n", size,
                (unsigned long)rd64(p + 4), (unsigned long)rd64(p + 12),
                rd32(p + 20));
        if (size < 20)
            break;
        p += size + 4;
    }
}

static void report_mbi(u32 mbi)
{
    u32 flags = rd32(mbi);

    gprintf("MBINFO mbi addr=0x%x flags=0x%x\n", mbi, flags);
    if (flags & MBI_MEM)
        gprintf("MBINFO mem lower=%u upper=%u\n", rd32(mbi + 4),
                rd32(mbi + 8));
    if (flags & MBI_BOOTDEV)
        gprintf("MBINFO boot_device=0x%x\n", rd32(mbi + 12));
    if (flags & MBI_CMDLINE) {
        gprintf("MBINFO cmdline_addr=0x%x\n", rd32(mbi + 16));
        print_str("MBINFO cmdline=", rd32(mbi + 16));
    }
    if (flags & MBI_MODS)
        report_mods(mbi);
    if (flags & MBI_MMAP)
        report_mmap(mbi);
    if (flags & MBI_LOADER)
        print_str("MBINFO loader=", rd32(mbi + 64));
}

/* ------------------------------------------------------------ fw_cfg */

static u32 fw_cfg_u32(u16 key)
{
    u32 v = 0;

    outw(FW_CFG_CTL, key);
    for (int i = 0; i < 4; i++)
        v |= (u32)inb(FW_CFG_DATA) << (8 * i);
    return v;
}

/* Number of CPUs fw_cfg announces, 0 without fw_cfg. */
static u32 report_fw_cfg(void)
{
    u32 sig = fw_cfg_u32(KEY_SIGNATURE), ram_lo, ram_hi, cpus;

    if (sig != 0x554d4551) {            /* "QEMU" */
        gprintf("MBINFO fwcfg none signature=0x%x\n", sig);
        return 0;
    }
    cpus = fw_cfg_u32(KEY_NB_CPUS) & 0xffff;
    outw(FW_CFG_CTL, KEY_RAM_SIZE);
    ram_lo = 0;
    ram_hi = 0;
    for (int i = 0; i < 4; i++)
        ram_lo |= (u32)inb(FW_CFG_DATA) << (8 * i);
    for (int i = 0; i < 4; i++)
        ram_hi |= (u32)inb(FW_CFG_DATA) << (8 * i);
    gprintf("MBINFO fwcfg nb_cpus=%u ram_size=%lu\n", cpus,
            (unsigned long)((u64)ram_hi << 32 | ram_lo));
    return cpus;
}

/* ------------------------------------------------------------ SMP */

static void icr_send(u32 lo)
{
    wr32(LAPIC + LAPIC_ICR_HI, 0);
    wr32(LAPIC + LAPIC_ICR_LO, lo);
    for (u32 i = 0; i < 1000000 && (rd32(LAPIC + LAPIC_ICR_LO) & ICR_BUSY);
         i++)
        cpu_relax();
}

static unsigned started(void)
{
    return rd32(TRAMP_COUNT);
}

static void report_smp(u32 cpus)
{
    u32 bsp = rd32(LAPIC + LAPIC_ID) >> 24;
    u64 deadline;

    memcpy((void *)TRAMP_ADDR, mbinfo_tramp, mbinfo_tramp_end - mbinfo_tramp);
    wr32(TRAMP_COUNT, 0);
    for (int i = 0; i < 8; i++)
        wr32(TRAMP_BITMAP + 4 * i, 0);
    /* Give an AP that was (wrongly) started at the entry time to show. */
    delay_us(50000);
    gprintf("MBINFO smp bsp_apic=%u before_sipi entries=%u started=%u\n",
            bsp, mbinfo_entries, started());
    wr32(LAPIC + LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
    icr_send(ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT);
    delay_us(10000);
    icr_send(ICR_ALL_BUT_SELF | ICR_STARTUP | (TRAMP_ADDR >> 12));
    delay_us(200);
    icr_send(ICR_ALL_BUT_SELF | ICR_STARTUP | (TRAMP_ADDR >> 12));
    /* A bound, not a measurement: 10 s of TSC time. */
    deadline = rdtsc() + 10000 * tsc_khz;
    while (started() + 1 < cpus && rdtsc() < deadline)
        cpu_relax();
    delay_us(100000);                   /* late or extra CPUs */
    gprintf("MBINFO smp cpus=%u started=%u entries=%u apic_ids=", cpus,
            started(), mbinfo_entries);
    for (u32 id = 0, first = 1; id < 256; id++) {
        if (!(rd8(TRAMP_BITMAP + id / 8) & (1u << (id % 8))))
            continue;
        gprintf(first ? "%u" : ",%u", id);
        first = 0;
    }
    gprintf("\n");
}

/* wait=1 on the command line: wait for a byte on COM1 before the SIPIs. */
static void maybe_wait(u32 mbi)
{
    static char cmdline[1024];
    char val[8];
    u32 p = (rd32(mbi) & MBI_CMDLINE) ? rd32(mbi + 16) : 0;
    u32 i;

    for (i = 0; p && i < sizeof(cmdline) - 1 && rd8(p + i); i++)
        cmdline[i] = (char)rd8(p + i);
    cmdline[i] = 0;
    if (!cmdline_get(cmdline, "wait", val, sizeof(val)) || strcmp(val, "1"))
        return;
    gprintf("MBINFO smp WAITING\n");
    while (!(inb(COM1_LSR) & LSR_DR))
        cpu_relax();
    (void)inb(COM1);
}

void guest_main(u32 mbi)
{
    u32 cpus;

    report_regs();
    report_mbi(mbi);
    cpus = report_fw_cfg();
    tsc_khz = tsc_calibrate();
    maybe_wait(mbi);
    if (cpus)
        report_smp(cpus);
    gprintf("MBINFO DONE\n");
    outb(DEBUG_EXIT_PORT, 0);
    gprintf("MBINFO still alive\n");
    spin_forever();
}

/*
 * The AP trampoline, copied to TRAMP_ADDR: real mode, CS = TRAMP_ADDR >> 4
 * at offset 0.  Marks its APIC ID (CPUID 1, EBX[31:24]) in the bitmap,
 * counts itself and halts with interrupts off.
 */
__asm__(
    "   .section .rodata\n"
    "   .globl mbinfo_tramp, mbinfo_tramp_end\n"
    "   .code16\n"
    "mbinfo_tramp:\n"
    "   cli\n"
    "   xorw %ax, %ax\n"
    "   movw %ax, %ds\n"
    "   movl $1, %eax\n"
    "   cpuid\n"
    "   shrl $24, %ebx\n"
    "   lock btsl %ebx, 0x8100\n"
    "   lock incl 0x80f0\n"
    "1: hlt\n"
    "   jmp 1b\n"
    "mbinfo_tramp_end:\n"
    "   .code64\n"
    "   .previous\n");
