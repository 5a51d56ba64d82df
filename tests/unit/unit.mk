# C unit tests: each tests/unit/test_*.c is a program of its own, linked
# with the common objects, built as $(BUILD)/tests/unit/test_*.
# tests/unit/test_unit.py runs every one of them under pytest;
# `make unit-run` runs them directly.
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
UNIT_OBJ := $(call obj,$(UNIT_SRC))
LDLIBS_UNIT := -ljansson -llz4 -lz

.PHONY: unit unit-run
unit: $(UNIT_BIN)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_UNIT)

# Keep the objects: they are not throw-away intermediates.
.SECONDARY: $(UNIT_OBJ)

unit-run: unit
	@set -e; for t in $(UNIT_BIN); do echo "$$t"; $$t; done
