/*
 * Tiny freestanding runtime of the test guests.  Everything here runs at
 * CPL3 with IOPL=3: port I/O works, privileged instructions do not.
 */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

/* Size of the COM1 receive ring filled by the CPL0 IRQ4 handler (power of 2). */
#define GUEST_RING_SIZE 256
/* DPL3 IDT gate (int3) that returns to CPL3 with IF=1, see irq_enable(). */
#define STI_VECTOR 3
/* MSI/MSI-X vector (counted in guest_msi_count, EOI to the local APIC). */
#define MSI_VECTOR 0x40
/* NMI: counted in guest_nmi_count. */
#define NMI_VECTOR 2
/* The ACPI SCI through the IOAPIC (the acpi guest; cpu.S guest_sci_entry). */
#define SCI_VECTOR 0x49
/* Local APIC spurious vector (SVR): a gate that only returns. */
#define APIC_SPURIOUS_VECTOR 0xff
#define LAPIC_EOI_ADDR 0xfee000b0

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define barrier() __asm__ __volatile__("" ::: "memory")

#define COM1            0x3F8
#define COM1_IER        (COM1 + 1)
#define COM1_LCR        (COM1 + 3)
#define COM1_MCR        (COM1 + 4)
#define COM1_LSR        (COM1 + 5)
#define LSR_DR          0x01    /* receive data ready */
#define LSR_THRE        0x20    /* transmit holding register empty */

#define DEBUG_EXIT_PORT 0xF4

