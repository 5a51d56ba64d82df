/* Writing a quiesced domain into the state stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "cpuid.h"
#include "dev/devices.h"
#include "domain.h"
#include "memory.h"
#include "pagepipe.h"
#include "state.h"

static int save_config(struct domain *dom, struct stream_writer *w)
{
	json_t *cfg = domcfg_to_json(&dom->cfg);
	char *text;
	int ret;

	json_object_set_new(cfg, "name", json_string(dom->name));
	text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(cfg);
	if (!text)
		return -1;
	ret = stream_write_record(w, REC_DOMAIN_CONFIG, 0, text, strlen(text));
	free(text);
	return ret;
}

static int save_layout(struct domain *dom, struct stream_writer *w)
{
	struct rec_memory_layout l = {
		.ram_bytes = dom->mem.size,
		.low_bytes = dom->mem.low_size,
		.hole_start = MEM_HOLE_START,
		.page_size = STREAM_PAGE_SIZE,
	};

	return stream_write_record(w, REC_MEMORY_LAYOUT, 0, &l, sizeof(l));
}

/* Guest pfns of RAM in order: low RAM, then RAM above 4 GiB. */
static uint64_t nth_pfn(struct guest_mem *m, uint64_t i)
{
	uint64_t low_pages = m->low_size / STREAM_PAGE_SIZE;

	return i < low_pages ? i : (MEM_4G / STREAM_PAGE_SIZE) + i - low_pages;
}

/*
 * The RAM that holds data, in batches of pages straight from the
 * mapping (the domain is quiesced: the pipeline writes raw batches from
 * there without a copy); holes are zero and skipped.
 */
static int save_memory(struct domain *dom, struct stream_writer *w,
		       enum page_encoding enc)
{
	struct guest_mem *m = &dom->mem;
	uint64_t pfns[STREAM_BATCH_PAGES];
	const uint8_t *pages[STREAM_BATCH_PAGES];
	uint64_t pos = 0, stop, i;
	unsigned n = 0;

	while (pos < m->size && guest_mem_next_data(m, &pos, m->size, &stop)) {
		for (i = pos / STREAM_PAGE_SIZE; i * STREAM_PAGE_SIZE < stop;
		     i++) {
			pfns[n] = nth_pfn(m, i);
			pages[n] = m->base + i * STREAM_PAGE_SIZE;
			if (++n < STREAM_BATCH_PAGES)
				continue;
			if (stream_write_pages(w, pfns, pages, n, enc) < 0)
				return -1;
			n = 0;
		}
		pos = i * STREAM_PAGE_SIZE;
	}
	if (n && stream_write_pages(w, pfns, pages, n, enc) < 0)
		return -1;
	if (stream_writer_flush(w) < 0)
		return -1;
	/* Holes are zero pages too: counted as the stream leaves them out. */
	w->zero_pages += m->size / STREAM_PAGE_SIZE - w->pages;
	w->pages = m->size / STREAM_PAGE_SIZE;
	return 0;
}

static int save_console(struct domain *dom, struct stream_writer *w)
{
	uint64_t pos = 0, total;
	char *buf = malloc(dom->console.size);
	size_t n;
	int ret;

	if (!buf)
		return -1;
	pthread_mutex_lock(&dom->console_lock);
	n = ring_read(&dom->console, &pos, buf, dom->console.size);
	total = dom->console.total;
	pthread_mutex_unlock(&dom->console_lock);
	ret = stream_write_record2(w, REC_CONSOLE_HISTORY, REC_F_OPTIONAL,
				   &total, sizeof(total), buf, n);
	free(buf);
	return ret;
}

int state_save_prologue(struct domain *dom, struct stream_writer *w)
{
	return save_config(dom, w) < 0 || save_layout(dom, w) < 0 ||
	       cpuid_save(dom, w) < 0 ? -1 : 0;
}

int state_save_epilogue(struct domain *dom, struct stream_writer *w)
{
	unsigned i;

	for (i = 0; i < dom->nr_vcpus; i++)
		if (vcpu_state_save(&dom->vcpus[i], w) < 0)
			return -1;
	if (vm_state_save(dom, w) < 0 || devices_save(dom, w) < 0 ||
	    save_console(dom, w) < 0)
		return -1;
	return 0;
}

int state_save_domain(struct domain *dom, struct stream_writer *w,
		      const struct save_opts *o)
{
	if (state_save_prologue(dom, w) < 0)
		return -1;
	if (!o->no_memory &&
	    (stream_writer_pipeline(w, o->workers, true) < 0 ||
	     save_memory(dom, w, o->encoding) < 0))
		return -1;
	return state_save_epilogue(dom, w);
}

int state_save(struct domain *dom, int fd, const struct save_opts *o,
	       struct save_stats *st, char *err, size_t errlen)
{
	struct stream_writer w;
	uint8_t bid[20];
	unsigned bid_len = build_id_bytes(bid, sizeof(bid));

	if (stream_writer_open(&w, fd, o->version, XEN_VERSION, bid,
			       bid_len) < 0)
		goto fail;
	if (state_save_domain(dom, &w, o) < 0 || stream_writer_finish(&w) < 0)
		goto fail;
	st->bytes = w.bytes;
	st->pages = w.pages;
	st->zero_pages = w.zero_pages;
	return 0;
fail:
	snprintf(err, errlen, "writing the state failed: %s",
		 strerror(w.error ? w.error : errno));
	stream_writer_free(&w);
	return -1;
}
