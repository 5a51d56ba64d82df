/*
 * ACPI guest: finds the RSDP the way a guest without a boot protocol's
 * pointer does (scanning 0xE0000-0xFFFFF), reads the FADT, the DSDT's
 * \_S5 and the MADT's SCI override, checks the PM timer's rate against
 * the RTC (one second of it), routes the SCI (IOAPIC pin, vector
 * SCI_VECTOR), enables the power button event and then reports what
 * comes: each NMI (vector 2) and each SCI with the PM1 status it found.
 * On the power button it powers itself off through SLP_TYP/SLP_EN, or
 * with button=ignore only says so and runs on.  See README.md,
 * "ACPI guest".
 */
#include "lib.h"

#define BIOS_AREA       0xe0000
#define BIOS_AREA_END   0x100000
#define IOAPIC_BASE     0xfec00000u
#define LAPIC_ID        0x20

#define PM1_TMR         0x0001
#define PM1_PWRBTN      0x0100
#define PM1_SLP_EN      0x2000
#define FADT_PWR_BUTTON (1u << 4)
#define FADT_TMR_VAL_EXT (1u << 8)
#define PM_TMR_HZ       3579545ULL

struct sdt {
    char sig[4];
    u32 len;
    u8 rev, sum;
    char oem[6], table[8];
    u32 oem_rev, creator, creator_rev;
} __attribute__((packed));

struct acpi {
    const struct sdt *fadt, *dsdt, *madt;
    u16 pm1_evt, pm1_cnt, pm_tmr;
    u16 sci;
    u32 flags;
    int s5;                 /* \_S5's SLP_TYPa, or -1 */
    u16 sci_flags;          /* MADT override of the SCI: MPS flags */
    int sci_gsi;
};

static struct acpi acpi;

static u32 rd32(const void *p)
{
    u32 v;

    memcpy(&v, p, 4);
    return v;
}

static u8 sum(const void *p, u32 len)
{
    const u8 *b = p;
    u8 s = 0;

    for (u32 i = 0; i < len; i++)
        s += b[i];
    return s;
}

/* ------------------------------------------------------------ tables */

static const u8 *find_rsdp(void)
{
    for (u64 a = BIOS_AREA; a < BIOS_AREA_END; a += 16) {
        const u8 *p = (const u8 *)a;

        if (!memcmp(p, "RSD PTR ", 8) && !sum(p, 20))
            return p;
    }
    return 0;
}

static const struct sdt *table(const struct sdt *rsdt, const char *sig)
{
    u32 n = (rsdt->len - sizeof(*rsdt)) / 4;

    for (u32 i = 0; i < n; i++) {
        const struct sdt *t =
            (const struct sdt *)(u64)rd32((const u8 *)(rsdt + 1) + 4 * i);

        if (!memcmp(t->sig, sig, 4) && !sum(t, t->len))
            return t;
    }
    return 0;
}

/* Name (_S5_, Package () { SLP_TYPa, ... }): the first element. */
static int dsdt_s5(const struct sdt *dsdt)
{
    const u8 *p = (const u8 *)dsdt, *end = p + dsdt->len;

    for (p += sizeof(*dsdt); p + 10 < end; p++) {
        if (memcmp(p, "_S5_", 4) || p[4] != 0x12)
            continue;
        p += 7;             /* PackageOp, PkgLength (1 byte), count */
        if (*p == 0x0a)
            return p[1];    /* BytePrefix */
        return *p <= 1 ? *p : -1;   /* ZeroOp, OneOp */
    }
    return -1;
}

/* The MADT's interrupt source override of the SCI, if any. */
static void madt_sci(const struct sdt *madt)
{
    const u8 *p = (const u8 *)madt + sizeof(*madt) + 8;
    const u8 *end = (const u8 *)madt + madt->len;

    acpi.sci_gsi = acpi.sci;
    acpi.sci_flags = 0;
    for (; p + 2 <= end && p[1]; p += p[1]) {
        if (p[0] != 2 || p[3] != acpi.sci)
            continue;
        acpi.sci_gsi = rd32(p + 4);
        acpi.sci_flags = p[8] | p[9] << 8;
    }
}

static int read_tables(void)
{
    const u8 *rsdp = find_rsdp();
    const struct sdt *rsdt;
    const u8 *f;

    if (!rsdp) {
        gprintf("ACPI FAILED: no RSDP in 0xe0000-0xfffff\n");
        return 0;
    }
    rsdt = (const struct sdt *)(u64)rd32(rsdp + 16);
    gprintf("ACPI rsdp=%p rsdt=%p\n", rsdp, rsdt);
    acpi.fadt = table(rsdt, "FACP");
    acpi.madt = table(rsdt, "APIC");
    if (!acpi.fadt || !acpi.madt) {
        gprintf("ACPI FAILED: fadt=%p madt=%p\n", acpi.fadt, acpi.madt);
        return 0;
    }
    f = (const u8 *)acpi.fadt;
    acpi.dsdt = (const struct sdt *)(u64)rd32(f + 40);
    acpi.sci = f[46] | f[47] << 8;
    acpi.pm1_evt = rd32(f + 56);
    acpi.pm1_cnt = rd32(f + 64);
    acpi.pm_tmr = rd32(f + 76);
    acpi.flags = rd32(f + 112);
    acpi.s5 = sum(acpi.dsdt, acpi.dsdt->len) ? -1 : dsdt_s5(acpi.dsdt);
    madt_sci(acpi.madt);
    gprintf("ACPI fadt pm1_evt=%x pm1_cnt=%x pm_tmr=%x sci=%u "
            "tmr_bits=%u fixed_power_button=%u\n",
            acpi.pm1_evt, acpi.pm1_cnt, acpi.pm_tmr, acpi.sci,
            acpi.flags & FADT_TMR_VAL_EXT ? 32 : 24,
            !(acpi.flags & FADT_PWR_BUTTON));
    gprintf("ACPI dsdt s5=%d madt sci_gsi=%d sci_flags=%x\n", acpi.s5,
            acpi.sci_gsi, acpi.sci_flags);
    return acpi.pm1_evt && acpi.pm1_cnt && acpi.pm_tmr && acpi.s5 >= 0;
}

