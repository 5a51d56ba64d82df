/*
 * Exit guest: ends (or fails to end) the VM in a chosen way, echoes the
 * console, or times port I/O exits.  Command line: mode=M (default exit),
 * code=N (default 0); mode=iobench also takes count=N and port=P.
 * See README.md for every mode and the lines it prints.
 */
#include "lib.h"

#define LINE_MAX 256
#define UNMAPPED_GPA 0x10000000ULL      /* 256 MiB */

__attribute__((noreturn)) static void still_alive(const char *what)
{
    gprintf("%s still alive\n", what);
    spin_forever();
}

/* ------------------------------------------------------------ echo */

static int poll_getc(void)
{
    if (inb(COM1_LSR) & LSR_DR)
        return inb(COM1);
    return -1;
}

static u32 ring_tail;

static int ring_getc(void)
{
    u32 head = guest_ring_head;

    if (head == ring_tail)
        return -1;
    if (head - ring_tail > GUEST_RING_SIZE)     /* overrun: drop the oldest */
        ring_tail = head - GUEST_RING_SIZE;
    int c = guest_ring_buf[ring_tail & (GUEST_RING_SIZE - 1)];
    ring_tail++;
    return c;
}

static void pic_remap_irq4_only(void)
{
    outb(0x20, 0x11);           /* ICW1: edge, cascade, ICW4 needed */
    outb(0xA0, 0x11);
    outb(0x21, 0x20);           /* ICW2: master vectors 0x20..0x27 */
    outb(0xA1, 0x28);           /*       slave vectors 0x28..0x2F */
    outb(0x21, 0x04);           /* ICW3: slave on IRQ2 */
    outb(0xA1, 0x02);           /*       slave id 2 */
    outb(0x21, 0x01);           /* ICW4: 8086 mode, normal EOI */
    outb(0xA1, 0x01);
    outb(0x21, (u8)~(1u << 4)); /* OCW1: only IRQ4 unmasked */
    outb(0xA1, 0xFF);
}

static void uart_enable_rx_irq(void)
{
    outb(COM1_LCR, 0x03);       /* 8N1, DLAB=0 (IER addressable) */
    outb(COM1_IER, 0x01);       /* received data available */
    outb(COM1_MCR, 0x0B);       /* DTR | RTS | OUT2 (routes the IRQ) */
}

__attribute__((noreturn)) static void echo(int irq)
{
    char line[LINE_MAX];
    unsigned len = 0;
    int last_cr = 0;
    u64 irq_mark = 0;

    if (irq) {
        pic_remap_irq4_only();
        uart_enable_rx_irq();
        /* Bytes that arrived before the IRQ was enabled go to the ring. */
        while (inb(COM1_LSR) & LSR_DR) {
            guest_ring_buf[guest_ring_head & (GUEST_RING_SIZE - 1)] = inb(COM1);
            guest_ring_head++;
        }
        irq_enable();
    }
    gprintf("ECHO READY\n");

    for (;;) {
        int c = irq ? ring_getc() : poll_getc();
        if (c < 0) {
            cpu_relax();
            continue;
        }
        if (c == '\r' || c == '\n') {
            /* CR LF counts as one line end. */
            if (c == '\n' && last_cr) {
                last_cr = 0;
                continue;
            }
            last_cr = c == '\r';
            line[len] = 0;
            if (irq) {
                u64 n = guest_irq_count;
                gprintf("\nECHO LINE (irq): %s irqs=%lu\n", line,
                        (unsigned long)(n - irq_mark));
                irq_mark = n;
            } else {
                gprintf("\nECHO LINE: %s\n", line);
            }
            len = 0;
            continue;
        }
        last_cr = 0;
        serial_putc((char)c);
        if (len < LINE_MAX - 1)
            line[len++] = (char)c;
    }
}

/* ------------------------------------------------------------ iobench */

#define IOBENCH_COUNT_DEFAULT   10000ULL
#define IOBENCH_COUNT_MAX       100000000ULL
#define IOBENCH_PORT_DEFAULT    0x80ULL
#define IOBENCH_WARMUP          16

static u64 arg_or(const char *key, u64 def, u64 min, u64 max)
{
    char buf[32];
    u64 v;

    if (!cmdline_get(boot_info.cmdline, key, buf, sizeof(buf)))
        return def;
    if (!parse_u64(buf, &v) || v < min || v > max) {
        gprintf("exit guest: bad value %s=%s, using %lu\n", key, buf,
                (unsigned long)def);
        return def;
    }
    return v;
}

