"""Live migration over TLS between two "hosts": two daemons in two network
namespaces joined by a veth pair (tests/netns.py), talking TLS 1.3 with
mutual X.509 certificates made by certtool (tests/tlscerts.py) over the
veth addresses (docs/migration.md).

As in test_migration.py, every test checks the guest by its own
verification (errors=0, a counter that keeps growing) and wants it on
exactly one side.  A peer with a wrong certificate is refused in the
handshake: the source has sent no byte of state (wire_bytes 0), the
destination's log names the refusal and it has no domain, and the guest
counts on at the source.  No test has a wall-time threshold."""
import os
import random
import socket

import pytest

import tlscerts
import miglib
from harness import (CounterWatch, Daemon, build_has, require_binaries,
                     require_kvm, scaled, stop_and_check, wait_until)
from miglib import Cut, Proxy, assert_only_on, wait_dropped, wait_exit, \
    wait_phase
from netns import VethPair, in_netns

pytestmark = pytest.mark.skipif(not build_has("MIGRATION"),
                                reason="MIGRATION is not in this build")

PORT = 8002
# A busy guest that converges on any link these tests meet: it rewrites a
# 2 MiB working set at 8 MiB/s, and migrate() allows scaled(1000) ms of
# downtime (10 s in the QEMU test host, whose TCG CPU has no AES-NI: TLS
# runs there at well under 1 MiB/s).
BUSY = "ws=2M rate=2000"


class Host:
    """A daemon in one namespace of `net`, with a tls-creds-x509
    directory; it accepts migrations on its veth address."""

    def __init__(self, root, net, side, creds, listen=True):
        os.makedirs(root)
        self.ip = net.addr[side]
        self.addr = f"{self.ip}:{PORT}"
        self.creds = creds
        args = ["--migrate-tls", creds]
        if listen:
            args += ["--migrate-listen", self.addr]
        self.d = Daemon(root, extra_args=args, prefix=net.prefix(side))
        self.d.start()


@pytest.fixture
def net():
    require_binaries()
    require_kvm()
    n = VethPair()
    yield n
    n.remove()


@pytest.fixture
def ca(tmp_path):
    return tlscerts.CA(str(tmp_path / "ca"))


@pytest.fixture
def hosts(tmp_path, net):
    """hosts(side, creds) starts a Host; all are stopped and checked."""
    made = []

    def make(side, creds, listen=True):
        h = Host(str(tmp_path / f"host{len(made)}"), net, side, creds,
                 listen)
        made.append(h)
        return h
    yield make
    problems = [stop_and_check(h.d) for h in made
                if not getattr(h, "killed", False)]
    assert not any(problems), problems


def good_creds(ca, path, net, side, name):
    """A server pair for the side's address and a client pair."""
    return ca.creds_dir(path, server=[net.addr[side]], client=name)


@pytest.fixture
def pair(tmp_path, net, ca, hosts):
    a = hosts(0, good_creds(ca, str(tmp_path / "ca-a"), net, 0, "host-a"))
    b = hosts(1, good_creds(ca, str(tmp_path / "ca-b"), net, 1, "host-b"))
    return a, b


def migrate(src, dst, dom, *opts, check=True, timeout=120):
    """Over TLS to dst's address (dst: a Host, or anything with addr),
    with scaled(1000) ms of downtime allowed unless opts say."""
    if "--max-downtime" not in opts:
        opts += ("--max-downtime", str(int(scaled(1000))))
    insecure = "--insecure" in opts
    opts = tuple(o for o in opts if o != "--insecure")
    return miglib.migrate(src, dst.addr, dom, *opts, insecure=insecure,
                          check=check, timeout=timeout)


