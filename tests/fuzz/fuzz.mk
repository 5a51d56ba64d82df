# libFuzzer targets under ASan+UBSan, one per parser (tests/fuzz/README.md):
#
#   stream   the state stream: common reader, record table, xen-stream
#   virtq    the virtqueue walker over guest RAM a hostile guest lays out
#   control  control protocol lines -> command dispatch (fake domains)
#   xlcfg    xl's config parser and the daemon's config checks
#   payload  the livepatch payload loader (ELF checks, relocation)
#   stage    the live-update image stager (ELF, notes, build-id)
#   migrecv  the migration receive path: hello, answer, stream, GO
#
#   make fuzz-build    build $(BUILD)/fuzz/fuzz_<target> for every target
#   make fuzz          fuzz each for FUZZ_SECONDS (default 600)
#   make fuzz-quick    fuzz each for 30 seconds
#   make fuzz-long     fuzz each for FUZZ_LONG_RUNS executions (10^7)
#                      with UBSan only (4-5 times the speed), then
#                      replay everything it kept under ASan+UBSan;
#                      a table: executions, exec/s, replayed, findings
#   make fuzz-replay   run every checked-in seed and regression once
#   FUZZ_TARGETS="control xlcfg" limits any of these to some targets.
#
# Included by the top-level Makefile after the common definitions (WARN,
# CPPFLAGS, AUTOCONF).  The sources are compiled again with clang into
# $(BUILD)/fuzz/obj: no gcc object is reused.  Each target reads its
# seeds from tests/fuzz/corpus/<target>/ and its regressions from
# tests/fuzz/regressions/<target>/ (both only read), writes new inputs to
# $(BUILD)/fuzz/corpus-<target>/ and crashes to
# $(BUILD)/fuzz/artifacts/<target>/.

FUZZ_CC          ?= clang
FUZZ_SECONDS     ?= 600
FUZZ_LONG_RUNS   ?= 10000000
FUZZ_FLAGS       ?=
FUZZ_DIR         := $(BUILD)/fuzz
FUZZ_ARTIFACTS   = $(FUZZ_DIR)/artifacts
FUZZ_SANITIZE    := -fsanitize=fuzzer,address,undefined \
                    -fno-sanitize-recover=undefined
FUZZ_CFLAGS      := $(CPPFLAGS) -Itools/stream $(WARN) -O1 -g \
                    -fno-omit-frame-pointer $(FUZZ_SANITIZE) -MMD -MP
# fuzz-long's fast pass: the same targets without ASan (tests/fuzz/README.md)
FUZZ_FAST_SANITIZE := -fsanitize=fuzzer,undefined -fno-sanitize-recover=undefined
FUZZ_ALL         := stream virtq control xlcfg payload stage migrecv
FUZZ_TARGETS     ?= $(FUZZ_ALL)

DOMCFG_SRC       := $(wildcard common/domcfg*.c)

# Per target: sources, libraries, longest input.
fuzz_src_stream  := tests/fuzz/fuzz_stream.c common/stream.c common/pagepipe.c common/pagestore.c $(DOMCFG_SRC) \
                    common/rec_table.c tools/stream/verify.c \
                    tools/stream/dump.c
fuzz_libs_stream := -ljansson -llz4 -lz -ldeflate -lpthread
fuzz_len_stream  := 65536

fuzz_src_virtq   := tests/fuzz/fuzz_virtq.c xen/dev/virtqueue.c xen/memory.c
fuzz_len_virtq   := 8192

fuzz_src_control := tests/fuzz/fuzz_control.c tests/fuzz/fake_domain.c xen/dom_names.c \
                    xen/control.c xen/commands.c xen/feature.c xen/log.c \
                    xen/ring.c xen/buildinfo.c xen/memory.c xen/audit.c \
                    xen/cmd_power.c $(DOMCFG_SRC)
fuzz_libs_control := -ljansson -lpthread
fuzz_len_control := 16384

fuzz_src_xlcfg   := tests/fuzz/fuzz_xlcfg.c common/xlcfg.c common/openfile.c \
                    $(DOMCFG_SRC)
fuzz_libs_xlcfg  := -ljansson
fuzz_len_xlcfg   := 16384

fuzz_src_payload := tests/fuzz/fuzz_payload.c livepatch/payload_load.c \
                    livepatch/symbols.c livepatch/params.c \
                    livepatch/ranges.c livepatch/stack.c livepatch/patching.c \
                    xen/log.c xen/ring.c xen/buildinfo.c \
                    tests/fuzz/fake_livepatch.c
fuzz_libs_payload := -ljansson -lelf -ldl
fuzz_len_payload := 65536

fuzz_src_stage   := tests/fuzz/fuzz_stage.c liveupdate/stage.c \
                    common/elfnote.c common/openfile.c trust/not_built.c \
                    xen/feature.c xen/log.c xen/ring.c
fuzz_libs_stage  := -lelf -ljansson
fuzz_len_stage   := 65536

