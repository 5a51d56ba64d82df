/*
 * Shared boot code of the test guests.
 *
 * Entered by a multiboot1 loader in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = physical address of the multiboot info.  Nothing
 * else about the CPU state is assumed.
 *
 * Guest CPL0 code is emulated on KVM-PVM (~0.5 us an instruction), so the
 * CPL0 path is kept to 16 instructions: everything it needs (page tables,
 * GDT, IDT, TSS, the iretq frame) is built at assembly/link time, nothing is
 * computed at run time.  It then drops (iretq) to CPL3 with RFLAGS = IOPL3
 * | IF=0 | bit1; the CPL3 stub loads the data segments, zeroes .bss and
 * calls guest_main(u32 mbi_phys), which runs the whole workload at CPL3.
 *
 * Every page table entry and GDT descriptor is built with its accessed (and,
 * for the 2 MiB pages, dirty) bit already set so the CPU never has to write
 * them back.
 *
 * The IDT is loaded on every boot but only holds the three gates the exit
 * guest's echo-irq mode uses (IRQ4 = vector 0x24 after the PIC is remapped
 * to 0x20, spurious IRQ7 = vector 0x27, and the DPL3 int3 gate, vector 3,
 * that returns to CPL3 with IF=1).  Every other vector is empty, so any
 * exception escalates to a triple fault, as it would with no IDT.
 *
 * Port I/O at CPL3 is granted twice: IOPL=3 in RFLAGS, and an all-zero
 * I/O permission bitmap in the TSS.  KVM-PVM strips IOPL from CPL3 code
 * (so cli/sti at CPL3 fault there: see guest_sti_entry) but honours the
 * bitmap when it emulates the in/out.
 */

#include "lib.h"                /* GUEST_RING_SIZE */

#define KCODE   0x08
#define KDATA   0x10
#define UCODE   0x18
#define UDATA   0x20
#define TSSSEL  0x28

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003     /* bit0 page-align modules, bit1 memory info */

#define RFLAGS_USER 0x3002      /* IOPL=3, IF=0, reserved bit 1 */

        .section .multiboot, "a"
        .balign 4
        .long   MB_MAGIC
        .long   MB_FLAGS
        .long   -(MB_MAGIC + MB_FLAGS)

/* ------------------------------------------------------------ CPL0 path */
        .section .text.boot, "ax"
        .code32
        .globl  _start
_start:
        lgdt    guest_gdt_ptr                   /*  1 */
        lidt    guest_idt_ptr                   /*  2 */
        movl    $guest_pml4, %eax               /*  3 */
        movl    %eax, %cr3                      /*  4 */
        movl    $0x20, %eax                     /*  5  CR4.PAE */
        movl    %eax, %cr4                      /*  6 */
        movl    $0xC0000080, %ecx               /*  7  IA32_EFER */
        movl    $0x100, %eax                    /*  8  EFER.LME */
        xorl    %edx, %edx                      /*  9 */
        wrmsr                                   /* 10 */
        movl    $0x80000011, %eax               /* 11  CR0.PG|ET|PE */
        movl    %eax, %cr0                      /* 12 */
        ljmp    $KCODE, $start64                /* 13 */

        .code64
start64:
        ltr     guest_tss_sel(%rip)             /* 14 */
        movl    $guest_iret_frame, %esp         /* 15 */
        iretq                                   /* 16 -> CPL3 user_entry */

/* ------------------------------------------------------------ CPL3 stub */
user_entry:
        movl    $(UDATA | 3), %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs
        /* zero .bss (includes both stacks; nothing is on them yet) */
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        xorl    %eax, %eax
        rep stosb
        movl    %ebx, %edi                      /* guest_main(mbi_phys) */
        call    guest_main
1:      pause
        jmp     1b

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

/* Spurious IRQ7 from the master 8259: no EOI. */
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
        orl     $0x200, 16(%rsp)                /* RFLAGS.IF in the frame */
        iretq

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

        .balign 16
guest_iret_frame:
        .quad   user_entry
        .quad   UCODE | 3
        .quad   RFLAGS_USER
        .quad   guest_user_stack_top
        .quad   UDATA | 3

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
        GATE    STI_VECTOR, guest_sti_lo, guest_sti_hi, 0xEE   /* 3: DPL3 */
        GATE    0x24, guest_irq4_lo, guest_irq4_hi, 0x8E       /* IRQ4 */
        GATE    0x27, guest_spur_lo, guest_spur_hi, 0x8E       /* IRQ7 */
guest_idt_end:

/* ------------------------------------------------------------ bss */
        .section .bss.boot, "aw", @nobits
        .balign 16
guest_kstack:
        .skip   4096
guest_kstack_top:
        .skip   32768
guest_user_stack_top:

        .globl  guest_ring_buf, guest_ring_head, guest_irq_count
        .balign 64
guest_ring_buf:
        .skip   GUEST_RING_SIZE
guest_ring_head:
        .skip   4
        .balign 8
guest_irq_count:
        .skip   8

        .section .note.GNU-stack, "", @progbits
