# xen-stream: dump and verify state streams (tools/stream/).
#
# Included by the top-level Makefile after the common definitions (obj,
# COMMON_LIB, the $(BUILD)/obj/%.o pattern rule).  STREAM_TOOLS lists what
# it builds, for `all`.

STREAM_TOOL_SRC := $(wildcard tools/stream/*.c)
STREAM_TOOL_OBJ := $(call obj,$(STREAM_TOOL_SRC))
STREAM_TOOL     := $(BUILD)/bin/xen-stream
STREAM_TOOLS    := $(STREAM_TOOL)
LDLIBS_STREAM   := -ljansson -llz4 -lz -ldeflate -lpthread

.PHONY: xen-stream
xen-stream: $(STREAM_TOOL)

$(STREAM_TOOL): $(STREAM_TOOL_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_STREAM)
