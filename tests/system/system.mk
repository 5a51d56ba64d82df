# The system tier's helper programs (tests/system/README.md), run inside
# its host VM and its Debian guests: static, so that they need no library
# there, and built with their own flags (no sanitizer from CFLAGS: they
# run where no ASan runtime is).

SYSTEST_OUT := $(BUILD)/tests/system
SYSTEST_PROGS := $(SYSTEST_OUT)/seqstream

.PHONY: systest-progs
systest-progs: $(SYSTEST_PROGS)

$(SYSTEST_OUT)/%: tests/system/%.c tests/system/system.mk
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -std=gnu11 -o $@ $<
