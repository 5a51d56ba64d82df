/*
 * Multiboot1 entry of the multiboot info guest (mbinfo.elf, and with
 * MBINFO_AOUT the a.out-kludge image mbaout.bin): records every register
 * the loader left before touching any, counts the CPUs that enter here
 * (an AP started at the entry point instead of waiting for INIT-SIPI
 * would make it 2), then goes to CPL3 as boot.S does.
 *
 * Layout of mbinfo_regs (u32 each): eax ebx ecx edx esi edi ebp esp
 * eflags(undefined: not read, it would need the loader's stack) cs ds es
 * fs gs ss cr0, then sgdt (6 bytes) at +64 and sidt (6 bytes) at +72.
 */

#include "entry.h"

#define MB_MAGIC 0x1BADB002
#ifdef MBINFO_AOUT
#define MB_FLAGS 0x00010003     /* page-align, memory info, a.out kludge */
#else
#define MB_FLAGS 0x00000003     /* page-align, memory info */
#endif

        .section .multiboot, "a"
        .balign 4
mb_header:
        .long   MB_MAGIC
        .long   MB_FLAGS
        .long   -(MB_MAGIC + MB_FLAGS)
#ifdef MBINFO_AOUT
        .long   mb_header               /* header_addr */
        .long   __image_start           /* load_addr */
        .long   __data_end              /* load_end_addr */
        .long   __bss_end               /* bss_end_addr */
        .long   _start                  /* entry_addr */
#endif

        .section .text.boot, "ax"
        .code32
        .globl  _start
_start:
        movl    %eax, mbinfo_regs + 0
        movl    %ebx, mbinfo_regs + 4
        movl    %ecx, mbinfo_regs + 8
        movl    %edx, mbinfo_regs + 12
        movl    %esi, mbinfo_regs + 16
        movl    %edi, mbinfo_regs + 20
        movl    %ebp, mbinfo_regs + 24
        movl    %esp, mbinfo_regs + 28
        movw    %cs, mbinfo_regs + 36
        movw    %ds, mbinfo_regs + 40
        movw    %es, mbinfo_regs + 44
        movw    %fs, mbinfo_regs + 48
        movw    %gs, mbinfo_regs + 52
        movw    %ss, mbinfo_regs + 56
        movl    %cr0, %eax
        movl    %eax, mbinfo_regs + 60
        sgdt    mbinfo_regs + 64
        sidt    mbinfo_regs + 72
        lock incl mbinfo_entries
        movl    mbinfo_regs + 4, %ebx
        FLAT32_TO_CPL3 mbinfo_iret_frame

user_entry:
        USER_ENTRY BOOT_PROTO_MULTIBOOT, %ebx   /* guest_main(mbi_phys) */

        IRET_FRAME mbinfo_iret_frame, user_entry

        /* In .data: the CPL3 stub zeroes .bss after the entry wrote. */
        .data
        .balign 8
        .globl  mbinfo_regs, mbinfo_entries
mbinfo_regs:
        .fill   80, 1, 0
mbinfo_entries:
        .long   0

        .section .note.GNU-stack, "", @progbits
