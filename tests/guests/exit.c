/*
 * Exit guest: ends (or fails to end) the VM in a chosen way, or echoes the
 * console.  Command line: mode=M (default exit), code=N (default 0).
 * See README.md for every mode and the lines it prints.
 */
#include "lib.h"

#define LINE_MAX 256
#define UNMAPPED_GPA 0x10000000ULL      /* 256 MiB */

static void still_alive(const char *what)
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
        /* Identity-mapped, but no RAM behind it in a small domain. */
        __asm__ __volatile__("jmp *%0" : : "r"((u64)UNMAPPED_GPA));
        still_alive("EXEC UNMAPPED");
    } else if (strcmp(mode, "echo") == 0) {
        echo(0);
    } else if (strcmp(mode, "echo-irq") == 0) {
        echo(1);
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
