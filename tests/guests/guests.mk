# Test guests: freestanding kernels (see tests/guests/README.md): the
# multiboot1 counter, exit, fw_cfg, virtio and ACPI guests, and the boot reporter built three
# ways (multiboot1 ELF, PVH ELF, Linux bzImage).
#
# Included by the top-level Makefile; also usable on its own:
#   make -f tests/guests/guests.mk BUILD=build guests
#
# Compiled as 64-bit freestanding code, linked as ELF64 at 1 MiB, then
# converted to ELF32 (QEMU's multiboot loader refuses ELF64).  Only GUEST_*
# flags apply: the top-level CFLAGS/LDFLAGS (which may carry -fsanitize) do
# not reach the guests.

BUILD         ?= build
GUEST_SRCDIR  := tests/guests
GUEST_OUT     := $(BUILD)/guests
GUEST_OBJDIR  := $(GUEST_OUT)/obj

GUEST_CC      ?= $(CC)
GUEST_OBJCOPY ?= objcopy
GUEST_CFLAGS  := -m64 -ffreestanding -fno-pic -fno-pie -mno-red-zone \
                 -mgeneral-regs-only -fno-stack-protector -nostdlib -O2 -g \
                 -fno-asynchronous-unwind-tables -fno-unwind-tables \
                 -fno-omit-frame-pointer -std=gnu11 \
                 -Wall -Wextra -Werror -MMD -MP
GUEST_ASFLAGS := -m64 -fno-pic -fno-pie -Wall -Werror -MMD -MP
GUEST_LDBASE  := -m64 -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments \
                 -Wl,-L,$(GUEST_SRCDIR)
GUEST_LDFLAGS := $(GUEST_LDBASE) -Wl,-T,$(GUEST_SRCDIR)/link.ld

# CPU tables, stacks and handlers (cpu.S) and the runtime: every guest.
GUEST_CPU_OBJ    := $(GUEST_OBJDIR)/cpu.o $(GUEST_OBJDIR)/lib.o
# The multiboot guests: their entry (boot.S) first.
GUEST_COMMON_OBJ := $(GUEST_OBJDIR)/boot.o $(GUEST_CPU_OBJ)
GUEST_NAMES      := counter exit fwcfg virtio acpi cpuid timer
GUEST_ELFS       := $(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_NAMES))

# The virtio guest: virtio.c (main) and its pieces.
GUEST_VIRTIO_OBJ := $(patsubst %,$(GUEST_OBJDIR)/%.o,virtio pci virtio_pci \
                      virtio_blk virtio_rng virtio_net virtio_bad)

# The boot reporter (reporter.c) behind three entries.
GUEST_REPORT_OBJ := $(GUEST_CPU_OBJ) $(GUEST_OBJDIR)/reporter.o
GUEST_BOOT_IMAGES := $(GUEST_OUT)/mbreport.elf $(GUEST_OUT)/pvh.elf \
                     $(GUEST_OUT)/bzimage

# The multiboot info guest (mbinfo.c) behind an ELF and an a.out-kludge
# entry (mbentry.S).
GUEST_MBINFO_OBJ := $(GUEST_CPU_OBJ) $(GUEST_OBJDIR)/mbinfo.o
GUEST_MBINFO_IMAGES := $(GUEST_OUT)/mbinfo.elf $(GUEST_OUT)/mbaout.bin

.PHONY: guests
guests: $(GUEST_ELFS) $(GUEST_BOOT_IMAGES) $(GUEST_MBINFO_IMAGES)

$(GUEST_OBJDIR)/%.o: $(GUEST_SRCDIR)/%.c $(GUEST_SRCDIR)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OBJDIR)/%.o: $(GUEST_SRCDIR)/%.S $(GUEST_SRCDIR)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c -o $@ $<

# The ELF64 link result stays next to the objects (handy for gdb symbols).
$(GUEST_OBJDIR)/%.elf64: $(GUEST_OBJDIR)/%.o $(GUEST_COMMON_OBJ) \
                         $(GUEST_SRCDIR)/link.ld $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_COMMON_OBJ) $<

$(GUEST_OBJDIR)/virtio.elf64: $(GUEST_VIRTIO_OBJ) $(GUEST_COMMON_OBJ) \
                              $(GUEST_SRCDIR)/link.ld \
                              $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_COMMON_OBJ) $(GUEST_VIRTIO_OBJ)

# Multiboot1 loaders only look for the header in the first 8 KiB.
$(GUEST_OUT)/%.elf: $(GUEST_OBJDIR)/%.elf64
	@mkdir -p $(dir $@)
	$(GUEST_OBJCOPY) -O elf32-i386 --strip-debug $< $@
	@od -An -v -tx4 -N8192 $@ | grep -qw 1badb002 || \
	  { echo "$@: no multiboot header in the first 8 KiB" >&2; \
	    rm -f $@; exit 1; }

# --- boot reporter: multiboot1 (bootmagic.S = boot.S keeping EAX).
$(GUEST_OBJDIR)/mbreport.elf64: $(GUEST_OBJDIR)/bootmagic.o \
                                $(GUEST_REPORT_OBJ) $(GUEST_SRCDIR)/link.ld \
                                $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