/* Nanoseconds per access, in tenths: total ticks * 1e7 / (count * kHz). */
static u64 ns_tenths(u64 ticks, u64 count, u64 tsc_khz)
{
    u64 div = count * tsc_khz;

    if (ticks <= ~0ULL / 10000000ULL)
        return (ticks * 10000000ULL + div / 2) / div;
    /* Only for absurdly long runs: lose some precision, not the value. */
    return (ticks / count) * 10000000ULL / tsc_khz;
}

/*
 * Times `count` outb and then `count` inb on one port with rdtsc (IF=0, so
 * only host preemption can add to the figures), prints the per-access
 * averages and exits through the debug-exit port with code 0.
 */
__attribute__((noreturn)) static void iobench(void)
{
    u64 count = arg_or("count", IOBENCH_COUNT_DEFAULT, 1, IOBENCH_COUNT_MAX);
    u16 port = (u16)arg_or("port", IOBENCH_PORT_DEFAULT, 0, 0xFFFF);
    u64 tsc_khz = tsc_calibrate();
    u64 t0, t_out, t_in;
    u8 sink = 0;

    for (unsigned i = 0; i < IOBENCH_WARMUP; i++) {
        outb(port, (u8)i);
        sink ^= inb(port);
    }

    t0 = rdtsc();
    for (u64 i = 0; i < count; i++)
        outb(port, (u8)i);
    t_out = rdtsc() - t0;

    t0 = rdtsc();
    for (u64 i = 0; i < count; i++)
        sink ^= inb(port);
    t_in = rdtsc() - t0;
    (void)sink;

    u64 out_t = ns_tenths(t_out, count, tsc_khz);
    u64 in_t = ns_tenths(t_in, count, tsc_khz);
    gprintf("IOBENCH port=0x%x count=%lu out_cycles=%lu out_ns=%lu.%lu "
            "in_cycles=%lu in_ns=%lu.%lu\n", (unsigned)port,
            (unsigned long)count,
            (unsigned long)((t_out + count / 2) / count),
            (unsigned long)(out_t / 10), (unsigned long)(out_t % 10),
            (unsigned long)((t_in + count / 2) / count),
            (unsigned long)(in_t / 10), (unsigned long)(in_t % 10));
    outb(DEBUG_EXIT_PORT, 0);
    gprintf("IOBENCH still alive\n");
    spin_forever();
}

/* ------------------------------------------------------------ unclaimed */

/*
 * Touches a port and an address no device claims (what=port, what=mmio or
 * both): writes first, then reads of each size, and prints what the reads
 * returned.  On a PC nothing drives the bus there: all ones.
 */
__attribute__((noreturn)) static void unclaimed(void)
{
    u16 port = (u16)arg_or("port", 0x555, 0, 0xFFFF);
    u64 addr = arg_or("addr", UNMAPPED_GPA, 0, 0xFFFFFFFCULL);
    char what[8] = "both";

    cmdline_get(boot_info.cmdline, "what", what, sizeof(what));
    if (strcmp(what, "mmio") != 0) {
        outb(port, 0x42);
        outw(port, 0x4242);
        outl(port, 0x42424242);
        u8 b = inb(port);
        u16 w = inw(port);
        u32 l = inl(port);
        gprintf("UNCLAIMED port=0x%x inb=0x%x inw=0x%x inl=0x%x\n",
                (unsigned)port, (unsigned)b, (unsigned)w, l);
    }
    if (strcmp(what, "port") != 0) {
        volatile u8 *p8 = (volatile u8 *)(uintptr_t)addr;
        volatile u32 *p32 = (volatile u32 *)(uintptr_t)addr;

        *p32 = 0x42424242;
        u8 b = *p8;
        u32 l = *p32;
        gprintf("UNCLAIMED mmio=0x%lx readb=0x%x readl=0x%x\n",
                (unsigned long)addr, (unsigned)b, l);
    }
    gprintf("UNCLAIMED DONE\n");
    outb(DEBUG_EXIT_PORT, 0);
    still_alive("UNCLAIMED");
}

/* ------------------------------------------------------------ cmos-probe */

/*
 * Livepatch worked example (livepatch/examples/): bit 7 of the value
 * written to port 0x70 is the NMI mask, not part of the CMOS index, so
 * index 0x90 must reach CMOS byte 0x10.  Writes a marker to byte 0x10,
 * selects 0x90, reads, and says whether the read aliased the marker (the
 * correct behaviour) or came from past the 128-byte CMOS array.  Repeats
 * every 100 ms with a sequence number.
 */
__attribute__((noreturn)) static void cmos_probe(void)
{
    u64 tsc_khz = tsc_calibrate();

    for (unsigned long n = 0;; n++) {
        u8 marker = (u8)(0xa5 ^ (n & 0x0f)), v;

        outb(0x70, 0x10);
        outb(0x71, marker);
        outb(0x70, 0x90);
        v = inb(0x71);
        gprintf("CMOS PROBE n=%lu idx=0x90 aliases=%s value=0x%x\n", n,
                v == marker ? "yes" : "no", (unsigned)v);
        u64 t0 = rdtsc();
        while (rdtsc() - t0 < tsc_khz * 100)
            cpu_relax();
    }
}

