/*
 * The livepatch payload format (docs/livepatch.md): what a payload object
 * carries, shared by the daemon's loader (livepatch/livepatch.c), the
 * build tool (tools/livepatch/livepatch-build) and hand-written payloads.
 *
 * A payload is a relocatable x86-64 ELF object (ld -r output) with:
 *   .livepatch.funcs     array of struct livepatch_func
 *   .livepatch.depends   a GNU build-id note: what it applies on top of
 *                        (the daemon's build-id, or the payload below it)
 *   .note.gnu.build-id   its own build-id
 *   .livepatch.hooks.*   arrays of hook pointers (load, unload, preapply,
 *                        postapply, prerevert, postrevert), and at most
 *                        one apply and one revert action hook
 *   .livepatch.meta      NUL-separated "key=value" strings
 *   .livepatch.params    array of struct livepatch_param: typed parameters
 *   .livepatch.ranges    array of struct livepatch_range: code ranges
 *                        replaced in place inside a function
 * A payload has .livepatch.funcs, .livepatch.ranges or both.
 */
#ifndef LIVEPATCH_PAYLOAD_H
#define LIVEPATCH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIVEPATCH_EXPECT_MAX	16
#define LIVEPATCH_JMP_SIZE	5	/* E9 rel32 */

struct livepatch_func {
	const char *name;	/* old function; "file.c#sym" for a static */
	uint64_t old_addr;	/* 0: look it up by name */
	uint32_t old_size;	/* 0: take it from the daemon's symtab */
	uint32_t new_size;
	void *new_addr;		/* the replacement (a relocation) */
	uint8_t expect[LIVEPATCH_EXPECT_MAX];	/* its first bytes now */
	uint32_t expect_len;	/* 0: no check */
	uint32_t flags;		/* must be 0 */
};
_Static_assert(sizeof(struct livepatch_func) == 56,
	       "struct livepatch_func is part of the payload format");

#define LP_CAT_(a, b) a##b
#define LP_CAT(a, b) LP_CAT_(a, b)

/*
 * A code range replaced in place: `len` bytes at `offset` into the function
 * `name`, expected to hold `expect` (all len bytes are checked), become
 * `new_bytes`.  With LIVEPATCH_RANGE_JMP the first 5 bytes written are
 * instead `jmp new_addr` (E9 rel32, computed when loaded): payload code
 * that does the work and jumps back into the function; new_bytes[5..len)
 * follow it (livepatch-build fills them with int3).  Written with every
 * vCPU parked and no thread's instruction pointer or return address
 * strictly inside the range; revert writes `expect` back.
 */
#define LIVEPATCH_RANGE_MAX	64
#define LIVEPATCH_RANGE_JMP	1u	/* new_bytes[0..5) is jmp new_addr */

struct livepatch_range {
	const char *name;	/* the function; "file.c#sym" for a static */
	void *new_addr;		/* LIVEPATCH_RANGE_JMP: where the jmp goes */
	uint32_t offset;	/* of the range from the function's start */
	uint32_t len;		/* 1..LIVEPATCH_RANGE_MAX (5.. with _JMP) */
	uint32_t flags;		/* LIVEPATCH_RANGE_JMP or 0 */
	uint32_t reserved;	/* 0 */
	uint8_t expect[LIVEPATCH_RANGE_MAX];	/* the bytes there now */
	uint8_t new_bytes[LIVEPATCH_RANGE_MAX];	/* the bytes written */
};
_Static_assert(sizeof(struct livepatch_range) == 160,
	       "struct livepatch_range is part of the payload format");
_Static_assert(offsetof(struct livepatch_range, expect) == 32,
	       "struct livepatch_range is part of the payload format");

/*
 * Typed parameters: the payload's code reads the variable `value` points
 * to; the daemon writes the default there when the payload is uploaded,
 * then the values given to upload/load (`key=value`), each checked
 * against its declaration before any code of the payload runs.  A
 * LIVEPATCH_PARAM_WRITABLE parameter may be set later (livepatch-set),
 * also while applied; with LIVEPATCH_PARAM_PARKED that write is made with
 * every vCPU parked (a writable string must say so: it is not written
 * in one store).  Without it, an integer or bool is written with one
 * atomic store: read it once per use.
 *
 *   type    value points to       default   bounds
 *   BOOL    bool                  def_int   -
 *   INT     int64_t               def_int   min <= value <= max
 *   STRING  char[max_len + 1]     def_str   strlen <= max_len
 *
 * Names: 1-31 characters of [a-z0-9_], starting with a letter.
 */
enum livepatch_param_type {
	LIVEPATCH_PARAM_BOOL = 1,
	LIVEPATCH_PARAM_INT = 2,
	LIVEPATCH_PARAM_STRING = 3,
};
#define LIVEPATCH_PARAM_WRITABLE	1u	/* may be set after upload */
#define LIVEPATCH_PARAM_PARKED		2u	/* set with the vCPUs parked */
#define LIVEPATCH_PARAM_NAME_MAX	31
#define LIVEPATCH_PARAM_STRING_MAX	255

