/* Tiny freestanding runtime of the test guests (see lib.h). */
#include "lib.h"

struct boot_info boot_info;

void spin_forever(void)
{
    for (;;)
        cpu_relax();
}

/* ------------------------------------------------------------ mem/str */

void *memset(void *d, int c, size_t n)
{
    void *ret = d;
    __asm__ __volatile__("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return ret;
}

void *memcpy(void *d, const void *s, size_t n)
{
    void *ret = d;
    __asm__ __volatile__("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return ret;
}

void *memmove(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;

    if (dp <= sp || dp >= sp + n)
        return memcpy(d, s, n);
    while (n--)
        dp[n] = sp[n];
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;

    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (u8)*a - (u8)*b;
}

/* ------------------------------------------------------------ serial */

void serial_putc(char c)
{
    /*
     * Bounded wait for THRE: a missing UART reads 0xFF (THRE set); a
     * stuck one must not hang the guest forever.
     */
    for (unsigned i = 0; i < 100000; i++)
        if (inb(COM1_LSR) & LSR_THRE)
            break;
    outb(COM1, (u8)c);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

/* ------------------------------------------------------------ printf */

static void emit_pad(char c, int n)
{
    for (; n > 0; n--)
        serial_putc(c);
}

static int emit_num(u64 v, unsigned base, int neg, int upper, int width,
                    char pad, int left)
{
    char buf[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int i = 0, len, padn;

    do {
        buf[i++] = digits[v % base];
        v /= base;
    } while (v);
    len = i + neg;
    padn = width > len ? width - len : 0;
    if (!left && pad == '0') {
        if (neg)
            serial_putc('-');
        emit_pad('0', padn);
    } else {
        if (!left)
            emit_pad(' ', padn);
        if (neg)
            serial_putc('-');
    }
    while (i)
        serial_putc(buf[--i]);
    if (left)
        emit_pad(' ', padn);
    return len + padn;
}

static int emit_str(const char *s, int width, int left)
{
    int len = (int)strlen(s), padn = width > len ? width - len : 0;

    if (!left)
        emit_pad(' ', padn);
    serial_puts(s);
    if (left)
        emit_pad(' ', padn);
    return len + padn;
}

int gvprintf(const char *fmt, va_list ap)
{
    int n = 0;

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            if (*fmt == '\n') {
                serial_putc('\r');
                n++;
            }
            serial_putc(*fmt);
            n++;
            continue;
        }
        fmt++;
        int left = 0, width = 0, lng = 0;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            lng = 1;
            fmt++;
        }
        if (left)
            pad = ' ';
        switch (*fmt) {
        case 'd':
        case 'i': {
            s64 v = lng ? va_arg(ap, long) : va_arg(ap, int);
            n += emit_num(v < 0 ? -(u64)v : (u64)v, 10, v < 0, 0, width, pad,
                          left);
            break;
        }
        case 'u':
            n += emit_num(lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned),
                          10, 0, 0, width, pad, left);
            break;
        case 'x':
        case 'X':
            n += emit_num(lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned),
                          16, 0, *fmt == 'X', width, pad, left);
            break;
        case 'p':
            serial_puts("0x");
            n += 2 + emit_num((u64)(uintptr_t)va_arg(ap, void *), 16, 0, 0,
                              width, pad, left);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            n += emit_str(s ? s : "(null)", width, left);
            break;
        }
        case 'c':
            serial_putc((char)va_arg(ap, int));
            n++;
            break;
        case '%':
            serial_putc('%');
            n++;
            break;
        case '\0':
            return n;
        default:
            serial_putc('%');
            serial_putc(*fmt);
            n += 2;
            break;
        }
    }
    return n;
}

int gprintf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = gvprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* ------------------------------------------------------------ boot info */

