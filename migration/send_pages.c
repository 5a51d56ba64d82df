/*
 * The source's page writers: the first pass over RAM and the rounds of
 * dirty pages, for one stream of PAGE_BATCH records carrying one shard
 * of RAM (all of it on the main connection, or every nshards-th 2 MiB
 * region on a page connection of --connections N).
 *
 * Dirty but unchanged pages are not sent again.  KVM marks a page dirty
 * whenever it maps it writable, and it maps a page writable on a read
 * fault too when the guest's own page table allows writing it: so a
 * guest that merely reads pages it has not touched since it was built
 * (a domain just migrated in or restored, whose RAM the daemon wrote,
 * reading its working set) finds them all dirty in the next round
 * (docs/migration.md, "Dirty but unchanged").  Each page is copied
 * before it is sent and the copy hashed (XXH3, 64 bits, seeded at random
 * per migration): the hash is of exactly the bytes the destination got,
 * so a dirty page whose content hashes the same is there already.  The
 * copy is what the page pipeline writes: it runs without workers, so a
 * batch is built and written before stream_write_pages() returns and the
 * copy is reused only then ("stable" pages, no second copy into the
 * pipeline's buffer; docs/page-pipeline.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "domain.h"
#include "memory.h"
#include "migration/send.h"
#include "pagepipe.h"

#define PFAIL(po, ...) do { \
	snprintf((po)->err, sizeof((po)->err), __VA_ARGS__); \
	return -1; \
} while (0)

int page_out_init(struct page_out *po, struct sender *s,
		  struct stream_writer *w, struct mig_conn *conn,
		  unsigned shard, unsigned nshards)
{
	po->copy = malloc(STREAM_BATCH_PAGES * PAGE);
	if (!po->copy)
		return -1;
	if (stream_writer_pipeline(w, 0, true) < 0) {
		page_out_free(po);
		return -1;
	}
	po->s = s;
	po->w = w;
	po->conn = conn;
	po->main = conn == &s->conn;
	po->shard = shard;
	po->nshards = nshards;
	po->nbatch = 0;
	po->reported = w->bytes;
	po->rate_t0 = mig_now_s();
	po->rate_bytes0 = w->bytes;
	po->unchanged = 0;
	po->err[0] = '\0';
	return 0;
}

void page_out_free(struct page_out *po)
{
	free(po->copy);
	po->copy = NULL;
}

/* Hold to this stream's share of --bandwidth. */
static void throttle_link(struct page_out *po)
{
	unsigned mib = po->s->m->o.bandwidth_mib;
	double want, el;

	if (!mib)
		return;
	want = (double)(po->w->bytes - po->rate_bytes0) * po->nshards /
	       (mib * 1048576.0);
	el = mig_now_s() - po->rate_t0;
	if (want > el)
		usleep((want - el) * 1e6);
}

/* Why the stream writer failed: the connection's reason if it has one. */
static const char *write_err(struct page_out *po)
{
	if (po->conn->err[0])
		return po->conn->err;
	return strerror(po->w->error ? po->w->error : EIO);
}

static int flush_batch(struct page_out *po)
{
	struct migration *m = po->s->m;

	if (!po->nbatch)
		return 0;
	if (stream_write_pages(po->w, po->pfns, po->pages, po->nbatch,
			       m->o.enc) < 0)
		PFAIL(po, "sending pages failed: %s", write_err(po));
	pthread_mutex_lock(&m->lock);
	m->p.sent_bytes += (uint64_t)po->nbatch * PAGE;
	m->p.wire_bytes += po->w->bytes - po->reported;
	pthread_mutex_unlock(&m->lock);
	po->reported = po->w->bytes;
	po->nbatch = 0;
	throttle_link(po);
	if (po->main && mig_peer_reason(po->s, 0)) {
		snprintf(po->err, sizeof(po->err), "%s", po->s->err);
		return -1;
	}
	if (m->cancel)
		PFAIL(po, "cancelled");
	return 0;
}

static uint64_t slot_pfn(unsigned slot, uint64_t i)
{
	return slot ? MEM_4G / PAGE + i : i;
}

