# Top-level build.  Everything lands under $(BUILD) (default: build/).
#   make               build the daemon, xl, the test guests and unit tests
#   make defconfig     write .config from ci/configs/defconfig
#   make menuconfig    edit .config interactively
#   make olddefconfig  update .config, new symbols at their defaults
#   make demo          set up, build and show two counter guests running
#   make test          set up, build and run every test
#   make sanitize      run the test suite on an ASan+UBSan build
#   make bench         run the benchmarks (table + JSON under $(BUILD)/bench)

BUILD      ?= build
KCONFIG_CONFIG ?= .config
export KCONFIG_CONFIG

CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
              -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS   += -D_GNU_SOURCE -I$(BUILD)/include -Icommon -Ixen -I.
ifeq ($(STREAM_NEXT),1)
CPPFLAGS   += -DSTREAM_VERSION=3
endif
ifeq ($(SANITIZE),1)
CFLAGS     += -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif
ALL_CFLAGS  = $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP
LDLIBS_XEN := -ljansson -lelf -llz4 -lz -ldeflate -lpthread
LDLIBS_XL  := -ljansson

AUTOCONF   := $(BUILD)/include/generated/autoconf.h
AUTOCONF_MK := $(BUILD)/include/config/auto.conf

.PHONY: all defconfig menuconfig olddefconfig savedefconfig demo test \
        test-quick sanitize bench soak clean setup guests unit systest-progs
all: $(BUILD)/bin/xen $(BUILD)/bin/xl $(BUILD)/bin/counter-watch guests unit \
     systest-progs

# ---------------------------------------------------------------- Kconfig
$(KCONFIG_CONFIG):
	@mkdir -p $(dir $@)
	kconfig-conf --defconfig=ci/configs/defconfig Kconfig >/dev/null

defconfig:
	kconfig-conf --defconfig=ci/configs/defconfig Kconfig

menuconfig:
	kconfig-mconf Kconfig

olddefconfig:
	kconfig-conf --olddefconfig Kconfig

savedefconfig:
	kconfig-conf --savedefconfig=defconfig Kconfig

# The generated header and auto.conf are rebuilt whenever .config or
# Kconfig changes; make then restarts with the new CONFIG_ variables.
$(AUTOCONF_MK): $(KCONFIG_CONFIG) Kconfig
	@mkdir -p $(BUILD)/include/generated $(BUILD)/include/config
	kconfig-conf --olddefconfig Kconfig >/dev/null
	cd $(BUILD) && KCONFIG_CONFIG=$(abspath $(KCONFIG_CONFIG)) \
	  KCONFIG_AUTOHEADER=include/generated/autoconf.h \
	  KCONFIG_AUTOCONFIG=include/config/auto.conf \
	  KCONFIG_TRISTATE=include/config/tristate.conf \
	  kconfig-conf --silentoldconfig $(CURDIR)/Kconfig >/dev/null
	@touch $(AUTOCONF) $@

$(AUTOCONF): $(AUTOCONF_MK)

-include $(AUTOCONF_MK)