fuzz_src_migrecv := tests/fuzz/fuzz_migrecv.c tests/fuzz/fake_domain.c xen/dom_names.c \
                    migration/wire.c migration/conn.c migration/tls.c \
                    migration/outcome.c migration/recv_pages.c \
                    xen/state_restore.c xen/state_workers.c common/stream.c \
                    common/pagepipe.c common/pagestore.c \
                    common/rec_table.c xen/log.c xen/ring.c xen/memory.c \
                    $(DOMCFG_SRC)
fuzz_libs_migrecv := -ljansson -llz4 -lz -ldeflate -lpthread -lgnutls
fuzz_len_migrecv := 65536

# Dictionaries (tests/fuzz/<target>.dict); libFuzzer takes one, so a
# target that reads a stream gets stream.dict's tokens too.
fuzz_dicts_migrecv := tests/fuzz/migrecv.dict tests/fuzz/stream.dict

fuzz_bin = $(FUZZ_DIR)/fuzz_$(1)
fuzz_obj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(fuzz_src_$(1)))
fuzz_dicts = $(or $(fuzz_dicts_$(1)),$(wildcard tests/fuzz/$(1).dict))
fuzz_dict = $(if $(call fuzz_dicts,$(1)),$(FUZZ_DIR)/$(1).dict)

define fuzz_target
$(call fuzz_bin,$(1)): $(call fuzz_obj,$(1)) $(call fuzz_dict,$(1))
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_SANITIZE) -o $$@ $$(filter %.o,$$^) \
	  $$(fuzz_libs_$(1))
$(if $(call fuzz_dict,$(1)),$(call fuzz_dict,$(1)): $(call fuzz_dicts,$(1))
	@mkdir -p $$(dir $$@)
	cat $$^ >$$@)
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_target,$(t))))

# A target that includes a daemon source is rebuilt when that changes.
$(FUZZ_DIR)/obj/tests/fuzz/fuzz_migrecv.o: migration/recv.c

.PHONY: fuzz-build fuzz fuzz-quick fuzz-long fuzz-replay
fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(call fuzz_bin,$(t)))

$(FUZZ_DIR)/obj/%.o: %.c $(AUTOCONF)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# One target for $(2) (libFuzzer options), by the binary in $(3) (default
# $(FUZZ_DIR)): the first directory receives new inputs; the seeds and
# the regressions are only read.
fuzz_run = mkdir -p $(FUZZ_DIR)/corpus-$(1) $(FUZZ_ARTIFACTS)/$(1) && \
	$(or $(3),$(FUZZ_DIR))/fuzz_$(1) $(2) -max_len=$(fuzz_len_$(1)) \
	  -print_final_stats=1 $(addprefix -dict=,$(call fuzz_dict,$(1))) \
	  -artifact_prefix=$(FUZZ_ARTIFACTS)/$(1)/ $(FUZZ_FLAGS) \
	  $(FUZZ_DIR)/corpus-$(1) $(wildcard tests/fuzz/corpus/$(1) \
	  tests/fuzz/regressions/$(1))

fuzz: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),-max_total_time=$(FUZZ_SECONDS)) &&) true

fuzz-quick: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),-max_total_time=30) &&) true

# Each target to FUZZ_LONG_RUNS executions (FUZZ_FLAGS=-max_total_time=S
# bounds each in time too) by the UBSan-only build in $(FUZZ_DIR)/fast/,
# into the same corpus as the other runs; then every input of that corpus
# and of the seeds once by the ASan+UBSan build, so that a memory error
# any kept input reaches is found.  Logs in $(FUZZ_DIR)/long/<target>.log
# and <target>.replay.log, findings of both in
# $(FUZZ_DIR)/long/artifacts/<target>/, emptied first; then the table.
# A finding does not stop the other targets; two runs over different
# FUZZ_TARGETS may share the directory.
fuzz-long: FUZZ_ARTIFACTS = $(FUZZ_DIR)/long/artifacts
fuzz-long: fuzz-build
	$(MAKE) fuzz-build FUZZ_DIR=$(FUZZ_DIR)/fast \
	  FUZZ_SANITIZE="$(FUZZ_FAST_SANITIZE)" FUZZ_TARGETS="$(FUZZ_TARGETS)"
	mkdir -p $(FUZZ_DIR)/long
	$(foreach t,$(FUZZ_TARGETS),rm -rf $(FUZZ_DIR)/long/$(t).log \
	  $(FUZZ_DIR)/long/$(t).replay.log $(FUZZ_DIR)/long/artifacts/$(t) && \
	  ($(call fuzz_run,$(t),-runs=$(FUZZ_LONG_RUNS),$(FUZZ_DIR)/fast)) \
	  >$(FUZZ_DIR)/long/$(t).log 2>&1; \
	  ($(call fuzz_run,$(t),-runs=0)) \
	  >$(FUZZ_DIR)/long/$(t).replay.log 2>&1 || true;)
	@tests/fuzz/summary.sh $(FUZZ_DIR)/long $(FUZZ_TARGETS)

# Every checked-in input once: a crash fixed stays fixed.
fuzz-replay: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_bin,$(t)) -runs=0 \
	  $(wildcard tests/fuzz/corpus/$(t) tests/fuzz/regressions/$(t)) &&) true

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
