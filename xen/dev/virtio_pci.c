#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "dev/virtio_pci.h"
#include "domain.h"
#include "monotime.h"
#include "log.h"
#include "rec_table.h"
#include "sandbox.h"
#include "stream.h"

/* BAR 4 (64-bit memory): the four configuration structures. */
#define VBAR			4
#define VBAR_SIZE		0x4000
#define COMMON_OFF		0x0000
#define COMMON_LEN		0x40
#define ISR_OFF			0x1000
#define ISR_LEN			0x4
#define DEVCFG_OFF		0x2000
#define DEVCFG_LEN		0x1000
#define NOTIFY_OFF		0x3000
#define NOTIFY_MULT		4u
/* BAR 1: the MSI-X table, then its pending bits. */
#define MSIX_BAR		1
#define MSIX_BAR_SIZE		0x1000
#define MSIX_PBA_OFF		0x800

#define CAP_COMMON		1
#define CAP_NOTIFY		2
#define CAP_ISR			3
#define CAP_DEVICE		4
#define CAP_PCI_CFG		5

/* struct virtio_pci_cap's fields, from the capability's start. */
#define VCAP_LEN		2
#define VCAP_TYPE		3
#define VCAP_BAR		4
#define VCAP_OFFSET		8
#define VCAP_LENGTH		12
#define VCAP_NOTIFY_MULT	16
#define VCAP_PCI_CFG_DATA	16

/* The common configuration structure's fields (4.1.4.3). */
enum {
	CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
	CC_MSIX_CONFIG = 0x10, CC_NUM_QUEUES = 0x12, CC_STATUS = 0x14,
	CC_GENERATION = 0x15, CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18,
	CC_Q_MSIX = 0x1a, CC_Q_ENABLE = 0x1c, CC_Q_NOTIFY_OFF = 0x1e,
	CC_Q_DESC = 0x20, CC_Q_DRIVER = 0x28, CC_Q_DEVICE = 0x30,
	CC_Q_NOTIFY_DATA = 0x38, CC_Q_RESET = 0x3a,
};

#define EV_CTL		0xffffffffu
#define EV_BACKEND	0xfffffffeu
#define EV_EXTRA	0x10000u	/* + the backend's own tag */

bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return d->driver_features & (1ULL << bit);
}

int virtio_pop(struct virtio_dev *d, unsigned q, struct virtq_elem *e,
	       char *err, size_t errlen)
{
	return virtq_pop(&d->vq[q], &d->dom->mem,
			 virtio_has_feature(d, VIRTIO_F_RING_INDIRECT_DESC),
			 e, err, errlen);
}

static struct virtq *selected(struct virtio_dev *d)
{
	return d->queue_select < d->nr_queues ? &d->vq[d->queue_select]
					      : NULL;
}

static void queue_reset(struct virtio_dev *d, unsigned q)
{
	struct virtq *vq = &d->vq[q];

	vq->size = d->queue_max;
	vq->enabled = false;
	vq->msix_vector = MSIX_NO_VECTOR;
	vq->last_avail = vq->used_idx = 0;
	vq->desc = vq->avail = vq->used = 0;
}

static void device_reset(struct virtio_dev *d)
{
	unsigned q;

	d->driver_features = 0;
	d->dfselect = d->gfselect = 0;
	d->status = d->isr = 0;
	d->broken = false;
	d->queue_select = 0;
	d->config_vector = MSIX_NO_VECTOR;
	for (q = 0; q < d->nr_queues; q++)
		queue_reset(d, q);
	if (d->ops->reset)
		d->ops->reset(d);
}

