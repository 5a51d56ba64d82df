/*
 * `xen-stream verify`: a stream end to end through the common reader
 * (header, checksums, record structure, page decoding) and common/rec_table.c (the
 * records a restore needs).  Stops at the first problem.
 */
#include <stdlib.h>
#include <string.h>

#include "rec_table.h"
#include "stream.h"
#include "stream_tool.h"

int verify_header(const struct stream_header *h, char *err, size_t len)
{
	/* What the reader leaves out; reserved is not under the checksum. */
	if (h->flags) {
		snprintf(err, len, "offset 20: header flags %#x, none are defined",
			 h->flags);
		return -1;
	}
	if (h->reserved) {
		snprintf(err, len, "offset 68: header reserved field %#x, must be 0",
			 h->reserved);
		return -1;
	}
	return 0;
}

int verify_padding(const struct stream_reader *r, char *err, size_t len)
{
	size_t i, padded = (r->rec.length + 7) & ~(size_t)7;

	for (i = r->rec.length; i < padded; i++) {
		if (r->body[i]) {
			snprintf(err, len, "offset %llu: record %s (%#x) has non-zero padding",
				 (unsigned long long)r->rec_offset,
				 rec_type_name(r->rec.type) ?: "?",
				 r->rec.type);
			return -1;
		}
	}
	return 0;
}

/* The reader's messages begin with the offset, bar out-of-memory. */
static void reader_error(struct verify_result *res,
			 const struct stream_reader *r)
{
	if (!strncmp(r->err, "offset ", 7))
		snprintf(res->err, sizeof(res->err), "%s", r->err);
	else
		snprintf(res->err, sizeof(res->err), "offset %llu: %s",
			 (unsigned long long)r->rec_offset, r->err);
}

static int verify_records(struct stream_reader *r, struct stream_check *c,
			  struct verify_result *res)
{
	const size_t cap = STREAM_BATCH_PAGES * STREAM_PAGE_SIZE;
	uint8_t *pages = NULL;
	const uint64_t *pfns;
	unsigned n;
	int got, ret = -1;

	while ((got = stream_next(r)) > 0) {
		res->records++;
		if (verify_padding(r, res->err, sizeof(res->err)) < 0)
			goto out;
		if (check_record(c, r->rec_offset, &r->rec, r->body) < 0)
			goto check_failed;
		if (r->rec.type != REC_PAGE_BATCH)
			continue;
		if (!pages) {
			pages = malloc(cap);
			if (!pages) {
				snprintf(res->err, sizeof(res->err),
					 "offset %llu: out of memory",
					 (unsigned long long)r->rec_offset);
				goto out;
			}
		}
		if (stream_decode_pages(r, &pfns, &n, pages, cap) < 0) {
			reader_error(res, r);
			goto out;
		}
		res->batches++;
		if (check_pages(c, r->rec_offset, pfns, n) < 0)
			goto check_failed;
	}
	if (got < 0) {
		reader_error(res, r);
		goto out;
	}
	res->records++;
	if (check_end(c, r->rec_offset) < 0)
		goto check_failed;
	ret = 0;
	goto out;
check_failed:
	snprintf(res->err, sizeof(res->err), "%s", c->err);
out:
	free(pages);
	return ret;
}

int verify_stream(struct stream_source src, struct verify_result *res)
{
	struct stream_reader *r;
	struct stream_check *c;
	uint8_t extra;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	r = calloc(1, sizeof(*r));
	c = calloc(1, sizeof(*c));
	if (!r || !c) {
		snprintf(res->err, sizeof(res->err), "offset 0: out of memory");
		goto out;
	}
	check_init(c);
	if (stream_reader_open(r, src) < 0) {
		reader_error(res, r);
		goto out;
	}
	res->version = r->hdr.version;
	if (verify_header(&r->hdr, res->err, sizeof(res->err)) < 0 ||
	    verify_records(r, c, res) < 0)
		goto out;
	res->bytes = r->offset;
	res->pages = c->pages;
	res->nr_vcpus = c->nr_vcpus;
	/* Nothing may follow END. */
	if (src.read(src.opaque, &extra, 1) == 0) {
		snprintf(res->err, sizeof(res->err),
			 "offset %llu: data after the END record",
			 (unsigned long long)r->offset);
		goto out;
	}
	ret = 0;
out:
	if (r)
		stream_reader_close(r);
	if (c)
		check_free(c);
	free(r);
	free(c);
	return ret;
}
