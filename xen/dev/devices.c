/* The device registry: every emulated device type, and each domain's set
 * of their states. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "dev/devices.h"
#include "domain.h"
#include "log.h"
#include "rec_table.h"
#include "stream.h"

struct device_set {
	unsigned nr;		/* slots made so far, in order */
	void *state[];
};

static struct device_type *types;	/* ascending order */
static unsigned nr_types;

/* Constructors run in link order: keep the list sorted instead. */
void device_register(struct device_type *t)
{
	struct device_type **p = &types;
	unsigned slot = 0;

	while (*p && (*p)->order <= t->order)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	for (t = types; t; t = t->next)
		t->slot = slot++;
	nr_types = slot;
}

static const struct device_type *type_at(unsigned slot)
{
	const struct device_type *t;

	for (t = types; t && t->slot != slot; t = t->next)
		;
	return t;
}

void *device_state(const struct domain *dom, const struct device_type *t)
{
	const struct device_set *set = dom->devices;

	return set && t->slot < set->nr ? set->state[t->slot] : NULL;
}

static int check_stateless(const struct device_type *t)
{
	if (!t->stateless || !*t->stateless) {
		log_err("device %s has no state record and says not why: "
			"refusing to run", t->name);
		return -1;
	}
	if (t->save || t->load) {
		log_err("device %s saves and loads but names no record",
			t->name);
		return -1;
	}
	return 0;
}

static int check_device_record(const struct device_type *t)
{
	const struct rec_desc *d = rec_desc(t->rec_type);
	const struct device_type *o;

	/*
	 * Restore refuses a stream without a required record
	 * (rec_table.c); one the table does not require is written
	 * optional (devices.h).
	 */
	if (!t->save || !t->load || t->stateless || !d ||
	    d->phase != PH_DEVICES ||
	    !(d->flags & REC_ONCE) != t->multi_record) {
		log_err("device %s: record %#x is not a device record of the "
			"record table, with save and load: refusing to run",
			t->name, t->rec_type);
		return -1;
	}
	for (o = types; o != t; o = o->next) {
		if (o->rec_type == t->rec_type) {
			log_err("devices %s and %s share record %#x", o->name,
				t->name, t->rec_type);
			return -1;
		}
	}
	return 0;
}

int devices_check(void)
{
	const struct device_type *t;

	for (t = types; t; t = t->next) {
		if (t->next && t->next->order == t->order) {
			log_err("devices %s and %s share order %u", t->name,
				t->next->name, t->order);
			return -1;
		}
		if (t->rec_type ? check_device_record(t) : check_stateless(t))
			return -1;
	}
	return 0;
}

static int device_init_one(struct domain *dom, const struct device_type *t,
			   char *err, size_t errlen)
{
	struct device_set *set = dom->devices;
	void *state = NULL;
	int ret;

	if (t->state_size) {
		state = calloc(1, t->state_size);
		if (!state)
			return -1;
	}
	set->state[t->slot] = state;
	set->nr = t->slot + 1;
	ret = t->init ? t->init(dom, state, err, errlen) : 0;
	if (ret < 0) {
		set->nr = t->slot;
		set->state[t->slot] = NULL;
		free(state);
		return ret == -1 ? -EIO : ret;
	}
	return 0;
}

int devices_init(struct domain *dom, char *err, size_t errlen)
{
	const struct device_type *t;
	char why[256];
	int ret;

	dom->devices = calloc(1, sizeof(*dom->devices) +
			      nr_types * sizeof(void *));
	if (!dom->devices) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (t = types; t; t = t->next) {
		why[0] = '\0';
		ret = device_init_one(dom, t, why, sizeof(why));
		if (ret < 0) {
			snprintf(err, errlen, "device %s: %s", t->name,
				 why[0] ? why : "setup failed");
			log_err("d%u: %s", dom->id, err);
			devices_destroy(dom);
			return ret;
		}
	}
	return 0;
}

/* Tear down in reverse order; the ports the devices claimed go too. */
void devices_destroy(struct domain *dom)
{
	struct device_set *set = dom->devices;
	const struct device_type *t;

	if (!set)
		return;
	while (set->nr > 0) {
		t = type_at(--set->nr);
		if (t->destroy)
			t->destroy(dom, set->state[t->slot]);
		free(set->state[t->slot]);
	}
	dom->ports.nr = 0;
	dom->mmio.nr = 0;
	free(set);
	dom->devices = NULL;
}

void devices_pause(struct domain *dom)
{
	const struct device_type *t;

	if (!dom->devices || dom->devices_paused)
		return;
	for (t = types; t; t = t->next)
		if (t->pause && device_state(dom, t))
			t->pause(dom, device_state(dom, t));
	dom->devices_paused = true;
}

void devices_resume(struct domain *dom)
{
	const struct device_type *t;

	if (!dom->devices || !dom->devices_paused)
		return;
	dom->devices_paused = false;
	for (t = types; t; t = t->next)
		if (t->resume && device_state(dom, t))
			t->resume(dom, device_state(dom, t));
}

void devices_log_changed(struct domain *dom)
{
	const struct device_type *t;

	if (!dom->devices)
		return;
	for (t = types; t; t = t->next)
		if (t->log_changed && device_state(dom, t))
			t->log_changed(dom, device_state(dom, t));
}

void devices_takeover_done(struct domain *dom)
{
	const struct device_type *t;

	if (!dom->devices)
		return;
	for (t = types; t; t = t->next)
		if (t->takeover_done && device_state(dom, t))
			t->takeover_done(dom, device_state(dom, t));
}

void devices_for_each_fd(struct domain *dom, void (*fn)(int fd, void *arg),
			 void *arg)
{
	const struct device_type *t;

	if (!dom->devices)
		return;
	for (t = types; t; t = t->next)
		if (t->for_each_fd && device_state(dom, t))
			t->for_each_fd(dom, device_state(dom, t), fn, arg);
}

static const struct device_type *type_by_rec(uint32_t rec_type, int *index)
{
	const struct device_type *t;
	int i = 0;

	for (t = types; t; t = t->next) {
		if (!t->rec_type)
			continue;
		if (t->rec_type == rec_type)
			break;
		i++;
	}
	if (index)
		*index = t ? i : -1;
	return t;
}

int devices_index(uint32_t rec_type)
{
	int i;

	if (!rec_type)
		return -1;
	type_by_rec(rec_type, &i);
	return i;
}

const char *device_type_name(unsigned i)
{
	const struct device_type *t;

	for (t = types; t; t = t->next)
		if (t->rec_type && i-- == 0)
			return t->name;
	return NULL;
}

int devices_save(struct domain *dom, struct stream_writer *w)
{
	const struct device_type *t;

	if (!dom->devices) {
		log_err("d%u: no devices to save", dom->id);
		return -1;
	}
	for (t = types; t; t = t->next)
		if (t->rec_type &&
		    t->save(dom, device_state(dom, t), w) < 0)
			return -1;
	return 0;
}

int devices_load(struct domain *dom, uint32_t type, const void *body,
		 size_t len, char *err, size_t errlen)
{
	const struct device_type *t = type ? type_by_rec(type, NULL) : NULL;

	if (!t)
		return 0;
	if (!dom->devices) {
		snprintf(err, errlen, "%s: the domain has no devices",
			 rec_type_name(type));
		return -1;
	}
	if (t->load(dom, device_state(dom, t), body, len, err, errlen) < 0)
		return -1;
	return 1;
}