void boot_info_init(u32 mbi_phys)
{
    const volatile u32 *mbi = (const volatile u32 *)(uintptr_t)mbi_phys;

    memset(&boot_info, 0, sizeof(boot_info));
    if (!mbi_phys)
        return;
    boot_info.mbi_flags = mbi[0];
    if (boot_info.mbi_flags & 1) {
        boot_info.have_mem = 1;
        boot_info.mem_lower_kib = mbi[1];
        boot_info.mem_upper_kib = mbi[2];
    }
    if ((boot_info.mbi_flags & 4) && mbi[4]) {
        const volatile char *s = (const volatile char *)(uintptr_t)mbi[4];
        size_t i;

        boot_info.have_cmdline = 1;
        for (i = 0; i < CMDLINE_MAX - 1 && s[i]; i++)
            boot_info.cmdline[i] = s[i];
        boot_info.cmdline[i] = 0;
    }
}

/* ------------------------------------------------------------ parsing */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cmdline_get(const char *cmdline, const char *key, char *out, size_t outsz)
{
    size_t klen = strlen(key);
    const char *p = cmdline;
    int found = 0;

    while (*p) {
        while (is_space(*p))
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (*p && !is_space(*p))
            p++;
        if ((size_t)(p - tok) > klen && memcmp(tok, key, klen) == 0 &&
            tok[klen] == '=') {
            const char *v = tok + klen + 1;
            size_t n = (size_t)(p - v);
            if (outsz) {
                if (n > outsz - 1)
                    n = outsz - 1;
                memcpy(out, v, n);
                out[n] = 0;
            }
            found = 1;
        }
    }
    return found;
}

/* Parses a number at *sp, advancing it; 0 on no digits or overflow. */
static int parse_num(const char **sp, u64 *v)
{
    const char *s = *sp;
    unsigned base = 10;
    u64 r = 0;
    int digits = 0;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            break;
        if (r > (~0ULL - d) / base)
            return 0;
        r = r * base + d;
        digits++;
    }
    if (!digits)
        return 0;
    *sp = s;
    *v = r;
    return 1;
}

int parse_u64(const char *s, u64 *v)
{
    u64 r;

    if (!parse_num(&s, &r) || *s)
        return 0;
    *v = r;
    return 1;
}

int parse_size(const char *s, u64 *v)
{
    u64 r;
    unsigned shift = 0;

    if (!parse_num(&s, &r))
        return 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    }
    if (shift && *s == 'i' && s[1] == 'B')
        s += 2;
    else if (*s == 'B' || *s == 'b')
        s++;
    if (*s)
        return 0;
    if (shift && r > (~0ULL >> shift))
        return 0;
    *v = r << shift;
    return 1;
}

/* ------------------------------------------------------------ TSC */

#define PIT_HZ          1193182ULL
#define PIT_CAL_COUNT   59659ULL        /* 0xE90B: 50.0 ms */

/* One ~50 ms measurement; returns kHz, or 0 if the PIT did not answer. */
static u64 pit_measure(void)
{
    u64 t0, t1;
    unsigned long i;
    u8 v;

    /* Gate channel 2 on (bit 0), speaker data off (bit 1). */
    v = inb(0x61);
    outb(0x61, (u8)((v & ~0x02) | 0x01));
    /* Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count). */
    outb(0x43, 0xB0);
    outb(0x42, PIT_CAL_COUNT & 0xFF);
    outb(0x42, PIT_CAL_COUNT >> 8);
    t0 = rdtsc();
    /*
     * OUT2 is low from the mode write until the count expires.  Bounded
     * by iterations and by TSC ticks (1e9: 0.1 s at 10 GHz) so a missing
     * PIT costs at most a fraction of a second.
     */
    for (i = 0; i < 20000000UL; i++) {
        if (inb(0x61) & 0x20) {
            t1 = rdtsc();
            /* High on the very first read: nothing is counting. */
            if (i == 0)
                return 0;
            return (t1 - t0) * PIT_HZ / (PIT_CAL_COUNT * 1000);
        }
        if (rdtsc() - t0 > 1000000000ULL)
            break;
    }
    return 0;
}

