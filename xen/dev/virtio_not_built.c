/*
 * Built without DEV_VIRTIO: no virtio device exists, so a config that
 * asks for a disk or a network interface is refused rather than run
 * without them.  (rng, on by default, is simply absent.)
 */
#include <errno.h>
#include <stdio.h>

#include "dev/devices.h"
#include "domain.h"

static int refuse(struct domain *dom, void *state, char *err, size_t errlen)
{
	if (!dom->cfg.nr_disks && !dom->cfg.nr_vifs)
		return 0;
	snprintf(err, errlen, "%s are virtio devices, which this build "
		 "leaves out (Kconfig DEV_VIRTIO)",
		 dom->cfg.nr_disks ? "disks" : "network interfaces");
	return -EINVAL;
}

static struct device_type no_virtio_device = {
	.name = "virtio",
	.order = 100,
	.stateless = "not built: it only refuses configs that need it",
	.init = refuse,
};
DEVICE_REGISTER(no_virtio_device);
