/*
 * CPU tables, stacks and CPL0 interrupt handlers shared by every test guest,
 * whatever entry (boot.S multiboot, pvh.S, linux.S) brought it up.  The
 * entries themselves only hold their CPL0 path (entry.h macros), an iretq
 * frame and the CPL3 stub.
 *
 * Everything here is built at assembly/link time; nothing is computed at
 * run time.  Every page table entry and GDT descriptor is built with its
 * accessed (and, for the 2 MiB pages, dirty) bit already set so the CPU
 * never has to write them back.
 *
 * The IDT only holds the gates the exit guest's echo-irq mode uses
 * (IRQ4 = vector 0x24 after the PIC is remapped to 0x20, spurious IRQ7 =
 * vector 0x27, and the DPL3 int3 gate, vector 3, that returns to CPL3 with
 * IF=1) and the two the virtio guest's MSI-X test uses (MSI_VECTOR 0x40,
 * the local APIC's spurious vector 0xff) and the acpi guest's (the NMI,
 * vector 2, and the SCI, SCI_VECTOR).  Every other vector is empty, so
 * any exception escalates to a triple fault, as it would with no IDT.
 *
 * Port I/O at CPL3 is granted twice: IOPL=3 in RFLAGS, and an all-zero
 * I/O permission bitmap in the TSS.  KVM-PVM strips IOPL from CPL3 code
 * (so cli/sti at CPL3 fault there: see guest_sti_entry) but honours the
 * bitmap when it emulates the in/out.
 */

#include "entry.h"

        .section .text.boot, "ax"
        .code64
/* ------------------------------------------- CPL0 interrupt handlers */
/*
 * IRQ4 (COM1 receive): drain the UART receiver into guest_ring_buf, count
 * the interrupt, EOI the master PIC.  Runs at CPL0 (emulated), so it is
 * short; the CPL3 code consumes the ring.
 */
        .globl  guest_irq4_entry
guest_irq4_entry:
        pushq   %rax
        pushq   %rcx
        pushq   %rdx
1:      movl    $0x3FD, %edx                    /* LSR */
        inb     %dx, %al
        testb   $1, %al                         /* data ready */
        jz      2f
        movl    $0x3F8, %edx                    /* RBR */
        inb     %dx, %al
        movl    guest_ring_head(%rip), %ecx
        movl    %ecx, %edx
        andl    $(GUEST_RING_SIZE - 1), %edx
        movb    %al, guest_ring_buf(%rdx)
        incl    %ecx
        movl    %ecx, guest_ring_head(%rip)
        jmp     1b
2:      incq    guest_irq_count(%rip)
        movb    $0x20, %al
        outb    %al, $0x20                      /* EOI */
        popq    %rdx
        popq    %rcx
        popq    %rax
        iretq

/*
 * MSI / MSI-X (vector MSI_VECTOR, the virtio guest): count it and EOI the
 * local APIC (xAPIC registers at 0xFEE00000, identity-mapped).  6 CPL0
 * instructions.
 */
        .globl  guest_msi_entry
guest_msi_entry:
        pushq   %rax
        incq    guest_msi_count(%rip)
        movl    $LAPIC_EOI_ADDR, %eax
        movl    $0, (%rax)
        popq    %rax
        iretq

/*
 * The ACPI SCI (the acpi guest: IOAPIC pin 9, level, vector SCI_VECTOR):
 * read PM1 status at the port the guest found in the FADT
 * (guest_pm1_evt), keep its bits in guest_sci_sts, write them back to
 * clear them (so the level drops before the EOI), count, EOI the local
 * APIC.
 */
        .globl  guest_sci_entry
guest_sci_entry:
        pushq   %rax
        pushq   %rdx
        movzwl  guest_pm1_evt(%rip), %edx
        inw     %dx, %ax
        orw     %ax, guest_sci_sts(%rip)
        outw    %ax, %dx
        incq    guest_sci_count(%rip)
        movl    $LAPIC_EOI_ADDR, %eax
        movl    $0, (%rax)
        popq    %rdx
        popq    %rax
        iretq

