# libFuzzer targets under ASan+UBSan: the state stream
# (tests/fuzz/fuzz_stream.c: the common reader and xen-stream's verify and
# dump paths) and the virtqueue walker (tests/fuzz/fuzz_virtq.c: guest RAM
# as a hostile guest may lay it out).
#
#   make fuzz-build    build $(BUILD)/fuzz/fuzz_stream and fuzz_virtq
#   make fuzz          fuzz for FUZZ_SECONDS (default 600)
#   make fuzz-quick    fuzz for 30 seconds
#
# Included by the top-level Makefile after the common definitions (WARN,
# CPPFLAGS, AUTOCONF).  The sources are compiled again with clang into
# $(BUILD)/fuzz/obj: no gcc object is reused.  New inputs go to
# $(BUILD)/fuzz/corpus, crashes to $(BUILD)/fuzz/artifacts/; a crash
# fixed becomes a file in tests/fuzz/regressions/, which every run (and
# tests/test_stream_tool.py) replays.

FUZZ_CC          ?= clang
FUZZ_SECONDS     ?= 600
FUZZ_FLAGS       ?=
FUZZ_DIR         := $(BUILD)/fuzz
FUZZ_BIN         := $(FUZZ_DIR)/fuzz_stream
FUZZ_SEEDS       := tests/fuzz/corpus
FUZZ_REGRESSIONS := tests/fuzz/regressions
FUZZ_SANITIZE    := -fsanitize=fuzzer,address,undefined \
                    -fno-sanitize-recover=undefined
FUZZ_CFLAGS      := $(CPPFLAGS) -Itools/stream $(WARN) -O1 -g \
                    -fno-omit-frame-pointer $(FUZZ_SANITIZE) -MMD -MP
FUZZ_SRC         := tests/fuzz/fuzz_stream.c common/stream.c common/pagepipe.c \
                    common/domcfg.c common/domcfg_fwcfg.c \
                    common/domcfg_disk.c common/domcfg_vif.c \
                    common/domcfg_module.c \
                    common/rec_table.c \
                    tools/stream/verify.c tools/stream/dump.c
FUZZ_OBJ         := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SRC))
FUZZ_VIRTQ_BIN   := $(FUZZ_DIR)/fuzz_virtq
FUZZ_VIRTQ_SRC   := tests/fuzz/fuzz_virtq.c xen/dev/virtqueue.c xen/memory.c
FUZZ_VIRTQ_OBJ   := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_VIRTQ_SRC))
LDLIBS_FUZZ      := -ljansson -llz4 -lz -ldeflate -lpthread

.PHONY: fuzz-build fuzz fuzz-quick
fuzz-build: $(FUZZ_BIN) $(FUZZ_VIRTQ_BIN)

$(FUZZ_DIR)/obj/%.o: %.c $(AUTOCONF)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BIN): $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SANITIZE) -o $@ $^ $(LDLIBS_FUZZ)

$(FUZZ_VIRTQ_BIN): $(FUZZ_VIRTQ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SANITIZE) -o $@ $^

# The first directory receives new inputs; the seeds and the regressions
# are only read.
fuzz_run = mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts && \
	$(FUZZ_BIN) -max_total_time=$(1) -max_len=65536 -print_final_stats=1 \
	  -dict=tests/fuzz/stream.dict \
	  -artifact_prefix=$(FUZZ_DIR)/artifacts/ $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus $(FUZZ_SEEDS) $(FUZZ_REGRESSIONS)

# The virtqueue target starts from nothing: its inputs are small.
fuzz_virtq_run = mkdir -p $(FUZZ_DIR)/corpus-virtq && \
	$(FUZZ_VIRTQ_BIN) -max_total_time=$(1) -max_len=8192 \
	  -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/ \
	  $(FUZZ_FLAGS) $(FUZZ_DIR)/corpus-virtq

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))
	$(call fuzz_virtq_run,$(FUZZ_SECONDS))

fuzz-quick: fuzz-build
	$(call fuzz_run,30)
	$(call fuzz_virtq_run,30)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
