/*
 * Linux x86 boot protocol entry (Documentation/arch/x86/boot.rst) of the
 * boot reporter: the real-mode setup area of build/guests/bzimage with its
 * setup header, and the head of the protected-mode payload.
 *
 * linux.ld links the setup (.setup, VMA 0, a whole number of 512-byte
 * sectors) and the payload (linked at 0x100000) into one ELF whose LMAs
 * are contiguous, so `objcopy -O binary` gives the bzImage:
 *
 *   file 0                      boot sector (hlt loop), setup header at
 *                               0x1f1..0x26b, real-mode code (hlt loop)
 *   file (setup_sects+1)*512    payload = what a loader puts at 0x100000:
 *       +0x000  startup_32      32-bit entry: not supported, hlt loop
 *       +0x040  kernel_info     ("LToP", protocol 2.15)
 *       +0x200  startup_64      the 64-bit entry (XLF_KERNEL_64)
 *       ...     the reporter, the shared tables (cpu.S); .bss after it
 *
 * No compressed payload, nothing relocatable: the payload runs where it is
 * linked, at 0x100000 (pref_address).
 *
 * 64-bit entry: 64-bit mode, paging on with an identity map, a GDT with
 * __BOOT_CS (0x10) and __BOOT_DS (0x18), interrupts off, RSI = address of
 * boot_params (the zero page).  The entry saves CS, DS and SS (three CPL0
 * instructions: the reporter prints them), then LONG64_TO_CPL3 (entry.h)
 * loads our GDT, IDT, page tables (the loader's map need not have the user
 * bit) and TSS and drops to CPL3: 10 CPL0 instructions in all.
 */

#include "entry.h"

#define BOOT_FLAG               0xAA55
#define PROTOCOL_VERSION        0x020f          /* 2.15 */
#define LOADFLAGS               0x01            /* LOADED_HIGH */
#define XLOADFLAGS              0x0001          /* XLF_KERNEL_64 */
#define CMDLINE_SIZE            2047            /* as Linux: COMMAND_LINE_SIZE - 1 */
#define INITRD_ADDR_MAX         0x7fffffff      /* as Linux */
#define KERNEL_ALIGNMENT        0x200000
#define LOAD_ADDR               0x100000

/* ============================================================ setup area */
        .section .setup, "ax"
        .code16

/*
 * Boot sector.  Nobody boots a bzImage from a floppy any more; a BIOS that
 * did would land here (0x7c00) and halt.
 */
bootsect:
        cli
1:      hlt
        jmp     1b

        .org    0x1f1
/* ------------------------------------------------------- setup header */
hdr:
setup_sects:            .byte   linux_setup_sects       /* 0x1f1 */
root_flags:             .word   0                       /* 0x1f2 */
syssize:                .long   linux_syssize           /* 0x1f4 paragraphs */
ram_size:               .word   0                       /* 0x1f8 obsolete */
vid_mode:               .word   0xffff                  /* 0x1fa normal */
root_dev:               .word   0                       /* 0x1fc */
boot_flag:              .word   BOOT_FLAG               /* 0x1fe */
jump:                   .byte   0xeb                    /* 0x200 jmp short */
                        .byte   setup_code - header     /* = header end - 0x202 */
