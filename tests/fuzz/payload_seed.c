/*
 * Seeds for the payload loader's fuzz target (fuzz_payload.c): payloads
 * written by hand against that program, which defines
 * fuzz_payload_victim().  make_seeds.py builds one object per variant:
 *   SEED_FUNCS   a replacement function calling libc (a stub), reading
 *                its own data, with meta strings and parameters
 *   SEED_RANGES  a code range with a jump into the payload
 *   SEED_HOOKS   load, pre/post apply hooks and an apply action
 * Never run.
 */
#include <string.h>

#include "livepatch/payload.h"

/* The GNU build-id notes the loader requires (what it depends on: any). */
#define NOTE(sec, b)							\
	__asm__(".pushsection " sec ",\"a\",@note\n.balign 4\n"	\
		".long 4, 20, 3\n.asciz \"GNU\"\n"			\
		".fill 20, 1, " #b "\n.balign 4\n.popsection")
NOTE(".livepatch.depends", 0x11);
NOTE(".note.gnu.build-id", 0x22);

static char seed_buf[64];
static const char victim[] = "fuzz_payload_victim";

int seed_new(int x);

int seed_new(int x)
{
	memcpy(seed_buf, &x, sizeof(x));
	return seed_buf[0] + x;
}

#ifdef SEED_FUNCS
LIVEPATCH_PARAM_INT(seed_limit, 16, 1, 4096, LIVEPATCH_PARAM_WRITABLE,
		    "a bound");
LIVEPATCH_PARAM_BOOL(seed_on, 1, 0, "a switch");
LIVEPATCH_PARAM_STRING(seed_who, "fuzz", 15, LIVEPATCH_PARAM_WRITABLE |
		       LIVEPATCH_PARAM_PARKED, "a name");
LIVEPATCH_META("cve=CVE-0000-0001");
LIVEPATCH_META("summary=a seed");

struct livepatch_func seed_f __attribute__((section(".livepatch.funcs"))) = {
	.name = victim, .new_addr = (void *)seed_new, .new_size = 16,
};
#endif

#ifdef SEED_RANGES
static void seed_tramp(void)
{
	seed_buf[1]++;
}

struct livepatch_range seed_r __attribute__((section(".livepatch.ranges"))) = {
	.name = victim, .new_addr = (void *)seed_tramp, .offset = 0,
	.len = 6, .flags = LIVEPATCH_RANGE_JMP,
	.new_bytes = { 0xe9, 0, 0, 0, 0, 0xcc },
};
#endif

#ifdef SEED_HOOKS
static int seed_hook(void)
{
	return seed_buf[2];
}

LIVEPATCH_LOAD_HOOK(seed_hook);
LIVEPATCH_PREAPPLY_HOOK(seed_hook);
LIVEPATCH_POSTAPPLY_HOOK(seed_hook);
LIVEPATCH_APPLY_ACTION(seed_hook);

struct livepatch_func seed_f __attribute__((section(".livepatch.funcs"))) = {
	.name = victim, .new_addr = (void *)seed_new, .new_size = 16,
	.old_size = 8,
};
#endif
