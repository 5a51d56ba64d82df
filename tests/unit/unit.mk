# C unit tests: each tests/unit/test_*.c is a program of its own, linked
# with the common objects (and the hypervisor objects named below), built
# as $(BUILD)/tests/unit/test_*.
# tests/unit/test_unit.py runs every one of them under pytest;
# `make unit-run` runs them directly.
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
UNIT_OBJ := $(call obj,$(UNIT_SRC))
LDLIBS_UNIT := -ljansson -llz4 -lz -ldeflate -lpthread

.PHONY: unit unit-run
unit: $(UNIT_BIN)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(COMMON_LIB) $(LDLIBS_UNIT)

# Hypervisor code a test runs in userspace (as Xen's tools/tests/vpci
# builds vpci.c): the device register models, and rtc.c against the
# stubs in its test; the fw_cfg model; the virtqueue walker; the CPUID
# builder.
$(BUILD)/tests/unit/test_uart: $(call obj,xen/dev/ns16550.c)
$(BUILD)/tests/unit/test_rtc: $(call obj,xen/dev/mc146818.c xen/dev/rtc.c)
$(BUILD)/tests/unit/test_fw_cfg: $(call obj,xen/dev/fw_cfg.c)
$(BUILD)/tests/unit/test_cpuid: $(call obj,xen/cpuid.c)
$(BUILD)/tests/unit/test_virtqueue: $(call obj,xen/dev/virtqueue.c xen/memory.c)

# Keep the objects: they are not throw-away intermediates.
.SECONDARY: $(UNIT_OBJ)

unit-run: unit
	@set -e; for t in $(UNIT_BIN); do echo "$$t"; $$t; done