def test_idle_and_busy_guests_migrate_over_tls(pair):
    a, b = pair
    assert a.d.call("info")["migrate_tls"] == a.creds
    a.d.start_counter("idle", interval=200, cmdline_extra="rate=0")
    busy = a.d.start_counter("busy", interval=200, cmdline_extra=BUSY)
    busy.assert_counting()
    for name in ("idle", "busy"):
        rep = migrate(a, b, name)
        assert rep["state"] == "completed"
        assert rep["wire_bytes"] > 0
        assert_only_on(b, a, name)
        CounterWatch(b.d, name).assert_counting(lines=2)
    log = b.d.log()
    assert f"incoming migration from {a.ip}:" in log, log
    assert "(TLS1.3" in log and "certificate 'CN=host-a" in log, log
    assert "migrated in as 'busy'" in log
    # And back, the busy one compressed: each side is a source and a
    # destination with its own pairs.
    migrate(b, a, "busy", "--compress", "lz4")
    assert_only_on(a, b, "busy")
    CounterWatch(a.d, "busy").assert_counting(lines=2)


def test_four_connections_over_tls(pair):
    """--connections 4 between the two hosts: each page connection is
    authenticated as the main one (the destination logs the client
    certificate of each), and the busy guest counts on with errors=0,
    there and back."""
    a, b = pair
    a.d.start_counter("busy", interval=200, cmdline_extra=BUSY)
    for src, dst in ((a, b), (b, a)):
        rep = migrate(src, dst, "busy", "--connections", "4")
        assert rep["state"] == "completed"
        assert_only_on(dst, src, "busy")
        log = dst.d.log()
        assert "incoming migration of busy: 3 page connections" in log, log
        assert log.count(f"incoming migration from {src.ip}:") == 4, log
        CounterWatch(dst.d, "busy").assert_counting(lines=2)


# case (see wrong_creds()): (what the destination's log says, what xl
# migrate says).  The side that checks a certificate names what is wrong
# with it; the other side names the TLS alert it got.
WRONG = {
    "client-other-ca": ("issuer is unknown", "alert 'Certificate is bad'"),
    "client-expired": ("expired certificate", "alert 'Certificate is bad'"),
    "client-without-cert": ("sent no certificate",
                            "alert 'Certificate is required'"),
    "server-other-ca": ("alert 'Certificate is bad'", "issuer is unknown"),
    "server-wrong-address": ("alert 'Certificate is bad'",
                             "name in the certificate does not match"),
}


def wrong_creds(case, tmp_path, net, ca):
    """(source dir, destination dir) for one case of WRONG."""
    src = str(tmp_path / "src-creds")
    dst = str(tmp_path / "dst-creds")
    other = tlscerts.CA(str(tmp_path / "other-ca"), cn="someone else")
    ca.creds_dir(src)
    ca.creds_dir(dst)
    if case == "client-other-ca":
        other.issue(src, "client", "intruder")
    elif case == "client-expired":
        ca.issue(src, "client", "old", expired=True)
    elif case != "client-without-cert":
        ca.issue(src, "client", "host-a")
    if case == "server-other-ca":
        other.issue(dst, "server", "impostor", ips=[net.addr[1]])
    elif case == "server-wrong-address":
        ca.issue(dst, "server", "elsewhere", ips=["10.77.250.9"])
    else:
        ca.issue(dst, "server", "host-b", ips=[net.addr[1]])
    return src, dst


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_certificate_is_refused_before_state(tmp_path, net, ca, hosts,
                                                   case):
    src_creds, dst_creds = wrong_creds(case, tmp_path, net, ca)
    a = hosts(0, src_creds, listen=False)
    b = hosts(1, dst_creds)
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=4M rate=5000")
    dst_says, xl_says = WRONG[case]
    r = migrate(a, b, "g", check=False)
    assert r.returncode != 0
    assert "migration failed" in r.err and xl_says in r.err, r.err
    # Refused in the handshake: not a byte of the stream went out.
    st = a.d.call("migrate-status", domain="g")
    assert st["state"] == "failed" and st["wire_bytes"] == 0, st
    log = b.d.log()
    assert f"incoming migration from {a.ip}:" in log, log
    assert "refused: TLS handshake" in log and dst_says in log, log
    assert "migrated in" not in log and not b.d.domains()
    w.mark()
    w.assert_counting(lines=2)
    assert_only_on(a, b, "g")


