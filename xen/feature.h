/*
 * Optional features (live update, livepatch, next migration) plug into the
 * core here.  Each registers, from a constructor in its own files, the
 * control commands it serves, what it adds to `info`, the command-line
 * options it reads and its start-up hooks; the core includes none of their
 * headers, and a feature compiled out is simply not linked.  (kvmtool's
 * util-init.h is the model.)
 */
#ifndef XEN_FEATURE_H
#define XEN_FEATURE_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "control.h"

struct domain;

struct ctl_command {
	const char *name;		/* "prefix-*": every name so begun */
	ctl_handler fn;
};

/* The daemon's options, as main() settled them; they live until exit. */
struct daemon_opts {
	const char *socket;
	const char *socket_group;		/* NULL: socket 0600 */
	const char *client_idle_s;		/* NULL: the default */
	const char *console_limit;		/* NULL: the default */
	const char *mem_path;			/* NULL: memfds */
	const char *state_dir;
	const char *log;			/* NULL: stderr (--foreground) */
	bool no_sandbox;			/* --no-sandbox */
	char *const *argv;	/* as given (not permuted), NULL-ended */
};

struct feature {
	const char *name;			/* for the log */
	/* Its Kconfig option, as `info` lists it in "features". */
	const char *flag;
	const struct ctl_command *commands;	/* ended by { NULL } */
	/* Those of them that only answer, changing nothing: they are left
	 * out of the audit trail (xen/audit.h).  Ended by NULL. */
	const char *const *queries;
	/* Adds the feature's part to the result of `info`, if not NULL. */
	void (*info)(json_t *result);

	/*
	 * Long options the feature reads, ended by { NULL }; their flag and
	 * val are not used.  parse_option() gets each one given, by its
	 * index in options, and returns 0, or -1 to refuse it.
	 */
	const struct option *options;
	int (*parse_option)(unsigned index, const char *arg);

	/*
	 * Start-up, in the order main() calls them; any may be NULL.
	 *
	 * run: the options ask for a job other than serving (a check, say):
	 *   do it and return the exit status, else return -1.  Runs before
	 *   --socket and --state-dir are required.
	 * early: the daemon's options, before anything that can fail.
	 * takes_over: true if this start takes over guests that another
	 *   image ran.  Then main() does not fork, does not measure the
	 *   host, and calls take_over() instead of opening the control
	 *   socket; take_over() returns 0 or -1 (said in the log).
	 * start_failed: the start failed (why); may not return.
	 * started: the daemon serves (event loop ready, after any fork);
	 *   the feature may add its own fds to the loop.  0, or -1 to stop.
	 */
	int (*run)(void);
	void (*early)(const struct daemon_opts *d);
	bool (*takes_over)(void);
	int (*take_over)(void);
	void (*start_failed)(const char *why);
	int (*started)(void);

	/*
	 * The feature is in the middle of something another feature must
	 * not overlap (a staged live update, a running migration): true,
	 * with why said in why.  NULL: never.
	 */
	bool (*busy)(char *why, size_t len);

	/*
	 * The feature's options that a new image must be started with too
	 * (a live update execs it, or the old one again on a rollback, with
	 * the daemon's own options and these): stores at most max argv
	 * entries ("--name", "value", ...) and returns how many.  NULL: none.
	 */
	unsigned (*carry_options)(char **argv, unsigned max);

	/*
	 * The fds the new image of a live update adopts at the same numbers
	 * (a listening socket its carry_options name): fn() on each; they
	 * are kept open across the exec.  NULL: none.
	 */
	void (*handover_fds)(void (*fn)(int fd, void *arg), void *arg);

	/*
	 * The domain is about to be destroyed (xl destroy, the guest's own
	 * poweroff or crash, a restart): let go of it, on the main thread,
	 * before it is freed.  NULL: the feature holds no domain.
	 */
	void (*domain_gone)(struct domain *dom);

	struct feature *next;
};

void feature_register(struct feature *f);
const struct feature *feature_first(void);

/* Register `f` (a static struct feature) before main() runs. */
#define FEATURE_REGISTER(f)						\
	static void __attribute__((constructor)) register_##f(void)	\
	{								\
		feature_register(&f);					\
	}

/*
 * For main(): `core` (short option values below FEATURE_OPTION) followed
 * by every feature's options, in an array to free(); NULL if out of memory.
 * feature_parse_option() hands an option getopt_long() returned from that
 * table to its feature; -1 if it is none of theirs or refused.
 */
#define FEATURE_OPTION	0x100
struct option *feature_options(const struct option *core);
int feature_parse_option(int val, const char *arg);

/* The start-up hooks of every feature, as struct feature describes. */
int feature_run(void);
void feature_early(const struct daemon_opts *d);
const struct feature *feature_taking_over(void);
void feature_start_failed(const char *why);
int feature_started(void);
/* Whether a feature other than `self` is busy (why said); see busy. */
bool feature_busy(const struct feature *self, char *why, size_t len);
/* Every feature's carry_options, into argv (at most max); how many. */
unsigned feature_carry_options(char **argv, unsigned max);
void feature_handover_fds(void (*fn)(int fd, void *arg), void *arg);
/* Every feature's domain_gone hook. */
void feature_domain_gone(struct domain *dom);

#endif
