# xen-sign: keys and detached signatures for live-update images and
# livepatch payloads (tools/sign/, common/signature.h).  Included by the
# top-level Makefile; SIGN_TOOL is what it builds, for `all`.  Built
# whatever the Kconfig: signing happens where images are built.

SIGN_TOOL_SRC := $(wildcard tools/sign/*.c)
SIGN_TOOL_OBJ := $(call obj,$(SIGN_TOOL_SRC))
SIGN_TOOL     := $(BUILD)/bin/xen-sign
LDLIBS_SIGN   := -lcrypto

.PHONY: xen-sign
xen-sign: $(SIGN_TOOL)

$(SIGN_TOOL): $(SIGN_TOOL_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SIGN)
