/*
 * PVH entry (Xen's docs/misc/pvh.pandoc) of the boot reporter, pvh.elf.
 *
 * The ELF carries a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY (18) whose
 * descriptor is the 32-bit physical address of pvh_start.  A PVH loader
 * enters there in 32-bit protected mode, paging off, flat CS/DS/ES/SS,
 * EBX = physical address of the hvm_start_info.  The image has no
 * multiboot header, so a loader that knows both (QEMU -kernel, the
 * hypervisor's multiboot-only build) cannot take it for multiboot.
 *
 * CPL0 path: FLAT32_TO_CPL3 (16 instructions), as the multiboot guests.
 */

#include "entry.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

        .section .note.Xen, "a", @note
        .balign 4
        .long   4                               /* namesz: "Xen\0" */
        .long   4                               /* descsz */
        .long   XEN_ELFNOTE_PHYS32_ENTRY        /* type */
        .asciz  "Xen"
        .long   pvh_start                       /* desc: 32-bit entry */
        .balign 4

/* ------------------------------------------------------------ CPL0 path */
        .section .text.boot, "ax"
        .code32
        .globl  pvh_start
pvh_start:
        FLAT32_TO_CPL3 pvh_iret_frame           /* 1..16 */

/* ------------------------------------------------------------ CPL3 stub */
pvh_user_entry:
        USER_ENTRY BOOT_PROTO_PVH, %ebx         /* guest_main(start_info) */

        IRET_FRAME pvh_iret_frame, pvh_user_entry

        .section .note.GNU-stack, "", @progbits