/* ------------------------------------------------------------ rtc-uip */

static u8 cmos_read(u8 idx)
{
    outb(0x70, idx);
    return inb(0x71);
}

/*
 * Find the edge of an RTC second as BIOSes, OSes and kvm-unit-tests' s3
 * do: wait for register A's update-in-progress bit to rise, then to fall.
 * An RTC without UIP keeps the guest in the first loop for ever.  Reports
 * the seconds register before the update and after it, then exits.
 */
__attribute__((noreturn)) static void rtc_uip(void)
{
    u8 before, after;

    gprintf("RTC UIP waiting\n");
    while (cmos_read(0x0a) & 0x80)      /* in the middle of one: let it end */
        cpu_relax();
    while (!(cmos_read(0x0a) & 0x80))
        cpu_relax();
    before = cmos_read(0x00);           /* may already be the new second */
    while (cmos_read(0x0a) & 0x80)
        cpu_relax();
    after = cmos_read(0x00);
    gprintf("RTC UIP rose and fell sec_during=0x%x sec_after=0x%x\n",
            (unsigned)before, (unsigned)after);
    outb(DEBUG_EXIT_PORT, 0);
    still_alive("RTC UIP");
}

/* ------------------------------------------------------------ main */

void guest_main(u32 mbi_phys)
{
    char mode[32], buf[32];
    u64 code = 0;

    boot_info_init(mbi_phys);
    if (!cmdline_get(boot_info.cmdline, "mode", mode, sizeof(mode)))
        memcpy(mode, "exit", 5);
    if (cmdline_get(boot_info.cmdline, "code", buf, sizeof(buf)) &&
        !parse_u64(buf, &code)) {
        gprintf("exit guest: bad value code=%s, using 0\n", buf);
        code = 0;
    }

    if (strcmp(mode, "exit") == 0) {
        gprintf("EXIT GUEST code=%lu\n", (unsigned long)(code & 0xFF));
        outb(DEBUG_EXIT_PORT, (u8)code);
        still_alive("EXIT GUEST");
    } else if (strcmp(mode, "triplefault") == 0) {
        gprintf("TRIPLE FAULT NOW\n");
        /* #UD at CPL3; the IDT has no gate for it: #GP, #DF, shutdown. */
        __asm__ __volatile__("ud2");
        still_alive("TRIPLE FAULT");
    } else if (strcmp(mode, "badport") == 0) {
        gprintf("BAD PORT NOW\n");
        outb(0x0555, 0x42);
        still_alive("BAD PORT");
    } else if (strcmp(mode, "reboot-cf9") == 0) {
        gprintf("REBOOT CF9 NOW\n");
        outb(0xCF9, 0x06);
        still_alive("REBOOT CF9");
    } else if (strcmp(mode, "reboot-kbd") == 0) {
        gprintf("REBOOT KBD NOW\n");
        outb(0x64, 0xFE);
        still_alive("REBOOT KBD");
    } else if (strcmp(mode, "exec-unmapped") == 0) {
        gprintf("EXEC UNMAPPED NOW\n");
        /*
         * Identity-mapped, but no RAM behind it in a small domain.  Jumped
         * to at CPL0, through the int3 gate: KVM exits to userspace with
         * an emulation failure only for CPL0 code.
         */
        guest_cpl0_jump = UNMAPPED_GPA;
        __asm__ __volatile__("int3" ::: "memory");
        still_alive("EXEC UNMAPPED");
    } else if (strcmp(mode, "echo") == 0) {
        echo(0);
    } else if (strcmp(mode, "echo-irq") == 0) {
        echo(1);
    } else if (strcmp(mode, "iobench") == 0) {
        iobench();
    } else if (strcmp(mode, "unclaimed") == 0) {
        unclaimed();
    } else if (strcmp(mode, "cmos-probe") == 0) {
        cmos_probe();
    } else if (strcmp(mode, "rtc-uip") == 0) {
        rtc_uip();
    } else if (strcmp(mode, "cpuinfo") == 0) {
        gprintf("CPUINFO mem_upper_kib=%u cmdline=%s\n",
                boot_info.have_mem ? boot_info.mem_upper_kib : 0,
                boot_info.cmdline);
        outb(DEBUG_EXIT_PORT, 0);
        still_alive("CPUINFO");
    } else {
        gprintf("exit guest: unknown mode=%s\n", mode);
        still_alive("EXIT GUEST");
    }
}
