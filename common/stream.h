/*
 * The state stream (docs/state-format.md): one record format for save and
 * restore, live update and migration.  A fixed header, then records
 * {type, flags, length, crc32} + body padded to 8 bytes, ended by END.
 *
 * This file knows the format only; what the records mean for a domain
 * lives in the daemon (xen/state_*.c).
 */
#ifndef STREAM_H
#define STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "records.h"

#define STREAM_MAGIC		"XKVMSTRM"
#define STREAM_BYTE_ORDER	0x01020304u
/*
 * The version this build writes by default; it reads and can write the one
 * before too.  A build can be made one version ahead (make ... 
 * STREAM_NEXT=1 defines STREAM_VERSION=3) to test updates and rollbacks
 * between format versions: version 3 adds nothing but its number.
 */
#ifndef STREAM_VERSION
#define STREAM_VERSION		2
#endif
#define STREAM_VERSION_MIN	(STREAM_VERSION - 1)
#define STREAM_HEADER_LEN	72
#define STREAM_RECORD_MAX	(64u << 20)
#define STREAM_PAGE_SIZE	4096u
#define STREAM_BATCH_PAGES	512u	/* most pages in one PAGE_BATCH */

enum page_encoding {
	PAGE_ENC_NONE = 0,
	PAGE_ENC_LZ4 = 1,
	PAGE_ENC_ZLIB = 2,
};

struct stream_header {
	char magic[8];
	uint32_t byte_order;
	uint32_t version;
	uint32_t header_len;
	uint32_t flags;
	char writer_version[16];
	uint8_t build_id[20];
	uint32_t build_id_len;
	uint32_t crc;			/* crc32 of the 64 bytes above */
	uint32_t reserved;
};

struct rec_header {
	uint32_t type;
	uint32_t flags;
	uint32_t length;		/* body bytes, without padding */
	uint32_t crc;			/* crc32 of the body */
};

/* ---- writing */
struct stream_sink {
	/* Write all len bytes: 0, or an errno. */
	int (*write)(void *opaque, const void *buf, size_t len);
	void *opaque;
	/* Optional: all of iov[0..cnt) in one go (a file), else write. */
	int (*writev)(void *opaque, const struct iovec *iov, int cnt);
};

struct page_pipe;

struct stream_writer {
	struct stream_sink sink;	/* where the bytes go */
	unsigned version;
	int error;			/* first errno seen, 0 if none */
	uint64_t bytes;
	uint64_t pages, zero_pages;
	/*
	 * Write zero pages too (migration's later rounds: a page dirtied
	 * back to zero must overwrite what an earlier batch sent).
	 */
	bool keep_zero;
	/*
	 * A live-update handover: devices name the fds the new image
	 * inherits (disk images, taps) instead of -1.
	 */
	bool handover;
	struct page_pipe *pipe;		/* builds PAGE_BATCHes (pagepipe.h) */
};

int stream_writer_open(struct stream_writer *w, int fd, unsigned version,
		       const char *writer_version, const uint8_t *build_id,
		       unsigned build_id_len);
/* The same, writing through sink (migration's connection, plain or TLS). */
int stream_writer_open_sink(struct stream_writer *w, struct stream_sink sink,
			    unsigned version, const char *writer_version,
			    const uint8_t *build_id, unsigned build_id_len);
int stream_write_record(struct stream_writer *w, uint32_t type,
			uint32_t flags, const void *body, uint32_t len);
/* Two-part body (head + payload), as most state records are. */
int stream_write_record2(struct stream_writer *w, uint32_t type,
			 uint32_t flags, const void *a, uint32_t alen,
			 const void *b, uint32_t blen);
/*
 * Write the pages pfn[0..n) found at pages[] (4 KiB each, n <=
 * BATCH_PAGES), eliding zero pages, encoded as asked (falls back to none
 * when encoding does not help; version 1 streams always use none).  The
 * page pipeline (pagepipe.h) may write them later: the pages must stay
 * mapped until the next record or stream_writer_flush().
 */
int stream_write_pages(struct stream_writer *w, const uint64_t *pfns,
		       const uint8_t *const *pages, unsigned n,
		       enum page_encoding enc);
int stream_writer_finish(struct stream_writer *w);
/*
 * A writer of records only, into sink, for the stream `of` (its version
 * and options): no header, no END, no pages.  What it wrote is whole
 * records of that stream, which it takes with stream_write_raw() (a live
 * update writes its domains' state in parallel, liveupdate/ahead_save.c).
 */
void stream_writer_open_part(struct stream_writer *part,
			     const struct stream_writer *of,
			     struct stream_sink sink);
int stream_write_raw(struct stream_writer *w, const void *buf, size_t len);
/* Release the writer's buffers without writing END (after an error). */
void stream_writer_free(struct stream_writer *w);

/* ---- reading */
struct stream_source {
	/* Read exactly len bytes: 0, or -1 on EOF/error. */
	int (*read)(void *opaque, void *buf, size_t len);
	void *opaque;
};

struct stream_reader {
	struct stream_source src;
	struct stream_header hdr;
	uint64_t offset;		/* bytes consumed so far */
	uint64_t rec_offset;		/* where the current record began */
	struct rec_header rec;
	uint8_t *body;			/* current record body */
	size_t body_cap;
	bool ended;
	char err[256];
};

int stream_reader_open(struct stream_reader *r, struct stream_source src);
/* Next record into r->rec / r->body: 1 got one, 0 END seen, -1 error. */
int stream_next(struct stream_reader *r);
/*
 * stream_next() in two steps: the record's header only (1, or -1), then
 * the rest of the body, of which `have` bytes are in r->body already
 * (1 got one, 0 END seen, -1 error), with every check stream_next() makes.
 */
int stream_next_head(struct stream_reader *r);
int stream_read_rest(struct stream_reader *r, size_t have);
/* Exactly len bytes of the stream: 0, or -1 (r->err says where). */
int stream_read_exact(struct stream_reader *r, void *buf, size_t len);
/* Room for len bytes in r->body: 0, or -1. */
int stream_body_reserve(struct stream_reader *r, size_t len);
void stream_reader_close(struct stream_reader *r);

/* A PAGE_BATCH body checked and decoded into out (n * 4 KiB). */
int stream_decode_pages(struct stream_reader *r, const uint64_t **pfns,
			unsigned *n, uint8_t *out, size_t out_cap);

/* fd and memory sources. */
int stream_fd_read(void *opaque, void *buf, size_t len);
struct mem_source {
	const uint8_t *data;
	size_t len, pos;
};
int stream_mem_read(void *opaque, void *buf, size_t len);

/* zlib's CRC-32, as the format defines it, computed with the CPU's
 * carry-less multiply where it has one (libdeflate). */
uint32_t stream_crc32(uint32_t crc, const void *buf, size_t len);

const char *page_encoding_name(uint32_t enc);
int page_encoding_from_name(const char *name, enum page_encoding *out);
bool rec_type_known(uint32_t type, unsigned version);

#endif
