/*
 * The destination's page connections (recv_pages.c), for recv.c: the
 * connections of --connections N beyond the main one, and the threads
 * that apply their pages.
 */
#ifndef MIGRATION_RECV_H
#define MIGRATION_RECV_H

#include "domain.h"
#include "migration/mig.h"

struct pages_in;

struct page_in {
	struct pages_in *set;
	struct mig_conn c;
	unsigned index;
	pthread_t thread;
	bool started;
	bool ok;			/* applied to END, said SYNCED */
};

struct pages_in {
	unsigned n, version;
	struct page_in *pi;
	int main_fd;			/* shut for reading on a failure */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *map;			/* the domain's RAM, mapped again */
	struct guest_mem mem;		/* its layout, at map */
	bool stop;
	char err[400];			/* the first failure */
};

int pages_in_init(struct pages_in *set, unsigned n, unsigned version,
		  int main_fd);
int pages_in_start(struct pages_in *set);
void pages_in_prepared(struct domain *dom, void *opaque);
int pages_in_finish(struct pages_in *set, bool ok, char *err, size_t len);
void pages_in_free(struct pages_in *set);

#endif