/* NMI (vector 2, the acpi guest's `xl trigger nmi`): count it. */
        .globl  guest_nmi_entry
guest_nmi_entry:
        incq    guest_nmi_count(%rip)
        iretq

/* Spurious IRQ7 from the master 8259, or the local APIC's: no EOI. */
        .globl  guest_spurious_entry
guest_spurious_entry:
        iretq

/*
 * int3 from CPL3 (vector 3, DPL3 gate): return with RFLAGS.IF set.  A CPL3
 * `sti` needs IOPL=3, which KVM-PVM does not give CPL3 code, so interrupts
 * are enabled through this gate instead (2 CPL0 instructions).  It has to
 * be vector 3: on KVM-PVM a CPL3 `int $N` for other N (0x30, 0x80 tried)
 * turns into #GP, while int3 is delivered through the guest IDT.
 */
        .globl  guest_sti_entry
guest_sti_entry:
        cmpq    $0, guest_cpl0_jump(%rip)
        jne     1f
        orl     $0x200, 16(%rsp)                /* RFLAGS.IF in the frame */
        iretq
/*
 * With guest_cpl0_jump set, the gate jumps there at CPL0 instead: how the
 * exit guest fetches code where there is no RAM at CPL0 (at CPL3, KVM
 * answers an instruction it cannot emulate with #UD in the guest rather
 * than an exit to userspace; KVM-PVM exits either way).
 */
1:      jmpq    *guest_cpl0_jump(%rip)

/* ------------------------------------------------------------ data */
        /*
         * Identity map of 0..4 GiB with 2 MiB pages, present|rw|user,
         * accessed and dirty preset.
         */
        .section .data.pagetables, "aw"
        .balign 4096
        .globl  guest_pml4
guest_pml4:
        .quad   guest_pdpt + 0x27               /* P|RW|US|A */
        .fill   511, 8, 0
guest_pdpt:
        .quad   guest_pd + 0x0000 + 0x27
        .quad   guest_pd + 0x1000 + 0x27
        .quad   guest_pd + 0x2000 + 0x27
        .quad   guest_pd + 0x3000 + 0x27
        .fill   508, 8, 0
guest_pd:
        .set    pde, 0
        .rept   2048
        .quad   (pde << 21) | 0xE7              /* P|RW|US|A|D|PS */
        .set    pde, pde + 1
        .endr

        .section .data.boot, "aw"
        .balign 16
guest_gdt:
        .quad   0
        .quad   0x00AF9B000000FFFF              /* 0x08 kernel code, 64-bit */
        .quad   0x00CF93000000FFFF              /* 0x10 kernel data */
        .quad   0x00AFFB000000FFFF              /* 0x18 user code, 64-bit */
        .quad   0x00CFF3000000FFFF              /* 0x20 user data */
        /* 0x28 64-bit TSS, available, limit covers the I/O bitmap */
        .word   guest_tss_end - guest_tss - 1
        .word   guest_tss_b0_15
        .byte   guest_tss_b16_23
        .byte   0x89
        .byte   0x00
        .byte   guest_tss_b24_31
        .long   0
        .long   0
guest_gdt_end:

        .globl  guest_gdt_ptr, guest_idt_ptr, guest_tss_sel
        .globl  guest_gdt_ptr64, guest_idt_ptr64
        .balign 8
        .word   0
guest_gdt_ptr:                                  /* 32-bit lgdt form */
        .word   guest_gdt_end - guest_gdt - 1
        .long   guest_gdt
        .word   0
guest_idt_ptr:
        .word   guest_idt_end - guest_idt - 1
        .long   guest_idt
guest_tss_sel:
        .word   TSSSEL

        .balign 8
        .skip   6
