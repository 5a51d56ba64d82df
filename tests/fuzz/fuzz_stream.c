/*
 * libFuzzer target for the state stream: the common reader over memory
 * and the record table's checks (common/rec_table.c, the daemon's own), i.e. everything
 * `xen-stream verify` does, then `xen-stream dump --pages` into
 * /dev/null.
 *
 * Each input runs twice: as it is, and with the header and record
 * checksums recomputed (as far as the record structure goes), so that
 * mutations get past the CRCs into record bodies, page decoding and the
 * checks.  verify and dump must agree on whether a stream is sound.
 *
 * Built and run by tests/fuzz/fuzz.mk (make fuzz-build, fuzz, fuzz-quick).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "stream.h"
#include "stream_tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *null_out;

static void fix_crcs(uint8_t *p, size_t size)
{
	struct rec_header rh;
	uint32_t crc;
	size_t pos = STREAM_HEADER_LEN, padded;

	if (size < STREAM_HEADER_LEN)
		return;
	crc = crc32(0, p, offsetof(struct stream_header, crc));
	memcpy(p + offsetof(struct stream_header, crc), &crc, sizeof(crc));
	while (size - pos >= sizeof(rh)) {
		memcpy(&rh, p + pos, sizeof(rh));
		if (rh.length > size - pos - sizeof(rh))
			break;
		rh.crc = crc32(0, p + pos + sizeof(rh), rh.length);
		memcpy(p + pos, &rh, sizeof(rh));
		padded = ((size_t)rh.length + 7) & ~(size_t)7;
		if (padded > size - pos - sizeof(rh))
			break;
		pos += sizeof(rh) + padded;
	}
}

static void run(const uint8_t *data, size_t size)
{
	struct dump_opts o = { .pages = true };
	struct mem_source m = { .data = data, .len = size };
	struct verify_result res;
	int verified, dumped;

	verified = verify_stream((struct stream_source){ stream_mem_read, &m },
				 &res);
	if (verified < 0 && strncmp(res.err, "offset ", 7)) {
		fprintf(stderr, "verify error without an offset: %s\n", res.err);
		abort();
	}
	m.pos = 0;
	dumped = dump_stream((struct stream_source){ stream_mem_read, &m },
			     null_out, &o);
	if ((verified < 0) != (dumped < 0)) {
		fprintf(stderr, "verify says %s, dump says %s\n",
			verified < 0 ? res.err : "OK",
			dumped < 0 ? "problems" : "OK");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (!null_out) {
		null_out = fopen("/dev/null", "w");
		if (!null_out)
			abort();
	}
	run(data, size);
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fix_crcs(copy, size);
	if (size && memcmp(copy, data, size))
		run(copy, size);
	free(copy);
	return 0;
}