static inline void outb(u16 port, u8 v)
{
    __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void outw(u16 port, u16 v)
{
    __asm__ __volatile__("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(u16 port, u32 v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline u16 inw(u16 port)
{
    u16 v;
    __asm__ __volatile__("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline u32 inl(u16 port)
{
    u32 v;
    __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

/*
 * Enable interrupts.  Not a CPL3 `sti`: KVM-PVM runs CPL3 with IOPL=0
 * whatever RFLAGS says, so `sti` would #GP.  int3 goes through the DPL3
 * gate of vector 3 (boot.S, guest_sti_entry), which returns with IF set.
 * (Other `int $N` from CPL3 fault on KVM-PVM.)  Same behaviour under TCG.
 */
static inline void irq_enable(void)
{
    __asm__ __volatile__("int3" ::: "memory");
}

/* Never returns; spins at CPL3 (hlt is privileged). */
__attribute__((noreturn)) void spin_forever(void);

/* mem*: gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* COM1 output (polls LSR.THRE before each byte). */
void serial_putc(char c);
void serial_puts(const char *s);
/* Minimal printf: %d %i %u %x %X %p %s %c %% with l/ll/z, width, '0' and '-'. */
int gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gvprintf(const char *fmt, va_list ap);

/* What the guest keeps from the multiboot info (copied at entry). */
#define CMDLINE_MAX 1024
struct boot_info {
    u32 mbi_flags;
    int have_mem;           /* mbi flags bit 0 */
    u32 mem_lower_kib;
    u32 mem_upper_kib;
    int have_cmdline;       /* mbi flags bit 2 */
    char cmdline[CMDLINE_MAX];
};
extern struct boot_info boot_info;
/* Copy what is needed out of the mbi (before anything overwrites it). */
void boot_info_init(u32 mbi_phys);

/*
 * Command line: whitespace-separated tokens; `key=value` tokens are looked
 * up by exact key, the last occurrence wins; other tokens (QEMU prepends
 * the kernel file name) are ignored.  Returns 1 and copies the value
 * (NUL-terminated, truncated to outsz-1) when found, else 0.
 */
int cmdline_get(const char *cmdline, const char *key, char *out, size_t outsz);
/* Whole string must be a decimal or 0x-hex number; returns 1 on success. */
int parse_u64(const char *s, u64 *v);
/* Number with optional K/M/G suffix (binary units, either case, optional
 * trailing 'B' or 'iB'): bytes.  Returns 1 on success. */
int parse_size(const char *s, u64 *v);

/*
 * TSC calibration against PIT channel 2 (2-3 runs of ~50 ms, smallest
 * result kept).  Falls back to
 * TSC_KHZ_FALLBACK and prints a WARNING line when the PIT does not answer
 * or the result is implausible.
 */
#define TSC_KHZ_FALLBACK 2000000ULL
u64 tsc_calibrate(void);

/*
 * The local APIC timer (xAPIC registers at LAPIC_BASE, identity-mapped),
 * interrupting on MSI_VECTOR (cpu.S counts it in guest_msi_count and EOIs
 * the local APIC).  TSC-deadline mode where CPUID.1:ECX[24] says so,
 * else one-shot mode with the timer's rate measured against the TSC.
 * wrmsr and hlt are privileged: they run at CPL0 behind the int3 gate
 * (lapic_cpl0, through guest_cpl0_jump), so a guest that uses these
 * cannot use irq_enable() afterwards.
 */
#define LAPIC_BASE      0xfee00000u
#define LAPIC_TPR       0x80
#define LAPIC_SVR       0xf0
#define LAPIC_LVTT      0x320
#define LAPIC_TMICT     0x380           /* initial count */
#define LAPIC_TMCCT     0x390           /* current count */
#define LAPIC_TDCR      0x3e0           /* divide configuration */
#define LVTT_MASKED     (1u << 16)
#define LVTT_TSC_DEADLINE (2u << 17)

enum lapic_timer_mode {
    LAPIC_TIMER_AUTO,           /* TSC-deadline if offered, else one-shot */
    LAPIC_TIMER_DEADLINE,
    LAPIC_TIMER_ONESHOT,
};

/* 32-bit MMIO, one mov each (so any hypervisor can decode them). */
static inline u32 mmio_read32(u64 a)
{
    u32 v;
    __asm__ __volatile__("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}

static inline void mmio_write32(u64 a, u32 v)
{
    __asm__ __volatile__("movl %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

/* CPUID at CPL0 (cpuid faults at CPL3 where the host sets CPUID faulting:
 * the cpuid guest's path), r = eax, ebx, ecx, edx. */
void cpuid_cpl0_call(u32 leaf, u32 subleaf, u32 r[4]);
/* Whether CPUID offers the TSC-deadline timer. */
int lapic_has_tsc_deadline(void);
/* Enables the local APIC (TPR 0, SVR with the spurious vector) and programs
 * the timer on MSI_VECTOR in `mode` (AUTO picks); returns the mode taken.
 * ONESHOT measures the timer's rate first (10 ms of TSC). */
enum lapic_timer_mode lapic_timer_init(u64 tsc_khz, enum lapic_timer_mode mode);
/* The one-shot timer's rate in kHz (0 in TSC-deadline mode). */
extern u64 lapic_timer_khz;
/* Arms the timer to fire when the TSC reaches `deadline`. */
void lapic_timer_arm(u64 deadline);
/* Halts (interrupts enabled only inside the halt) until the TSC reaches
 * `deadline`: arms the timer, halts, and again after an early wake.
 * Returns the number of halts. */
u64 lapic_sleep_until(u64 deadline);

/* Filled by the IRQ4 handler in boot.S. */
extern volatile u8 guest_ring_buf[GUEST_RING_SIZE];
extern volatile u32 guest_ring_head;
extern volatile u64 guest_irq_count;
/* MSI interrupts taken (vector MSI_VECTOR, cpu.S guest_msi_entry). */
extern volatile u64 guest_msi_count;
/* SCIs taken, the PM1 status bits they found (and cleared), the PM1
 * event block's port the handler reads (set before enabling the SCI),
 * NMIs taken. */
extern volatile u64 guest_sci_count;
extern volatile u16 guest_sci_sts;
extern volatile u16 guest_pm1_evt;
extern volatile u64 guest_nmi_count;
/* Where the int3 gate jumps at CPL0 instead of returning, if not 0. */
extern volatile u64 guest_cpl0_jump;

/* Entry point called by boot.S at CPL3. */
void guest_main(u32 mbi_phys);

#endif /* !__ASSEMBLER__ */
#endif /* GUEST_LIB_H */