static int plausible_khz(u64 khz)
{
    return khz >= 100000 && khz <= 20000000;
}

/*
 * Host preemption during a measurement can only make it longer, so the
 * smallest of the measurements is kept: two if they agree within 0.5%,
 * else three.
 */
u64 tsc_calibrate(void)
{
    u64 best = pit_measure(), m;

    if (plausible_khz(best)) {
        for (int n = 1; n < 3; n++) {
            m = pit_measure();
            if (!plausible_khz(m))
                continue;
            u64 diff = m > best ? m - best : best - m;
            if (m < best)
                best = m;
            if (diff <= best / 200)
                break;
        }
        return best;
    }
    gprintf("WARNING: PIT calibration failed, assuming tsc_khz=%lu\n",
            (unsigned long)TSC_KHZ_FALLBACK);
    return TSC_KHZ_FALLBACK;
}

/* ------------------------------------------------------------ CPL0 calls */

/*
 * Privileged instructions, reached from CPL3 through the int3 gate with
 * guest_cpl0_jump set (cpu.S guest_sti_entry) and back with iretq, which
 * restores the CPL3 RFLAGS: interrupts stay as CPL3 had them.
 *
 * cpuid_cpl0: CPUID of cpl0_cpuid_io[0..1] (leaf, subleaf) into
 * cpl0_cpuid_io[0..3].
 *
 * lapic_cpl0: if lapic_cpl0_deadline is not 0, writes it to
 * IA32_TSC_DEADLINE; then, if lapic_cpl0_halt is set, `sti; hlt`: the
 * interrupt shadow of sti means an interrupt already pending (a deadline
 * in the past) wakes the hlt rather than slipping in before it.  The
 * interrupt's handler returns after the hlt, then iretq.
 */
volatile u32 cpl0_cpuid_io[4];
volatile u64 lapic_cpl0_deadline, lapic_cpl0_halt;
void cpuid_cpl0(void);
void lapic_cpl0(void);

__asm__(".text\n"
        ".globl cpuid_cpl0\n"
        "cpuid_cpl0:\n"
        "    movl cpl0_cpuid_io(%rip), %eax\n"
        "    movl cpl0_cpuid_io+4(%rip), %ecx\n"
        "    cpuid\n"
        "    movl %eax, cpl0_cpuid_io(%rip)\n"
        "    movl %ebx, cpl0_cpuid_io+4(%rip)\n"
        "    movl %ecx, cpl0_cpuid_io+8(%rip)\n"
        "    movl %edx, cpl0_cpuid_io+12(%rip)\n"
        "    iretq\n"
        ".globl lapic_cpl0\n"
        "lapic_cpl0:\n"
        "    movq lapic_cpl0_deadline(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    movq %rax, %rdx\n"
        "    shrq $32, %rdx\n"
        "    movl $0x6e0, %ecx\n"           /* IA32_TSC_DEADLINE */
        "    wrmsr\n"
        "1:  cmpq $0, lapic_cpl0_halt(%rip)\n"
        "    je 2f\n"
        "    sti\n"
        "    hlt\n"
        "2:  iretq\n");

void cpuid_cpl0_call(u32 leaf, u32 subleaf, u32 r[4])
{
    cpl0_cpuid_io[0] = leaf;
    cpl0_cpuid_io[1] = subleaf;
    guest_cpl0_jump = (u64)cpuid_cpl0;
    __asm__ __volatile__("int3" ::: "rax", "rbx", "rcx", "rdx", "memory");
    for (int i = 0; i < 4; i++)
        r[i] = cpl0_cpuid_io[i];
}

static void lapic_call(u64 deadline, int halt)
{
    lapic_cpl0_deadline = deadline;
    lapic_cpl0_halt = halt;
    guest_cpl0_jump = (u64)lapic_cpl0;
    __asm__ __volatile__("int3" ::: "rax", "rcx", "rdx", "memory");
}

