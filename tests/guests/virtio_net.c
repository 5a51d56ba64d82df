/*
 * Virtio guest: virtio-net (device id 1).  Reads the MAC, sets up RX
 * queue 0 and TX queue 1, posts receive buffers, sends one broadcast ARP
 * request (gratuitous when the target is our own address) and prints the
 * frames received within a bounded wait.
 */
#include "virtio.h"

#define NET_F_MTU               3
#define NET_F_MAC               5
#define NET_F_MRG_RXBUF         15
#define NET_F_STATUS            16
#define NET_F_CTRL_VQ           17
#define NET_F_GUEST_ANNOUNCE    21
#define NET_S_ANNOUNCE          2
#define CTRL_ANNOUNCE           3       /* class; its ACK is command 0 */

#define NET_HDR_LEN             12      /* virtio_net_hdr_v1 */
#define RX_BUFS                 8
#define RX_BUF_LEN              2048
#define FRAME_LEN               60      /* the ARP frame, padded */

static const char *const net_features[] = {
    [0] = "CSUM", [1] = "GUEST_CSUM", [2] = "CTRL_GUEST_OFFLOADS",
    [NET_F_MTU] = "MTU", [NET_F_MAC] = "MAC", [7] = "GUEST_TSO4",
    [8] = "GUEST_TSO6", [9] = "GUEST_ECN", [10] = "GUEST_UFO",
    [11] = "HOST_TSO4", [12] = "HOST_TSO6", [13] = "HOST_ECN",
    [14] = "HOST_UFO", [NET_F_MRG_RXBUF] = "MRG_RXBUF",
    [NET_F_STATUS] = "STATUS", [17] = "CTRL_VQ", [18] = "CTRL_RX",
    [19] = "CTRL_VLAN", [20] = "CTRL_RX_EXTRA", [21] = "GUEST_ANNOUNCE",
    [22] = "MQ", [23] = "CTRL_MAC_ADDR",
};

static void print_mac(const u8 *m)
{
    gprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
            m[5]);
}

/* A.B.C.D into out[4] (network order); 1 on success. */
static int parse_ip(const char *p, u8 *out)
{
    for (int i = 0; i < 4; i++) {
        u32 v = 0;
        int digits = 0;

        while (*p >= '0' && *p <= '9' && digits < 4)
            v = v * 10 + (u32)(*p++ - '0'), digits++;
        if (!digits || v > 255 || *p != (i < 3 ? '.' : 0))
            return 0;
        out[i] = (u8)v;
        p++;
    }
    return 1;
}

static void ip_arg(const char *key, const char *def, u8 *out)
{
    char buf[24];

    if (!cmdline_get(boot_info.cmdline, key, buf, sizeof(buf))) {
        parse_ip(def, out);
    } else if (!parse_ip(buf, out)) {
        gprintf("virtio guest: bad value %s=%s, using the default\n",
                key, buf);
        parse_ip(def, out);
    }
}

static void build_arp(u8 *f, const u8 *mac, const u8 *ip, const u8 *target)
{
    static const u8 arp_head[] = { 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1 };

    memset(f, 0, FRAME_LEN);
    memset(f, 0xff, 6);                     /* broadcast */
    memcpy(f + 6, mac, 6);
    memcpy(f + 12, arp_head, sizeof(arp_head));
    memcpy(f + 22, mac, 6);                 /* sender hardware address */
    memcpy(f + 28, ip, 4);
    memcpy(f + 38, target, 4);              /* target IP; its MAC is 0 */
}

static void post_rx(struct vq *rx, u8 *bufs)
{
    for (u16 i = 0; i < RX_BUFS; i++) {
        struct vbuf b = { (u64)(uintptr_t)(bufs + i * RX_BUF_LEN),
                          RX_BUF_LEN, 1 };

        vq_add(rx, i, &b, 1);
    }
    vq_kick(rx);
}

static void print_rx(const u8 *bufs, u32 id, u32 len)
{
    const u8 *f = bufs + (id % RX_BUFS) * RX_BUF_LEN + NET_HDR_LEN;
    u32 flen = len > NET_HDR_LEN ? len - NET_HDR_LEN : 0;

    gprintf("NET: rx len=%u", flen);
    if (flen >= 14) {
        gprintf(" dst=");
        print_mac(f);
        gprintf(" src=");
        print_mac(f + 6);
        gprintf(" ethertype=0x%04x", f[12] << 8 | f[13]);
    }
    if (flen >= 42 && f[12] == 0x08 && f[13] == 0x06)
        gprintf(" arp_op=%u sender_ip=%u.%u.%u.%u", f[20] << 8 | f[21],
                f[28], f[29], f[30], f[31]);
    gprintf("\n");
}

/*
 * net-announce=1: wait (net-wait) for the device to set S_ANNOUNCE, as it
 * does once a migrated or restored guest runs; then announce ourselves
 * with a gratuitous ARP and acknowledge on the control queue.
 */
