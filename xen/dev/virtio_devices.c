#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/devices.h"
#include "dev/virtio_devices.h"
#include "domain.h"
#include "log.h"
#include "rec_table.h"
#include "stream.h"

struct virtio_set {
	unsigned nr;
	struct virtio_dev *dev[PCI_SLOTS];
};

void virtio_free(struct virtio_dev *d)
{
	if (!d)
		return;
	if (d->dom)
		virtio_destroy(d);
	free(d);
}

static int add(struct virtio_set *set, struct virtio_dev *d)
{
	if (!d)
		return -1;
	set->dev[set->nr++] = d;
	return 0;
}

static void set_destroy(struct domain *dom, void *state)
{
	struct virtio_set *set = state;

	while (set->nr)
		virtio_free(set->dev[--set->nr]);
}

static int set_init(struct domain *dom, void *state, char *err,
		    size_t errlen)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < dom->cfg.nr_disks; i++)
		if (add(set, virtio_blk_new(dom, VIRTIO_SLOT_DISK0 + i, i, err,
					    errlen)) < 0)
			goto fail;
	for (i = 0; i < dom->cfg.nr_vifs; i++)
		if (add(set, virtio_net_new(dom, VIRTIO_SLOT_VIF0 + i, i, err,
					    errlen)) < 0)
			goto fail;
	if (dom->cfg.rng &&
	    add(set, virtio_rng_new(dom, VIRTIO_SLOT_RNG, err, errlen)) < 0)
		goto fail;
	for (i = 0; i < set->nr; i++) {
		if (virtio_start(set->dev[i]) < 0) {
			snprintf(err, errlen, "%s: cannot start its thread: %s",
				 set->dev[i]->label, strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	set_destroy(dom, set);
	return -EINVAL;
}

static int set_save(struct domain *dom, void *state, struct stream_writer *w)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		if (virtio_save(set->dev[i], w, w->handover) < 0)
			return -1;
	return 0;
}

static int set_load(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen)
{
	struct virtio_set *set = state;
	struct rec_dev_virtio r;
	unsigned i;

	memcpy(&r, body, sizeof(r));
	for (i = 0; i < set->nr; i++) {
		struct virtio_dev *d = set->dev[i];

		if (d->pci.slot != r.slot)
			continue;
		if (d->ops->device_id != r.device_id || d->index != r.index) {
			snprintf(err, errlen, "DEV_VIRTIO: slot %u holds "
				 "device type %u #%u in the stream, %s here",
				 r.slot, r.device_id, r.index, d->label);
			return -1;
		}
		return virtio_load(d, &r, body, err, errlen);
	}
	snprintf(err, errlen, "DEV_VIRTIO: the stream has a device of type "
		 "%u in slot %u that the domain's config does not make",
		 r.device_id, r.slot);
	return -1;
}

static void set_pause(struct domain *dom, void *state)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		virtio_pause(set->dev[i]);
}

static void set_resume(struct domain *dom, void *state)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		virtio_resume(set->dev[i]);
}

static void set_for_each_fd(struct domain *dom, void *state,
			    void (*fn)(int fd, void *arg), void *arg)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		if (set->dev[i]->backend_fd_carried >= 0)
			fn(set->dev[i]->backend_fd_carried, arg);
}

static void set_log_changed(struct domain *dom, void *state)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		virtio_log_changed(set->dev[i]);
}

static void set_takeover_done(struct domain *dom, void *state)
{
	struct virtio_set *set = state;
	unsigned i;

	for (i = 0; i < set->nr; i++)
		virtio_drop_inherited(set->dev[i]);
}

/* After the board and the legacy devices: its records come last. */
static struct device_type virtio_device = {
	.name = "virtio",
	.order = 100,
	.state_size = sizeof(struct virtio_set),
	.rec_type = REC_DEV_VIRTIO,
	.multi_record = true,
	.init = set_init,
	.destroy = set_destroy,
	.save = set_save,
	.load = set_load,
	.pause = set_pause,
	.resume = set_resume,
	.for_each_fd = set_for_each_fd,
	.takeover_done = set_takeover_done,
	.log_changed = set_log_changed,
};
DEVICE_REGISTER(virtio_device);
