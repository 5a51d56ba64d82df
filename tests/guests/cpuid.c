/*
 * CPUID guest: prints the CPUID leaves a guest OS looks at first, as this
 * vCPU sees them, every `interval` ms (see README.md, "CPUID guest"), so
 * that a test can compare what the guest saw before and after a save and
 * restore, a live update or a migration.
 *
 * CPUID runs at CPL0, as a kernel's would: KVM-PVM on AMD does not
 * intercept a CPL3 CPUID (no CPUID faulting there), which would then show
 * the host's CPU rather than the vCPU's.  The int3 gate jumps to
 * cpuid_cpl0 (guest_cpl0_jump), which returns to CPL3 with iretq.
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

volatile u32 cpuid_in[2], cpuid_out[4];
void cpuid_cpl0(void);

__asm__(".text\n"
        ".globl cpuid_cpl0\n"
        "cpuid_cpl0:\n"
        "    movl cpuid_in(%rip), %eax\n"
        "    movl cpuid_in+4(%rip), %ecx\n"
        "    cpuid\n"
        "    movl %eax, cpuid_out(%rip)\n"
        "    movl %ebx, cpuid_out+4(%rip)\n"
        "    movl %ecx, cpuid_out+8(%rip)\n"
        "    movl %edx, cpuid_out+12(%rip)\n"
        "    iretq\n");

static void cpuid(u32 leaf, u32 subleaf, u32 r[4])
{
    cpuid_in[0] = leaf;
    cpuid_in[1] = subleaf;
    __asm__ __volatile__("int3" ::: "rax", "rbx", "rcx", "rdx", "memory");
    for (int i = 0; i < 4; i++)
        r[i] = cpuid_out[i];
}

static void report(u64 round)
{
    u32 r[4];

    gprintf("CPUID round=%lu\n", (unsigned long)round);
    for (unsigned i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        cpuid(leaves[i].leaf, leaves[i].subleaf, r);
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
    guest_cpl0_jump = (u64)cpuid_cpl0;
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
