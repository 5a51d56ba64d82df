/*
 * Livepatch runtime internals (docs/livepatch.md), shared by its parts:
 *   symbols.c       the running image's own symbol table
 *   payload_load.c  reading, placing and linking a payload
 *   stack.c         the payload stack and its checks
 *   patching.c      hooks, parking the vCPUs, writing the jumps
 *   lp_commands.c   the livepatch-* control commands
 *   carry_over.c    payloads across a live update
 *   params.c        typed parameters: declarations, values, set
 *   ranges.c        code ranges replaced in place
 *   threads.c       where every thread is, before bytes are written
 *   thread_sample.c asking a thread exactly where it is, by a signal
 */
#ifndef LIVEPATCH_INTERNAL_H
#define LIVEPATCH_INTERNAL_H

#include <gelf.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "control.h"
#include "livepatch/payload.h"

#define LP_MAX_FILE	(64u << 20)
#define LP_MAX_PAYLOADS	64
#define LP_BUILD_ID_MAX	64
#define LP_NAME_MAX	64
#define LP_STUB_SIZE	16	/* jmp *0(%rip); .quad target */
#define LP_PAUSE_MS	2000	/* default bound on parking the vCPUs */
#define LP_SAFE_TRIES	5	/* parkings to find no thread in a span */

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
	uint8_t jmp[LIVEPATCH_JMP_SIZE];	/* what apply writes */
	uint8_t saved[LIVEPATCH_JMP_SIZE];	/* its bytes before apply */
};

struct lp_range {
	const struct livepatch_range *r;
	char label[128];	/* "file.c#fn+0x2a" */
	uint8_t *addr;
	uint32_t len;
	uint8_t bytes[LIVEPATCH_RANGE_MAX];	/* what apply writes */
	uint8_t saved[LIVEPATCH_RANGE_MAX];	/* its bytes before apply */
};

/* A parameter: its declaration, checked and copied out of the payload. */
struct lp_param {
	struct livepatch_param d;
	char name[LIVEPATCH_PARAM_NAME_MAX + 1];
};

/* One run of bytes a payload writes: a function entry or a range. */
struct lp_span {
	const char *what;	/* function name or range label */
	uint8_t *addr;
	uint32_t len;
	const uint8_t *bytes;	/* written by apply */
	uint8_t *saved;		/* what was there, for revert */
};

struct payload {
	char name[LP_NAME_MAX];
	char path[256];
	char sig_path[256];	/* given with upload; "": path + ".sig" */
	uint8_t *mem;
	size_t mem_size, text_size;
	struct lp_func *funcs;
	unsigned nfuncs;
	struct lp_range *ranges;
	unsigned nranges;
	struct lp_param *params;
	unsigned nparams;
	uint8_t id[LP_BUILD_ID_MAX], dep[LP_BUILD_ID_MAX];
	unsigned id_len, dep_len;
	livepatch_hook_t **hooks[H_NR];
	unsigned nhooks[H_NR];
	json_t *meta;
	bool applied;
	bool ever_applied;	/* its code may have run on other threads */
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

/* params.c */
int lp_params_read(struct payload *p, const void *sec, size_t size,
		   struct lp_err *e);
/* The defaults, then the values given ({name: value}, may be NULL). */
int lp_params_init(struct payload *p, json_t *given, struct lp_err *e);
/* Set applied or not; {name: value}; parks the vCPUs when one says so. */
int lp_params_set(struct payload *p, json_t *given, long timeout_ms,
		  json_t **result, struct lp_err *e);
json_t *lp_params_json(const struct payload *p);	/* for list */
json_t *lp_params_values(const struct payload *p);	/* {name: value} */

/* ranges.c */
int lp_ranges_read(struct payload *p, const void *sec, size_t size,
		   struct lp_err *e);
int lp_ranges_resolve(struct payload *p, struct lp_err *e);
json_t *lp_ranges_json(const struct payload *p);	/* for list */

/* thread_sample.c: where threads s[i].tid are exactly, by a signal;
 * -ETIMEDOUT naming one that did not answer. */
#define LP_SAMPLE_DEPTH	64
struct lp_sample {
	pid_t tid;
	int n;			/* addresses in addr[]; -1 until answered */
	void *addr[LP_SAMPLE_DEPTH];	/* [0]: the interrupted RIP */
};
int lp_sample_threads(struct lp_sample *s, unsigned n, char *why,
		      size_t len);

/* threads.c: 0 when no thread's instruction pointer or return address
 * lies strictly inside a span of p (or, with whole_text, anywhere in its
 * code); -EAGAIN naming the thread in `why`; another -errno when a thread
 * could not be checked. */
int lp_threads_check(const struct payload *p, bool whole_text, char *why,
		     size_t len);

/* stack.c */
struct payload *lp_find_payload(const char *name);
void lp_hex(char *out, const uint8_t *b, unsigned n);
bool lp_build_id_eq(const uint8_t *a, unsigned al, const uint8_t *b,
		    unsigned bl);
int lp_check_depends(const struct payload *p, bool on_daemon,
		     struct lp_err *e);
int lp_check_expect(const struct payload *p, struct lp_err *e);
unsigned lp_nspans(const struct payload *p);
void lp_span_at(const struct payload *p, unsigned i, struct lp_span *s);
/* The bytes at addr once every applied payload is reverted. */
void lp_unpatched_bytes(const uint8_t *addr, size_t len, uint8_t *out);
/* lp_check_expect against the code once the whole stack is reverted. */
int lp_check_expect_unpatched(const struct payload *p, struct lp_err *e);

/* patching.c */
int lp_run_hooks(struct payload *p, int kind, struct lp_err *e);
int lp_switch_payload(struct payload *p, bool apply, long timeout_ms,
		      struct lp_err *e);
/* {park_ms, pause_ms, check_ms, vcpus, tries} of the last apply, revert
 * or parked set: check_ms is the part spent finding where the threads
 * are, tries how many parkings that took. */
json_t *lp_last_pause_json(void);
/* Park, and check that no thread is in p's code (before unloading it). */
int lp_check_unused(const struct payload *p, struct lp_err *e);
/* fn(arg) with every vCPU parked (0: done; else fn's lp_fail). */
int lp_parked(int (*fn)(void *arg, struct lp_err *e), void *arg,
	      long timeout_ms, struct lp_err *e);

/* lp_commands.c: the commands, also loading payloads for carry_over.c */
int cmd_lp_upload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_apply(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_revert(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_replace(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_unload(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_load(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_list(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_lp_set(struct client *c, json_t *args, struct ctl_reply *r);
/* Names of the applied payloads, bottom of the stack first. */
json_t *livepatch_applied_json(void);

#endif
