/*
 * virtio-blk (virtio 1.2, 5.2) on a raw image file or block device: read,
 * write, flush, get-id (the serial), discard and write-zeroes, read-only
 * disks, O_DIRECT (cache=none).  Requests run one after another on the
 * device's thread, synchronously: when the thread is parked no request
 * is in flight, and one the guest made available but the device had not
 * taken yet is taken by the restored device (its last_avail is saved).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev/virtio_devices.h"
#include "domain.h"
#include "log.h"

#define BLK_QUEUE_SIZE		256
#define SECTOR			512ULL
#define BLK_SERIAL_LEN		20	/* VIRTIO_BLK_ID_BYTES */
#define BLK_DISCARD_MAX		(1u << 22)	/* sectors per request */

enum {
	F_SEG_MAX = 2, F_RO = 5, F_BLK_SIZE = 6, F_FLUSH = 9,
	F_DISCARD = 13, F_WRITE_ZEROES = 14,
};

enum {
	T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11,
	T_WRITE_ZEROES = 13,
};

enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

#define WZ_UNMAP		1

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct blk {
	struct virtio_dev dev;		/* first: the device is the blk */
	struct virtq_elem elem;
	struct iovec data[VIRTQ_MAX_SEGS];
	const struct domcfg_disk *cfg;
	int fd;
	uint64_t size;			/* bytes, when opened */
	unsigned align;			/* O_DIRECT's alignment, or 1 */
};

static struct blk *blk_of(struct virtio_dev *d)
{
	return (struct blk *)d;
}

/* ------------------------------------------------------------ backend */

static int image_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size);
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	*size = st.st_size;
	return 0;
}

