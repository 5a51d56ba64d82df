/*
 * vhost-net for a virtio-net device (vif vhost=1): the kernel moves the
 * frames between the guest's rings and the tap, with no exit and no copy
 * through the daemon.  The device's thread keeps the configuration and
 * relays the kernel's "used" signals as MSI-X interrupts (so masking
 * stays the transport's).  Parking the device stops vhost and takes the
 * ring positions back, so save, restore and live update see the same
 * queue state as with the userspace path; a live update opens vhost anew
 * in the new image and starts it from that state.
 */
#ifndef XEN_DEV_VIRTIO_VHOST_H
#define XEN_DEV_VIRTIO_VHOST_H

#include <stdbool.h>
#include <stddef.h>

struct virtio_dev;
struct vhost;

/* /dev/vhost-net, owned by this process.  NULL with err on failure. */
struct vhost *vhost_open(struct virtio_dev *d, char *err, size_t errlen);
void vhost_close(struct vhost *v);
/* Hand the rings and the tap to the kernel (DRIVER_OK, resume). */
int vhost_start(struct vhost *v, int tap, char *err, size_t errlen);
/* Take them back: d->vq's positions are the kernel's (park, reset). */
void vhost_stop(struct vhost *v);
bool vhost_running(const struct vhost *v);
/* A relayed call eventfd fired (ops->extra_event). */
void vhost_call(struct vhost *v, unsigned q);

#endif
