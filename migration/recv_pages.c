/*
 * The destination's page connections (--connections N): one thread per
 * connection reads its stream (a header, PAGE_BATCH records, END) and
 * writes the pages into the incoming domain's RAM through a mapping of
 * its own of the RAM memfd (so a domain discarded under it is no
 * danger), then says SYNCED.  The stream of the main connection, read
 * by the main thread, holds everything else; the source sends the
 * device state only after every page connection said SYNCED, and the
 * main thread joins every page thread before it says READY.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "domain.h"
#include "log.h"
#include "memory.h"
#include "migration/recv.h"

static void fail(struct page_in *pi, const char *why)
{
	struct pages_in *set = pi->set;

	pthread_mutex_lock(&set->lock);
	if (!set->err[0])
		snprintf(set->err, sizeof(set->err), "page connection %u: "
			 "%.300s", pi->index + 1, why);
	pthread_mutex_unlock(&set->lock);
	/* Wake the main thread from its read of the main connection. */
	shutdown(set->main_fd, SHUT_RD);
}

/* Wait until the domain's RAM is mapped: false if stopped meanwhile. */
static bool wait_ram(struct pages_in *set)
{
	bool ok;

	pthread_mutex_lock(&set->lock);
	while (!set->map && !set->stop)
		pthread_cond_wait(&set->cond, &set->lock);
	ok = !set->stop;
	pthread_mutex_unlock(&set->lock);
	return ok;
}

static int apply_batch(struct page_in *pi, struct stream_reader *r,
		       uint8_t *buf, char *why, size_t len)
{
	const uint64_t *pfns;
	unsigned n, i;

	if (stream_decode_pages(r, &pfns, &n, buf,
				STREAM_BATCH_PAGES * STREAM_PAGE_SIZE) < 0) {
		snprintf(why, len, "%s", r->err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		uint64_t pfn;
		void *dst;

		memcpy(&pfn, &pfns[i], sizeof(pfn));
		dst = gpa_to_hva(&pi->set->mem, pfn * STREAM_PAGE_SIZE,
				 STREAM_PAGE_SIZE);
		if (!dst) {
			snprintf(why, len, "offset %llu: page %#llx is not "
				 "RAM", (unsigned long long)r->rec_offset,
				 (unsigned long long)pfn);
			return -1;
		}
		memcpy(dst, buf + (size_t)i * STREAM_PAGE_SIZE,
		       STREAM_PAGE_SIZE);
	}
	return 0;
}

static int read_pages(struct page_in *pi, char *why, size_t len)
{
	struct stream_source src = { mig_conn_source, &pi->c };
	struct stream_reader r;
	uint8_t *buf = NULL;
	int got, ret = -1;

	if (stream_reader_open(&r, src) < 0) {
		snprintf(why, len, "%s", r.err);
		goto out;
	}
	if (r.hdr.version != pi->set->version) {
		snprintf(why, len, "stream version %u, agreed %u",
			 r.hdr.version, pi->set->version);
		goto out;
	}
	buf = malloc(STREAM_BATCH_PAGES * STREAM_PAGE_SIZE);
	if (!buf) {
		snprintf(why, len, "out of memory");
		goto out;
	}
	if (!wait_ram(pi->set)) {
		snprintf(why, len, "stopped");
		goto out;
	}
	while ((got = stream_next(&r)) > 0) {
		if (r.rec.type != REC_PAGE_BATCH) {
			snprintf(why, len, "offset %llu: a record of type %u, "
				 "not PAGE_BATCH",
				 (unsigned long long)r.rec_offset, r.rec.type);
			goto out;
		}
		if (apply_batch(pi, &r, buf, why, len) < 0)
			goto out;
	}
	if (got < 0) {
		snprintf(why, len, "%s", r.err);
		goto out;
	}
	ret = 0;
out:
	free(buf);
	stream_reader_close(&r);
	return ret;
}

static void *page_thread(void *arg)
{
	struct page_in *pi = arg;
	char why[300];

	if (read_pages(pi, why, sizeof(why)) < 0) {
		if (!pi->set->stop)
			fail(pi, why);
		return NULL;
	}
	/* Every page of this connection is in RAM. */
	if (mig_send_line(&pi->c, "SYNCED") < 0) {
		fail(pi, pi->c.err);
		return NULL;
	}
	pi->ok = true;
	return NULL;
}

int pages_in_init(struct pages_in *set, unsigned n, unsigned version,
		  int main_fd)
{
	unsigned i;

	memset(set, 0, sizeof(*set));
	set->pi = calloc(n, sizeof(*set->pi));
	if (!set->pi)
		return -1;
	set->n = n;
	set->version = version;
	set->main_fd = main_fd;
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->cond, NULL);
	for (i = 0; i < n; i++) {
		set->pi[i].set = set;
		set->pi[i].index = i;
		set->pi[i].c.fd = -1;
	}
	return 0;
}

int pages_in_start(struct pages_in *set)
{
	unsigned i;

	for (i = 0; i < set->n; i++) {
		if (pthread_create(&set->pi[i].thread, NULL, page_thread,
				   &set->pi[i]))
			return -1;
		set->pi[i].started = true;
	}
	return 0;
}

/* restore_opts.prepared: map the new domain's RAM for the threads. */
void pages_in_prepared(struct domain *dom, void *opaque)
{
	struct pages_in *set = opaque;
	void *map = mmap(NULL, dom->mem.size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, dom->mem.fd, 0);

	pthread_mutex_lock(&set->lock);
	if (map == MAP_FAILED) {
		snprintf(set->err, sizeof(set->err), "cannot map the RAM: %s",
			 strerror(errno));
		set->stop = true;
	} else {
		set->mem = dom->mem;
		set->mem.base = map;
		set->mem.dev_dirty = NULL;
		set->map = map;
	}
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	if (map == MAP_FAILED)
		shutdown(set->main_fd, SHUT_RD);
}

/*
 * Join every page thread: after a failure (ok false) they are cut first.
 * 0 when each applied its stream to the end and said SYNCED.
 */
int pages_in_finish(struct pages_in *set, bool ok, char *err, size_t len)
{
	unsigned i;
	int ret = 0;

	if (!ok) {
		pthread_mutex_lock(&set->lock);
		set->stop = true;
		pthread_cond_broadcast(&set->cond);
		pthread_mutex_unlock(&set->lock);
		for (i = 0; i < set->n; i++)
			if (set->pi[i].c.fd >= 0)
				shutdown(set->pi[i].c.fd, SHUT_RDWR);
	}
	for (i = 0; i < set->n; i++) {
		if (set->pi[i].started)
			pthread_join(set->pi[i].thread, NULL);
		set->pi[i].started = false;
		if (!set->pi[i].ok)
			ret = -1;
	}
	if (ok && ret < 0)
		snprintf(err, len, "%s", set->err[0] ? set->err :
			 "a page connection did not finish");
	return ret;
}

void pages_in_free(struct pages_in *set)
{
	unsigned i;

	for (i = 0; i < set->n; i++)
		if (set->pi[i].c.ops)
			mig_conn_close(&set->pi[i].c);
	if (set->map)
		munmap(set->map, set->mem.size);
	pthread_mutex_destroy(&set->lock);
	pthread_cond_destroy(&set->cond);
	free(set->pi);
	memset(set, 0, sizeof(*set));
}
