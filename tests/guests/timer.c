/*
 * Timer guest: the local APIC timer in TSC-deadline mode, as Linux uses
 * it for its clockevents.  Each round arms IA32_TSC_DEADLINE `period` ms
 * ahead (wrmsr at CPL0 through the int3 gate: lib.c lapic_timer_arm), waits
 * for the interrupt (vector MSI_VECTOR: cpu.S counts it and EOIs the
 * local APIC) and prints "TIMER n=N".  A restore or migration that
 * loses the armed deadline leaves it waiting for ever: the lines stop.
 */
#include "lib.h"

#define PERIOD_DEFAULT_MS 200

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
    lapic_timer_init(tsc_khz, LAPIC_TIMER_DEADLINE);
    gprintf("TIMER ready lvtt=0x%x period_ms=%lu\n",
            mmio_read32(LAPIC_BASE + LAPIC_LVTT), (unsigned long)period);
    guest_cpl0_jump = 0;
    irq_enable();                   /* int3 while guest_cpl0_jump is 0 */
    for (u64 n = 1;; n++) {
        seen = guest_msi_count;
        lapic_timer_arm(rdtsc() + period * tsc_khz);
        while (guest_msi_count == seen)
            cpu_relax();
        gprintf("TIMER n=%lu\n", (unsigned long)n);
    }
}
