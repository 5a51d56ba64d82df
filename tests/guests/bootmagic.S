/*
 * boot.S for the boot reporter (mbreport.elf): the multiboot entry that
 * also keeps EAX (the multiboot magic 0x2BADB002) for the C code, at the
 * cost of one more CPL0 instruction.  counter.elf and exit.elf use boot.S
 * as it is (16 CPL0 instructions).
 */
#define BOOT_SAVE_MAGIC 1
#include "boot.S"
