/*
 * Virtio guest: malformed descriptor chains on virtio-blk (test=bad-KIND).
 * After the notify it waits a bounded time, prints the device status and
 * whether the request completed, then checks that virtio-rng still works
 * and that the blk device works again after a reset.
 */
#include "virtio.h"

#define BAD_ADDR        0x7fff00000000ull

struct bad_bufs {
    u64 hdr[2];             /* virtio_blk_outhdr: IN, sector 0 */
    u8 data[512];
    u8 status;
};

/* Descriptor `i` of q. */
static void set_desc(struct vq *q, u16 i, u64 addr, u32 len, u16 flags,
                     u16 next)
{
    q->desc[i].addr = addr;
    q->desc[i].len = len;
    q->desc[i].flags = flags;
    q->desc[i].next = next;
}

/* Header: a read (IN) of sector 0; status not yet written. */
static void init_bufs(struct bad_bufs *b)
{
    b->hdr[0] = 0;
    b->hdr[1] = 0;
    b->status = 0xee;
}

/* A well-formed read of sector 0 at descriptors 0..2, not published. */
static void good_read(struct vq *q, struct bad_bufs *b, u64 data, u32 len)
{
    init_bufs(b);
    set_desc(q, 0, (u64)(uintptr_t)b->hdr, 16, VRING_DESC_F_NEXT, 1);
    set_desc(q, 1, data, len, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
    set_desc(q, 2, (u64)(uintptr_t)&b->status, 1, VRING_DESC_F_WRITE, 0);
}

/*
 * Descriptor 0 points at an indirect table holding a chain longer than
 * the queue: header, size - 1 data buffers of 512 bytes, status (a read
 * of size - 1 sectors, well-formed but for its length).
 */
static void indirect(struct vq *q, struct bad_bufs *b)
{
    u32 n = q->size + 1u;
    struct vring_desc *t = dma_alloc(n * sizeof(*t));

    init_bufs(b);
    for (u32 i = 0; i < n; i++) {
        t[i].addr = (u64)(uintptr_t)b->data;
        t[i].len = sizeof(b->data);
        t[i].flags = VRING_DESC_F_WRITE | VRING_DESC_F_NEXT;
        t[i].next = (u16)(i + 1);
    }
    t[0] = (struct vring_desc) { (u64)(uintptr_t)b->hdr, 16,
                                 VRING_DESC_F_NEXT, 1 };
    t[n - 1] = (struct vring_desc) { (u64)(uintptr_t)&b->status, 1,
                                     VRING_DESC_F_WRITE, 0 };
    set_desc(q, 0, (u64)(uintptr_t)t, n * sizeof(*t), VRING_DESC_F_INDIRECT,
             0);
    gprintf("BAD: indirect entries=%u queue_size=%u offered=%d\n", n,
            q->size, !!(q->dev->features & 1ull << VIRTIO_F_INDIRECT_DESC));
}

/* Builds and publishes the malformed request; -1 for an unknown kind. */
static int build(const char *kind, struct vq *q, struct bad_bufs *b)
{
    u64 data = (u64)(uintptr_t)b->data;

    if (!strcmp(kind, "loop")) {
        /* Both device-readable: only the loop is wrong, not the order. */
        good_read(q, b, data, sizeof(b->data));
        q->desc[1].flags = VRING_DESC_F_NEXT;
        q->desc[1].next = 0;                /* 0 -> 1 -> 0 */
        gprintf("BAD: chain 0->1->0\n");
    } else if (!strcmp(kind, "addr")) {
        good_read(q, b, BAD_ADDR, sizeof(b->data));
        gprintf("BAD: data addr=0x%lx\n", (unsigned long)BAD_ADDR);
    } else if (!strcmp(kind, "len")) {
        good_read(q, b, data, 0xffffffff);
        gprintf("BAD: data len=0xffffffff\n");
    } else if (!strcmp(kind, "indirect")) {
        indirect(q, b);
    } else if (!strcmp(kind, "index")) {
        good_read(q, b, data, sizeof(b->data));
        for (u16 i = 0; i < q->size; i++)
            q->avail->ring[i] = 0;
        q->avail_idx = (u16)(q->size + 1);
        mb();
        q->avail->idx = q->avail_idx;
        mb();
        gprintf("BAD: avail idx=%u queue_size=%u\n", q->avail_idx, q->size);
        return 0;
    } else {
        return -1;
    }
    vq_push(q, 0);
    return 0;
}

/* Resets blk, sets it up again and reads sector 0: the status or -1. */
static int blk_again(struct vdev *d, struct bad_bufs *b)
{
    static struct vq q;
    u32 id, len;

    if (virtio_init(d, 0) < 0 || vq_setup(d, &q, 0, VIRTIO_NO_VECTOR) < 0)
        return -1;
    virtio_driver_ok(d);
    good_read(&q, b, (u64)(uintptr_t)b->data, sizeof(b->data));
    vq_push(&q, 0);
    vq_kick(&q);
    if (vq_wait(&q, timeout_ms, &id, &len) < 0)
        return -1;
    return b->status;
}

int test_bad(const char *kind)
{
    struct vdev *d = find_vdev(VIRTIO_ID_BLK, cmdline_num("blk", 0));
    static struct vq q;
    struct bad_bufs *b;
    u64 wait = cmdline_num("bad-wait", 1000);
    u32 id = 0, len = 0;
    int done, st, rc;

    if (!d) {
        gprintf("BAD: no blk device\n");
        return EXIT_NODEV;
    }
    if (virtio_init(d, 1ull << VIRTIO_F_INDIRECT_DESC) < 0 ||
        vq_setup(d, &q, 0, VIRTIO_NO_VECTOR) < 0) {
        gprintf("BAD: init failed\n");
        return EXIT_NODEV;
    }
    virtio_driver_ok(d);
    b = dma_alloc(sizeof(*b));
    if (build(kind, &q, b) < 0) {
        gprintf("BAD: unknown kind %s\n", kind);
        return EXIT_USAGE;
    }
    gprintf("BAD: %s notify\n", kind);
    vq_kick(&q);
    done = vq_wait(&q, wait, &id, &len) == 0;
    st = virtio_status(d);
    gprintf("BAD: %s completed=%d", kind, done);
    if (done)
        gprintf(" id=%u len=%u req_status=%u", id, len, b->status);
    gprintf(" used_idx=%u device_status=0x%02x needs_reset=%d\n",
            q.used->idx, st, !!(st & VIRTIO_NEEDS_RESET));
    rc = test_rng();
    st = blk_again(d, b);
    gprintf("BAD: blk after reset read status=");
    print_status(st);
    gprintf("\n");
    if (st != 0)
        check_failed("blk after reset");
    return rc;
}