guest_gdt_ptr64:                                /* 64-bit lgdt form */
        .word   guest_gdt_end - guest_gdt - 1
        .quad   guest_gdt
        .skip   6
guest_idt_ptr64:
        .word   guest_idt_end - guest_idt - 1
        .quad   guest_idt

        /* What the entry stubs record for the C code (entry.h). */
        .globl  guest_boot_proto, guest_boot_magic
        .globl  guest_entry_cs, guest_entry_ds, guest_entry_ss
        .balign 4
guest_boot_proto:
        .long   0
guest_boot_magic:
        .long   0
guest_entry_cs:
        .word   0
guest_entry_ds:
        .word   0
guest_entry_ss:
        .word   0

        /*
         * 64-bit TSS followed by an all-zero I/O permission bitmap (every
         * port allowed at CPL3) and its 0xFF terminator.  The bitmap is
         * what actually grants CPL3 port access on KVM-PVM, which runs
         * CPL3 natively with IOPL forced to 0 and checks the TSS bitmap
         * when it emulates the faulting in/out; elsewhere IOPL=3 alone
         * would do.
         */
        .balign 16
        .globl  guest_tss
guest_tss:
        .long   0                               /* reserved */
        .quad   guest_kstack_top                /* rsp0 */
        .quad   0, 0                            /* rsp1, rsp2 */
        .quad   0                               /* reserved */
        .quad   0, 0, 0, 0, 0, 0, 0             /* ist1..ist7 */
        .quad   0                               /* reserved */
        .word   0                               /* reserved */
        .word   guest_iobitmap - guest_tss      /* I/O map base = 104 */
guest_iobitmap:
        .fill   8192, 1, 0                      /* ports 0..0xFFFF allowed */
        .byte   0xFF                            /* terminator */
guest_tss_end:

        .macro  GATE vec, lo, hi, attr
        .org    guest_idt + \vec * 16
        .word   \lo
        .word   KCODE
        .byte   0                               /* IST */
        .byte   \attr
        .word   \hi
        .long   0
        .long   0
        .endm

        .balign 16
guest_idt:                                      /* unlisted vectors: zero */
        GATE    NMI_VECTOR, guest_nmi_lo, guest_nmi_hi, 0x8E   /* 2: NMI */
        GATE    STI_VECTOR, guest_sti_lo, guest_sti_hi, 0xEE   /* 3: DPL3 */
        GATE    0x24, guest_irq4_lo, guest_irq4_hi, 0x8E       /* IRQ4 */
        GATE    0x27, guest_spur_lo, guest_spur_hi, 0x8E       /* IRQ7 */
        GATE    MSI_VECTOR, guest_msi_lo, guest_msi_hi, 0x8E
        GATE    SCI_VECTOR, guest_sci_lo, guest_sci_hi, 0x8E
        GATE    APIC_SPURIOUS_VECTOR, guest_spur_lo, guest_spur_hi, 0x8E
guest_idt_end:

/* ------------------------------------------------------------ bss */
        .section .bss.boot, "aw", @nobits
        .balign 16
guest_kstack:
        .skip   4096
guest_kstack_top:
        .skip   32768
        .globl  guest_user_stack_top
guest_user_stack_top:

        .globl  guest_cpl0_jump
        .balign 8
guest_cpl0_jump:
        .skip   8

        .globl  guest_ring_buf, guest_ring_head, guest_irq_count
        .globl  guest_msi_count
        .balign 64
guest_ring_buf:
        .skip   GUEST_RING_SIZE
guest_ring_head:
        .skip   4
        .balign 8
guest_irq_count:
        .skip   8
guest_msi_count:
        .skip   8
        .globl  guest_sci_count, guest_sci_sts, guest_nmi_count
        .globl  guest_pm1_evt
guest_sci_count:
        .skip   8
guest_nmi_count:
        .skip   8
guest_sci_sts:
        .skip   2
guest_pm1_evt:
        .skip   2

        .section .note.GNU-stack, "", @progbits
