/*
 * What the boot entries of the test guests share (see README.md):
 *
 *  - the GDT selectors and the CPL3 RFLAGS,
 *  - assembler macros for the CPL0 paths that end in `iretq` to CPL3
 *    (FLAT32_TO_CPL3 from 32-bit protected mode with paging off, the
 *    multiboot and PVH entry state; LONG64_TO_CPL3 from 64-bit mode with
 *    someone else's page tables and GDT, the Linux 64-bit entry state),
 *  - the iretq frame and the CPL3 start-up stub,
 *  - what an entry tells the C code: which protocol brought it up
 *    (guest_boot_proto) plus what only the entry registers held.
 *
 * The tables themselves (page tables, GDT, IDT, TSS, stacks) and the CPL0
 * interrupt handlers are in cpu.S.
 */
#ifndef GUEST_ENTRY_H
#define GUEST_ENTRY_H

#include "lib.h"

#define KCODE   0x08
#define KDATA   0x10
#define UCODE   0x18
#define UDATA   0x20
#define TSSSEL  0x28

#define RFLAGS_USER 0x3002      /* IOPL=3, IF=0, reserved bit 1 */

/* guest_boot_proto: the entry the guest came in through. */
#define BOOT_PROTO_MULTIBOOT    1
#define BOOT_PROTO_PVH          2
#define BOOT_PROTO_LINUX        3

#ifdef __ASSEMBLER__

/*
 * From 32-bit protected mode, paging off, any flat GDT: load ours, enable
 * long mode with our identity map, and iretq to CPL3 through \frame.  16
 * CPL0 instructions, nothing computed at run time.  Clobbers eax, ecx, edx,
 * esp; ebx, esi, edi, ebp arrive at CPL3 unchanged (low 32 bits).
 * Starts in .code32, leaves the assembler in .code64.
 */
        .macro  FLAT32_TO_CPL3 frame
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
        ljmp    $KCODE, $.Lstart64_\@           /* 13 */
        .code64
.Lstart64_\@:
        ltr     guest_tss_sel(%rip)             /* 14 */
        movl    $\frame, %esp                   /* 15 */
        iretq                                   /* 16 -> CPL3 */
        .endm

/*
 * From 64-bit mode, paging on (an identity map of at least this image,
 * maybe without the user bit), any GDT: load our GDT, IDT, page tables and
 * TSS and iretq to CPL3 through \frame.  7 CPL0 instructions.  Clobbers
 * eax and esp; every other register arrives at CPL3 unchanged.  The stale
 * CS (the loader's selector) is never reloaded: iretq loads ours.
 */
        .macro  LONG64_TO_CPL3 frame
        lgdt    guest_gdt_ptr64(%rip)           /* 1 */
        lidt    guest_idt_ptr64(%rip)           /* 2 */
        movl    $guest_pml4, %eax               /* 3 */
        movq    %rax, %cr3                      /* 4 */
        ltr     guest_tss_sel(%rip)             /* 5 */
        movl    $\frame, %esp                   /* 6 */
        iretq                                   /* 7 -> CPL3 */
        .endm

/* The iretq frame (in .data.boot) that enters \entry at CPL3. */
        .macro  IRET_FRAME name, entry
        .pushsection .data.boot, "aw"
        .balign 16
\name:
        .quad   \entry
        .quad   UCODE | 3
        .quad   RFLAGS_USER
        .quad   guest_user_stack_top
        .quad   UDATA | 3
        .popsection
        .endm

/*
 * CPL3 start: data segments, zero .bss (includes both stacks; nothing is
 * on them yet), record the protocol, guest_main(\ptr) (a 32-bit register
 * holding the boot information's address), then spin if it returns.
 * Preserves ebx, esi, ebp and r8-r15 up to the call.
 */
        .macro  USER_ENTRY proto, ptr
        movl    $(UDATA | 3), %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        xorl    %eax, %eax
        rep stosb
        movl    $\proto, guest_boot_proto(%rip)
        movl    \ptr, %edi
        call    guest_main
.Lspin_\@:
        pause
        jmp     .Lspin_\@
        .endm

#else /* !__ASSEMBLER__ */

/* Set by the entry stubs (cpu.S holds them in .data, not .bss). */
extern u32 guest_boot_proto;            /* BOOT_PROTO_* */
extern u32 guest_boot_magic;            /* EAX at a multiboot entry (mbreport only) */
extern u16 guest_entry_cs;              /* selectors at the Linux 64-bit entry */
extern u16 guest_entry_ds;
extern u16 guest_entry_ss;

#endif /* !__ASSEMBLER__ */
#endif /* GUEST_ENTRY_H */
