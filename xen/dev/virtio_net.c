/*
 * virtio-net (virtio 1.2, 5.1) on a tap device: a receive and a transmit
 * queue, the MAC and link status in the device configuration, checksum
 * and TSO offloads passed through to the tap with the virtio-net header
 * (IFF_VNET_HDR).  The tap is made (or opened, if it exists) with the
 * vif's name and attached to its bridge; a live update carries the open
 * tap over, so the link never goes down and no packet queued in it is
 * lost.  A restored or migrated guest is announced with RARPs from its
 * MAC once it runs, as QEMU's announce_self does, so bridges and
 * switches learn at once where it went.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dev/virtio_devices.h"
#include "dev/virtio_vhost.h"
#include "domain.h"
#include "log.h"

#define NET_QUEUE_SIZE	256
#define RXQ		0
#define TXQ		1
#define CTRLQ		2	/* vif announce=1 only */
#define NET_HDR_LEN	12	/* virtio_net_hdr_v1 (num_buffers) */

enum {
	F_CSUM = 0, F_GUEST_CSUM = 1, F_MAC = 5, F_GUEST_TSO4 = 7,
	F_GUEST_TSO6 = 8, F_HOST_TSO4 = 11, F_HOST_TSO6 = 12, F_STATUS = 16,
	F_CTRL_VQ = 17, F_GUEST_ANNOUNCE = 21,
};

#define S_LINK_UP	1
#define S_ANNOUNCE	2

/* The control queue's commands (virtio 1.2, 5.1.6.5). */
#define CTRL_ANNOUNCE		3	/* class */
#define CTRL_ANNOUNCE_ACK	0	/* its command */
#define CTRL_OK			0
#define CTRL_ERR		1

/* QEMU's announce defaults: 5 rounds, the first at once, then 50 ms
 * apart, the gap growing by 100 ms each round (50, 150, 250, 350). */
#define ANNOUNCE_ROUNDS		5
#define ANNOUNCE_INITIAL_MS	50
#define ANNOUNCE_STEP_MS	100

struct net {
	struct virtio_dev dev;		/* first: the device is the net */
	struct virtq_elem elem;
	const struct domcfg_vif *cfg;
	int tap;
	char ifname[IFNAMSIZ];
	bool rx_wait;			/* no receive buffers: tap not read */
	bool tx_wait;			/* tap full: waiting to write */
	struct vhost *vhost;		/* vhost=1: the kernel's data path */
	/* Restored: announce once it runs (rounds left, the next gap). */
	bool announce_pending;
	unsigned announce_left, announce_gap_ms;
	/* VIRTIO_NET_S_ANNOUNCE: the guest is to announce itself too. */
	bool guest_announce;
};

static struct net *net_of(struct virtio_dev *d)
{
	return (struct net *)d;
}

/* ------------------------------------------------------------ the tap */

static int link_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ret;

	if (s < 0)
		return -1;
	ret = ioctl(s, req, ifr);
	close(s);
	return ret;
}

static int tap_up(const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (link_ioctl(SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return link_ioctl(SIOCSIFFLAGS, &ifr);
}

static int bridge_add(const char *bridge, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
	ifr.ifr_ifindex = if_nametoindex(name);
	if (!ifr.ifr_ifindex)
		return -1;
	return link_ioctl(SIOCBRADDIF, &ifr);
}

static int tap_open(struct net *n, char *err, size_t errlen)
{
	struct ifreq ifr = { 0 };
	int hdr = NET_HDR_LEN, fd;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "vif %s: cannot open /dev/net/tun: %s",
			 n->ifname, strerror(errno));
		return -1;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", n->ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errlen, "vif %s: cannot make or open the tap: %s",
			 n->ifname, strerror(errno));
		goto fail;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		snprintf(err, errlen, "vif %s: the tap refuses virtio-net "
			 "headers: %s", n->ifname, strerror(errno));
		goto fail;
	}
	if (tap_up(n->ifname) < 0) {
		snprintf(err, errlen, "vif %s: cannot bring the tap up: %s",
			 n->ifname, strerror(errno));
		goto fail;
	}
	if (n->cfg->bridge && bridge_add(n->cfg->bridge, n->ifname) < 0) {
		snprintf(err, errlen, "vif %s: cannot attach it to bridge %s: "
			 "%s", n->ifname, n->cfg->bridge, strerror(errno));
		goto fail;
	}
	n->tap = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

