/* xen-stream: inspecting and verifying state streams (tools/stream/). */
#ifndef XEN_STREAM_TOOL_H
#define XEN_STREAM_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rec_table.h"
#include "stream.h"

struct verify_result {
	unsigned version;
	unsigned records;		/* END included */
	unsigned batches;
	uint64_t pages;
	unsigned nr_vcpus;
	uint64_t bytes;			/* stream length, END included */
	char err[CHECK_ERR_MAX + 64];	/* "offset N: reason" */
};

/*
 * The whole stream through the common reader and common/rec_table.c: 0 if it is
 * sound, -1 with the first problem in res->err.
 */
int verify_stream(struct stream_source src, struct verify_result *res);

/*
 * Framing checks the reader leaves out, shared by verify and dump: the
 * header fields it ignores, and the zero padding after a record's body.
 */
int verify_header(const struct stream_header *h, char *err, size_t len);
int verify_padding(const struct stream_reader *r, char *err, size_t len);

struct dump_opts {
	bool pages;			/* every pfn of each PAGE_BATCH */
};

/*
 * Print the header, every record and a summary to @out.  0 if the
 * stream was read to its END with no problem, else -1 (the problems are
 * printed as they are found).
 */
/* `xen-stream records`: the record table and layouts as JSON. */
int print_records(FILE *out);

int dump_stream(struct stream_source src, FILE *out,
		const struct dump_opts *o);

#endif
