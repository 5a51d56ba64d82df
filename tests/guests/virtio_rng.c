/* Virtio guest: virtio-rng (device id 4), two reads of 64 bytes. */
#include "virtio.h"

#define RNG_BYTES       64

/* Fills buf through the queue; returns the bytes received. */
static u32 rng_read(struct vq *q, u8 *buf)
{
    u32 got = 0;

    for (int tries = 0; got < RNG_BYTES && tries < 16; tries++) {
        struct vbuf b = { (u64)(uintptr_t)(buf + got), RNG_BYTES - got, 1 };
        s64 len = vq_request(q, &b, 1);

        if (len < 0) {
            gprintf("RNG: timeout\n");
            break;
        }
        got += (u32)len > RNG_BYTES - got ? RNG_BYTES - got : (u32)len;
    }
    return got;
}

int test_rng(void)
{
    struct vdev *d = find_vdev(VIRTIO_ID_RNG, cmdline_num("rng", 0));
    static struct vq q;
    u8 *buf[2];
    u32 got[2];
    int zero = 1;

    if (!d) {
        gprintf("RNG: no device\n");
        return EXIT_NODEV;
    }
    if (virtio_init(d, 0) < 0 || vq_setup(d, &q, 0, VIRTIO_NO_VECTOR) < 0) {
        gprintf("RNG: init failed\n");
        return EXIT_NODEV;
    }
    virtio_driver_ok(d);
    for (int i = 0; i < 2; i++) {
        buf[i] = dma_alloc(RNG_BYTES);
        memset(buf[i], 0, RNG_BYTES);
        got[i] = rng_read(&q, buf[i]);
        gprintf("RNG: read %d len=%u hex=", i + 1, got[i]);
        print_hex(buf[i], got[i]);
        gprintf("\n");
        for (u32 k = 0; k < got[i]; k++)
            zero &= !buf[i][k];
    }
    int differ = memcmp(buf[0], buf[1], RNG_BYTES) != 0;
    int ok = got[0] == RNG_BYTES && got[1] == RNG_BYTES && differ && !zero;

    gprintf("RNG: differ=%d nonzero=%d status=0x%02x ok=%d\n", differ, !zero,
            virtio_status(d), ok);
    if (!ok)
        check_failed("rng");
    return EXIT_OK;
}
