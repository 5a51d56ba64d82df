/*
 * Multiboot1 entry of the test guests (counter.elf, exit.elf, and, built
 * through bootmagic.S, mbreport.elf).
 *
 * Entered by a multiboot1 loader in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = physical address of the multiboot info.  Nothing
 * else about the CPU state is assumed.
 *
 * Guest CPL0 code is emulated on KVM-PVM (~0.5 us an instruction), so the
 * CPL0 path is kept to 16 instructions (FLAT32_TO_CPL3, entry.h): everything
 * it needs (page tables, GDT, IDT, TSS: cpu.S; the iretq frame: below) is
 * built at assembly/link time, nothing is computed at run time.  It then
 * drops (iretq) to CPL3 with RFLAGS = IOPL3 | IF=0 | bit1; the CPL3 stub
 * loads the data segments, zeroes .bss and calls guest_main(u32 mbi_phys),
 * which runs the whole workload at CPL3.
 *
 * With BOOT_SAVE_MAGIC defined (bootmagic.S) the entry first copies EAX to
 * ESI (a 17th CPL0 instruction) and the CPL3 stub stores it in
 * guest_boot_magic, so the boot reporter can check the multiboot magic.
 */

#include "entry.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003     /* bit0 page-align modules, bit1 memory info */

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
#ifdef BOOT_SAVE_MAGIC
        movl    %eax, %esi                      /* 0: the multiboot magic */
#endif
        FLAT32_TO_CPL3 guest_iret_frame         /* 1..16 */

/* ------------------------------------------------------------ CPL3 stub */
user_entry:
#ifdef BOOT_SAVE_MAGIC
        movl    %esi, guest_boot_magic(%rip)
#endif
        USER_ENTRY BOOT_PROTO_MULTIBOOT, %ebx   /* guest_main(mbi_phys) */

        IRET_FRAME guest_iret_frame, user_entry

        .section .note.GNU-stack, "", @progbits
