/*
 * CPUID guest: prints the CPUID leaves a guest OS looks at first, as this
 * vCPU sees them, every `interval` ms (see README.md, "CPUID guest"), so
 * that a test can compare what the guest saw before and after a save and
 * restore, a live update or a migration.
 *
 * CPUID runs at CPL0, as a kernel's would: KVM-PVM on AMD does not
 * intercept a CPL3 CPUID (no CPUID faulting there), which would then show
 * the host's CPU rather than the vCPU's: lib.c cpuid_cpl0_call (the int3
 * gate jumps to cpuid_cpl0, which returns to CPL3 with iretq).
 */
#include "lib.h"

#define INTERVAL_DEFAULT_MS 300

static const struct {
    u32 leaf, subleaf;
} leaves[] = {
    { 0x0, 0 }, { 0x1, 0 }, { 0x7, 0 }, { 0xb, 0 }, { 0xb, 1 },
    { 0xd, 0 }, { 0xd, 1 }, { 0x40000000, 0 }, { 0x40000001, 0 },
    { 0x80000000, 0 }, { 0x80000001, 0 }, { 0x80000008, 0 },
};

static void report(u64 round)
{
    u32 r[4];

    gprintf("CPUID round=%lu\n", (unsigned long)round);
    for (unsigned i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        cpuid_cpl0_call(leaves[i].leaf, leaves[i].subleaf, r);
        gprintf("CPUID leaf=0x%08x.%u eax=0x%08x ebx=0x%08x ecx=0x%08x "
                "edx=0x%08x\n", leaves[i].leaf, leaves[i].subleaf,
                r[0], r[1], r[2], r[3]);
    }
    gprintf("CPUID END round=%lu\n", (unsigned long)round);
}

void guest_main(u32 mbi_phys)
{
    u64 interval = INTERVAL_DEFAULT_MS, tsc_khz, next;
    char buf[32];

    boot_info_init(mbi_phys);
    if (cmdline_get(boot_info.cmdline, "interval", buf, sizeof(buf)) &&
        (!parse_u64(buf, &interval) || !interval)) {
        gprintf("cpuid guest: bad value interval=%s, using the default\n",
                buf);
        interval = INTERVAL_DEFAULT_MS;
    }
    tsc_khz = tsc_calibrate();
    next = rdtsc();
    for (u64 round = 1;; round++) {
        report(round);
        next += interval * tsc_khz;
        if ((s64)(rdtsc() - next) > 0)  /* behind (a long pause): no burst */
            next = rdtsc();
        while ((s64)(rdtsc() - next) < 0)
            cpu_relax();
    }
}
