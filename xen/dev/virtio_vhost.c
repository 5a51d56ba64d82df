#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dev/virtio_pci.h"
#include "dev/virtio_vhost.h"
#include "domain.h"
#include "log.h"
#include "memory.h"

#define VHOST_QUEUES	2

struct vhost {
	struct virtio_dev *dev;
	int fd;
	int call[VHOST_QUEUES];
	bool running;
};

struct vhost *vhost_open(struct virtio_dev *d, char *err, size_t errlen)
{
	struct vhost *v = calloc(1, sizeof(*v));
	unsigned q;

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->dev = d;
	v->call[0] = v->call[1] = -1;
	v->fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (v->fd < 0 || ioctl(v->fd, VHOST_SET_OWNER, NULL) < 0) {
		snprintf(err, errlen, "vhost=1: /dev/vhost-net: %s",
			 strerror(errno));
		goto fail;
	}
	for (q = 0; q < VHOST_QUEUES; q++) {
		v->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->call[q] < 0 || virtio_watch_fd(d, v->call[q], q,
						      true) < 0) {
			snprintf(err, errlen, "vhost: %s", strerror(errno));
			goto fail;
		}
	}
	return v;
fail:
	vhost_close(v);
	return NULL;
}

void vhost_close(struct vhost *v)
{
	unsigned q;

	if (!v)
		return;
	if (v->running)
		vhost_stop(v);
	for (q = 0; q < VHOST_QUEUES; q++)
		if (v->call[q] >= 0)
			close(v->call[q]);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

bool vhost_running(const struct vhost *v)
{
	return v && v->running;
}

/* Guest RAM as the kernel walks it: the two slots of memory.c. */
static int set_mem_table(struct vhost *v)
{
	struct guest_mem *m = &v->dev->dom->mem;
	struct vhost_memory *t;
	int ret;

	t = calloc(1, sizeof(*t) + 2 * sizeof(t->regions[0]));
	if (!t)
		return -1;
	t->regions[0].guest_phys_addr = 0;
	t->regions[0].memory_size = m->low_size;
	t->regions[0].userspace_addr = (uintptr_t)m->base;
	t->nregions = 1;
	if (m->size > m->low_size) {
		t->regions[1].guest_phys_addr = MEM_4G;
		t->regions[1].memory_size = m->size - m->low_size;
		t->regions[1].userspace_addr = (uintptr_t)(m->base +
							   m->low_size);
		t->nregions = 2;
	}
	ret = ioctl(v->fd, VHOST_SET_MEM_TABLE, t);
	free(t);
	return ret;
}

static int set_ring(struct vhost *v, unsigned q, int tap)
{
	struct virtio_dev *d = v->dev;
	struct virtq *vq = &d->vq[q];
	struct guest_mem *m = &d->dom->mem;
	void *desc = gpa_to_hva(m, vq->desc, 16 * vq->size);
	void *avail = gpa_to_hva(m, vq->avail, 4 + 2 * vq->size);
	void *used = gpa_to_hva(m, vq->used, 4 + 8 * vq->size);
	struct vhost_vring_state num = { .index = q, .num = vq->size };
	struct vhost_vring_state base = { .index = q,
					  .num = vq->last_avail };
	struct vhost_vring_addr addr = {
		.index = q,
		.desc_user_addr = (uintptr_t)desc,
		.avail_user_addr = (uintptr_t)avail,
		.used_user_addr = (uintptr_t)used,
	};
	struct vhost_vring_file kick = { .index = q, .fd = vq->kick_fd };
	struct vhost_vring_file call = { .index = q, .fd = v->call[q] };
	struct vhost_vring_file backend = { .index = q, .fd = tap };

	if (!desc || !avail || !used) {
		errno = EFAULT;
		return -1;
	}
	if (ioctl(v->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_CALL, &call) < 0)
		return -1;
	return ioctl(v->fd, VHOST_NET_SET_BACKEND, &backend);
}

int vhost_start(struct vhost *v, int tap, char *err, size_t errlen)
{
	struct virtio_dev *d = v->dev;
	uint64_t have, want;
	unsigned q;

	if (v->running)
		return 0;
	for (q = 0; q < VHOST_QUEUES; q++)
		if (!d->vq[q].enabled)
			return 0;	/* not set up by the driver yet */
	/* The ring's features; the tap does the offloads (its header). */
	want = d->driver_features & (1ULL << VIRTIO_F_VERSION_1 |
				     1ULL << VIRTIO_F_RING_INDIRECT_DESC);
	if (ioctl(v->fd, VHOST_GET_FEATURES, &have) < 0 ||
	    (want & ~have) || ioctl(v->fd, VHOST_SET_FEATURES, &want) < 0 ||
	    set_mem_table(v) < 0)
		goto fail;
	virtio_poll_kicks(d, VHOST_QUEUES, false);
	v->running = true;
	for (q = 0; q < VHOST_QUEUES; q++)
		if (set_ring(v, q, tap) < 0)
			goto fail_rings;
	return 0;
fail_rings:
	vhost_stop(v);
fail:
	snprintf(err, errlen, "vhost-net refused the device: %s",
		 strerror(errno));
	return -1;
}

void vhost_stop(struct vhost *v)
{
	struct virtio_dev *d = v->dev;
	struct vhost_vring_file none = { .fd = -1 };
	struct vhost_vring_state base;
	uint16_t *used;
	unsigned q;

	if (!v->running)
		return;
	for (q = 0; q < VHOST_QUEUES; q++) {
		none.index = q;
		ioctl(v->fd, VHOST_NET_SET_BACKEND, &none);
		base = (struct vhost_vring_state) { .index = q };
		if (ioctl(v->fd, VHOST_GET_VRING_BASE, &base) == 0)
			d->vq[q].last_avail = base.num;
		used = gpa_to_hva(&d->dom->mem, d->vq[q].used, 4);
		if (used)
			d->vq[q].used_idx = __atomic_load_n(&used[1],
							    __ATOMIC_ACQUIRE);
	}
	virtio_poll_kicks(d, VHOST_QUEUES, true);
	v->running = false;
}

void vhost_call(struct vhost *v, unsigned q)
{
	uint64_t n;

	if (read(v->call[q], &n, sizeof(n)) < 0)
		return;
	/* vhost wrote the used ring: pages migration must send again. */
	guest_mem_mark_dirty(&v->dev->dom->mem, v->dev->vq[q].used,
			     4 + 8 * v->dev->vq[q].size);
	virtio_notify(v->dev, q);
}