/* Open the image as the config says: O_NONBLOCK so a FIFO cannot hang us. */
static int blk_open(struct blk *b, char *err, size_t errlen)
{
	const struct domcfg_disk *c = b->cfg;
	int flags = (c->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		    O_NONBLOCK | O_NOCTTY | (c->direct ? O_DIRECT : 0);
	int fd = open(c->target, flags);

	if (fd < 0 && errno == EINVAL && c->direct) {
		snprintf(err, errlen, "disk %s: cache=none: the file system of "
			 "%s does not support O_DIRECT (tmpfs does not); use "
			 "cache=writeback there", c->vdev, c->target);
		return -1;
	}
	if (fd < 0) {
		snprintf(err, errlen, "disk %s: cannot open %s: %s", c->vdev,
			 c->target, strerror(errno));
		return -1;
	}
	if (image_size(fd, &b->size) < 0) {
		snprintf(err, errlen, "disk %s: %s is not a regular file or "
			 "a block device", c->vdev, c->target);
		close(fd);
		return -1;
	}
	if (b->size < SECTOR) {
		snprintf(err, errlen, "disk %s: %s is smaller than one "
			 "512-byte sector", c->vdev, c->target);
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	b->fd = fd;
	return 0;
}

/* ------------------------------------------------------------ requests */

/* The data buffers of the chain: after the header, before the status. */
static unsigned data_iov(struct blk *b, bool to_guest, uint64_t *len)
{
	const struct virtq_elem *e = &b->elem;
	uint64_t skip = to_guest ? 0 : sizeof(struct blk_req_hdr);
	uint64_t left = to_guest ? e->wr_len - 1 : e->rd_len - skip;
	unsigned first = to_guest ? e->nr_rd : 0;
	unsigned last = to_guest ? e->nr_rd + e->nr_wr : e->nr_rd;
	unsigned i, n = 0;

	*len = left;
	for (i = first; i < last && left; i++) {
		uint8_t *base = e->iov[i].iov_base;
		uint64_t l = e->iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		base += skip;
		l -= skip;
		skip = 0;
		if (l > left)
			l = left;
		b->data[n].iov_base = base;
		b->data[n++].iov_len = l;
		left -= l;
	}
	return n;
}

static bool aligned(const struct iovec *iov, unsigned n, unsigned a)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

/* O_DIRECT with guest buffers that are not aligned: through a bounce. */
static ssize_t bounce_io(struct blk *b, bool is_read, unsigned n,
			 uint64_t len, off_t off)
{
	void *buf;
	ssize_t ret;
	uint64_t done = 0;
	unsigned i;

	if (posix_memalign(&buf, 4096, len ? len : 1))
		return -1;
	if (!is_read)
		for (i = 0; i < n; done += b->data[i].iov_len, i++)
			memcpy((uint8_t *)buf + done, b->data[i].iov_base,
			       b->data[i].iov_len);
	ret = is_read ? pread(b->fd, buf, len, off)
		      : pwrite(b->fd, buf, len, off);
	if (is_read && ret > 0)
		for (i = 0, done = 0; i < n; done += b->data[i].iov_len, i++)
			memcpy(b->data[i].iov_base, (uint8_t *)buf + done,
			       b->data[i].iov_len);
	free(buf);
	return ret;
}

static uint8_t rw(struct blk *b, bool is_read, uint64_t sector,
		  uint32_t *written)
{
	uint64_t len, off = sector * SECTOR;
	unsigned n = data_iov(b, is_read, &len);
	bool bounce = b->align > 1 && !aligned(b->data, n, b->align);
	ssize_t ret;

	if (len % SECTOR || sector > b->size / SECTOR ||
	    len > b->size - off)
		return S_IOERR;
	do {
		if (bounce)
			ret = bounce_io(b, is_read, n, len, off);
		else
			ret = is_read ? preadv(b->fd, b->data, n, off)
				      : pwritev(b->fd, b->data, n, off);
	} while (ret < 0 && errno == EINTR);
	/* Within the image, so a short transfer is an error too. */
	if (ret < 0 || (uint64_t)ret != len)
		return S_IOERR;
	if (is_read)
		*written += len;
	return S_OK;
}

static int zero_range(struct blk *b, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zeros[65536];
	int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			 : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	ssize_t n;

	if (fallocate(b->fd, mode, off, len) == 0)
		return 0;
	while (len) {
		n = pwrite(b->fd, zeros, len < sizeof(zeros) ? len
							     : sizeof(zeros),
			   off);
		if (n <= 0)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static uint8_t discard_or_zero(struct blk *b, uint32_t type)
{
	struct blk_range r;
	uint64_t off, len;

	if (b->cfg->readonly)
		return S_IOERR;
	if (b->elem.rd_len != sizeof(struct blk_req_hdr) + sizeof(r))
		return S_UNSUPP;	/* one range per request (max_*_seg) */
	virtq_read(&b->elem, sizeof(struct blk_req_hdr), &r, sizeof(r));
	off = r.sector * SECTOR;
	len = (uint64_t)r.num_sectors * SECTOR;
	if (r.sector > b->size / SECTOR || len > b->size - off ||
	    r.num_sectors > BLK_DISCARD_MAX)
		return S_IOERR;
	if (type == T_DISCARD) {
		if (r.flags)
			return S_UNSUPP;
		/* Advisory: a file system that cannot punch holes is fine. */
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  off, len);
		return S_OK;
	}
	if (r.flags & ~WZ_UNMAP)
		return S_UNSUPP;
	return zero_range(b, off, len, r.flags & WZ_UNMAP) ? S_IOERR : S_OK;
}

static uint8_t get_id(struct blk *b, uint32_t *written)
{
	char id[BLK_SERIAL_LEN] = { 0 };
	uint64_t room = b->elem.wr_len - 1;

	/* Not NUL-terminated when it fills all 20 bytes (the spec's). */
	memcpy(id, b->cfg->serial, strnlen(b->cfg->serial, sizeof(id)));
	*written += virtq_write(&b->elem, 0, id, room < sizeof(id) ? room
								    : sizeof(id));
	return S_OK;
}

static uint8_t do_request(struct blk *b, const struct blk_req_hdr *h,
			  uint32_t *written)
{
	if (b->fd < 0)
		return S_IOERR;
	switch (h->type) {
	case T_IN:
		return rw(b, true, h->sector, written);
	case T_OUT:
		return b->cfg->readonly ? S_IOERR
					: rw(b, false, h->sector, written);
	case T_FLUSH:
		return fdatasync(b->fd) ? S_IOERR : S_OK;
	case T_GET_ID:
		return get_id(b, written);
	case T_DISCARD:
	case T_WRITE_ZEROES:
		return discard_or_zero(b, h->type);
	}
	return S_UNSUPP;
}

static int blk_process(struct virtio_dev *d, unsigned q, char *err,
		       size_t errlen)
{
	struct blk *b = blk_of(d);
	struct virtq_elem *e = &b->elem;
	struct virtq *vq = &d->vq[q];
	struct blk_req_hdr h;
	uint32_t written;
	uint8_t status;
	bool used = false;
	int ret;

	while ((ret = virtio_pop(d, q, e, err, errlen)) > 0) {
		if (e->rd_len < sizeof(h) || e->wr_len < 1) {
			snprintf(err, errlen, "a request without its header "
				 "or status byte (%llu readable, %llu writable "
				 "bytes)", (unsigned long long)e->rd_len,
				 (unsigned long long)e->wr_len);
			ret = -1;
			break;
		}
		virtq_read(e, 0, &h, sizeof(h));
		written = 0;
		status = do_request(b, &h, &written);
		virtq_write(e, e->wr_len - 1, &status, 1);
		virtq_push(vq, &d->dom->mem, e, written + 1);
		used = true;
	}
	if (used)
		virtio_notify(d, q);
	return ret;
}

/* ------------------------------------------------------------ config */

static void blk_config_read(struct virtio_dev *d, unsigned off, void *buf,
			    unsigned len)
{
	struct blk *b = blk_of(d);
	uint8_t cfg[60] = { 0 };
	uint64_t capacity = b->size / SECTOR;
	uint32_t v;

	memcpy(cfg + 0, &capacity, 8);
	v = BLK_QUEUE_SIZE - 2;
	memcpy(cfg + 12, &v, 4);			/* seg_max */
	v = b->align > SECTOR ? b->align : SECTOR;
	memcpy(cfg + 20, &v, 4);			/* blk_size */
	cfg[34] = 1;					/* num_queues */
	v = BLK_DISCARD_MAX;
	memcpy(cfg + 36, &v, 4);			/* max_discard_sectors */
	v = 1;
	memcpy(cfg + 40, &v, 4);			/* max_discard_seg */
	memcpy(cfg + 44, &v, 4);			/* alignment */
	v = BLK_DISCARD_MAX;
	memcpy(cfg + 48, &v, 4);		/* max_write_zeroes_sectors */
	v = 1;
	memcpy(cfg + 52, &v, 4);			/* max_write_zeroes_seg */
	cfg[56] = 1;				/* write_zeroes_may_unmap */
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off
				       ? len : sizeof(cfg) - off);
}

/* ------------------------------------------------------------ state */

static void blk_save(struct virtio_dev *d, struct rec_dev_virtio *r,
		     bool handover)
{
	struct blk *b = blk_of(d);

	r->backend_fd = handover ? b->fd : -1;
	r->backend_size = b->size;
}

/* Adopt the image fd a live update carried over, instead of reopening. */
static int adopt(struct blk *b, int fd, char *err, size_t errlen)
{
	int mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (mine < 0 || image_size(mine, &b->size) < 0) {
		snprintf(err, errlen, "disk %s: the inherited fd %d is not "
			 "a disk image", b->cfg->vdev, fd);
		if (mine >= 0)
			close(mine);
		return -1;
	}
	/* Kept open until the update commits: a rollback needs it. */
	b->dev.inherited_fd = fd;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = mine;
	b->dev.backend_fd_carried = mine;
	return 0;
}

static int blk_load(struct virtio_dev *d, const struct rec_dev_virtio *r,
		    char *err, size_t errlen)
{
	struct blk *b = blk_of(d);

	if (d->dom->inherit_fds && r->backend_fd >= 0 &&
	    adopt(b, r->backend_fd, err, errlen) < 0)
		return -1;
	if (b->fd < 0) {
		snprintf(err, errlen, "disk %s: no image open", b->cfg->vdev);
		return -1;
	}
	if (r->backend_size != b->size) {
		snprintf(err, errlen, "disk %s: %s is %llu bytes, it was %llu "
			 "when the domain was saved", b->cfg->vdev,
			 b->cfg->target, (unsigned long long)b->size,
			 (unsigned long long)r->backend_size);
		return -1;
	}
	return 0;
}

static void blk_destroy(struct virtio_dev *d)
{
	struct blk *b = blk_of(d);

	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	d->backend_fd_carried = -1;
}

static const struct virtio_backend_ops blk_ops = {
	.kind = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x018000,
	.process = blk_process,
	.config_read = blk_config_read,
	.save = blk_save,
	.load = blk_load,
	.destroy = blk_destroy,
};

struct virtio_dev *virtio_blk_new(struct domain *dom, unsigned slot,
				  unsigned index, char *err, size_t errlen)
{
	const struct domcfg_disk *c = &dom->cfg.disks[index];
	uint64_t features = 1ULL << F_SEG_MAX | 1ULL << F_BLK_SIZE |
			    1ULL << F_FLUSH | 1ULL << F_DISCARD |
			    1ULL << F_WRITE_ZEROES;
	struct blk *b = calloc(1, sizeof(*b));

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->fd = -1;
	b->cfg = c;
	b->align = c->direct ? 512 : 1;
	if (c->readonly)
		features |= 1ULL << F_RO;
	/* A live update hands the open image over (blk_load). */
	if (!dom->inherit_fds && blk_open(b, err, errlen) < 0) {
		free(b);
		return NULL;
	}
	if (virtio_init(&b->dev, dom, slot, &blk_ops, index, c->vdev,
			features, 1, BLK_QUEUE_SIZE) < 0) {
		snprintf(err, errlen, "disk %s: cannot make its device: %s",
			 c->vdev, strerror(errno));
		virtio_free(&b->dev);
		return NULL;
	}
	/* After virtio_init(), which starts it at -1. */
	b->dev.backend_fd_carried = b->fd;
	return &b->dev;
}