/* ------------------------------------------------------------ PM timer */

static u8 rtc_seconds(void)
{
    outb(0x70, 0x00);
    return inb(0x71);
}

/* PM timer ticks, accumulated from `*last`, until the RTC's seconds change. */
static u64 ticks_to_next_second(u32 mask, u32 *last)
{
    u8 sec = rtc_seconds();
    u64 ticks = 0;

    do {
        u32 now = inl(acpi.pm_tmr) & mask;

        ticks += (now - *last) & mask;
        *last = now;
    } while (rtc_seconds() == sec);
    return ticks;
}

/*
 * Ticks of the PM timer over one second of the RTC (from one change of
 * its seconds to the next), the host's clock on both sides: the guest's
 * TSC is no reference on a loaded host.  Loose by design: the point is
 * a timer at about 3.58 MHz, not its precision.
 */
static void pm_timer_rate(void)
{
    u32 mask = acpi.flags & FADT_TMR_VAL_EXT ? 0xffffffffu : 0xffffffu;
    u32 last = inl(acpi.pm_tmr) & mask;
    u64 hz;

    ticks_to_next_second(mask, &last);
    hz = ticks_to_next_second(mask, &last);
    gprintf("ACPI pmtimer hz=%llu ok=%d\n", (unsigned long long)hz,
            hz > PM_TMR_HZ * 3 / 4 && hz < PM_TMR_HZ * 5 / 4);
}

/* ------------------------------------------------------------ SCI */

static void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

/*
 * Route the SCI's GSI to SCI_VECTOR on this CPU, with the polarity and
 * trigger the MADT says (MPS flags: bits 0-1 polarity, 3 = active low;
 * bits 2-3 trigger, 3 = level; 0 = ISA's: high, edge).  The 8259s stay
 * masked.
 */
static void route_sci(void)
{
    u32 id, lo = SCI_VECTOR;

    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
    id = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    if ((acpi.sci_flags & 3) == 3)
        lo |= 1u << 13;
    if (((acpi.sci_flags >> 2) & 3) == 3)
        lo |= 1u << 15;
    ioapic_write(0x10 + 2 * acpi.sci_gsi + 1, id << 24);
    ioapic_write(0x10 + 2 * acpi.sci_gsi, lo);
    gprintf("ACPI sci routed gsi=%d vector=%x %s %s\n", acpi.sci_gsi,
            SCI_VECTOR, lo & (1u << 15) ? "level" : "edge",
            lo & (1u << 13) ? "low" : "high");
}

static void enable_events(void)
{
    guest_pm1_evt = acpi.pm1_evt;
    outw(acpi.pm1_evt, 0xffff);                 /* clear all status */
    outw(acpi.pm1_evt + 2, PM1_PWRBTN);
    gprintf("ACPI events enabled pm1_en=%x pm1_cnt=%x\n",
            inw(acpi.pm1_evt + 2), inw(acpi.pm1_cnt));
    irq_enable();
}

static void power_off(void)
{
    gprintf("ACPI orderly poweroff slp_typ=%d\n", acpi.s5);
    outw(acpi.pm1_cnt, (u16)(acpi.s5 << 10) | PM1_SLP_EN);
    gprintf("ACPI FAILED: still running after SLP_EN\n");
}

/* Report NMIs and SCIs as they come; act on the power button. */
static __attribute__((noreturn)) void event_loop(int ignore)
{
    u64 nmis = 0, scis = 0;

    gprintf("ACPI READY button=%s\n", ignore ? "ignore" : "poweroff");
    for (;;) {
        u16 sts;

        if (guest_nmi_count != nmis) {
            nmis = guest_nmi_count;
            gprintf("ACPI nmi count=%llu\n", (unsigned long long)nmis);
        }
        if (guest_sci_count == scis) {
            cpu_relax();
            continue;
        }
        scis = guest_sci_count;
        sts = __atomic_exchange_n(&guest_sci_sts, 0, __ATOMIC_SEQ_CST);
        gprintf("ACPI sci count=%llu pm1_sts=%x\n",
                (unsigned long long)scis, sts);
        if (!(sts & PM1_PWRBTN))
            continue;
        gprintf("ACPI power button pressed%s\n",
                ignore ? ", ignored" : "");
        if (!ignore)
            power_off();
    }
}

void guest_main(u32 mbi_phys)
{
    char buf[16];
    int ignore = 0;

    boot_info_init(mbi_phys);
    if (cmdline_get(boot_info.cmdline, "button", buf, sizeof(buf)))
        ignore = !strcmp(buf, "ignore");
    if (!read_tables()) {
        outb(DEBUG_EXIT_PORT, 1);
        spin_forever();
    }
    pm_timer_rate();
    route_sci();
    enable_events();
    event_loop(ignore);
}
