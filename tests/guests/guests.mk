# Test guests: freestanding multiboot1 kernels (see tests/guests/README.md).
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
GUEST_LDFLAGS := -m64 -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments \
                 -Wl,-T,$(GUEST_SRCDIR)/link.ld

GUEST_COMMON_OBJ := $(GUEST_OBJDIR)/boot.o $(GUEST_OBJDIR)/lib.o
GUEST_NAMES      := counter exit
GUEST_ELFS       := $(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_NAMES))

.PHONY: guests
guests: $(GUEST_ELFS)

$(GUEST_OBJDIR)/%.o: $(GUEST_SRCDIR)/%.c $(GUEST_SRCDIR)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OBJDIR)/%.o: $(GUEST_SRCDIR)/%.S $(GUEST_SRCDIR)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c -o $@ $<

# The ELF64 link result stays next to the objects (handy for gdb symbols).
$(GUEST_OBJDIR)/%.elf64: $(GUEST_OBJDIR)/%.o $(GUEST_COMMON_OBJ) \
                         $(GUEST_SRCDIR)/link.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_COMMON_OBJ) $<

# Multiboot1 loaders only look for the header in the first 8 KiB.
$(GUEST_OUT)/%.elf: $(GUEST_OBJDIR)/%.elf64
	@mkdir -p $(dir $@)
	$(GUEST_OBJCOPY) -O elf32-i386 --strip-debug $< $@
	@od -An -v -tx4 -N8192 $@ | grep -qw 1badb002 || \
	  { echo "$@: no multiboot header in the first 8 KiB" >&2; \
	    rm -f $@; exit 1; }

.PRECIOUS: $(GUEST_OBJDIR)/%.elf64 $(GUEST_OBJDIR)/%.o

-include $(wildcard $(GUEST_OBJDIR)/*.d)
