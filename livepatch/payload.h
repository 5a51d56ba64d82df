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
 */
#ifndef LIVEPATCH_PAYLOAD_H
#define LIVEPATCH_PAYLOAD_H

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

#define LP_CAT_(a, b) a##b
#define LP_CAT(a, b) LP_CAT_(a, b)
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
