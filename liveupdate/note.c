/*
 * The note that tells a running hypervisor which state-stream versions
 * this image reads and writes, so a live update to it is checked before
 * anything pauses.  It lands in a PT_NOTE segment next to the build-id.
 */
#include <stdint.h>
#include <generated/autoconf.h>

#include "liveupdate/lu.h"
#include "stream.h"

struct xkvm_note {
	uint32_t namesz, descsz, type;
	char name[8];
	uint32_t read_min, read_max, write_min, write_max;
};

/*
 * An image built without live update reads no handover (versions 0..0):
 * staging refuses it, since exec'ing it would lose the guests.
 */
#ifdef CONFIG_LIVE_UPDATE
#define HANDOVER_READ_MIN	STREAM_VERSION_MIN
#define HANDOVER_READ_MAX	STREAM_VERSION
#else
#define HANDOVER_READ_MIN	0
#define HANDOVER_READ_MAX	0
#endif

__attribute__((section(".note.xkvm"), aligned(4), used))
static const struct xkvm_note xkvm_note = {
	.namesz = sizeof(XKVM_NOTE_NAME),
	.descsz = 16,
	.type = XKVM_NOTE_STREAM,
	.name = XKVM_NOTE_NAME,
	.read_min = HANDOVER_READ_MIN,
	.read_max = HANDOVER_READ_MAX,
	.write_min = STREAM_VERSION_MIN,
	.write_max = STREAM_VERSION,
};

struct xkvm_features_note {
	uint32_t namesz, descsz, type;
	char name[8];
	uint32_t flags;
};

#ifdef CONFIG_LIVE_UPDATE
#define IMAGE_FEATURES	XKVM_CAN_BUILD_AHEAD
#else
#define IMAGE_FEATURES	0
#endif

__attribute__((section(".note.xkvm"), aligned(4), used))
static const struct xkvm_features_note xkvm_features_note = {
	.namesz = sizeof(XKVM_NOTE_NAME),
	.descsz = 4,
	.type = XKVM_NOTE_FEATURES,
	.name = XKVM_NOTE_NAME,
	.flags = IMAGE_FEATURES,
};