def test_plain_tcp_to_a_tls_destination_is_refused(pair, net):
    """A hello in the clear (an --insecure source, a port scan) never
    reaches the protocol; the destination logs it and serves on."""
    a, b = pair

    def plain_hello():
        s = socket.create_connection((b.ip, PORT), timeout=scaled(30))
        s.sendall(b"XKVM-MIGRATE 1 min=1 max=2 paused=0 name=x\n")
        data = s.recv(4096)
        s.close()
        return data
    data = in_netns(net.ns[0], plain_hello)
    assert b"OK" not in data
    wait_until(lambda: "refused: TLS handshake" in b.d.log() or None,
               scaled(30), "the destination logging the refusal")
    # --insecure is for loopback only, and a TLS listener stays up.
    a.d.start_counter("g", interval=200)
    r = migrate(a, b, "g", "--insecure", check=False)
    assert r.returncode != 0 and "loopback" in r.err, r.err
    migrate(a, b, "g")
    CounterWatch(b.d, "g").assert_counting(lines=1)


def test_insecure_listener_off_loopback_is_refused(tmp_path, net):
    root = str(tmp_path / "d")
    os.makedirs(root)
    d = Daemon(root, extra_args=["--migrate-listen", f"{net.addr[1]}:{PORT}",
                                 "--migrate-insecure"],
               prefix=net.prefix(1))
    with pytest.raises(RuntimeError):
        d.start()
    assert "--migrate-tls" in d.log() + d.read_file("xen.stderr")


def test_cancel_over_tls(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra=BUSY)
    p = miglib.start_migrate(a, b.addr, "g", "--bandwidth", "2",
                             insecure=False)
    wait_phase(a, "g", ("precopy",))
    a.d.xl("migrate-cancel", "g")
    assert wait_exit(p) != 0
    assert "cancelled" in p.err, p.err
    assert a.d.call("migrate-status", domain="g")["state"] == "cancelled"
    wait_dropped(b, "g")
    assert_only_on(a, b, "g")
    w.mark()
    w.assert_counting(lines=2)
    migrate(a, b, "g")
    CounterWatch(b.d, "g").assert_counting(lines=1)


def test_connection_cut_over_tls(pair, net):
    """A proxy in the destination's namespace, on its veth address (the
    name the server certificate carries), cuts the TLS connection after
    N bytes: in the handshake, in the hello, in the stream."""
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra=BUSY)
    rng = random.Random(11)
    limits = [10, 300, 2000, 6000] + [rng.randrange(6000, 6 << 20)
                                      for _ in range(3)]
    for limit in limits:
        proxy = in_netns(net.ns[1], lambda: Proxy(
            PORT, Cut(src_bytes=limit), host=b.ip))
        r = migrate(a, proxy, "g", check=False)
        proxy.close()
        if r.returncode == 0:      # the cut came after the whole stream
            assert_only_on(b, a, "g")
            migrate(b, a, "g")
            w = CounterWatch(a.d, "g")
        else:
            assert "migration failed" in r.err, r.err
            wait_dropped(b, "g")
            assert_only_on(a, b, "g")
        w.mark()
        w.assert_counting(lines=1)