struct livepatch_param {
	const char *name;
	const char *description;
	void *value;		/* the payload's variable */
	const char *def_str;	/* STRING: default */
	int64_t def_int;	/* BOOL (0 or 1), INT: default */
	int64_t min, max;	/* INT: inclusive bounds */
	uint32_t type;		/* enum livepatch_param_type */
	uint32_t max_len;	/* STRING: longest value, without the NUL */
	uint32_t flags;		/* LIVEPATCH_PARAM_WRITABLE | _PARKED */
	uint32_t reserved;	/* 0 */
};
_Static_assert(sizeof(struct livepatch_param) == 72,
	       "struct livepatch_param is part of the payload format");

#define LIVEPATCH_PARAM_(var, t, dint, dstr, lo, hi, mlen, fl, desc)	\
	static struct livepatch_param LP_CAT(lp_param_, var)		\
	__attribute__((section(".livepatch.params"), used, aligned(8))) = { \
		.name = #var, .description = (desc), .value = &(var),	\
		.def_str = (dstr), .def_int = (dint), .min = (lo),	\
		.max = (hi), .type = (t), .max_len = (mlen),		\
		.flags = (fl) }

/* LIVEPATCH_PARAM_INT(limit, 128, 14, 128, LIVEPATCH_PARAM_WRITABLE,
 *		       "what it does"): defines `static int64_t limit`. */
#define LIVEPATCH_PARAM_BOOL(var, def, fl, desc)			\
	static bool var = (def);					\
	LIVEPATCH_PARAM_(var, LIVEPATCH_PARAM_BOOL, (def), NULL, 0, 1, 0, \
			 fl, desc)
#define LIVEPATCH_PARAM_INT(var, def, lo, hi, fl, desc)		\
	static int64_t var = (def);					\
	LIVEPATCH_PARAM_(var, LIVEPATCH_PARAM_INT, (def), NULL, lo, hi, 0, \
			 fl, desc)
#define LIVEPATCH_PARAM_STRING(var, def, maxlen, fl, desc)		\
	static char var[(maxlen) + 1] = def;				\
	LIVEPATCH_PARAM_(var, LIVEPATCH_PARAM_STRING, 0, def, 0, 0, maxlen, \
			 fl, desc)

/*
 * For livepatch-build: make the changes to function `fn` (of this file)
 * as code ranges, each a jump to payload code that jumps back, instead of
 * replacing the whole function; the tool refuses when it cannot.
 */
#define LIVEPATCH_RANGES(fn)						\
	__asm__(".pushsection .livepatch_build.ranges,\"\",@progbits\n" \
		".asciz \"" #fn "\"\n.popsection")

/*
 * Hooks: int fn(void).  A non-zero return of a load, preapply or prerevert
 * hook refuses the operation (nothing is changed); the return values of
 * the post and unload hooks are logged only.
 *
 * Action hooks replace the default apply (revert): they run with every
 * vCPU thread parked, and call livepatch_default_action() to write
 * (restore) the jumps, before or after what else must change while
 * nothing runs.  A non-zero return fails the apply (revert); jumps the
 * default action wrote are undone, anything else the hook changed is its
 * own to undo.
 */
typedef int livepatch_hook_t(void);

#define LIVEPATCH_HOOK_(kind, fn)					\
	static livepatch_hook_t *const LP_CAT(lp_hook_##kind##_, __COUNTER__) \
	__attribute__((section(".livepatch.hooks." #kind), used)) = (fn)
#define LIVEPATCH_LOAD_HOOK(fn)		LIVEPATCH_HOOK_(load, fn)
#define LIVEPATCH_UNLOAD_HOOK(fn)	LIVEPATCH_HOOK_(unload, fn)
#define LIVEPATCH_PREAPPLY_HOOK(fn)	LIVEPATCH_HOOK_(preapply, fn)
#define LIVEPATCH_POSTAPPLY_HOOK(fn)	LIVEPATCH_HOOK_(postapply, fn)
#define LIVEPATCH_PREREVERT_HOOK(fn)	LIVEPATCH_HOOK_(prerevert, fn)
#define LIVEPATCH_POSTREVERT_HOOK(fn)	LIVEPATCH_HOOK_(postrevert, fn)
#define LIVEPATCH_APPLY_ACTION(fn)	LIVEPATCH_HOOK_(apply, fn)
#define LIVEPATCH_REVERT_ACTION(fn)	LIVEPATCH_HOOK_(revert, fn)

/* The default apply or revert, for an action hook (0: done). */
int livepatch_default_action(void);

/* LIVEPATCH_META("cve=CVE-2025-0001"): one key=value string. */
#define LIVEPATCH_META(kv)						\
	static const char LP_CAT(lp_meta_, __COUNTER__)[]		\
	__attribute__((section(".livepatch.meta"), used, aligned(1))) = kv

/*
 * Shadow variables: extra state hung off an existing object (by address)
 * without changing its layout.  Exported by the daemon for payloads.
 */
void *livepatch_shadow_alloc(const void *obj, uint32_t id, size_t size);
void *livepatch_shadow_get(const void *obj, uint32_t id);
void livepatch_shadow_free(const void *obj, uint32_t id);

#endif