# --- boot reporter: PVH.  Stays ELF64; must have the Xen PHYS32_ENTRY
# note (type 18) in a PT_NOTE and no multiboot header (or a multiboot
# loader would take it).
$(GUEST_OBJDIR)/pvh.elf64: $(GUEST_OBJDIR)/pvh.o $(GUEST_REPORT_OBJ) \
                           $(GUEST_SRCDIR)/pvh.ld $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDBASE) -Wl,-T,$(GUEST_SRCDIR)/pvh.ld -o $@ \
	  $(filter %.o,$^)

$(GUEST_OUT)/pvh.elf: $(GUEST_OBJDIR)/pvh.elf64
	@mkdir -p $(dir $@)
	$(GUEST_OBJCOPY) --strip-debug $< $@
	@LC_ALL=C readelf -lnW $@ | grep -q 'NOTE' && \
	 LC_ALL=C readelf -nW $@ | grep -Eq 'Xen[[:space:]]+0x0+4[[:space:]].*(0x0*12[^0-9a-f]|PHYS32_ENTRY)' || \
	  { echo "$@: no Xen PHYS32_ENTRY note in a PT_NOTE" >&2; \
	    rm -f $@; exit 1; }
	@! od -An -v -tx4 -N8192 $@ | grep -qw 1badb002 || \
	  { echo "$@: has a multiboot header" >&2; rm -f $@; exit 1; }

# --- boot reporter: Linux bzImage.  One ELF (linux.ld: setup at LMA 0,
# payload linked at 0x100000 right behind it), flattened by objcopy.
$(GUEST_OBJDIR)/bzimage.elf64: $(GUEST_OBJDIR)/linux.o $(GUEST_REPORT_OBJ) \
                               $(GUEST_SRCDIR)/linux.ld \
                               $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDBASE) -Wl,-T,$(GUEST_SRCDIR)/linux.ld -o $@ \
	  $(filter %.o,$^)

# Checks: boot flag, "HdrS", file size = (setup_sects + 1) * 512 + the
# payload (syssize paragraphs, rounded), no multiboot header.
$(GUEST_OUT)/bzimage: $(GUEST_OBJDIR)/bzimage.elf64
	@mkdir -p $(dir $@)
	$(GUEST_OBJCOPY) -O binary $< $@
	@set -- $$(od -An -v -j 0x1f1 -N 1 -tu1 $@) \
	       $$(od -An -v -j 0x1f4 -N 4 -tu4 $@) \
	       $$(od -An -v -j 0x1fe -N 2 -tx2 $@) \
	       $$(od -An -v -j 0x202 -N 4 -c $@ | tr -d ' '); \
	 size=$$(stat -c %s $@); \
	 want=$$(( ($$1 + 1) * 512 + $$2 * 16 )); \
	 [ "$$3" = aa55 ] && [ "$$4" = HdrS ] && \
	 [ $$size -le $$want ] && [ $$size -gt $$((want - 16)) ] || \
	  { echo "$@: bad bzImage (setup_sects=$$1 syssize=$$2 flag=$$3" \
	         "magic=$$4 size=$$size want=$$want)" >&2; rm -f $@; exit 1; }
	@! od -An -v -tx4 -N8192 $@ | grep -qw 1badb002 || \
	  { echo "$@: has a multiboot header" >&2; rm -f $@; exit 1; }

# --- multiboot info guest: ELF (converted by the %.elf rule above) ...
$(GUEST_OBJDIR)/mbinfo.elf64: $(GUEST_OBJDIR)/mbentry.o $(GUEST_MBINFO_OBJ) \
                              $(GUEST_SRCDIR)/link.ld \
                              $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

# ... and a.out kludge: the same code as a flat binary loaded at 1 MiB,
# the header (with the addresses) first in the file, no ELF header.
$(GUEST_OBJDIR)/mbentry_aout.o: $(GUEST_SRCDIR)/mbentry.S \
                                $(GUEST_SRCDIR)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -DMBINFO_AOUT -c -o $@ $<

$(GUEST_OBJDIR)/mbaout.elf64: $(GUEST_OBJDIR)/mbentry_aout.o \
                              $(GUEST_MBINFO_OBJ) $(GUEST_SRCDIR)/link.ld \
                              $(GUEST_SRCDIR)/guestsyms.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

$(GUEST_OUT)/mbaout.bin: $(GUEST_OBJDIR)/mbaout.elf64
	@mkdir -p $(dir $@)
	$(GUEST_OBJCOPY) -O binary -R .status $< $@
	@od -An -v -tx4 -N12 $@ | grep -qw 1badb002 || \
	  { echo "$@: no multiboot header at offset 0" >&2; rm -f $@; exit 1; }
	@set -- $$(od -An -v -j 16 -N 12 -tu4 $@); \
	 [ $$(stat -c %s $@) -eq $$(($$2 - $$1)) ] || \
	  { echo "$@: size is not load_end_addr - load_addr" >&2; \
	    rm -f $@; exit 1; }

.PRECIOUS: $(GUEST_OBJDIR)/%.elf64 $(GUEST_OBJDIR)/%.o

-include $(wildcard $(GUEST_OBJDIR)/*.d)