def test_destination_killed_mid_stream_over_tls(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=2000")
    p = miglib.start_migrate(a, b.addr, "g", "--bandwidth", "2",
                             insecure=False)
    wait_phase(a, "g", ("precopy",))
    b.d.proc.kill()
    b.d.proc.wait()
    b.killed = True
    assert wait_exit(p) != 0
    assert "migration failed" in p.err, p.err
    assert a.d.domains()["g"]["state"] == "running"
    w.mark()
    w.assert_counting(lines=2)


def test_silent_peer_times_out_over_tls(pair, net):
    """A destination that accepts the connection and never answers the
    handshake: the source gives up after its I/O timeout (30 s) and the
    guest runs on."""
    a, _ = pair
    lsn = in_netns(net.ns[1], socket.socket)
    lsn.bind((net.addr[1], 0))
    lsn.listen(1)
    port = lsn.getsockname()[1]
    w = a.d.start_counter("g", interval=200)
    try:
        silent = type("P", (), {"addr": f"{net.addr[1]}:{port}"})
        r = migrate(a, silent, "g", check=False)
    finally:
        lsn.close()
    assert r.returncode != 0 and "timed out" in r.err, r.err
    w.mark()
    w.assert_counting(lines=2)


def _bridge_in_each(net, br="xkbr0"):
    """A bridge named br, up, in each host's namespace (a vif's tap
    joins it; the tests listen on it); its name."""
    from netns import ip
    for ns in net.ns:
        ip("-n", ns, "link", "add", br, "type", "bridge")
        ip("-n", ns, "link", "set", br, "up")
    return br


def test_migration_announces_the_mac_on_the_destination(pair, net):
    """The destination announces a migrated guest's MAC from its tap,
    with QEMU's five RARP rounds, once the guest runs there: none while
    it is kept paused (-p), five on its bridge once unpaused, and five
    on the other host's bridge when it migrates back without -p.  Each
    host has a bridge its vif's tap joins; the test listens on it."""
    from test_virtio import assert_rarp, rarps, tap_socket
    a, b = pair
    br = _bridge_in_each(net)
    mac = "00:16:3e:5a:01:07"
    want = bytes.fromhex(mac.replace(":", ""))
    done = "announced the guest's MAC (5 RARPs)"
    a.d.start_counter("g", interval=200,
                      extra=f"vif = [ 'mac={mac}, bridge={br}' ]\n")
    for src, dst, side, opts in ((a, b, 1, ("-p",)), (b, a, 0, ())):
        s = in_netns(net.ns[side], lambda: tap_socket(br))
        try:
            seen = dst.d.log().count(done)
            migrate(src, dst, "g", *opts)
            if opts:
                assert not rarps(s, 1, want, lambda: True), \
                    "a RARP before the guest runs"
                dst.d.xl("unpause", "g")
            frames = rarps(s, 5, want,
                           lambda: dst.d.log().count(done) > seen)
        finally:
            s.close()
        assert len(frames) == 5, (len(frames), dst.d.log()[-2000:])
        for f in frames:
            assert_rarp(f, want)
        assert_only_on(dst, src, "g")
        CounterWatch(dst.d, "g").assert_counting(lines=2)


def test_guest_announces_itself_after_migration(pair, net):
    """A vif with announce=1 offers VIRTIO_NET_F_GUEST_ANNOUNCE and a
    control queue.  The virtio guest takes them and waits for the
    device's announce request; it migrates while waiting.  Once it runs
    on the destination the device sets VIRTIO_NET_S_ANNOUNCE: the guest
    sees it, sends a gratuitous ARP (seen on the destination's bridge,
    beside the daemon's RARPs) and acknowledges on the control queue,
    which clears the status bit (the guest prints it)."""
    from test_virtio import tap_socket
    a, b = pair
    br = _bridge_in_each(net)
    mac = "00:16:3e:5a:01:08"
    want = bytes.fromhex(mac.replace(":", ""))
    a.d.create("ann", kernel="virtio",
               cmdline="test=net net-announce=1 net-wait=1 "
                       f"announce-wait={int(scaled(120000))}",
               extra=f"vif = [ 'mac={mac}, bridge={br}, announce=1' ]\n"
                     'on_poweroff = "preserve"\n')
    a.d.wait_console("ann", r"NET: waiting for the announce request")
    s = in_netns(net.ns[1], lambda: tap_socket(br))
    frames = []
    try:
        migrate(a, b, "ann")
        b.d.wait_console("ann", r"VIRTIO: done", timeout=scaled(60))
        while True:
            try:
                f = s.recv(2048)
            except OSError:
                break
            if f[6:12] == want:
                frames.append(f)
    finally:
        s.close()
    text = b.d.console("ann")
    assert "NET: announce requested status=0x3" in text, text
    assert "NET: announced ack=0 status=0x1" in text, text
    assert "the guest announced itself" in b.d.log()
    kinds = [f[12:14] for f in frames]
    assert b"\x80\x35" in kinds, kinds                 # the daemon's RARP
    arps = [f for f in frames if f[12:14] == b"\x08\x06"]
    assert arps, kinds
    assert arps[-1][28:32] == arps[-1][38:42]          # gratuitous
