/*
 * libFuzzer target for the livepatch payload loader: what `livepatch
 * upload` does with a file's bytes before any of the payload's code runs
 * (livepatch/payload_load.c: the ELF checks, the layout near the image,
 * the relocations against the image's and libc's symbols, the special
 * sections; livepatch/params.c and ranges.c: the parameter declarations
 * and their defaults, the code ranges; the JSON `livepatch-list` shows).
 *
 * The "daemon" the payload links against is this program: its symbol
 * table is read from /proc/self/exe as the daemon reads its own.  The
 * seeds (tests/fuzz/payload_seed.c) patch fuzz_payload_victim() below.
 * Nothing is applied, no hook is called: a loaded payload is freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "livepatch/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int fuzz_payload_victim(int x);

/* What the seed payloads replace: big enough for a jump and a range. */
__attribute__((noinline)) int fuzz_payload_victim(int x)
{
	int i, s = 0;

	for (i = 0; i < x; i++)
		s += i * x ^ (s >> 3);
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct lp_err e = { 0 };

	if (lp_image_load(&e)) {
		fprintf(stderr, "fuzz_payload: own symbols: %s\n", e.msg);
		abort();
	}
	return 0;
}

static void check_error(const struct lp_err *e)
{
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "refused: %s\n", e->msg);
	if (e->code <= 0 || !e->msg[0] || !memchr(e->msg, 0, sizeof(e->msg))) {
		fprintf(stderr, "a refusal without a code or reason: %d\n",
			e->code);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload *p = calloc(1, sizeof(*p));
	struct lp_err e = { 0 };
	uint8_t *buf;
	json_t *j;

	/* The daemon loads from its own copy of the file. */
	buf = malloc(size ? size : 1);
	if (!p || !buf)
		goto out;
	memcpy(buf, data, size);
	snprintf(p->name, sizeof(p->name), "fuzz");
	p->meta = json_object();
	if (lp_payload_load(p, buf, size, &e)) {
		check_error(&e);
		goto out;
	}
	if (lp_params_init(p, NULL, &e)) {
		check_error(&e);
		goto out;
	}
	j = lp_params_json(p);
	json_decref(j);
	j = lp_params_values(p);
	json_decref(j);
	j = lp_ranges_json(p);
	json_decref(j);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "loaded: %u functions, %u ranges, %u "
			"parameters\n", p->nfuncs, p->nranges, p->nparams);
out:
	lp_payload_free(p);
	free(buf);
	return 0;
}