# ---------------------------------------------------------------- sources
COMMON_SRC := $(wildcard common/*.c)
# Every image carries its ELF note and reads the options it is exec'd
# with.  A feature left out links its not_built.c instead, which answers
# its commands (and options) with "not supported".
LU_ALWAYS  := liveupdate/note.c liveupdate/options.c
SANDBOX_SRC := $(wildcard xen/sandbox*.c)
XEN_SRC    := $(filter-out $(SANDBOX_SRC),$(wildcard xen/*.c)) \
              xen/boot/boot.c xen/boot/elf.c $(LU_ALWAYS)
# Devices: one file each, registering itself (xen/dev/devices.h).
DEV_VIRTIO_SRC := xen/dev/msix.c xen/dev/virtqueue.c \
		  $(filter-out xen/dev/virtio_not_built.c,$(wildcard xen/dev/virtio_*.c))
DEV_OPTIONAL := xen/dev/debug_exit.c xen/dev/fw_cfg.c xen/dev/fw_cfg_io.c \
		$(DEV_VIRTIO_SRC) xen/dev/virtio_not_built.c
XEN_SRC    += $(filter-out $(DEV_OPTIONAL),$(wildcard xen/dev/*.c))
XEN_SRC-$(CONFIG_DEV_DEBUG_EXIT) += xen/dev/debug_exit.c
XEN_SRC-$(CONFIG_DEV_FW_CFG) += xen/dev/fw_cfg.c xen/dev/fw_cfg_io.c
XEN_SRC-$(CONFIG_DEV_VIRTIO) += $(DEV_VIRTIO_SRC)
XEN_SRC-$(if $(CONFIG_DEV_VIRTIO),,y) += xen/dev/virtio_not_built.c
XEN_SRC-$(CONFIG_LIVE_UPDATE) += $(filter-out $(LU_ALWAYS) liveupdate/not_built.c,$(wildcard liveupdate/*.c))
XEN_SRC-$(if $(CONFIG_LIVE_UPDATE),,y) += liveupdate/not_built.c
XEN_SRC-$(CONFIG_LIVEPATCH) += $(filter-out livepatch/not_built.c,$(wildcard livepatch/*.c))
XEN_SRC-$(if $(CONFIG_LIVEPATCH),,y) += livepatch/not_built.c
XEN_SRC-$(CONFIG_MIGRATION) += $(wildcard migration/*.c)
# After live update in link order: its start-up hooks come first.
XEN_SRC-$(CONFIG_SIGNATURE) += trust/enforce.c
XEN_SRC-$(if $(CONFIG_SIGNATURE),,y) += trust/not_built.c
LDLIBS_XEN += $(if $(CONFIG_SIGNATURE),-lcrypto)
LDLIBS_XEN += $(if $(CONFIG_MIGRATION),-lgnutls)
XEN_SRC-$(CONFIG_SANDBOX) += $(SANDBOX_SRC)
LDLIBS_XEN-$(CONFIG_SANDBOX) += -lseccomp -lcap
XEN_SRC-$(CONFIG_BOOT_MULTIBOOT) += xen/boot/multiboot.c \
                                   xen/boot/multiboot_mbi.c
XEN_SRC-$(CONFIG_BOOT_LINUX) += xen/boot/linux.c
XEN_SRC-$(CONFIG_BOOT_PVH) += xen/boot/pvh.c
XEN_SRC    += xen/boot/mptable.c xen/boot/acpi.c
XEN_SRC    += $(XEN_SRC-y)
XL_SRC     := $(wildcard tools/xl/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_OBJ := $(call obj,$(COMMON_SRC))
# An archive, so each program links only the common code it uses.
COMMON_LIB := $(BUILD)/lib/libcommon.a
XEN_OBJ    := $(call obj,$(XEN_SRC))
XL_OBJ     := $(call obj,$(XL_SRC))
# Livepatch (docs/livepatch.md): the daemon's objects have one section per
# function and per variable, so livepatch-build can diff them function by
# function; no absolute build path in the debug info, so the same source
# built in another directory gives the same build-id.
$(XEN_OBJ) $(COMMON_OBJ): ALL_CFLAGS += -ffunction-sections -fdata-sections \
	-fdebug-prefix-map=$(CURDIR)=.

# The build-id note is what `xl info` reports and what live update and
# livepatch check against.
$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/xen: $(XEN_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -Wl,--build-id=sha1 -o $@ $^ $(LDLIBS_XEN) \
	  $(LDLIBS_XEN-y)

$(BUILD)/bin/xl: $(XL_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_XL)

# Outside the hypervisor: watches counter guests through their RAM memfds.
$(BUILD)/bin/counter-watch: $(call obj,tools/watch/counter-watch.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/obj/%.o: %.c $(AUTOCONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

include tests/guests/guests.mk
include tests/system/system.mk
include tests/unit/unit.mk
include tools/stream/stream.mk
include tools/sign/sign.mk
include tests/fuzz/fuzz.mk
all: $(STREAM_TOOLS) $(SIGN_TOOL)

# ---------------------------------------------------------------- jobs
PYTEST := /usr/bin/python3 -m pytest

setup:
	scripts/setup.sh

demo: setup
	$(MAKE) all
	scripts/demo.sh $(BUILD)

# Other builds the tests use: a daemon one state-format version ahead (for
# live updates between format versions, N -> N+1 -> N) and the reduced
# Kconfig subset (for updates between differently configured builds).
variants:
	$(MAKE) BUILD=build-next STREAM_NEXT=1 KCONFIG_CONFIG=$(KCONFIG_CONFIG) \
	  build-next/bin/xen
	$(MAKE) BUILD=build-minimal KCONFIG_CONFIG=build-minimal/.config \
	  build-minimal/.config-seeded
	$(MAKE) BUILD=build-minimal KCONFIG_CONFIG=build-minimal/.config \
	  build-minimal/bin/xen build-minimal/bin/xl

.PHONY: variants config-build test-config

# The whole suite: the default build, then the reduced Kconfig subset.
# tests/testhost/suite.py runs it where KVM is: here with a usable
# /dev/kvm, else (or with XEN_TEST_HOST=nested) what needs KVM in QEMU
# test hosts with kvm-amd inside (tests/testhost/README.md).  Everything is
# built here first.
SUITE := /usr/bin/python3 tests/testhost/suite.py

NPROC := $(shell nproc 2>/dev/null || echo 1)

test: setup
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) variants
	$(MAKE) -j$(NPROC) config-build CONFIG_SUBSET=minimal
	$(SUITE) --pass $(BUILD) "-q tests" \
	  --pass build-minimal "-q tests $(CONFIG_SUBSET_SKIP)"

# Build a Kconfig subset from ci/configs/ in its own tree.
config-build:
	$(MAKE) BUILD=build-$(CONFIG_SUBSET) \
	  KCONFIG_CONFIG=build-$(CONFIG_SUBSET)/.config \
	  build-$(CONFIG_SUBSET)/.config-seeded
	$(MAKE) BUILD=build-$(CONFIG_SUBSET) \
	  KCONFIG_CONFIG=build-$(CONFIG_SUBSET)/.config all

# Build a Kconfig subset and run the suite against it alone; tests of
# features left out skip by asking `xl info`.
test-config: config-build
	$(SUITE) --pass build-$(CONFIG_SUBSET) "-q tests $(CONFIG_SUBSET_SKIP)"

# The subset run covers what Kconfig changes (boot formats, devices,
# commands answering "not supported"); the long state, live-update,
# livepatch, fuzz and system suites run once, on the default build, and
# already exercise the minimal build where they need it.
CONFIG_SUBSET_SKIP := --ignore=tests/system --ignore=tests/test_save.py \
	--ignore=tests/test_liveupdate.py --ignore=tests/test_livepatch.py \
	--ignore=tests/test_stream_tool.py --ignore=tests/test_fuzz.py

build-%/.config-seeded: ci/configs/%.config
	@mkdir -p $(dir $@)
	cp $< $(dir $@).config
	KCONFIG_CONFIG=$(dir $@).config kconfig-conf --olddefconfig Kconfig >/dev/null
	@touch $@

sanitize: setup
	$(MAKE) BUILD=build-asan SANITIZE=1 KCONFIG_CONFIG=$(KCONFIG_CONFIG) all
	$(MAKE) variants
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(SUITE) --pass build-asan "-q tests"

bench: setup
	$(MAKE) all
	XEN_BUILD=$(abspath $(BUILD)) /usr/bin/python3 bench/run.py $(BENCH_ARGS)

# 1000 live updates under load with injected faults (tests/soak_liveupdate.py)
soak: all
	XEN_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/soak_liveupdate.py \
	  $(SOAK_ARGS)

clean:
	rm -rf $(BUILD) build-*