header:                 .ascii  "HdrS"                  /* 0x202 */
version:                .word   PROTOCOL_VERSION        /* 0x206 */
realmode_swtch:         .long   0                       /* 0x208 */
start_sys_seg:          .word   0x1000                  /* 0x20c obsolete */
kernel_version:         .word   version_string - 0x200  /* 0x20e */
type_of_loader:         .byte   0                       /* 0x210 */
loadflags:              .byte   LOADFLAGS               /* 0x211 */
setup_move_size:        .word   0x8000                  /* 0x212 */
code32_start:           .long   LOAD_ADDR               /* 0x214 */
ramdisk_image:          .long   0                       /* 0x218 */
ramdisk_size:           .long   0                       /* 0x21c */
bootsect_kludge:        .long   0                       /* 0x220 */
heap_end_ptr:           .word   0                       /* 0x224 */
ext_loader_ver:         .byte   0                       /* 0x226 */
ext_loader_type:        .byte   0                       /* 0x227 */
cmd_line_ptr:           .long   0                       /* 0x228 */
initrd_addr_max:        .long   INITRD_ADDR_MAX         /* 0x22c */
kernel_alignment:       .long   KERNEL_ALIGNMENT        /* 0x230 */
relocatable_kernel:     .byte   0                       /* 0x234 */
min_alignment:          .byte   21                      /* 0x235 log2 */
xloadflags:             .word   XLOADFLAGS              /* 0x236 */
cmdline_size:           .long   CMDLINE_SIZE            /* 0x238 */
hardware_subarch:       .long   0                       /* 0x23c PC */
hardware_subarch_data:  .quad   0                       /* 0x240 */
payload_offset:         .long   0                       /* 0x248 none */
payload_length:         .long   0                       /* 0x24c */
setup_data:             .quad   0                       /* 0x250 */
pref_address:           .quad   LOAD_ADDR               /* 0x258 */
init_size:              .long   linux_init_size         /* 0x260 */
handover_offset:        .long   0                       /* 0x264 no EFI */
kernel_info_offset:     .long   linux_kernel_info_offset /* 0x268 */
        .globl  linux_hdr_magic, linux_hdr_end  /* linux.ld checks them */
        .set    linux_hdr_magic, header
hdr_end:
        .set    linux_hdr_end, hdr_end

/*
 * Real-mode entry (setup segment + 0x20 : 0, i.e. the jump at 0x200):
 * what a 16-bit boot loader (and QEMU's -kernel) runs.  Not supported:
 * say so on COM1 (DS = the setup segment, as the protocol has it) and halt.
 */
setup_code:
        cli
        cld
        movw    $rm_message, %si
1:      lodsb
        testb   %al, %al
        jz      4f
        movb    %al, %bl
        movw    $0x3fd, %dx                     /* LSR */
        movw    $0xffff, %cx
2:      inb     %dx, %al
        testb   $0x20, %al                      /* THRE */
        jnz     3f
        loop    2b
3:      movw    $0x3f8, %dx
        movb    %bl, %al
        outb    %al, %dx
        jmp     1b
4:      hlt
        jmp     4b

rm_message:
        .ascii  "BOOT linux: real-mode entry (setup code) is not supported, "
        .asciz  "halting\r\n"
version_string:
        .asciz  "xen-kvm test guest boot reporter (bzImage, 64-bit entry only)"

/* ============================================================ payload */
        .section .text.head, "ax"
        .code32
/*
 * payload + 0: the 32-bit boot protocol entry (code32_start).  Not
 * supported: halt.
 */
        .globl  startup_32
startup_32:
        cli
1:      hlt
        jmp     1b

/* kernel_info (protocol 2.15): kernel_info_offset is relative to here. */
        .balign 64
kernel_info:
        .ascii  "LToP"                          /* header */
        .long   kernel_info_end - kernel_info   /* size */
        .long   kernel_info_end - kernel_info   /* size_total */
        .long   0                               /* setup_type_max: none read */
kernel_info_end:
        .globl  linux_kernel_info_offset
        .set    linux_kernel_info_offset, kernel_info - startup_32

/* payload + 0x200: the 64-bit entry. */
        .org    0x200
        .code64
        .globl  startup_64
startup_64:
        movl    %cs, %r8d                       /* 1 */
        movl    %ds, %r9d                       /* 2 */
        movl    %ss, %r10d                      /* 3 */
        LONG64_TO_CPL3 linux_iret_frame         /* 4..10 */

/* ------------------------------------------------------------ CPL3 stub */
linux_user_entry:
        movw    %r8w, guest_entry_cs(%rip)
        movw    %r9w, guest_entry_ds(%rip)
        movw    %r10w, guest_entry_ss(%rip)
        USER_ENTRY BOOT_PROTO_LINUX, %esi       /* guest_main(boot_params) */

        IRET_FRAME linux_iret_frame, linux_user_entry

        .section .note.GNU-stack, "", @progbits
