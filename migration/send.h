/*
 * The source side's parts: the migration thread (send.c), the page
 * writers it shares with the page connections (send_pages.c) and the
 * page connections of --connections N (send_conns.c).
 */
#ifndef MIGRATION_SEND_H
#define MIGRATION_SEND_H

#include "migration/mig.h"
#include "quiesce.h"

#define PAGE		STREAM_PAGE_SIZE
/* Pages go to the connections by 2 MiB regions: a page always takes the
 * same connection, so a newer copy never overtakes an older one. */
#define REGION_SHIFT	9

struct sender;

/* One stream of PAGE_BATCH records and the shard of RAM it carries. */
struct page_out {
	struct sender *s;
	struct stream_writer *w;
	struct mig_conn *conn;
	bool main;			/* the protocol's connection */
	unsigned shard, nshards;
	uint64_t pfns[STREAM_BATCH_PAGES];
	const uint8_t *pages[STREAM_BATCH_PAGES];
	unsigned nbatch;
	uint8_t *copy;			/* the batch's pages, as sent */
	uint64_t unchanged;		/* dirty, same content: not sent */
	uint64_t reported;		/* w->bytes counted in wire_bytes */
	double rate_t0;			/* for --bandwidth */
	uint64_t rate_bytes0;
	char err[400];
};

/* send_conns.c: the page connections and their threads. */
struct page_conn {
	struct page_out out;
	struct stream_writer w;
	struct mig_conn conn;
	bool have_conn, writer_open;
	unsigned seen;			/* the last job generation run */
	pthread_t thread;
	bool started;
};

enum pool_job {
	POOL_ALL,			/* the first pass over RAM */
	POOL_DIRTY,			/* the pages of s->bitmap */
	POOL_FINISH,			/* END, and wait for SYNCED */
};

struct conn_pool {
	unsigned n;
	struct page_conn *pc;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum pool_job job;
	unsigned gen, done;
	bool stop, failed;
	struct page_conn *first;	/* the first that failed */
};

struct sender {
	struct migration *m;
	struct domain *dom;
	struct stream_writer w;
	struct mig_conn conn;		/* plain TCP or TLS */
	bool have_conn, writer_open, logging, parked;
	struct quiesce q;
	struct mig_throttle throttle;	/* --auto-converge */
	struct page_out out;		/* pages on the main connection */
	struct conn_pool pool;		/* or on the page connections */
	char token[40];			/* ties them to this migration */
	char id[MIG_ID_LEN + 1];	/* this migration's, for XKVM-QUERY */
	uint64_t *bitmap[2];		/* one bit per page of each slot */
	uint64_t *fetched[2];		/* KVM_GET_DIRTY_LOG's answer */
	/* A hash of each page as last sent (0: never sent), see
	 * send_pages.c, and the migration's random seed for it. */
	uint64_t *sent_hash[2];
	uint64_t seed;
	uint64_t slot_pages[2];
	double t0;
	char err[400];
};

double mig_now_s(void);
/* What a destination that gave up said (ERR ...), within wait_ms. */
int mig_peer_reason(struct sender *s, int wait_ms);

/*
 * send_outcome.c: after GO and no answer, ask the destination: 1 the
 * guest runs there (m->p.dest_id set), 0 it was dropped there, -1 no
 * answer that decides.
 */
int mig_ask_outcome(struct sender *s);

/* send_pages.c */
int page_out_init(struct page_out *po, struct sender *s,
		  struct stream_writer *w, struct mig_conn *conn,
		  unsigned shard, unsigned nshards);
void page_out_free(struct page_out *po);
int page_out_all(struct page_out *po);
int page_out_dirty(struct page_out *po);
uint64_t page_out_wire_bytes(struct sender *s);
uint64_t page_out_unchanged(struct sender *s);

/* send_conns.c */
int pool_open(struct sender *s);
int pool_run(struct sender *s, enum pool_job job);
void pool_close(struct sender *s);

#endif
