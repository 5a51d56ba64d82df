/*
 * Live migration (docs/migration.md): pre-copy of a domain to another
 * daemon over TCP, in the state stream of docs/state-format.md.
 *
 * The source runs each migration in a thread of its own (send.c); the
 * destination receives on its main thread (recv.c).  commands.c serves
 * migrate, migrate-status and migrate-cancel; wire.c is the socket and
 * the protocol's text lines, over the transport of conn.h (plain TCP in
 * conn.c, TLS in tls.c).
 */
#ifndef MIGRATION_MIG_H
#define MIGRATION_MIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "migration/conn.h"
#include "stream.h"

struct domain;

#define MIG_PROTO		1
#define MIG_HELLO		"XKVM-MIGRATE"
#define MIG_PAGES_HELLO		"XKVM-PAGES"	/* a page connection */
#define MIG_QUERY		"XKVM-QUERY"	/* what became of a handover */
#define MIG_ID_LEN		32	/* hex digits of a migration's id */
#define MIG_QUERY_TRIES		3	/* connections to ask, 1 s apart */
#define MIG_CONNECTIONS_MAX	16
#define MIG_LINE_MAX		512
#define MIG_MAX_ROUNDS		30	/* without auto-converge */
#define MIG_IO_TIMEOUT_S	30	/* a stalled peer fails the migration */
/* Auto-converge's duty cycle, as QEMU's cpu-throttle-* defaults. */
#define MIG_THROTTLE_PERIOD_MS	10
#define MIG_THROTTLE_INITIAL	20	/* % of each period parked, first */
#define MIG_THROTTLE_STEP	10	/* added per round still too dirty */
#define MIG_THROTTLE_MAX	99

enum mig_state {
	MIG_ACTIVE,
	MIG_DONE,
	MIG_FAILED,
	MIG_CANCELLED,
};

struct mig_opts {
	char host[256];
	unsigned port;
	unsigned max_downtime_ms;
	unsigned bandwidth_mib;		/* 0: unlimited */
	enum page_encoding enc;
	unsigned connections;		/* 1 + page connections */
	bool auto_converge;
	bool paused;
	bool insecure;
	char new_name[64];		/* "" keeps the name */
};

/* Progress, as migrate-status reports it; guarded by mig->lock. */
struct mig_progress {
	enum mig_state state;
	const char *phase;		/* connecting, precopy, stop-copy, ... */
	const char *failed_phase;	/* the phase a failure came in */
	unsigned iteration;
	uint64_t ram_bytes, sent_bytes, wire_bytes;
	uint64_t remaining_pages;
	uint64_t unchanged_pages;	/* dirty, same content: not resent */
	double rate_mib_s, dirty_rate_mib_s;
	double expected_downtime_ms, downtime_ms, total_s;
	unsigned throttle_pct;
	uint64_t throttle_ms;		/* the guest parked by the throttle */
	unsigned version;
	unsigned dest_id;
	char error[400];
};

struct migration {
	struct domain *dom;
	unsigned domid;
	char name[64];
	struct mig_opts o;
	pthread_t thread;
	int sock;			/* the connection's, for cancel */
	volatile bool cancel;
	volatile bool finished;		/* the thread is done: main reaps it */
	bool reaped;
	bool success;			/* the destination runs the guest */
	bool committing;		/* GO is (being) sent: no cancel */
	/* GO was sent and no answer came: the guest stays paused here. */
	bool uncertain;
	pthread_mutex_t lock;
	struct mig_progress p;
	struct migration *next;
};

/* throttle.c: auto-converge's duty cycle on the guest's vCPUs. */
struct mig_throttle {
	struct domain *dom;
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pct;			/* parked share of each period */
	uint64_t parked_ns, periods;
};

int mig_throttle_start(struct mig_throttle *t, struct domain *dom);
void mig_throttle_set(struct mig_throttle *t, unsigned pct);
uint64_t mig_throttle_parked_ms(struct mig_throttle *t);
void mig_throttle_stop(struct mig_throttle *t);

/* send.c: the migration thread. */
void *mig_send_thread(void *arg);

/* commands.c: the thread is done (any thread). */
void mig_finished(struct migration *m);
int mig_commands_start(void);
/* A migration is running (why said). */
bool mig_busy(char *why, size_t len);
void mig_domain_gone(struct domain *dom);
/* feature.c: another feature is busy (a staged live update). */
bool mig_others_busy(char *why, size_t len);
int cmd_migrate(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_migrate_status(struct client *c, json_t *args, struct ctl_reply *r);
int cmd_migrate_cancel(struct client *c, json_t *args, struct ctl_reply *r);

/* args.c: the migrate command's arguments. */
int mig_parse_args(json_t *args, struct mig_opts *o, struct ctl_reply *r);

/* recv.c: destination side (TLS when mig_tls_loaded()). */
/*
 * Listen on addr; inherited_fd >= 0: a live update's old image listened
 * there already and handed its socket over (never bound twice).
 */
int mig_listen_start(const char *addr, bool insecure, int inherited_fd);
/* The listening socket, or -1. */
int mig_listen_fd(void);

/*
 * outcome.c: the destination remembers its last handovers by the id the
 * source gave; a source that heard nothing after GO asks (XKVM-QUERY).
 */
void mig_outcome_note(const char *id, bool running, unsigned domid);
void mig_outcome_answer(struct mig_conn *c, const char *line,
			const char *peer);
/* " id=<32 hex digits>" in line: 0 and id (MIG_ID_LEN + 1 bytes), or -1. */
int mig_parse_id(const char *line, char *id);

/* wire.c */
int mig_parse_hostport(const char *s, char *host, size_t hostlen,
		       unsigned *port);
bool mig_host_is_loopback(const char *host);
/* nbytes random bytes as 2 * nbytes hex digits and a NUL in out: 0, or
 * -1 with errno (getrandom). */
int mig_random_hex(char *out, size_t nbytes);
int mig_connect(const char *host, unsigned port, char *err, size_t errlen);
void mig_set_timeouts(int fd, unsigned seconds);
int mig_send_line(struct mig_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* One line without its newline; 0, or -1 on EOF, error or overlong. */
int mig_recv_line(struct mig_conn *c, char *buf, size_t len);

const char *mig_state_name(enum mig_state s);

#endif
