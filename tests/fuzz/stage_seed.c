/*
 * A seed for the stager's fuzz target (fuzz_stage.c): the smallest
 * executable that passes its checks, an ELF with a GNU build-id and the
 * XKVM stream-version note (as liveupdate/note.c puts it in the daemon).
 * Never run.  Built by make_seeds.py; SEED_READ_MIN/MAX vary the note.
 */
#include <stdint.h>

#ifndef SEED_READ_MIN
#define SEED_READ_MIN	1
#endif
#ifndef SEED_READ_MAX
#define SEED_READ_MAX	2
#endif

struct xkvm_note {
	uint32_t namesz, descsz, type;
	char name[8];
	uint32_t read_min, read_max, write_min, write_max;
};

__attribute__((section(".note.xkvm"), aligned(4), used))
static const struct xkvm_note xkvm_note = {
	.namesz = 5, .descsz = 16, .type = 1, .name = "XKVM",
	.read_min = SEED_READ_MIN, .read_max = SEED_READ_MAX,
	.write_min = 1, .write_max = 2,
};

void _start(void);

void _start(void)
{
	for (;;)
		;
}
