/*
 * Split virtqueues (virtio 1.2, 2.7): taking descriptor chains the
 * driver made available and returning them used.  Everything read from
 * the guest is checked: a chain that loops, leaves RAM, is longer than
 * the queue or orders its buffers wrongly is refused, and the device
 * that owns the queue is then marked broken (virtio_pci.c).
 */
#ifndef XEN_DEV_VIRTQUEUE_H
#define XEN_DEV_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct guest_mem;

#define VIRTQ_MAX_SIZE		256
/* Segments of one chain: a queue's worth, indirect tables included. */
#define VIRTQ_MAX_SEGS		VIRTQ_MAX_SIZE

struct virtq {
	uint16_t size;
	bool enabled;
	uint16_t msix_vector;
	uint16_t last_avail;
	uint16_t used_idx;
	uint64_t desc, avail, used;	/* guest-physical */
	int kick_fd;			/* eventfd the guest's notify writes */
	uint64_t ioeventfd_addr;	/* where it is registered, or 0 */
};

/* One chain: iov[0, nr_rd) the device reads, then nr_wr it writes. */
struct virtq_elem {
	uint16_t head;
	unsigned nr_rd, nr_wr;
	uint64_t rd_len, wr_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS];
};

/*
 * Take the next available chain: 1 (into e), 0 when none is available,
 * -1 when the guest's ring or chain is malformed (err says how).
 * indirect: VIRTIO_F_RING_INDIRECT_DESC was negotiated.
 */
int virtq_pop(struct virtq *q, struct guest_mem *mem, bool indirect,
	      struct virtq_elem *e, char *err, size_t errlen);
/* Give the last popped chain back, unused (the backend cannot take it). */
void virtq_unpop(struct virtq *q);
/* Return chain e->head with `len` bytes written into it. */
void virtq_push(struct virtq *q, struct guest_mem *mem,
		const struct virtq_elem *e, uint32_t len);
/* Whether the driver wants an interrupt for what was pushed. */
bool virtq_wants_interrupt(struct virtq *q, struct guest_mem *mem);
/* Copy from/to the chain's readable/writable part; bytes copied. */
size_t virtq_read(const struct virtq_elem *e, uint64_t off, void *buf,
		  size_t len);
size_t virtq_write(const struct virtq_elem *e, uint64_t off,
		   const void *buf, size_t len);

#endif