static void wait_announce(struct vdev *d, struct vq *tx, struct vq *ctrl,
                          u8 *hdr, u8 *frame, const u8 *mac, const u8 *ip,
                          u64 wait)
{
    u64 deadline = rdtsc() + ms_to_tsc(wait), next;
    u8 *cmd = dma_alloc(3);
    u16 st = 0;
    u32 id, len;

    if (!(d->features & 1ull << NET_F_GUEST_ANNOUNCE)) {
        gprintf("NET: GUEST_ANNOUNCE not offered\n");
        check_failed("announce");
        return;
    }
    gprintf("NET: waiting for the announce request\n");
    while (rdtsc() < deadline) {
        st = mmio_read16(d->devcfg + 6);
        if (st & NET_S_ANNOUNCE)
            break;
        next = rdtsc() + ms_to_tsc(10);     /* a config read is an exit */
        while (rdtsc() < next)
            cpu_relax();
    }
    if (!(st & NET_S_ANNOUNCE)) {
        gprintf("NET: no announce request\n");
        check_failed("announce");
        return;
    }
    gprintf("NET: announce requested status=0x%x\n", st);
    build_arp(frame, mac, ip, ip);          /* gratuitous */
    struct vbuf b[2] = {
        { (u64)(uintptr_t)hdr, NET_HDR_LEN, 0 },
        { (u64)(uintptr_t)frame, FRAME_LEN, 0 },
    };
    vq_add(tx, 0, b, 2);
    vq_kick(tx);
    if (vq_wait(tx, timeout_ms, &id, &len) < 0)
        check_failed("announce arp");
    cmd[0] = CTRL_ANNOUNCE;
    cmd[1] = 0;
    cmd[2] = 0xff;
    struct vbuf c[2] = {
        { (u64)(uintptr_t)cmd, 2, 0 },
        { (u64)(uintptr_t)(cmd + 2), 1, 1 },
    };
    vq_add(ctrl, 0, c, 2);
    vq_kick(ctrl);
    if (vq_wait(ctrl, timeout_ms, &id, &len) < 0) {
        check_failed("announce ack");
        return;
    }
    gprintf("NET: announced ack=%u status=0x%x\n", cmd[2],
            mmio_read16(d->devcfg + 6));
}

int test_net(void)
{
    struct vdev *d = find_vdev(VIRTIO_ID_NET, cmdline_num("net", 0));
    static struct vq rx, tx, ctrl;
    u64 announce = cmdline_num("net-announce", 0);
    u8 mac[6], ip[4], target[4], *hdr, *frame, *bufs;
    u64 wait = cmdline_num("net-wait", timeout_ms);
    u64 want_rx = cmdline_num("net-rx", 1), deadline;
    u32 id, len, got = 0;

    if (!d || !d->devcfg) {
        gprintf("NET: no device\n");
        return EXIT_NODEV;
    }
    gprintf("NET: device 00:%02x.%u\n", d->pci.dev, d->pci.fn);
    if (virtio_init(d, 1ull << NET_F_MAC | 1ull << NET_F_STATUS |
                       1ull << NET_F_MTU |
                       (announce ? 1ull << NET_F_CTRL_VQ |
                                   1ull << NET_F_GUEST_ANNOUNCE : 0)) < 0 ||
        vq_setup(d, &rx, 0, VIRTIO_NO_VECTOR) < 0 ||
        vq_setup(d, &tx, 1, VIRTIO_NO_VECTOR) < 0 ||
        (announce && (d->features & 1ull << NET_F_CTRL_VQ) &&
         vq_setup(d, &ctrl, 2, VIRTIO_NO_VECTOR) < 0)) {
        gprintf("NET: init failed\n");
        return EXIT_NODEV;
    }
    virtio_driver_ok(d);
    print_features("NET:", d->features, net_features,
                   sizeof(net_features) / sizeof(net_features[0]));
    for (int i = 0; i < 6; i++)
        mac[i] = mmio_read8(d->devcfg + i);
    gprintf("NET: mac=");
    print_mac(mac);
    gprintf(" status=0x%x mtu=%u\n",
            d->features & 1ull << NET_F_STATUS ?
            mmio_read16(d->devcfg + 6) : 0,
            d->features & 1ull << NET_F_MTU ? mmio_read16(d->devcfg + 10) : 0);
    ip_arg("net-ip", "10.0.2.15", ip);
    ip_arg("net-target", "10.0.2.2", target);

    bufs = dma_alloc(RX_BUFS * RX_BUF_LEN);
    hdr = dma_alloc(NET_HDR_LEN);
    frame = dma_alloc(FRAME_LEN);
    post_rx(&rx, bufs);
    memset(hdr, 0, NET_HDR_LEN);
    build_arp(frame, mac, ip, target);
    struct vbuf b[2] = {
        { (u64)(uintptr_t)hdr, NET_HDR_LEN, 0 },
        { (u64)(uintptr_t)frame, FRAME_LEN, 0 },
    };
    vq_add(&tx, 0, b, 2);
    vq_kick(&tx);
    if (vq_wait(&tx, timeout_ms, &id, &len) < 0) {
        gprintf("NET: send timeout\n");
        check_failed("tx");
    } else {
        gprintf("NET: sent len=%u arp %u.%u.%u.%u -> %u.%u.%u.%u\n",
                FRAME_LEN, ip[0], ip[1], ip[2], ip[3], target[0], target[1],
                target[2], target[3]);
    }
    deadline = rdtsc() + ms_to_tsc(wait);
    while (got < want_rx && rdtsc() < deadline) {
        u64 now = rdtsc(), left = (deadline - now) / (tsc_khz ? tsc_khz : 1);

        if (vq_wait(&rx, left + 1, &id, &len) < 0)
            break;
        print_rx(bufs, id, len);
        got++;
    }
    gprintf("NET: rx frames=%u status=0x%02x\n", got, virtio_status(d));
    if (announce)
        wait_announce(d, &tx, &ctrl, hdr, frame, mac, ip,
                      cmdline_num("announce-wait", 60000));
    return EXIT_OK;
}
