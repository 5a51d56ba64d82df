/*
 * virtio-rng (virtio 1.2, 5.4): one queue whose writable buffers the
 * device fills with bytes from the host's getrandom().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dev/virtio_devices.h"
#include "domain.h"

#define RNG_QUEUE_SIZE	64
/* At most this many bytes per request (the driver asks for far less). */
#define RNG_CHUNK	4096

static int fill(struct virtq_elem *e, char *err, size_t errlen)
{
	uint8_t buf[256];
	uint64_t off = 0, want = e->wr_len > RNG_CHUNK ? RNG_CHUNK : e->wr_len;
	ssize_t n;

	while (off < want) {
		n = getrandom(buf, want - off < sizeof(buf) ? want - off
							    : sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		virtq_write(e, off, buf, n);
		off += n;
	}
	return off;
}

static int rng_process(struct virtio_dev *d, unsigned q, char *err,
		       size_t errlen)
{
	struct virtq_elem *e = d->backend;
	struct virtq *vq = &d->vq[q];
	bool used = false;
	int ret;

	while ((ret = virtio_pop(d, q, e, err, errlen)) > 0) {
		virtq_push(vq, &d->dom->mem, e, fill(e, err, errlen));
		used = true;
	}
	if (used)
		virtio_notify(d, q);
	return ret;
}

static void rng_config_read(struct virtio_dev *d, unsigned off, void *buf,
			    unsigned len)
{
	/* No device configuration. */
}

static void rng_destroy(struct virtio_dev *d)
{
	free(d->backend);
	d->backend = NULL;
}

static const struct virtio_backend_ops rng_ops = {
	.kind = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = 0x00ff00,
	.process = rng_process,
	.config_read = rng_config_read,
	.destroy = rng_destroy,
};

struct virtio_dev *virtio_rng_new(struct domain *dom, unsigned slot,
				  char *err, size_t errlen)
{
	struct virtio_dev *d = calloc(1, sizeof(*d));

	if (!d)
		goto nomem;
	d->backend = malloc(sizeof(struct virtq_elem));
	if (!d->backend)
		goto nomem;
	if (virtio_init(d, dom, slot, &rng_ops, 0, "rng", 0, 1,
			RNG_QUEUE_SIZE) < 0) {
		snprintf(err, errlen, "virtio-rng: %s", strerror(errno));
		virtio_free(d);
		return NULL;
	}
	return d;
nomem:
	snprintf(err, errlen, "out of memory");
	virtio_free(d);
	return NULL;
}
