/*
 * The virtio-pci devices of a domain, made from its config: a virtio-blk
 * per disk (slots 1-16, in the config's order, so the first disk is the
 * guest's vda), a virtio-net per vif (slots 17-24) and the virtio-rng
 * (slot 25).  One device type (virtio_devices.c) holds them all and
 * writes one DEV_VIRTIO record per device.
 */
#ifndef XEN_DEV_VIRTIO_DEVICES_H
#define XEN_DEV_VIRTIO_DEVICES_H

#include <stddef.h>

#include "dev/virtio_pci.h"

#define VIRTIO_SLOT_DISK0	1
#define VIRTIO_SLOT_VIF0	17
#define VIRTIO_SLOT_RNG		25

struct domain;

/* The config's disk `index` / vif `index`, at `slot`. */
struct virtio_dev *virtio_blk_new(struct domain *dom, unsigned slot,
				  unsigned index, char *err, size_t errlen);
struct virtio_dev *virtio_net_new(struct domain *dom, unsigned slot,
				  unsigned index, char *err, size_t errlen);
struct virtio_dev *virtio_rng_new(struct domain *dom, unsigned slot,
				  char *err, size_t errlen);
/* Stop a device made by one of the constructors and free it. */
void virtio_free(struct virtio_dev *d);

#endif
