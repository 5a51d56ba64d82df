/*
 * The device registry.  Each emulated device is one file that registers
 * its type with DEVICE_REGISTER(); the core names no device.  A domain
 * holds one opaque set of per-device state, made by devices_init(); a
 * device finds its own with device_state().
 */
#ifndef XEN_DEV_DEVICES_H
#define XEN_DEV_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct domain;
struct stream_writer;

/*
 * A device type.  Every device must be able to save and load itself: a
 * device with state but no record would silently lose that state across
 * save/restore, live update and migration.  So a type either names its
 * record (rec_type, with save and load) or says in `stateless` why it
 * needs none; devices_check() refuses a registry where a type does
 * neither, or names a record that is not a device record of the record
 * table (common/rec_table.c), and tests/test_save.py checks each record
 * in a stream.  The record's body is common/records.h's; its check is
 * the record table's, which restore runs before load() and which
 * xen-stream and the fuzzer run too.
 *
 * A device record the table requires of every domain is written with
 * flags 0.  A device added after its stream format writes its record
 * REC_F_OPTIONAL and the table does not require it: older builds (and
 * builds without the device) skip it, and a stream without it (from such
 * a build) leaves the device as init() made it.
 */
struct device_type {
	const char *name;
	/*
	 * Position among all types: devices are made in this order, torn
	 * down in reverse, and their records written in it.  The order of
	 * the records is part of the stream (docs/state-format.md), so a
	 * device keeps its number; no two types share one.
	 */
	unsigned order;
	size_t state_size;	/* private state the registry allocates,
				 * zeroed; 0 for none (state is NULL) */
	uint32_t rec_type;	/* its record in the state stream, or 0 */
	const char *stateless;	/* with rec_type 0: why it needs none */

	/*
	 * All optional but save and load of a type with a record.  init()
	 * returns 0, or -1 or a negative errno (-EINVAL: the domain's
	 * config names something unusable) and says in `err` why (the
	 * `create` command's message).
	 */
	int (*init)(struct domain *dom, void *state, char *err,
		    size_t errlen);
	void (*destroy)(struct domain *dom, void *state);
	int (*save)(struct domain *dom, void *state, struct stream_writer *w);
	/* Load a body the record table's check accepted. */
	int (*load)(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen);
	/*
	 * Optional, for a device with threads of its own: park them between
	 * two requests (quiesce, after the vCPUs) and let them go on.
	 */
	void (*pause)(struct domain *dom, void *state);
	void (*resume)(struct domain *dom, void *state);
	/* Optional: call fn on each fd a live update must carry over. */
	void (*for_each_fd)(struct domain *dom, void *state,
			    void (*fn)(int fd, void *arg), void *arg);
	/*
	 * Optional, any thread: migration turned dirty logging of guest RAM
	 * on or off (dom->mem.dev_log); a device whose writes bypass the log
	 * (vhost) changes path.
	 */
	void (*log_changed)(struct domain *dom, void *state);
	/* Optional: the live update that restored it committed. */
	void (*takeover_done)(struct domain *dom, void *state);
	/* The record may appear more than once (one per instance). */
	bool multi_record;

	/* The registry's own. */
	unsigned slot;
	struct device_type *next;
};

void device_register(struct device_type *t);

/* Register `t` (a static struct device_type) before main() runs. */
#define DEVICE_REGISTER(t)						\
	static void __attribute__((constructor)) register_##t(void)	\
	{								\
		device_register(&t);					\
	}

/* The state of device `t` in `dom`, or NULL if the domain has none. */
void *device_state(const struct domain *dom, const struct device_type *t);

int devices_check(void);
/* 0, or a negative errno with `err` naming the device and why. */
int devices_init(struct domain *dom, char *err, size_t errlen);
void devices_destroy(struct domain *dom);
/* Park / unpark every device thread of the domain (quiesce.c). */
void devices_pause(struct domain *dom);
void devices_resume(struct domain *dom);
void devices_takeover_done(struct domain *dom);
void devices_log_changed(struct domain *dom);
void devices_for_each_fd(struct domain *dom, void (*fn)(int fd, void *arg),
			 void *arg);
int devices_save(struct domain *dom, struct stream_writer *w);
/* 1 if the record belongs to a device and was loaded, 0 if not a device
 * record, -1 on error. */
int devices_load(struct domain *dom, uint32_t type, const void *body,
		 size_t len, char *err, size_t errlen);
/*
 * The devices that have a record, in stream order: the index of the one
 * whose record type this is (or -1), and the name of the i-th (NULL past
 * the last).
 */
int devices_index(uint32_t rec_type);
const char *device_type_name(unsigned i);

#endif
