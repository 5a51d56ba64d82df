/*
 * MMIO dispatch: devices claim guest-physical ranges of their domain
 * (PCI BARs).  Unlike I/O ports a range can move or vanish while the
 * guest runs (a BAR reprogrammed, memory decoding turned off), so the
 * map has a lock and ranges are switched on and off in place.
 */
#ifndef XEN_MMIO_H
#define XEN_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vcpu;

/*
 * One access of 1, 2, 4 or 8 bytes at `offset` into the range; for reads
 * fill data.  0, or -1 when the access is a guest error worth a crash.
 */
typedef int (*mmio_fn)(struct vcpu *vcpu, void *opaque, uint64_t offset,
		       bool is_write, unsigned size, uint8_t *data);

#define MMIO_MAX_RANGES 96

struct mmio_range {
	uint64_t base;
	uint64_t len;
	bool active;
	mmio_fn fn;
	void *opaque;
	const char *owner;
};

struct mmio_map {
	pthread_rwlock_t lock;
	unsigned nr;
	struct mmio_range ranges[MMIO_MAX_RANGES];
};

void mmio_map_init(struct mmio_map *map);
void mmio_map_destroy(struct mmio_map *map);
/* A new, inactive range: its handle (>= 0), or -1 when the map is full. */
int mmio_register(struct mmio_map *map, uint64_t len, mmio_fn fn,
		  void *opaque, const char *owner);
/* Place range `h` at base and switch it on, or switch it off. */
void mmio_place(struct mmio_map *map, int h, uint64_t base, bool active);
/*
 * Run the access through the range that claims gpa: 1 handled, 0 nothing
 * claims it, -1 the device's crash verdict.
 */
int mmio_dispatch(struct mmio_map *map, struct vcpu *vcpu, uint64_t gpa,
		  bool is_write, unsigned size, uint8_t *data);

#endif
