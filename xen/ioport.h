/* Port I/O dispatch: devices claim port ranges of their domain. */
#ifndef XEN_IOPORT_H
#define XEN_IOPORT_H

#include <stdbool.h>
#include <stdint.h>

struct domain;
struct vcpu;

/*
 * Handle one access of size 1, 2 or 4 bytes.  For reads fill *val.
 * Return 0, or -1 when the access is a guest error worth a crash.
 */
typedef int (*ioport_fn)(struct vcpu *vcpu, void *opaque, uint16_t port,
			 bool is_write, unsigned size, uint32_t *val);

struct ioport_range {
	uint16_t base;
	uint16_t len;
	ioport_fn fn;
	void *opaque;
	const char *owner;
};

#define IOPORT_MAX_RANGES 32

struct ioport_map {
	unsigned nr;
	struct ioport_range ranges[IOPORT_MAX_RANGES];
	/* A bit per port no range claims that the guest has touched. */
	uint32_t unclaimed_seen[0x10000 / 32];
};

/* What a read of `size` bytes returns where nothing drives the bus. */
static inline uint32_t ioport_all_ones(unsigned size)
{
	return size == 4 ? 0xffffffff : (1u << (size * 8)) - 1;
}

int ioport_register(struct ioport_map *map, uint16_t base, uint16_t len,
		    ioport_fn fn, void *opaque, const char *owner);
const struct ioport_range *ioport_find(const struct ioport_map *map,
				       uint16_t port);
/* True the first time it is called for `port` (any thread). */
bool ioport_unclaimed_first(struct ioport_map *map, uint16_t port);

#endif
