/*
 * Timer guest: the local APIC timer in TSC-deadline mode, as Linux uses
 * it for its clockevents.  Each round arms IA32_TSC_DEADLINE `period` ms
 * ahead (wrmsr at CPL0 through the int3 gate, guest_cpl0_jump), waits
 * for the interrupt (vector MSI_VECTOR: cpu.S counts it and EOIs the
 * local APIC) and prints "TIMER n=N".  A restore or migration that
 * loses the armed deadline leaves it waiting for ever: the lines stop.
 */
#include "lib.h"

#define PERIOD_DEFAULT_MS 200
#define LAPIC_BASE      0xfee00000u
#define LAPIC_TPR       0x80
#define LAPIC_SVR       0xf0
#define LAPIC_LVTT      0x320
#define LVTT_TSC_DEADLINE (2u << 17)

volatile u64 deadline_in;
void deadline_cpl0(void);

__asm__(".text\n"
        ".globl deadline_cpl0\n"
        "deadline_cpl0:\n"
        "    movl $0x6e0, %ecx\n"
        "    movl deadline_in(%rip), %eax\n"
        "    movl deadline_in+4(%rip), %edx\n"
        "    wrmsr\n"
        "    iretq\n");

static void mmio_write32(u64 a, u32 v)
{
    *(volatile u32 *)a = v;
}

static u32 mmio_read32(u64 a)
{
    return *(volatile u32 *)a;
}

static void arm(u64 tsc)
{
    deadline_in = tsc;
    __asm__ __volatile__("int3" ::: "rax", "rcx", "rdx", "memory");
}

void guest_main(u32 mbi_phys)
{
    u64 period = PERIOD_DEFAULT_MS, tsc_khz, seen;
    char buf[32];

    boot_info_init(mbi_phys);
    if (cmdline_get(boot_info.cmdline, "period", buf, sizeof(buf)) &&
        (!parse_u64(buf, &period) || !period)) {
        gprintf("timer guest: bad value period=%s, using the default\n",
                buf);
        period = PERIOD_DEFAULT_MS;
    }
    tsc_khz = tsc_calibrate();
    mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
    mmio_write32(LAPIC_BASE + LAPIC_LVTT, LVTT_TSC_DEADLINE | MSI_VECTOR);
    gprintf("TIMER ready lvtt=0x%x period_ms=%lu\n",
            mmio_read32(LAPIC_BASE + LAPIC_LVTT), (unsigned long)period);
    irq_enable();                   /* int3 while guest_cpl0_jump is 0 */
    guest_cpl0_jump = (u64)deadline_cpl0;
    for (u64 n = 1;; n++) {
        seen = guest_msi_count;
        arm(rdtsc() + period * tsc_khz);
        while (guest_msi_count == seen)
            cpu_relax();
        gprintf("TIMER n=%lu\n", (unsigned long)n);
    }
}
