/*
 * Livepatch runtime internals (docs/livepatch.md), shared by its parts:
 *   symbols.c       the running image's own symbol table
 *   payload_load.c  reading, placing and linking a payload
 *   stack.c         the payload stack and its checks
 *   patching.c      hooks, parking the vCPUs, writing the jumps
 *   lp_commands.c   the livepatch-* control commands
 *   carry_over.c    payloads across a live update
 */
#ifndef LIVEPATCH_INTERNAL_H
#define LIVEPATCH_INTERNAL_H

#include <gelf.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "control.h"
#include "livepatch/payload.h"

#define LP_MAX_FILE	(64u << 20)
#define LP_MAX_PAYLOADS	64
#define LP_BUILD_ID_MAX	64
#define LP_NAME_MAX	64
#define LP_STUB_SIZE	16	/* jmp *0(%rip); .quad target */
#define LP_PAUSE_MS	2000	/* default bound on parking the vCPUs */

enum { H_LOAD, H_UNLOAD, H_PREAPPLY, H_POSTAPPLY, H_PREREVERT, H_POSTREVERT,
       H_APPLY, H_REVERT,	/* action hooks: at most one each */
       H_NR };
extern const char *const lp_hook_names[H_NR];

struct lp_err {
	int code;
	char msg[480];
};

__attribute__((format(printf, 3, 4)))
int lp_fail(struct lp_err *e, int code, const char *fmt, ...);

struct img_sym {
	const char *name;	/* without @VERSION */
	const char *file;	/* STT_FILE before it, for locals */
	uint64_t addr, size;
	unsigned char type, bind;
};

struct lp_image {
	bool loaded;
	char *strs;		/* names, NUL separated */
	struct img_sym *syms;
	size_t nsyms;
	uint64_t base;		/* PIE load bias */
	uint64_t text_lo, text_hi;	/* executable PT_LOADs */
	uint64_t img_lo, img_hi;	/* all PT_LOADs */
};
extern struct lp_image lp_img;

struct lp_func {
	const struct livepatch_func *f;
	const char *name;
	uint8_t *old;		/* old function's entry */
	uint32_t old_size;
	uint8_t saved[LIVEPATCH_JMP_SIZE];	/* its bytes before apply */
};

struct payload {
	char name[LP_NAME_MAX];
	char path[256];
	uint8_t *mem;
	size_t mem_size, text_size;
	struct lp_func *funcs;
	unsigned nfuncs;
	uint8_t id[LP_BUILD_ID_MAX], dep[LP_BUILD_ID_MAX];
	unsigned id_len, dep_len;
	livepatch_hook_t **hooks[H_NR];
	unsigned nhooks[H_NR];
	json_t *meta;
	bool applied;
	bool jumps_written;	/* an apply action may leave them out */
};

extern struct payload *lp_loaded[LP_MAX_PAYLOADS];
extern unsigned lp_nloaded;
extern struct payload *lp_applied[LP_MAX_PAYLOADS];
extern unsigned lp_napplied;
extern bool lp_membarrier_ok;

/* symbols.c */
int lp_image_load(struct lp_err *e);
int lp_image_lookup(const char *name, const struct img_sym **out);

/* payload_load.c */
int lp_payload_load(struct payload *p, const uint8_t *buf, size_t size,
		    struct lp_err *e);
void lp_payload_free(struct payload *p);

/* stack.c */
struct payload *lp_find_payload(const char *name);
void lp_hex(char *out, const uint8_t *b, unsigned n);
bool lp_build_id_eq(const uint8_t *a, unsigned al, const uint8_t *b,
		    unsigned bl);
int lp_check_depends(const struct payload *p, bool on_daemon,
		     struct lp_err *e);
int lp_check_expect(const struct payload *p, struct lp_err *e);

/* patching.c */
int lp_run_hooks(struct payload *p, int kind, struct lp_err *e);
int lp_switch_payload(struct payload *p, bool apply, long timeout_ms,
		      struct lp_err *e);
/* {park_ms, pause_ms, vcpus} of the last apply or revert. */
json_t *lp_last_pause_json(void);

/* lp_commands.c: the commands, also loading payloads for carry_over.c */
int cmd_lp_upload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_apply(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_revert(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_replace(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_unload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_load(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_list(struct client *c, json_t *args, struct ctl_reply *r);
/* Names of the applied payloads, bottom of the stack first. */
json_t *livepatch_applied_json(void);

#endif