/*
 * Copy the page into the batch and hash the copy; a page of a round whose
 * copy hashes as what was last sent is not sent again.
 */
static int add_page(struct page_out *po, unsigned slot, uint64_t i,
		    bool round)
{
	struct sender *s = po->s;
	struct domain *dom = s->dom;
	uint8_t *copy = po->copy + (size_t)po->nbatch * PAGE;
	uint64_t h;

	memcpy(copy, dom->mem.base + (slot ? dom->mem.low_size : 0) +
	       i * PAGE, PAGE);
	h = XXH3_64bits_withSeed(copy, PAGE, s->seed) | 1;	/* never 0 */
	if (round && s->sent_hash[slot][i] == h) {
		po->unchanged++;
		return 0;
	}
	s->sent_hash[slot][i] = h;
	po->pfns[po->nbatch] = slot_pfn(slot, i);
	po->pages[po->nbatch] = copy;
	if (++po->nbatch == STREAM_BATCH_PAGES)
		return flush_batch(po);
	return 0;
}

static bool my_region(const struct page_out *po, uint64_t region)
{
	return region % po->nshards == po->shard;
}

/* The pages with data of one region of a slot. */
static int send_region(struct page_out *po, unsigned slot, uint64_t region)
{
	struct sender *s = po->s;
	uint64_t base = slot ? s->dom->mem.low_size : 0, pos, end, stop;
	uint64_t last = (region + 1) << REGION_SHIFT;

	if (last > s->slot_pages[slot])
		last = s->slot_pages[slot];
	/* Holes of the RAM memfd are pages never written: reading them
	 * would allocate them.  Dirty logging is on already: a page the
	 * guest writes after the lseek() is sent by a later round. */
	pos = base + (region << REGION_SHIFT) * PAGE;
	end = base + last * PAGE;
	while (pos < end &&
	       guest_mem_next_data(&s->dom->mem, &pos, end, &stop)) {
		for (pos &= ~(uint64_t)(PAGE - 1); pos < stop; pos += PAGE)
			if (add_page(po, slot, (pos - base) / PAGE,
				     false) < 0)
				return -1;
	}
	return 0;
}

int page_out_all(struct page_out *po)
{
	struct sender *s = po->s;
	uint64_t region, nregions;
	unsigned slot;

	for (slot = 0; slot < 2; slot++) {
		nregions = (s->slot_pages[slot] + (1u << REGION_SHIFT) - 1) >>
			   REGION_SHIFT;
		for (region = 0; region < nregions; region++)
			if (my_region(po, region) &&
			    send_region(po, slot, region) < 0)
				return -1;
	}
	return flush_batch(po);
}

/* Send the pages of the fetched dirty log, zero pages included. */
int page_out_dirty(struct page_out *po)
{
	struct sender *s = po->s;
	uint64_t i, word;
	unsigned slot;

	po->w->keep_zero = true;
	for (slot = 0; slot < 2; slot++)
		for (i = 0; i < s->slot_pages[slot]; i++) {
			if (!my_region(po, i >> REGION_SHIFT)) {
				i |= (1u << REGION_SHIFT) - 1;
				continue;
			}
			word = s->bitmap[slot][i / 64];
			if (!word) {
				i |= 63;
				continue;
			}
			if (!(word >> (i % 64) & 1))
				continue;
			if (add_page(po, slot, i, true) < 0)
				return -1;
		}
	return flush_batch(po);
}

/* Dirty pages not sent again, on every stream so far. */
uint64_t page_out_unchanged(struct sender *s)
{
	uint64_t n = s->out.unchanged;
	unsigned i;

	for (i = 0; i < s->pool.n; i++)
		n += s->pool.pc[i].out.unchanged;
	return n;
}

/* The bytes of every stream of the migration so far. */
uint64_t page_out_wire_bytes(struct sender *s)
{
	uint64_t n = s->w.bytes;
	unsigned i;

	for (i = 0; i < s->pool.n; i++)
		n += s->pool.pc[i].w.bytes;
	return n;
}
