#include <stddef.h>

#include "ioport.h"
#include "log.h"

int ioport_register(struct ioport_map *map, uint16_t base, uint16_t len,
		    ioport_fn fn, void *opaque, const char *owner)
{
	struct ioport_range *r;
	unsigned i;

	for (i = 0; i < map->nr; i++) {
		r = &map->ranges[i];
		if (base < r->base + r->len && r->base < base + len) {
			log_err("ioport: %s at %#x overlaps %s at %#x", owner,
				base, r->owner, r->base);
			return -1;
		}
	}
	if (map->nr == IOPORT_MAX_RANGES)
		return -1;
	r = &map->ranges[map->nr++];
	r->base = base;
	r->len = len;
	r->fn = fn;
	r->opaque = opaque;
	r->owner = owner;
	return 0;
}

const struct ioport_range *ioport_find(const struct ioport_map *map,
				       uint16_t port)
{
	unsigned i;

	for (i = 0; i < map->nr; i++) {
		const struct ioport_range *r = &map->ranges[i];

		if (port >= r->base && port < r->base + r->len)
			return r;
	}
	return NULL;
}

bool ioport_unclaimed_first(struct ioport_map *map, uint16_t port)
{
	uint32_t bit = 1u << (port % 32);

	return !(__atomic_fetch_or(&map->unclaimed_seen[port / 32], bit,
				   __ATOMIC_RELAXED) & bit);
}