/* What the guest's features let the tap hand it (TUNSETOFFLOAD). */
static void set_offloads(struct net *n)
{
	struct virtio_dev *d = &n->dev;
	unsigned off = 0;

	if (virtio_has_feature(d, F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (virtio_has_feature(d, F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (virtio_has_feature(d, F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	if (ioctl(n->tap, TUNSETOFFLOAD, off) < 0)
		log_warn("%s: TUNSETOFFLOAD %#x: %s", d->label, off,
			 strerror(errno));
}

static void watch(struct net *n)
{
	uint32_t ev = (n->rx_wait ? 0 : EPOLLIN) | (n->tx_wait ? EPOLLOUT : 0);

	if (vhost_running(n->vhost))
		ev = 0;		/* the kernel reads and writes the tap */
	if (n->tap >= 0 && virtio_watch_backend(&n->dev, n->tap, ev) < 0)
		log_warn("%s: cannot watch the tap: %s", n->dev.label,
			 strerror(errno));
}

/* ------------------------------------------------------------ queues */

static bool queue_live(struct virtio_dev *d, unsigned q)
{
	return (d->status & VIRTIO_STATUS_DRIVER_OK) && !d->broken &&
	       d->vq[q].enabled;
}

/* Frames from the tap into the guest's receive buffers. */
static int receive(struct net *n, char *err, size_t errlen)
{
	struct virtio_dev *d = &n->dev;
	struct virtq_elem *e = &n->elem;
	uint16_t one = 1;
	bool used = false;
	ssize_t len;
	int ret = 0;

	while (!n->rx_wait) {
		if (!queue_live(d, RXQ)) {
			n->rx_wait = true;
			break;
		}
		ret = virtio_pop(d, RXQ, e, err, errlen);
		if (ret <= 0) {
			n->rx_wait = ret == 0;
			break;
		}
		if (e->nr_rd || e->wr_len < NET_HDR_LEN) {
			snprintf(err, errlen, "a receive buffer of %llu "
				 "bytes, or one the device would read",
				 (unsigned long long)e->wr_len);
			ret = -1;
			break;
		}
		len = readv(n->tap, e->iov, e->nr_wr);
		if (len < 0) {
			virtq_unpop(&d->vq[RXQ]);
			break;		/* EAGAIN: nothing queued */
		}
		/* One buffer per frame (no MRG_RXBUF): num_buffers is 1. */
		virtq_write(e, 10, &one, sizeof(one));
		virtq_push(&d->vq[RXQ], &d->dom->mem, e, len);
		used = true;
	}
	if (used)
		virtio_notify(d, RXQ);
	watch(n);
	return ret < 0 ? -1 : 0;
}

/* Frames the guest sent, to the tap. */
static int transmit(struct net *n, char *err, size_t errlen)
{
	struct virtio_dev *d = &n->dev;
	struct virtq_elem *e = &n->elem;
	bool used = false;
	int ret = 0;

	while (!n->tx_wait && queue_live(d, TXQ)) {
		ret = virtio_pop(d, TXQ, e, err, errlen);
		if (ret <= 0)
			break;
		if (e->nr_wr || e->rd_len < NET_HDR_LEN) {
			snprintf(err, errlen, "a transmit buffer of %llu "
				 "bytes, or one the device would write",
				 (unsigned long long)e->rd_len);
			ret = -1;
			break;
		}
		if (writev(n->tap, e->iov, e->nr_rd) < 0 && errno == EAGAIN) {
			virtq_unpop(&d->vq[TXQ]);
			n->tx_wait = true;
			break;
		}
		/* Other errors drop the frame, as a wire would. */
		virtq_push(&d->vq[TXQ], &d->dom->mem, e, 0);
		used = true;
	}
	if (used)
		virtio_notify(d, TXQ);
	watch(n);
	return ret < 0 ? -1 : 0;
}

/*
 * The control queue: the only command taken is ANNOUNCE_ACK, the guest
 * saying it has announced itself (clears S_ANNOUNCE); others get ERR.
 */
static int control(struct net *n, char *err, size_t errlen)
{
	struct virtio_dev *d = &n->dev;
	struct virtq_elem *e = &n->elem;
	uint8_t cmd[2], ack;
	bool used = false;
	int ret = 0;

	while (queue_live(d, CTRLQ)) {
		ret = virtio_pop(d, CTRLQ, e, err, errlen);
		if (ret <= 0)
			break;
		if (e->rd_len < sizeof(cmd) || e->wr_len < 1) {
			snprintf(err, errlen, "a control command of %llu "
				 "bytes with %llu for its answer",
				 (unsigned long long)e->rd_len,
				 (unsigned long long)e->wr_len);
			return -1;
		}
		virtq_read(e, 0, cmd, sizeof(cmd));
		ack = CTRL_ERR;
		if (cmd[0] == CTRL_ANNOUNCE && cmd[1] == CTRL_ANNOUNCE_ACK &&
		    virtio_has_feature(d, F_GUEST_ANNOUNCE)) {
			n->guest_announce = false;
			ack = CTRL_OK;
			log_info("%s: the guest announced itself", d->label);
		}
		virtq_write(e, 0, &ack, 1);
		virtq_push(&d->vq[CTRLQ], &d->dom->mem, e, 1);
		used = true;
	}
	if (used)
		virtio_notify(d, CTRLQ);
	return ret < 0 ? -1 : 0;
}

static int net_process(struct virtio_dev *d, unsigned q, char *err,
		       size_t errlen)
{
	struct net *n = net_of(d);

	if (q == CTRLQ)
		return control(n, err, errlen);
	if (n->tap < 0)
		return 0;
	if (q == RXQ) {
		n->rx_wait = false;
		return receive(n, err, errlen);
	}
	return transmit(n, err, errlen);
}

static int net_backend_event(struct virtio_dev *d, uint32_t events,
			     char *err, size_t errlen)
{
	struct net *n = net_of(d);

	if (events & EPOLLOUT) {
		n->tx_wait = false;
		if (transmit(n, err, errlen) < 0)
			return -1;
	}
	if (events & EPOLLIN)
		return receive(n, err, errlen);
	return 0;
}

/*
 * Hand the queues to vhost, unless the device is parked (its state may
 * still be loading, or be another image's) or migration is logging dirty
 * pages:
 * vhost's writes would not be in the log, so the userspace path, whose
 * writes are, carries the device until logging stops.
 */
static void vhost_go(struct net *n)
{
	char err[160];

	if (!n->vhost || n->tap < 0 || n->dev.broken || n->dev.park ||
	    !(n->dev.status & VIRTIO_STATUS_DRIVER_OK) ||
	    __atomic_load_n(&n->dev.dom->mem.dev_log, __ATOMIC_ACQUIRE))
		return;
	if (vhost_start(n->vhost, n->tap, err, sizeof(err)) < 0)
		log_warn("%s: %s; frames go through the daemon instead",
			 n->dev.label, err);
	else if (vhost_running(n->vhost))
		log_info("%s: vhost-net carries its queues", n->dev.label);
}

static void net_driver_ok(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	if (n->tap < 0)
		return;
	set_offloads(n);
	n->rx_wait = n->tx_wait = false;
	vhost_go(n);
	watch(n);
}

static void net_pause(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	if (vhost_running(n->vhost))
		vhost_stop(n->vhost);
}

/*
 * A guest that took GUEST_ANNOUNCE announces itself too (gratuitous ARP,
 * IPv6 neighbour advertisements: the addresses only it knows), told so
 * by S_ANNOUNCE and a configuration change interrupt; its ANNOUNCE_ACK
 * on the control queue clears it (virtio 1.2, 5.1.6.5.4).
 */
static void ask_guest_to_announce(struct net *n)
{
	struct virtio_dev *d = &n->dev;

	if (!(d->status & VIRTIO_STATUS_DRIVER_OK) || d->broken ||
	    !virtio_has_feature(d, F_GUEST_ANNOUNCE))
		return;
	n->guest_announce = true;
	virtio_config_changed(d);
}

static void net_resume(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	/* Also a device restored parked (its driver_ok ran meanwhile). */
	vhost_go(n);
	n->rx_wait = n->tx_wait = false;
	watch(n);
	/* What arrived in the rings meanwhile, if userspace carries them. */
	if (!vhost_running(n->vhost) && (d->status & VIRTIO_STATUS_DRIVER_OK))
		virtio_kick_all(d);
	/* Restored or migrated in, and running now: announce it. */
	if (n->announce_pending) {
		n->announce_pending = false;
		n->announce_left = ANNOUNCE_ROUNDS;
		n->announce_gap_ms = ANNOUNCE_INITIAL_MS;
		virtio_set_timer(d, 0);
		ask_guest_to_announce(n);
	}
}

/* Migration logs dirty pages: the userspace path, whose writes are
 * logged, takes over from vhost until logging stops, then gives back. */
static void net_log_changed(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	if (!n->vhost)
		return;
	if (vhost_running(n->vhost))
		vhost_stop(n->vhost);
	vhost_go(n);
	n->rx_wait = n->tx_wait = false;
	watch(n);
	if (!vhost_running(n->vhost) && (d->status & VIRTIO_STATUS_DRIVER_OK))
		virtio_kick_all(d);
}

static void net_extra_event(struct virtio_dev *d, uint32_t tag)
{
	vhost_call(net_of(d)->vhost, tag);
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	if (vhost_running(n->vhost))
		vhost_stop(n->vhost);
	n->rx_wait = true;
	n->tx_wait = false;
	n->guest_announce = false;
	watch(n);
}

static void net_config_read(struct virtio_dev *d, unsigned off, void *buf,
			    unsigned len)
{
	struct net *n = net_of(d);
	uint8_t cfg[10] = { 0 };
	uint16_t status = S_LINK_UP | (n->guest_announce ? S_ANNOUNCE : 0);

	memcpy(cfg, n->cfg->mac, 6);
	memcpy(cfg + 6, &status, 2);
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off
				       ? len : sizeof(cfg) - off);
}

/* ------------------------------------------------------------ state */

/* A RARP from the guest's MAC (QEMU's announce_self). */
static void announce(struct net *n)
{
	uint8_t frame[NET_HDR_LEN + 60] = { 0 };
	uint8_t *eth = frame + NET_HDR_LEN;
	static const uint8_t rarp[] = {
		0x80, 0x35,		/* ethertype RARP */
		0x00, 0x01, 0x08, 0x00,	/* Ethernet, IPv4 */
		0x06, 0x04, 0x00, 0x03,	/* sizes, reverse request */
	};

	memset(eth, 0xff, 6);
	memcpy(eth + 6, n->cfg->mac, 6);
	memcpy(eth + 12, rarp, sizeof(rarp));
	memcpy(eth + 22, n->cfg->mac, 6);	/* sender MAC */
	memcpy(eth + 32, n->cfg->mac, 6);	/* target MAC */
	if (write(n->tap, frame, sizeof(frame)) < 0)
		log_warn("%s: cannot announce the guest's MAC: %s",
			 n->dev.label, strerror(errno));
}

/* One round of the announce; the next one later. */
static void net_timer(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	if (!n->announce_left || n->tap < 0)
		return;
	announce(n);
	if (--n->announce_left) {
		virtio_set_timer(d, n->announce_gap_ms);
		n->announce_gap_ms += ANNOUNCE_STEP_MS;
	} else {
		log_info("%s: announced the guest's MAC (%u RARPs)",
			 d->label, ANNOUNCE_ROUNDS);
	}
}

static void net_save(struct virtio_dev *d, struct rec_dev_virtio *r,
		     bool handover)
{
	r->backend_fd = handover ? net_of(d)->tap : -1;
}

static int net_load(struct virtio_dev *d, const struct rec_dev_virtio *r,
		    char *err, size_t errlen)
{
	struct net *n = net_of(d);
	struct ifreq ifr;
	int fd;

	if (d->dom->inherit_fds && r->backend_fd >= 0) {
		fd = fcntl(r->backend_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			snprintf(err, errlen, "vif %s: the inherited tap fd "
				 "%d: %s", n->ifname, r->backend_fd,
				 strerror(errno));
			return -1;
		}
		/* That number may hold anything if the fd was not kept. */
		memset(&ifr, 0, sizeof(ifr));
		if (ioctl(fd, TUNGETIFF, &ifr) < 0 ||
		    strncmp(ifr.ifr_name, n->ifname, sizeof(ifr.ifr_name))) {
			snprintf(err, errlen, "vif %s: the inherited fd %d is "
				 "not its tap", n->ifname, r->backend_fd);
			close(fd);
			return -1;
		}
		/* Kept open until the update commits: a rollback needs it. */
		d->inherited_fd = r->backend_fd;
		n->tap = fd;
		d->backend_fd_carried = fd;
		return 0;
	}
	if (n->tap < 0) {
		snprintf(err, errlen, "vif %s: no tap", n->ifname);
		return -1;
	}
	/*
	 * Not now: a migrated guest still runs on its source until the
	 * handover, and its frames there would teach the bridges the old
	 * port again.  Once it runs here (net_resume()).
	 */
	n->announce_pending = true;
	return 0;
}

static void net_destroy(struct virtio_dev *d)
{
	struct net *n = net_of(d);

	virtio_watch_backend(d, -1, 0);
	vhost_close(n->vhost);
	n->vhost = NULL;
	if (n->tap >= 0)
		close(n->tap);
	n->tap = -1;
	d->backend_fd_carried = -1;
}

static const struct virtio_backend_ops net_ops = {
	.kind = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = 0x020000,
	.process = net_process,
	.config_read = net_config_read,
	.driver_ok = net_driver_ok,
	.reset = net_reset,
	.backend_event = net_backend_event,
	.save = net_save,
	.load = net_load,
	.destroy = net_destroy,
	.pause = net_pause,
	.resume = net_resume,
	.extra_event = net_extra_event,
	.log_changed = net_log_changed,
	.timer = net_timer,
};

struct virtio_dev *virtio_net_new(struct domain *dom, unsigned slot,
				  unsigned index, char *err, size_t errlen)
{
	const struct domcfg_vif *c = &dom->cfg.vifs[index];
	uint64_t features = 1ULL << F_CSUM | 1ULL << F_GUEST_CSUM |
			    1ULL << F_MAC | 1ULL << F_GUEST_TSO4 |
			    1ULL << F_GUEST_TSO6 | 1ULL << F_HOST_TSO4 |
			    1ULL << F_HOST_TSO6 | 1ULL << F_STATUS;
	struct net *n = calloc(1, sizeof(*n));
	unsigned queues = 2;

	if (c->guest_announce) {
		features |= 1ULL << F_CTRL_VQ | 1ULL << F_GUEST_ANNOUNCE;
		queues = 3;
	}
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->tap = -1;
	n->cfg = c;
	n->rx_wait = true;
	if (c->vifname)
		snprintf(n->ifname, sizeof(n->ifname), "%s", c->vifname);
	else
		snprintf(n->ifname, sizeof(n->ifname), "vif%u.%u", dom->id,
			 index);
	if (!c->mac_set) {
		snprintf(err, errlen, "vif %s: no MAC address", n->ifname);
		free(n);
		return NULL;
	}
	/* A live update hands the open tap over (net_load). */
	if (!dom->inherit_fds && tap_open(n, err, errlen) < 0) {
		free(n);
		return NULL;
	}
	if (virtio_init(&n->dev, dom, slot, &net_ops, index, n->ifname,
			features, queues, NET_QUEUE_SIZE) < 0) {
		snprintf(err, errlen, "vif %s: cannot make its device: %s",
			 n->ifname, strerror(errno));
		virtio_free(&n->dev);
		return NULL;
	}
	/* After virtio_init(), which starts it at -1. */
	n->dev.backend_fd_carried = n->tap;
	if (c->vhost) {
		char why[128];

		n->vhost = vhost_open(&n->dev, why, sizeof(why));
		if (!n->vhost) {
			snprintf(err, errlen, "vif %s: %s", n->ifname, why);
			virtio_free(&n->dev);
			return NULL;
		}
	}
	return &n->dev;
}
