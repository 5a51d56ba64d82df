#include <string.h>

#include "mmio.h"

void mmio_map_init(struct mmio_map *map)
{
	memset(map, 0, sizeof(*map));
	pthread_rwlock_init(&map->lock, NULL);
}

void mmio_map_destroy(struct mmio_map *map)
{
	pthread_rwlock_destroy(&map->lock);
}

int mmio_register(struct mmio_map *map, uint64_t len, mmio_fn fn,
		  void *opaque, const char *owner)
{
	int h = -1;

	pthread_rwlock_wrlock(&map->lock);
	if (map->nr < MMIO_MAX_RANGES) {
		h = map->nr++;
		map->ranges[h] = (struct mmio_range) {
			.len = len, .fn = fn, .opaque = opaque,
			.owner = owner,
		};
	}
	pthread_rwlock_unlock(&map->lock);
	return h;
}

void mmio_place(struct mmio_map *map, int h, uint64_t base, bool active)
{
	if (h < 0 || (unsigned)h >= map->nr)
		return;
	pthread_rwlock_wrlock(&map->lock);
	map->ranges[h].base = base;
	map->ranges[h].active = active;
	pthread_rwlock_unlock(&map->lock);
}

int mmio_dispatch(struct mmio_map *map, struct vcpu *vcpu, uint64_t gpa,
		  bool is_write, unsigned size, uint8_t *data)
{
	const struct mmio_range *r;
	int ret = 0;
	unsigned i;

	pthread_rwlock_rdlock(&map->lock);
	for (i = 0; i < map->nr; i++) {
		r = &map->ranges[i];
		/* An access that straddles a range's end is not its. */
		if (!r->active || gpa < r->base || gpa - r->base >= r->len ||
		    r->len - (gpa - r->base) < size)
			continue;
		ret = r->fn(vcpu, r->opaque, gpa - r->base, is_write, size,
			    data) < 0 ? -1 : 1;
		break;
	}
	pthread_rwlock_unlock(&map->lock);
	return ret;
}