/* ------------------------------------------------------------ LAPIC timer */

#define CPUID1_ECX_TSC_DEADLINE (1u << 24)
#define TDCR_DIVIDE_BY_1        0xb
#define ONESHOT_CAL_MS          10

static enum lapic_timer_mode lapic_mode;
u64 lapic_timer_khz;
static u64 lapic_tsc_khz;

int lapic_has_tsc_deadline(void)
{
    u32 r[4];

    cpuid_cpl0_call(1, 0, r);
    return !!(r[2] & CPUID1_ECX_TSC_DEADLINE);
}

/* The one-shot timer's count rate against the TSC, the timer masked. */
static u64 oneshot_khz(u64 tsc_khz)
{
    u64 t0, t1;
    u32 left;

    mmio_write32(LAPIC_BASE + LAPIC_LVTT, LVTT_MASKED | MSI_VECTOR);
    mmio_write32(LAPIC_BASE + LAPIC_TDCR, TDCR_DIVIDE_BY_1);
    mmio_write32(LAPIC_BASE + LAPIC_TMICT, 0xffffffffu);
    t0 = rdtsc();
    while (rdtsc() - t0 < ONESHOT_CAL_MS * tsc_khz)
        cpu_relax();
    left = mmio_read32(LAPIC_BASE + LAPIC_TMCCT);
    t1 = rdtsc();
    mmio_write32(LAPIC_BASE + LAPIC_TMICT, 0);
    return (0xffffffffull - left) * tsc_khz / (t1 - t0);
}

enum lapic_timer_mode lapic_timer_init(u64 tsc_khz, enum lapic_timer_mode mode)
{
    /* Both 8259s masked: only the local APIC timer may wake a halt. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
    if (mode == LAPIC_TIMER_AUTO)
        mode = lapic_has_tsc_deadline() ? LAPIC_TIMER_DEADLINE
                                        : LAPIC_TIMER_ONESHOT;
    lapic_tsc_khz = tsc_khz;
    lapic_timer_khz = 0;
    if (mode == LAPIC_TIMER_ONESHOT) {
        lapic_timer_khz = oneshot_khz(tsc_khz);
        if (!lapic_timer_khz)           /* a timer that does not count */
            lapic_timer_khz = 1;
        mmio_write32(LAPIC_BASE + LAPIC_LVTT, MSI_VECTOR);
    } else {
        mmio_write32(LAPIC_BASE + LAPIC_LVTT, LVTT_TSC_DEADLINE | MSI_VECTOR);
    }
    lapic_mode = mode;
    return mode;
}

/* One-shot: the count that ends at `deadline` (at least 1, at most 2^32-1). */
static void oneshot_arm(u64 deadline)
{
    u64 now = rdtsc(), count = 1;

    if ((s64)(deadline - now) > 0)
        count = (deadline - now) * lapic_timer_khz / lapic_tsc_khz;
    if (!count)
        count = 1;
    if (count > 0xffffffffull)
        count = 0xffffffffull;
    mmio_write32(LAPIC_BASE + LAPIC_TMICT, (u32)count);
}

void lapic_timer_arm(u64 deadline)
{
    if (lapic_mode == LAPIC_TIMER_ONESHOT)
        oneshot_arm(deadline);
    else
        lapic_call(deadline ? deadline : 1, 0);
}

u64 lapic_sleep_until(u64 deadline)
{
    u64 halts = 0;

    /*
     * A wake before the deadline (an interrupt left pending from an
     * earlier sleep whose deadline the TSC passed before the timer
     * fired) arms the timer again.
     */
    while ((s64)(rdtsc() - deadline) < 0) {
        if (lapic_mode == LAPIC_TIMER_ONESHOT) {
            oneshot_arm(deadline);
            lapic_call(0, 1);
        } else {
            lapic_call(deadline, 1);
        }
        halts++;
    }
    return halts;
}
