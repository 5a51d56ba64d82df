/* Writing and reading the state stream's framing (docs/state-format.md). */
#include <errno.h>
#include <libdeflate.h>
#include <limits.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pagepipe.h"
#include "rec_table.h"
#include "stream.h"

static const uint8_t zero_pad[8];

/* ------------------------------------------------------------ names */

uint32_t stream_crc32(uint32_t crc, const void *buf, size_t len)
{
	return libdeflate_crc32(crc, buf, len);
}

bool rec_type_known(uint32_t type, unsigned version)
{
	return rec_desc(type) != NULL;
}

static const char *const enc_names[] = { "none", "lz4", "zlib" };

const char *page_encoding_name(uint32_t enc)
{
	return enc < 3 ? enc_names[enc] : "unknown";
}

int page_encoding_from_name(const char *name, enum page_encoding *out)
{
	unsigned i;

	for (i = 0; i < 3; i++) {
		if (!strcmp(name, enc_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------ writer */

static int fd_write(void *opaque, const void *p, size_t len)
{
	int fd = (int)(intptr_t)opaque;
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		c += n;
		len -= n;
	}
	return 0;
}

/* All of iov, in as few writev() calls as the kernel takes. */
static int fd_writev(void *opaque, const struct iovec *iov, int cnt)
{
	int fd = (int)(intptr_t)opaque;
	struct iovec v[IOV_MAX];
	int n = cnt < IOV_MAX ? cnt : IOV_MAX, i = 0;
	ssize_t done;

	memcpy(v, iov, n * sizeof(v[0]));
	while (i < n) {
		done = writev(fd, v + i, n - i);
		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
			return done < 0 ? errno : EIO;
		while (i < n && (size_t)done >= v[i].iov_len)
			done -= v[i++].iov_len;
		if (i < n) {
			v[i].iov_base = (char *)v[i].iov_base + done;
			v[i].iov_len -= done;
		}
	}
	return cnt > n ? fd_writev(opaque, iov + n, cnt - n) : 0;
}

static void w_put(struct stream_writer *w, const void *p, size_t len)
{
	if (!len || w->error)
		return;
	w->error = w->sink.write(w->sink.opaque, p, len);
	if (!w->error)
		w->bytes += len;
}

int stream_writer_open(struct stream_writer *w, int fd, unsigned version,
		       const char *writer_version, const uint8_t *build_id,
		       unsigned build_id_len)
{
	struct stream_sink sink = { fd_write, (void *)(intptr_t)fd,
				    fd_writev };

	return stream_writer_open_sink(w, sink, version, writer_version,
				       build_id, build_id_len);
}

int stream_writer_open_sink(struct stream_writer *w, struct stream_sink sink,
			    unsigned version, const char *writer_version,
			    const uint8_t *build_id, unsigned build_id_len)
{
	struct stream_header h;

	memset(w, 0, sizeof(*w));
	w->sink = sink;
	w->version = version;
	if (version < STREAM_VERSION_MIN || version > STREAM_VERSION) {
		w->error = EINVAL;
		return -1;
	}
	if (page_pipe_open(w, 0, false) < 0) {
		w->error = ENOMEM;
		return -1;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, STREAM_MAGIC, 8);
	h.byte_order = STREAM_BYTE_ORDER;
	h.version = version;
	h.header_len = STREAM_HEADER_LEN;
	snprintf(h.writer_version, sizeof(h.writer_version), "%s",
		 writer_version);
	if (build_id_len > sizeof(h.build_id))
		build_id_len = sizeof(h.build_id);
	if (build_id_len)		/* a writer may have none (NULL) */
		memcpy(h.build_id, build_id, build_id_len);
	h.build_id_len = build_id_len;
	h.crc = stream_crc32(0, &h, offsetof(struct stream_header, crc));
	w_put(w, &h, sizeof(h));
	return w->error ? -1 : 0;
}

int stream_write_record2(struct stream_writer *w, uint32_t type,
			 uint32_t flags, const void *a, uint32_t alen,
			 const void *b, uint32_t blen)
{
	struct rec_header rh = {
		.type = type, .flags = flags, .length = alen + blen,
	};
	uint32_t crc = 0;

	if (stream_writer_flush(w) < 0)	/* the pages handed in come first */
		return -1;
	if (alen)
		crc = stream_crc32(crc, a, alen);
	if (blen)
		crc = stream_crc32(crc, b, blen);
	rh.crc = crc;
	w_put(w, &rh, sizeof(rh));
	if (alen)
		w_put(w, a, alen);
	if (blen)
		w_put(w, b, blen);
	w_put(w, zero_pad, (8 - (rh.length & 7)) & 7);
	return w->error ? -1 : 0;
}

int stream_write_record(struct stream_writer *w, uint32_t type,
			uint32_t flags, const void *body, uint32_t len)
{
	return stream_write_record2(w, type, flags, body, len, NULL, 0);
}

int stream_write_pages(struct stream_writer *w, const uint64_t *pfns,
		       const uint8_t *const *pages, unsigned n,
		       enum page_encoding enc)
{
	if (!w->error && !w->pipe)
		w->error = EINVAL;	/* a part: records only */
	if (w->error)
		return -1;
	if (w->version < 2)
		enc = PAGE_ENC_NONE;	/* version 1 has no compression */
	return page_pipe_submit(w, pfns, pages, n, enc);
}

void stream_writer_open_part(struct stream_writer *part,
			     const struct stream_writer *of,
			     struct stream_sink sink)
{
	memset(part, 0, sizeof(*part));
	part->sink = sink;
	part->version = of->version;
	part->keep_zero = of->keep_zero;
	part->handover = of->handover;
}

int stream_write_raw(struct stream_writer *w, const void *buf, size_t len)
{
	if (stream_writer_flush(w) < 0)
		return -1;
	w_put(w, buf, len);
	return w->error ? -1 : 0;
}

void stream_writer_free(struct stream_writer *w)
{
	page_pipe_close(w);
}

int stream_writer_finish(struct stream_writer *w)
{
	stream_write_record(w, REC_END, 0, NULL, 0);	/* flushes the pages */
	stream_writer_free(w);
	return w->error ? -1 : 0;
}

/* ------------------------------------------------------------ reader */

int stream_fd_read(void *opaque, void *buf, size_t len)
{
	int fd = *(int *)opaque;
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int stream_mem_read(void *opaque, void *buf, size_t len)
{
	struct mem_source *m = opaque;

	if (len > m->len - m->pos)
		return -1;
	memcpy(buf, m->data + m->pos, len);
	m->pos += len;
	return 0;
}

static int r_get(struct stream_reader *r, void *buf, size_t len)
{
	if (r->src.read(r->src.opaque, buf, len) < 0)
		return -1;
	r->offset += len;
	return 0;
}

#define FAIL(r, ...) do { \
	snprintf((r)->err, sizeof((r)->err), __VA_ARGS__); \
	return -1; \
} while (0)

int stream_reader_open(struct stream_reader *r, struct stream_source src)
{
	struct stream_header *h = &r->hdr;

	memset(r, 0, sizeof(*r));
	r->src = src;
	if (r_get(r, h, sizeof(*h)) < 0)
		FAIL(r, "offset 0: truncated: no complete %d-byte header",
		     STREAM_HEADER_LEN);
	if (memcmp(h->magic, STREAM_MAGIC, 8))
		FAIL(r, "offset 0: bad magic: not a state stream");
	if (h->byte_order == 0x04030201u)
		FAIL(r, "offset 8: written on a big-endian host");
	if (h->crc != stream_crc32(0, h, offsetof(struct stream_header, crc)))
		FAIL(r, "offset 64: header checksum mismatch");
	if (h->byte_order != STREAM_BYTE_ORDER)
		FAIL(r, "offset 8: byte-order mark %#x", h->byte_order);
	if (h->header_len != STREAM_HEADER_LEN)
		FAIL(r, "offset 16: header length %u, expected %u",
		     h->header_len, STREAM_HEADER_LEN);
	if (h->flags)
		FAIL(r, "offset 20: header flags %#x, none are defined",
		     h->flags);
	if (h->reserved)
		FAIL(r, "offset 68: header reserved field %#x, must be 0",
		     h->reserved);
	if (h->version < STREAM_VERSION_MIN || h->version > STREAM_VERSION)
		FAIL(r, "offset 12: format version %u; this build reads %d to %d",
		     h->version, STREAM_VERSION_MIN, STREAM_VERSION);
	if (h->build_id_len > sizeof(h->build_id))
		FAIL(r, "offset 60: build-id length %u", h->build_id_len);
	return 0;
}

int stream_read_exact(struct stream_reader *r, void *buf, size_t len)
{
	const char *name = rec_type_name(r->rec.type);

	if (r_get(r, buf, len) < 0)
		FAIL(r, "offset %llu: truncated: record %s (%#x) says %u bytes, the stream ends first",
		     (unsigned long long)r->rec_offset, name ? name : "?",
		     r->rec.type, r->rec.length);
	return 0;
}

int stream_body_reserve(struct stream_reader *r, size_t len)
{
	uint8_t *b;

	if (len <= r->body_cap)
		return 0;
	b = realloc(r->body, len);
	if (!b)
		FAIL(r, "out of memory for a %zu-byte record", len);
	r->body = b;
	r->body_cap = len;
	return 0;
}

int stream_next_head(struct stream_reader *r)
{
	struct rec_header *rh = &r->rec;
	const char *name;

	if (r->ended)
		FAIL(r, "offset %llu: read past END",
		     (unsigned long long)r->offset);
	r->rec_offset = r->offset;
	if (r_get(r, rh, sizeof(*rh)) < 0)
		FAIL(r, "offset %llu: truncated: stream ends without an END record",
		     (unsigned long long)r->offset);
	name = rec_type_name(rh->type);
	if (rh->length > STREAM_RECORD_MAX)
		FAIL(r, "offset %llu: record %s (%#x) length %u exceeds %u",
		     (unsigned long long)r->rec_offset, name ? name : "?",
		     rh->type, rh->length, STREAM_RECORD_MAX);
	if (rh->flags & ~REC_F_OPTIONAL)
		FAIL(r, "offset %llu: record %#x has unknown flags %#x",
		     (unsigned long long)r->rec_offset, rh->type, rh->flags);
	return 1;
}

int stream_read_rest(struct stream_reader *r, size_t have)
{
	struct rec_header *rh = &r->rec;
	const char *name = rec_type_name(rh->type);
	size_t padded = (rh->length + 7) & ~7u, i;

	if (stream_body_reserve(r, padded) < 0)
		return -1;
	if (padded > have &&
	    stream_read_exact(r, r->body + have, padded - have) < 0)
		return -1;
	for (i = rh->length; i < padded; i++)
		if (r->body[i])
			FAIL(r, "offset %llu: record %s (%#x) has non-zero padding",
			     (unsigned long long)r->rec_offset,
			     name ? name : "?", rh->type);
	if (stream_crc32(0, r->body, rh->length) != rh->crc)
		FAIL(r, "offset %llu: checksum mismatch in record %s (%#x)",
		     (unsigned long long)r->rec_offset, name ? name : "?",
		     rh->type);
	if (!name && !(rh->flags & REC_F_OPTIONAL))
		FAIL(r, "offset %llu: unknown mandatory record type %#x",
		     (unsigned long long)r->rec_offset, rh->type);
	if (rh->type == REC_END) {
		if (rh->length)
			FAIL(r, "offset %llu: END record with a body",
			     (unsigned long long)r->rec_offset);
		r->ended = true;
		return 0;
	}
	return 1;
}

int stream_next(struct stream_reader *r)
{
	if (stream_next_head(r) < 0)
		return -1;
	return stream_read_rest(r, 0);
}

void stream_reader_close(struct stream_reader *r)
{
	free(r->body);
	r->body = NULL;
	r->body_cap = 0;
}

int stream_decode_pages(struct stream_reader *r, const uint64_t **pfns,
			unsigned *n, uint8_t *out, size_t out_cap)
{
	struct rec_page_batch b;
	size_t head, raw_len;
	const uint8_t *data;
	uLongf zlen;
	uLong zin;
	int got;

	if (r->rec.length < sizeof(b))
		FAIL(r, "offset %llu: PAGE_BATCH shorter than its head",
		     (unsigned long long)r->rec_offset);
	memcpy(&b, r->body, sizeof(b));
	if (!b.nr_pages || b.nr_pages > STREAM_BATCH_PAGES)
		FAIL(r, "offset %llu: PAGE_BATCH of %u pages (1 to %u allowed)",
		     (unsigned long long)r->rec_offset, b.nr_pages,
		     STREAM_BATCH_PAGES);
	head = sizeof(b) + (size_t)b.nr_pages * 8;
	raw_len = (size_t)b.nr_pages * STREAM_PAGE_SIZE;
	if (head > r->rec.length || b.data_len != r->rec.length - head)
		FAIL(r, "offset %llu: PAGE_BATCH lengths disagree (%u pages, %u data bytes, record %u)",
		     (unsigned long long)r->rec_offset, b.nr_pages, b.data_len,
		     r->rec.length);
	if (raw_len > out_cap)
		FAIL(r, "offset %llu: PAGE_BATCH larger than the buffer",
		     (unsigned long long)r->rec_offset);
	if (b.encoding != PAGE_ENC_NONE && r->hdr.version < 2)
		FAIL(r, "offset %llu: compressed PAGE_BATCH in a version-1 stream",
		     (unsigned long long)r->rec_offset);
	data = r->body + head;
	switch (b.encoding) {
	case PAGE_ENC_NONE:
		if (b.data_len != raw_len)
			FAIL(r, "offset %llu: raw PAGE_BATCH of %u pages has %u bytes",
			     (unsigned long long)r->rec_offset, b.nr_pages,
			     b.data_len);
		memcpy(out, data, raw_len);
		break;
	case PAGE_ENC_LZ4:
		got = LZ4_decompress_safe((const char *)data, (char *)out,
					  b.data_len, raw_len);
		if (got < 0 || (size_t)got != raw_len)
			FAIL(r, "offset %llu: LZ4 data of PAGE_BATCH is corrupt",
			     (unsigned long long)r->rec_offset);
		break;
	case PAGE_ENC_ZLIB:
		zlen = raw_len;
		zin = b.data_len;
		if (uncompress2(out, &zlen, data, &zin) != Z_OK ||
		    zlen != raw_len || zin != b.data_len)
			FAIL(r, "offset %llu: zlib data of PAGE_BATCH is corrupt",
			     (unsigned long long)r->rec_offset);
		break;
	default:
		FAIL(r, "offset %llu: PAGE_BATCH encoding %u is unknown",
		     (unsigned long long)r->rec_offset, b.encoding);
	}
	*pfns = (const uint64_t *)(r->body + sizeof(b));
	*n = b.nr_pages;
	return 0;
}
