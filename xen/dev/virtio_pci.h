/*
 * The virtio 1.x modern PCI transport (virtio 1.2, 4.1) and the thread
 * each device's I/O runs on.  A backend (virtio_blk.c, virtio_net.c,
 * virtio_rng.c) says what it offers and handles its queues; this file
 * owns the PCI function, the common/ISR/device/notify configuration
 * structures, feature negotiation, MSI-X, the queues' kick eventfds
 * (KVM_IOEVENTFD) and the state record.
 *
 * Threads: the guest's register accesses arrive on vCPU threads; queue
 * processing runs on the device's own thread, never on a vCPU thread or
 * the main thread.  dev->lock serializes both.  Quiesce parks the thread
 * between two batches, so nothing is in flight in a parked device.
 */
#ifndef XEN_DEV_VIRTIO_PCI_H
#define XEN_DEV_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dev/msix.h"
#include "dev/pci.h"
#include "dev/virtqueue.h"
#include "records.h"

#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_RNG		4

#define VIRTIO_F_RING_INDIRECT_DESC	28
#define VIRTIO_F_VERSION_1		32

#define VIRTIO_STATUS_ACKNOWLEDGE	0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

#define VIRTIO_QUEUES_MAX	REC_VIRTIO_QUEUES_MAX

struct virtio_dev;
struct stream_writer;

struct virtio_backend_ops {
	const char *kind;		/* "virtio-blk" */
	uint8_t device_id;
	uint32_t pci_class;
	/*
	 * Queue q's chains are available (device thread, dev->lock held).
	 * 0, or -1 with err saying how the guest's chain was malformed:
	 * the device is then marked broken.
	 */
	int (*process)(struct virtio_dev *d, unsigned q, char *err,
		       size_t errlen);
	/* Fill `len` bytes of device configuration from `off`. */
	void (*config_read)(struct virtio_dev *d, unsigned off, void *buf,
			    unsigned len);
	/* Optional: the driver wrote device configuration. */
	void (*config_write)(struct virtio_dev *d, unsigned off,
			     const void *buf, unsigned len);
	/* Optional: DRIVER_OK set (features final) / device reset. */
	void (*driver_ok)(struct virtio_dev *d);
	void (*reset)(struct virtio_dev *d);
	/* Optional: its backend fd (epoll'd by the thread) is ready. */
	int (*backend_event)(struct virtio_dev *d, uint32_t events,
			     char *err, size_t errlen);
	/* Optional: after a restore, with the record's backend fields. */
	int (*load)(struct virtio_dev *d, const struct rec_dev_virtio *r,
		    char *err, size_t errlen);
	/* Optional: fill the record's backend fields. */
	void (*save)(struct virtio_dev *d, struct rec_dev_virtio *r,
		     bool handover);
	void (*destroy)(struct virtio_dev *d);
	/*
	 * Optional, dev->lock held: the device is being parked (quiesce)
	 * with its thread; I/O done elsewhere (vhost) must stop and its
	 * state come back into d->vq.  resume() undoes it.
	 */
	void (*pause)(struct virtio_dev *d);
	void (*resume)(struct virtio_dev *d);
	/* Optional, dev->lock held: dirty logging went on or off. */
	void (*log_changed)(struct virtio_dev *d);
	/* Optional: an fd watched with virtio_watch_fd() is readable. */
	void (*extra_event)(struct virtio_dev *d, uint32_t tag);
	/* Optional, device thread, dev->lock held: virtio_set_timer()'s
	 * time came (never while the device is parked). */
	void (*timer)(struct virtio_dev *d);
};

struct virtio_dev {
	struct pci_function pci;
	struct msix msix;
	const struct virtio_backend_ops *ops;
	struct domain *dom;
	void *backend;
	char label[48];			/* "d3 virtio-blk xvda" */
	unsigned index;			/* which disk or vif */

	pthread_mutex_t lock;
	uint64_t features;		/* offered */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint8_t status, isr, generation;
	bool broken;
	uint16_t queue_select;
	uint16_t config_vector;
	uint16_t nr_queues;
	uint16_t queue_max;
	struct virtq vq[VIRTIO_QUEUES_MAX];
	unsigned cap_pci_cfg;		/* the PCI_CFG capability's offset */

	pthread_t thread;
	bool thread_started;
	int epfd;
	int ctl_fd;			/* wakes the thread to park or stop */
	pthread_cond_t cond;
	bool stop, park, parked;
	int backend_fd;			/* polled when >= 0 */
	int backend_fd_carried;		/* a live update keeps it, or -1 */
	int inherited_fd;		/* the live update's original, or -1 */
	uint32_t backend_events;
	uint64_t timer_ns;		/* ops->timer's CLOCK_MONOTONIC, or 0 */
};

/*
 * Make a device on the domain's bus at `slot`.  The backend fills in
 * features, nr_queues, queue_max, backend before virtio_start().
 */
int virtio_init(struct virtio_dev *d, struct domain *dom, unsigned slot,
		const struct virtio_backend_ops *ops, unsigned index,
		const char *name, uint64_t features, uint16_t nr_queues,
		uint16_t queue_max);
/* Start the device's thread.  0 or -1 (errno). */
int virtio_start(struct virtio_dev *d);
void virtio_destroy(struct virtio_dev *d);
/* The live update that made this device committed: close the original
 * of the fd it adopted (a rollback would have needed it). */
void virtio_drop_inherited(struct virtio_dev *d);
/* Park / unpark the device's thread (quiesce). */
void virtio_pause(struct virtio_dev *d);
void virtio_resume(struct virtio_dev *d);
/* Watch an fd of the backend's (readable: ops->extra_event(tag)). */
int virtio_watch_fd(struct virtio_dev *d, int fd, uint32_t tag, bool on);
/* Whether the thread reads the kick eventfds of queues 0..nr-1 (not
 * those vhost carries). */
void virtio_poll_kicks(struct virtio_dev *d, unsigned nr, bool on);
/*
 * Call ops->timer on the device thread in ms milliseconds (dev->lock
 * held; replaces an earlier time).
 */
void virtio_set_timer(struct virtio_dev *d, unsigned ms);
/* Watch (or stop watching: fd -1) the backend's fd for events. */
int virtio_watch_backend(struct virtio_dev *d, int fd, uint32_t events);

bool virtio_has_feature(const struct virtio_dev *d, unsigned bit);
/* virtq_pop() on queue q with the features the driver accepted. */
int virtio_pop(struct virtio_dev *d, unsigned q, struct virtq_elem *e,
	       char *err, size_t errlen);
/* Dirty logging of guest RAM went on or off (migration). */
void virtio_log_changed(struct virtio_dev *d);
/* Look at every enabled queue again (as if the guest had notified). */
void virtio_kick_all(struct virtio_dev *d);
/* Tell the driver about used chains of queue q (with dev->lock held). */
void virtio_notify(struct virtio_dev *d, unsigned q);
/* The device configuration changed. */
void virtio_config_changed(struct virtio_dev *d);
/* The guest broke the device: log once, NEEDS_RESET, stop its queues. */
void virtio_set_broken(struct virtio_dev *d, const char *why);

int virtio_save(struct virtio_dev *d, struct stream_writer *w,
		bool handover);
int virtio_load(struct virtio_dev *d, const struct rec_dev_virtio *r,
		const void *body, char *err, size_t errlen);

#endif