static void kick(struct virtio_dev *d, unsigned q)
{
	uint64_t one = 1;

	if (write(d->vq[q].kick_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warn("%s: queue %u: %s", d->label, q, strerror(errno));
}

void virtio_kick_all(struct virtio_dev *d)
{
	unsigned q;

	for (q = 0; q < d->nr_queues; q++)
		if (d->vq[q].enabled)
			kick(d, q);
}

static void write_status(struct virtio_dev *d, uint8_t v)
{
	uint64_t bad;

	if (!v) {
		device_reset(d);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) &&
	    !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
		bad = d->driver_features & ~d->features;
		/* Only modern drivers: without VERSION_1 it is legacy. */
		if (bad || !virtio_has_feature(d, VIRTIO_F_VERSION_1))
			v &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	if (d->broken)
		v |= VIRTIO_STATUS_NEEDS_RESET;
	if ((v & VIRTIO_STATUS_DRIVER_OK) &&
	    !(d->status & VIRTIO_STATUS_DRIVER_OK)) {
		d->status = v;
		if (d->ops->driver_ok)
			d->ops->driver_ok(d);
		virtio_kick_all(d);
		return;
	}
	d->status = v;
}

static void queue_enable(struct virtio_dev *d, struct virtq *vq)
{
	if (!vq->size || vq->size & (vq->size - 1) ||
	    vq->size > d->queue_max) {
		virtio_set_broken(d, "a queue enabled with a size that is not "
				  "a power of two up to the maximum");
		return;
	}
	vq->enabled = true;
}

static uint64_t common_read(struct virtio_dev *d, unsigned off)
{
	struct virtq *vq = selected(d);

	switch (off) {
	case CC_DFSELECT:	return d->dfselect;
	case CC_DF:		return d->dfselect < 2 ?
				       (uint32_t)(d->features >>
						  (32 * d->dfselect)) : 0;
	case CC_GFSELECT:	return d->gfselect;
	case CC_GF:		return d->gfselect < 2 ?
				       (uint32_t)(d->driver_features >>
						  (32 * d->gfselect)) : 0;
	case CC_MSIX_CONFIG:	return d->config_vector;
	case CC_NUM_QUEUES:	return d->nr_queues;
	case CC_STATUS:		return d->status;
	case CC_GENERATION:	return d->generation;
	case CC_Q_SELECT:	return d->queue_select;
	case CC_Q_NOTIFY_OFF:	return d->queue_select;
	case CC_Q_NOTIFY_DATA:	return d->queue_select;
	}
	if (!vq)
		return 0;
	switch (off) {
	case CC_Q_SIZE:		return vq->size;
	case CC_Q_MSIX:		return vq->msix_vector;
	case CC_Q_ENABLE:	return vq->enabled;
	case CC_Q_DESC:		return vq->desc;
	case CC_Q_DRIVER:	return vq->avail;
	case CC_Q_DEVICE:	return vq->used;
	}
	return 0;
}

/* A vector the table has, or NO_VECTOR (the driver reads it back). */
static uint16_t vector_or_none(struct virtio_dev *d, uint64_t v)
{
	return v < d->msix.nr ? v : MSIX_NO_VECTOR;
}

static void set_half(uint64_t *field, unsigned off, unsigned base,
		     unsigned size, uint64_t v)
{
	if (size == 8) {
		*field = v;
		return;
	}
	if (off == base)
		*field = (*field & ~0xffffffffULL) | (uint32_t)v;
	else
		*field = (*field & 0xffffffffULL) | (uint64_t)(uint32_t)v << 32;
}

static void common_write(struct virtio_dev *d, unsigned off, unsigned size,
			 uint64_t v)
{
	struct virtq *vq = selected(d);
	uint64_t half;

	switch (off) {
	case CC_DFSELECT:	d->dfselect = v; return;
	case CC_GFSELECT:	d->gfselect = v; return;
	case CC_GF:
		if (d->gfselect >= 2 ||
		    (d->status & VIRTIO_STATUS_FEATURES_OK))
			return;
		half = 0xffffffffULL << (32 * d->gfselect);
		d->driver_features = (d->driver_features & ~half) |
				     ((uint64_t)(uint32_t)v <<
				      (32 * d->gfselect));
		return;
	case CC_MSIX_CONFIG:	d->config_vector = vector_or_none(d, v);
				return;
	case CC_STATUS:		write_status(d, v); return;
	case CC_Q_SELECT:	d->queue_select = v; return;
	}
	if (!vq)
		return;
	switch (off) {
	case CC_Q_SIZE:		vq->size = v; return;
	case CC_Q_MSIX:		vq->msix_vector = vector_or_none(d, v);
				return;
	case CC_Q_ENABLE:	if (v == 1) queue_enable(d, vq); return;
	case CC_Q_DESC: case CC_Q_DESC + 4:
		set_half(&vq->desc, off, CC_Q_DESC, size, v); return;
	case CC_Q_DRIVER: case CC_Q_DRIVER + 4:
		set_half(&vq->avail, off, CC_Q_DRIVER, size, v); return;
	case CC_Q_DEVICE: case CC_Q_DEVICE + 4:
		set_half(&vq->used, off, CC_Q_DEVICE, size, v); return;
	}
}

static void devcfg_access(struct virtio_dev *d, unsigned off, bool is_write,
			  unsigned size, uint8_t *data)
{
	if (is_write) {
		if (d->ops->config_write)
			d->ops->config_write(d, off, data, size);
		return;
	}
	memset(data, 0, size);
	d->ops->config_read(d, off, data, size);
}

/* BAR 4: one access, dev->lock held. */
static void vbar_access(struct virtio_dev *d, uint64_t off, bool is_write,
			unsigned size, uint8_t *data)
{
	uint64_t v = 0;

	if (off < COMMON_OFF + COMMON_LEN) {
		if (is_write) {
			memcpy(&v, data, size);
			common_write(d, off, size, v);
		} else {
			v = common_read(d, off);
			memcpy(data, &v, size);
		}
	} else if (off >= ISR_OFF && off < ISR_OFF + ISR_LEN) {
		if (!is_write) {
			memset(data, 0, size);
			data[0] = d->isr;	/* reading clears it */
			d->isr = 0;
		}
	} else if (off >= DEVCFG_OFF && off < DEVCFG_OFF + DEVCFG_LEN) {
		devcfg_access(d, off - DEVCFG_OFF, is_write, size, data);
	} else if (!is_write) {
		memset(data, 0, size);
	}
}

static int vbar_mmio(struct vcpu *vcpu, void *opaque, uint64_t off,
		     bool is_write, unsigned size, uint8_t *data)
{
	struct virtio_dev *d = opaque;
	unsigned q;

	/* A notify KVM's ioeventfd did not catch (another width). */
	if (off >= NOTIFY_OFF && off < NOTIFY_OFF + NOTIFY_MULT * d->nr_queues) {
		q = (off - NOTIFY_OFF) / NOTIFY_MULT;
		if (is_write)
			kick(d, q);
		else
			memset(data, 0, size);
		return 0;
	}
	pthread_mutex_lock(&d->lock);
	vbar_access(d, off, is_write, size, data);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int msix_mmio(struct vcpu *vcpu, void *opaque, uint64_t off,
		     bool is_write, unsigned size, uint8_t *data)
{
	struct virtio_dev *d = opaque;

	return msix_bar_access(&d->msix, off, is_write, size, data);
}

/* ------------------------------------------------ kick eventfds */

static int ioeventfd(struct virtio_dev *d, unsigned q, uint64_t addr,
		     bool assign)
{
	struct kvm_ioeventfd e = {
		.addr = addr,
		.len = 2,
		.fd = d->vq[q].kick_fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	return ioctl(d->dom->vm_fd, KVM_IOEVENTFD, &e);
}

/* BAR 4 moved: the notify addresses move with it. */
static void bar_changed(struct pci_function *f, unsigned i)
{
	struct virtio_dev *d = f->opaque;
	struct pci_bar *b = &f->bar[VBAR];
	uint64_t addr;
	unsigned q;

	if (i != VBAR)
		return;
	for (q = 0; q < d->nr_queues; q++) {
		struct virtq *vq = &d->vq[q];

		if (vq->ioeventfd_addr)
			ioeventfd(d, q, vq->ioeventfd_addr, false);
		vq->ioeventfd_addr = 0;
		if (!b->mapped)
			continue;
		addr = b->addr + NOTIFY_OFF + q * NOTIFY_MULT;
		/* Without it the MMIO exit path still kicks the queue. */
		if (ioeventfd(d, q, addr, true) == 0)
			vq->ioeventfd_addr = addr;
	}
}

/* ------------------------------------------------ configuration space */

static void pci_cfg_window(struct virtio_dev *d, bool is_write)
{
	struct pci_function *f = &d->pci;
	unsigned cap = d->cap_pci_cfg;
	uint32_t off = pci_get32(f, cap + VCAP_OFFSET);
	uint32_t len = pci_get32(f, cap + VCAP_LENGTH);
	uint8_t data[4];

	if (f->cfg[cap + VCAP_BAR] != VBAR || (len != 1 && len != 2 &&
	    len != 4) || off % len || off >= VBAR_SIZE)
		return;
	memcpy(data, f->cfg + cap + VCAP_PCI_CFG_DATA, 4);
	if (off >= NOTIFY_OFF) {
		if (is_write && off < NOTIFY_OFF + NOTIFY_MULT * d->nr_queues)
			kick(d, (off - NOTIFY_OFF) / NOTIFY_MULT);
		return;
	}
	pthread_mutex_lock(&d->lock);
	vbar_access(d, off, is_write, len, data);
	pthread_mutex_unlock(&d->lock);
	if (!is_write)
		memcpy(f->cfg + cap + VCAP_PCI_CFG_DATA, data, 4);
}

static bool touches(unsigned off, unsigned len, unsigned start,
		    unsigned n)
{
	return off < start + n && off + len > start;
}

static void config_written(struct pci_function *f, unsigned off,
			   unsigned len)
{
	struct virtio_dev *d = f->opaque;

	msix_config_written(&d->msix, off, len);
	if (touches(off, len, d->cap_pci_cfg + VCAP_PCI_CFG_DATA, 4))
		pci_cfg_window(d, true);
}

static void config_read(struct pci_function *f, unsigned off, unsigned len)
{
	struct virtio_dev *d = f->opaque;

	if (touches(off, len, d->cap_pci_cfg + VCAP_PCI_CFG_DATA, 4))
		pci_cfg_window(d, false);
}

static int add_vcap(struct pci_function *f, uint8_t type, unsigned bar,
		    uint32_t off, uint32_t len, unsigned caplen)
{
	unsigned c = pci_add_cap(f, PCI_CAP_ID_VNDR, caplen);

	if (!c)
		return -1;
	f->cfg[c + VCAP_LEN] = caplen;
	f->cfg[c + VCAP_TYPE] = type;
	f->cfg[c + VCAP_BAR] = bar;
	pci_set32(f, c + VCAP_OFFSET, off);
	pci_set32(f, c + VCAP_LENGTH, len);
	return c;
}

static int add_caps(struct virtio_dev *d)
{
	struct pci_function *f = &d->pci;
	int c;

	if (add_vcap(f, CAP_COMMON, VBAR, COMMON_OFF, COMMON_LEN, 16) < 0 ||
	    add_vcap(f, CAP_ISR, VBAR, ISR_OFF, ISR_LEN, 16) < 0 ||
	    add_vcap(f, CAP_DEVICE, VBAR, DEVCFG_OFF, DEVCFG_LEN, 16) < 0)
		return -1;
	c = add_vcap(f, CAP_NOTIFY, VBAR, NOTIFY_OFF,
		     NOTIFY_MULT * d->nr_queues, 20);
	if (c < 0)
		return -1;
	pci_set32(f, c + VCAP_NOTIFY_MULT, NOTIFY_MULT);
	c = add_vcap(f, CAP_PCI_CFG, 0, 0, 0, 20);
	if (c < 0)
		return -1;
	/* bar, offset, length and data are the driver's. */
	f->wmask[c + VCAP_BAR] = 0xff;
	memset(f->wmask + c + VCAP_OFFSET, 0xff, 12);
	d->cap_pci_cfg = c;
	return msix_init(&d->msix, f, d->nr_queues + 1, MSIX_BAR,
			 MSIX_PBA_OFF);
}

/* ------------------------------------------------ interrupts */

void virtio_notify(struct virtio_dev *d, unsigned q)
{
	struct virtq *vq = &d->vq[q];

	if (!virtq_wants_interrupt(vq, &d->dom->mem))
		return;
	d->isr |= 1;
	if (msix_enabled(&d->msix) && vq->msix_vector != MSIX_NO_VECTOR)
		msix_notify(&d->msix, vq->msix_vector);
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->generation++;
	d->isr |= 2;
	if (msix_enabled(&d->msix) && d->config_vector != MSIX_NO_VECTOR)
		msix_notify(&d->msix, d->config_vector);
}

void virtio_set_broken(struct virtio_dev *d, const char *why)
{
	if (d->broken)
		return;
	d->broken = true;
	log_err("%s: %s: device broken until the guest resets it",
		d->label, why);
	if (d->status & VIRTIO_STATUS_DRIVER_OK) {
		d->status |= VIRTIO_STATUS_NEEDS_RESET;
		virtio_config_changed(d);
	}
}

/* ------------------------------------------------ the device thread */

static bool may_process(struct virtio_dev *d, unsigned q)
{
	return (d->status & VIRTIO_STATUS_DRIVER_OK) && !d->broken &&
	       q < d->nr_queues && d->vq[q].enabled;
}

static void handle_event(struct virtio_dev *d, const struct epoll_event *ev)
{
	char err[256];
	uint64_t n;
	uint32_t q = ev->data.u32;
	int ret = 0;

	if (q == EV_CTL) {
		if (read(d->ctl_fd, &n, sizeof(n)) < 0)
			n = 0;
		return;
	}
	if (q >= EV_EXTRA && q < EV_BACKEND) {
		if (d->ops->extra_event)
			d->ops->extra_event(d, q - EV_EXTRA);
		return;
	}
	if (q == EV_BACKEND) {
		if (d->ops->backend_event && !d->broken)
			ret = d->ops->backend_event(d, ev->events, err,
						    sizeof(err));
	} else {
		if (read(d->vq[q].kick_fd, &n, sizeof(n)) < 0)
			n = 0;
		if (may_process(d, q))
			ret = d->ops->process(d, q, err, sizeof(err));
	}
	if (ret < 0) {
		char why[300];

		snprintf(why, sizeof(why), "queue %u: %s",
			 q == EV_BACKEND ? 0 : q, err);
		virtio_set_broken(d, why);
	}
}

/* epoll_wait()'s timeout: until ops->timer's time, or for ever. */
static int timer_wait_ms(struct virtio_dev *d)
{
	uint64_t at = __atomic_load_n(&d->timer_ns, __ATOMIC_RELAXED);
	uint64_t now;

	if (!at)
		return -1;
	now = (uint64_t)now_ns();
	return at <= now ? 0 : (int)((at - now + 999999) / 1000000);
}

static void run_timer(struct virtio_dev *d)
{
	if (!d->timer_ns || (uint64_t)now_ns() < d->timer_ns)
		return;
	d->timer_ns = 0;
	if (d->ops->timer)
		d->ops->timer(d);
}

static void *thread_main(void *arg)
{
	struct virtio_dev *d = arg;
	struct epoll_event ev[8];
	int n, i;

	sandbox_thread_enter(SANDBOX_DEVICE, d->dom->id, d->label);
	for (;;) {
		n = epoll_wait(d->epfd, ev, 8, timer_wait_ms(d));
		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&d->lock);
		while (d->park && !d->stop) {
			d->parked = true;
			pthread_cond_broadcast(&d->cond);
			pthread_cond_wait(&d->cond, &d->lock);
		}
		d->parked = false;
		if (d->stop) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		for (i = 0; i < n; i++)
			handle_event(d, &ev[i]);
		run_timer(d);
		pthread_mutex_unlock(&d->lock);
	}
	sandbox_thread_leave();
	return NULL;
}

static void wake(struct virtio_dev *d)
{
	uint64_t one = 1;

	if (write(d->ctl_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: cannot wake its thread: %s", d->label,
			 strerror(errno));
}

void virtio_set_timer(struct virtio_dev *d, unsigned ms)
{
	__atomic_store_n(&d->timer_ns, (uint64_t)now_ns() + ms * 1000000ull,
			 __ATOMIC_RELAXED);
	wake(d);		/* its epoll_wait() takes the new time */
}

void virtio_pause(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->park = true;
	if (d->thread_started) {
		wake(d);
		while (!d->parked)
			pthread_cond_wait(&d->cond, &d->lock);
	}
	/* I/O the kernel does for the device (vhost) stops too. */
	if (d->ops->pause)
		d->ops->pause(d);
	pthread_mutex_unlock(&d->lock);
}

void virtio_resume(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->park = false;
	if (d->ops->resume)
		d->ops->resume(d);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void virtio_log_changed(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	if (d->ops->log_changed)
		d->ops->log_changed(d);
	pthread_mutex_unlock(&d->lock);
}

int virtio_watch_fd(struct virtio_dev *d, int fd, uint32_t tag, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u32 = EV_EXTRA + tag };

	return epoll_ctl(d->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd,
			 &ev);
}

void virtio_poll_kicks(struct virtio_dev *d, unsigned nr, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned q;

	for (q = 0; q < nr && q < d->nr_queues; q++) {
		ev.data.u32 = q;
		epoll_ctl(d->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
			  d->vq[q].kick_fd, &ev);
	}
}

static int epoll_watch(struct virtio_dev *d, int fd, uint32_t events,
		       uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int virtio_watch_backend(struct virtio_dev *d, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = EV_BACKEND };

	if (fd < 0) {
		if (d->backend_fd >= 0)
			epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->backend_fd, NULL);
		d->backend_fd = -1;
		return 0;
	}
	if (d->backend_fd == fd && d->backend_events == events)
		return 0;
	if (epoll_ctl(d->epfd, d->backend_fd == fd ? EPOLL_CTL_MOD
						   : EPOLL_CTL_ADD,
		      fd, &ev) < 0)
		return -1;
	d->backend_fd = fd;
	d->backend_events = events;
	return 0;
}

/* ------------------------------------------------ life cycle */

static int make_fds(struct virtio_dev *d)
{
	unsigned q;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->epfd < 0 || d->ctl_fd < 0 ||
	    epoll_watch(d, d->ctl_fd, EPOLLIN, EV_CTL) < 0)
		return -1;
	for (q = 0; q < d->nr_queues; q++) {
		d->vq[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->vq[q].kick_fd < 0 ||
		    epoll_watch(d, d->vq[q].kick_fd, EPOLLIN, q) < 0)
			return -1;
	}
	return 0;
}

int virtio_init(struct virtio_dev *d, struct domain *dom, unsigned slot,
		const struct virtio_backend_ops *ops, unsigned index,
		const char *name, uint64_t features, uint16_t nr_queues,
		uint16_t queue_max)
{
	struct pci_function *f = &d->pci;
	unsigned q;

	d->dom = dom;
	d->ops = ops;
	d->index = index;
	d->epfd = d->ctl_fd = d->backend_fd = -1;
	d->backend_fd_carried = d->inherited_fd = -1;
	for (q = 0; q < VIRTIO_QUEUES_MAX; q++)
		d->vq[q].kick_fd = -1;
	snprintf(d->label, sizeof(d->label), "d%u %s %s", dom->id, ops->kind,
		 name);
	if (!nr_queues || nr_queues > VIRTIO_QUEUES_MAX ||
	    queue_max > VIRTQ_MAX_SIZE)
		return -1;
	d->features = features | (1ULL << VIRTIO_F_VERSION_1) |
		      (1ULL << VIRTIO_F_RING_INDIRECT_DESC);
	d->nr_queues = nr_queues;
	d->queue_max = queue_max;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	pci_function_init(f, d->label, 0x1af4, 0x1040 + ops->device_id, 1,
			  ops->pci_class, 0x1af4, 0x1100);
	f->opaque = d;
	f->config_written = config_written;
	f->config_read = config_read;
	f->bar_changed = bar_changed;
	if (pci_add_bar(f, MSIX_BAR, MSIX_BAR_SIZE, false, msix_mmio, d) < 0 ||
	    pci_add_bar(f, VBAR, VBAR_SIZE, true, vbar_mmio, d) < 0 ||
	    add_caps(d) < 0 || make_fds(d) < 0)
		return -1;
	device_reset(d);
	if (msix_attach(&d->msix, dom) < 0)
		return -1;
	return pci_plug(dom, f, slot);
}

int virtio_start(struct virtio_dev *d)
{
	if (pthread_create(&d->thread, NULL, thread_main, d))
		return -1;
	d->thread_started = true;
	return 0;
}

void virtio_drop_inherited(struct virtio_dev *d)
{
	if (d->inherited_fd >= 0)
		close(d->inherited_fd);
	d->inherited_fd = -1;
}

void virtio_destroy(struct virtio_dev *d)
{
	unsigned q;

	if (d->thread_started) {
		pthread_mutex_lock(&d->lock);
		d->stop = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		wake(d);
		pthread_join(d->thread, NULL);
		d->thread_started = false;
	}
	pci_unplug(&d->pci);
	/* The VM goes next and takes its ioeventfds with it (msix.c). */
	for (q = 0; q < VIRTIO_QUEUES_MAX; q++) {
		if (d->vq[q].kick_fd >= 0)
			close(d->vq[q].kick_fd);
		d->vq[q].kick_fd = -1;
	}
	if (d->ops && d->ops->destroy)
		d->ops->destroy(d);
	if (d->msix.f)
		msix_destroy(&d->msix, d->dom);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->ctl_fd >= 0)
		close(d->ctl_fd);
	d->epfd = d->ctl_fd = -1;
}

/* ------------------------------------------------ state */

int virtio_save(struct virtio_dev *d, struct stream_writer *w,
		bool handover)
{
	size_t len = rec_virtio_size(d->nr_queues, d->msix.nr);
	struct rec_dev_virtio *r = calloc(1, len);
	struct rec_virtq *q;
	struct rec_msix_entry *table;
	unsigned i;
	int ret;

	if (!r)
		return -1;
	pthread_mutex_lock(&d->lock);
	*r = (struct rec_dev_virtio) {
		.slot = d->pci.slot, .device_id = d->ops->device_id,
		.index = d->index, .status = d->status,
		.config_generation = d->generation, .isr = d->isr,
		.broken = d->broken, .nr_queues = d->nr_queues,
		.msix_entries = d->msix.nr, .queue_select = d->queue_select,
		.config_msix_vector = d->config_vector,
		.device_feature_select = d->dfselect,
		.driver_feature_select = d->gfselect,
		.driver_features = d->driver_features, .backend_fd = -1,
	};
	memcpy(r->pci_config, d->pci.cfg, sizeof(r->pci_config));
	q = (struct rec_virtq *)(r + 1);
	for (i = 0; i < d->nr_queues; i++) {
		q[i] = (struct rec_virtq) {
			.size = d->vq[i].size, .enabled = d->vq[i].enabled,
			.msix_vector = d->vq[i].msix_vector,
			.last_avail = d->vq[i].last_avail,
			.used_idx = d->vq[i].used_idx,
			.desc = d->vq[i].desc, .driver = d->vq[i].avail,
			.device = d->vq[i].used,
		};
	}
	table = (struct rec_msix_entry *)(q + d->nr_queues);
	msix_save(&d->msix, table, (uint64_t *)(table + d->msix.nr));
	if (d->ops->save)
		d->ops->save(d, r, handover);
	pthread_mutex_unlock(&d->lock);
	/* Newer than the format: older readers skip it. */
	ret = stream_write_record(w, REC_DEV_VIRTIO, REC_F_OPTIONAL, r, len);
	free(r);
	return ret;
}

int virtio_load(struct virtio_dev *d, const struct rec_dev_virtio *r,
		const void *body, char *err, size_t errlen)
{
	const struct rec_virtq *q = (const void *)((const uint8_t *)body +
						   sizeof(*r));
	struct rec_msix_entry table[MSIX_MAX];
	uint64_t pba;
	unsigned i;

	if (r->nr_queues != d->nr_queues || r->msix_entries != d->msix.nr) {
		snprintf(err, errlen, "%s: the stream has %u queues and %u "
			 "MSI-X vectors, this device %u and %u", d->label,
			 r->nr_queues, r->msix_entries, d->nr_queues,
			 d->msix.nr);
		return -1;
	}
	if (d->ops->load && d->ops->load(d, r, err, errlen) < 0)
		return -1;
	memcpy(table, q + r->nr_queues, r->msix_entries * sizeof(table[0]));
	memcpy(&pba, (const uint8_t *)(q + r->nr_queues) +
	       r->msix_entries * sizeof(table[0]), sizeof(pba));
	pci_load_config(&d->pci, r->pci_config);
	pthread_mutex_lock(&d->lock);
	d->status = r->status;
	d->generation = r->config_generation;
	d->isr = r->isr;
	d->broken = r->broken;
	d->queue_select = r->queue_select;
	d->config_vector = vector_or_none(d, r->config_msix_vector);
	d->dfselect = r->device_feature_select;
	d->gfselect = r->driver_feature_select;
	d->driver_features = r->driver_features & d->features;
	for (i = 0; i < d->nr_queues; i++) {
		struct virtq *vq = &d->vq[i];

		vq->size = q[i].size;
		vq->enabled = q[i].enabled;
		vq->msix_vector = vector_or_none(d, q[i].msix_vector);
		vq->last_avail = q[i].last_avail;
		vq->used_idx = q[i].used_idx;
		vq->desc = q[i].desc;
		vq->avail = q[i].driver;
		vq->used = q[i].device;
		if (vq->size > d->queue_max)
			vq->enabled = false;
	}
	if ((d->status & VIRTIO_STATUS_DRIVER_OK) && d->ops->driver_ok)
		d->ops->driver_ok(d);
	msix_load(&d->msix, table, &pba);
	/* What the guest made available before the save is done now. */
	virtio_kick_all(d);
	pthread_mutex_unlock(&d->lock);
	return 0;
}
