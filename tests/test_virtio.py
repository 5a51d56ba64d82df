"""virtio-pci devices (xen/dev/virtio_*.c) driven by the project's virtio
guest (tests/guests/virtio.c): it finds the devices on PCI bus 0, sets
them up as a virtio 1.x driver does, and prints what each did; the tests
compare that with the disk image, the config and the tap, as seen from
the host.  Malformed descriptor chains break only their own device: the
guest sees NEEDS_RESET, its other devices go on, and so do the daemon
and the other guests."""
import os
import re
import socket
import struct
import threading
import time
import zlib

import pytest

from harness import scaled, still_fine

SECTOR = 512
DISK_SECTORS = 32768                    # 16 MiB


@pytest.fixture(autouse=True)
def _need_virtio(feature):
    feature("DEV_VIRTIO")


def make_disk(path, sectors=DISK_SECTORS, seed=1):
    """An image whose sectors differ, so each read is checkable."""
    with open(path, "wb") as f:
        for s in range(sectors):
            f.write(struct.pack("<QQ", s, seed) * (SECTOR // 16))
    return path


def sector_crc(path, s):
    with open(path, "rb") as f:
        f.seek(s * SECTOR)
        return zlib.crc32(f.read(SECTOR))


def run(daemon, name, tests, disks=(), vifs=(), extra="", timeout=30,
        memory=64):
    lines = ""
    if disks:
        lines += "disk = [ " + ", ".join(f"'{d}'" for d in disks) + " ]\n"
    if vifs:
        lines += "vif = [ " + ", ".join(f"'{v}'" for v in vifs) + " ]\n"
    daemon.create(name, kernel="virtio", memory=memory,
                  cmdline=f"test={tests}",
                  extra=lines + 'on_poweroff = "preserve"\n' + extra)
    daemon.wait_console(name, r"VIRTIO: done\r\n", timeout=timeout)
    return daemon.console(name)


def passed(text):
    assert "VIRTIO: result=pass\r\n" in text, text


def field(text, pattern):
    m = re.search(pattern, text)
    assert m, f"no {pattern!r} in:\n{text}"
    return m


def test_pci_bus_lists_the_devices(daemon, tmp_path):
    img = make_disk(tmp_path / "d.img")
    text = run(daemon, "bus", "blk", disks=[
        f"format=raw, vdev=xvda, target={img}",
        f"format=raw, vdev=xvdb, access=ro, target={img}"])
    passed(text)
    assert "PCI: 00:00.0 1b36:0008 class=060000\r\n" in text
    assert "PCI: 00:01.0 1af4:1042 class=018000\r\n" in text   # xvda
    assert "PCI: 00:02.0 1af4:1042 class=018000\r\n" in text   # xvdb
    assert "PCI: 00:19.0 1af4:1044 class=00ff00\r\n" in text   # rng
    assert "PCI: functions=4\r\n" in text


def test_disk_reads_writes_and_ids(daemon, tmp_path):
    img = make_disk(tmp_path / "d.img")
    text = run(daemon, "blk", "blk", disks=[
        f"format=raw, vdev=xvda, access=rw, serial=SN-0042, target={img}"])
    passed(text)
    assert f"capacity={DISK_SECTORS} blk_size=512" in text
    assert "BLK: get_id status=0 serial=SN-0042\r\n" in text
    for s in (0, 8, DISK_SECTORS - 1):
        crc = int(field(text, rf"BLK: read sector={s} len=512 status=0 "
                        rf"crc=(0x[0-9a-f]+)").group(1), 16)
        assert crc == sector_crc(img, s), s
    m = field(text, r"BLK: write sector=(\d+) len=512 status=0 "
              r"crc=(0x[0-9a-f]+)")
    assert "match=1" in field(text, rf"BLK: readback sector={m.group(1)} "
                              r"[^\r]*").group(0)
    assert "BLK: flush status=0\r\n" in text
    # The guest ends with write-zeroes over its written sector.
    assert "zero=1" in text
    with open(img, "rb") as f:
        f.seek(int(m.group(1)) * SECTOR)
        assert f.read(SECTOR) == bytes(SECTOR)
    # The neighbours are untouched.
    assert sector_crc(img, int(m.group(1)) + 1) == zlib.crc32(
        struct.pack("<QQ", int(m.group(1)) + 1, 1) * (SECTOR // 16))


def test_read_only_disk_refuses_writes(daemon, tmp_path):
    img = make_disk(tmp_path / "ro.img")
    before = open(img, "rb").read()
    text = run(daemon, "ro", "blk", disks=[
        f"format=raw, vdev=xvda, access=ro, target={img}"])
    assert " RO " in field(text, r"BLK: features=[^\r]*").group(0) + " "
    assert "ro=1" in text
    assert re.search(r"BLK: write sector=\d+ len=512 status=1", text), text
    assert open(img, "rb").read() == before


def test_rng_gives_random_bytes(daemon):
    text = run(daemon, "rng", "rng")
    passed(text)
    a = field(text, r"RNG: read 1 len=64 hex=([0-9a-f]+)").group(1)
    b = field(text, r"RNG: read 2 len=64 hex=([0-9a-f]+)").group(1)
    assert a != b and len(a) == 128 and a != "0" * 128


def test_no_rng_when_configured_off(daemon):
    daemon.create("norng", kernel="virtio", cmdline="test=rng",
                  extra='rng = 0\non_poweroff = "preserve"\n')
    daemon.wait_console("norng", r"VIRTIO: done\r\n")
    text = daemon.console("norng")
    assert "1af4:1044" not in text and "PCI: functions=1\r\n" in text


def test_msix_interrupts_arrive(daemon, tmp_path):
    img = make_disk(tmp_path / "d.img")
    text = run(daemon, "msix", "blk-msix",
               disks=[f"vdev=xvda, target={img}"])
    passed(text)
    m = field(text, r"MSIX: irqs=(\d+) requests=(\d+)")
    assert int(m.group(1)) >= int(m.group(2)) > 0


BAD_CHAINS = ["bad-loop", "bad-addr", "bad-len", "bad-index",
              "bad-indirect"]
BAD_LOG = {
    "bad-loop": "a descriptor chain loops",
    "bad-addr": "is not in guest RAM",
    "bad-len": "is not in guest RAM",
    "bad-index": "entries ahead of the device",
    "bad-indirect": "an indirect table of",
}


@pytest.mark.parametrize("kind", BAD_CHAINS)
def test_malformed_chain_breaks_only_its_device(daemon, witness, tmp_path,
                                                 kind):
    img = make_disk(tmp_path / "d.img")
    text = run(daemon, kind, kind, disks=[f"vdev=xvda, target={img}"])
    passed(text)
    name = kind.split("-")[1]
    m = field(text, rf"BAD: {name} completed=(\d) used_idx=\d+ "
              r"device_status=(0x[0-9a-f]+) needs_reset=(\d)")
    assert m.group(1) == "0" and m.group(3) == "1", m.group(0)
    assert "RNG: differ=1 nonzero=1 status=0x0f ok=1\r\n" in text
    # A reset gives the guest its disk back.
    assert "BAD: blk after reset read status=0\r\n" in text
    log = daemon.log()
    assert re.search(r"virtio-blk xvda: queue 0: .*" + BAD_LOG[kind] +
                     r".*device broken until the guest resets it", log), log
    still_fine(daemon, witness)


def test_disk_that_cannot_be_used_is_refused(daemon, tmp_path):
    cases = {
        "missing": (str(tmp_path / "nope.img"), "cannot open"),
        "directory": (str(tmp_path), "Is a directory"),
        "empty": (str(tmp_path / "empty.img"), "smaller than one"),
    }
    open(tmp_path / "empty.img", "wb").close()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases["fifo"] = (str(fifo), "not a regular file or a block device")
    for name, (path, why) in cases.items():
        cfg = daemon.write_cfg(
            f'name = "{name}"\nkernel = "{daemon_guest()}"\n'
            f"disk = [ 'vdev=xvda, target={path}' ]\n")
        r = daemon.xl("create", cfg, check=False)
        assert r.returncode != 0, name
        assert "disk xvda" in r.err and why in r.err, (name, r.err)
        assert name not in daemon.domains()


def daemon_guest():
    from harness import guest_path
    return guest_path("virtio")


def test_unsupported_format_is_refused_by_xl(daemon, tmp_path):
    cfg = daemon.write_cfg(
        f'name = "q"\nkernel = "{daemon_guest()}"\n'
        f"disk = [ 'format=qcow2, vdev=xvda, target=/x.qcow2' ]\n")
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 65 and "unsupported disk format 'qcow2'" in r.err


# ---------------------------------------------------------------- network

def tap_socket(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(0x0003))
    s.bind((ifname, 0))
    s.settimeout(0.2)
    return s


def have_vhost_net():
    """/dev/vhost-net, loading the module if it can be (the test host
    can; a host without the module or its node cannot)."""
    import subprocess
    if not os.path.exists("/dev/vhost-net"):
        subprocess.run(["modprobe", "vhost_net"], capture_output=True)
    return os.access("/dev/vhost-net", os.R_OK | os.W_OK)


@pytest.mark.parametrize("vhost", [0, 1])
def test_network_frames_cross_the_tap(daemon, tmp_path, vhost):
    """Frames both ways between the guest and the host's side of its
    tap, through the daemon (vhost=0) or through vhost-net (vhost=1,
    where /dev/vhost-net exists; elsewhere the vif is refused, saying
    why)."""
    mac = "00:16:3e:5a:00:01"
    tap = "xtst0"
    vif = f"vif = [ 'mac={mac}, vifname={tap}, vhost={vhost}' ]\n"
    if vhost and not have_vhost_net():
        cfg = daemon.write_cfg(daemon.cfg_text("net", kernel="virtio") +
                               vif)
        r = daemon.xl("create", cfg, check=False)
        assert r.returncode != 0
        assert f"vif {tap}: vhost=1: /dev/vhost-net: " in r.err, r.err
        assert not os.path.exists(f"/sys/class/net/{tap}")
        return
    daemon.create("net", kernel="virtio", cmdline="test=net net-rx=6",
                  extra=vif + 'on_poweroff = "preserve"\n', paused=True)
    s = tap_socket(tap)
    seen = []
    stop = threading.Event()
    # A frame from the host side, over and over until the guest is done.
    probe = (bytes.fromhex(mac.replace(":", "")) + bytes.fromhex(
        "02000000beef") + b"\x88\xb5" + b"xen-kvm-probe".ljust(46, b"."))

    def pump():
        while not stop.is_set():
            try:
                s.send(probe)
                seen.append(s.recv(2048))
            except OSError:
                pass

    t = threading.Thread(target=pump)
    t.start()
    try:
        daemon.xl("unpause", "net")
        daemon.wait_console("net", r"VIRTIO: done\r\n")
    finally:
        stop.set()
        t.join()
        s.close()
    text = daemon.console("net")
    passed(text)
    assert f"NET: mac={mac} status=0x1" in text
    # The guest's ARP reached the host, from its MAC.
    frames = [f for f in seen if f[6:12] == bytes.fromhex(
        mac.replace(":", "")) and f[12:14] == b"\x08\x06"]
    assert frames, [f[:14].hex() for f in seen]
    # The host's frame reached the guest.
    assert re.search(r"NET: rx len=\d+ dst=" + mac +
                     r" src=02:00:00:00:be:ef ethertype=0x88b5", text), text
    if vhost:
        log = daemon.log()
        assert "frames go through the daemon instead" not in log
        assert f"virtio-net {tap}: vhost-net carries its queues" in log
    daemon.xl("destroy", "net")
    assert not os.path.exists(f"/sys/class/net/{tap}")


def rarps(s, want, mac, until):
    """RARP frames from mac read from AF_PACKET socket s: until `want`
    came, or until() is true and nothing more comes."""
    frames = []
    deadline = time.monotonic() + scaled(10)
    while len(frames) < want and time.monotonic() < deadline:
        try:
            f = s.recv(2048)
        except OSError:
            if until():
                break
            continue
        if f[12:14] == b"\x80\x35" and f[6:12] == mac:
            frames.append(f)
    return frames


def assert_rarp(f, mac):
    assert f[0:6] == b"\xff" * 6 and f[6:12] == mac
    assert f[20:22] == b"\x00\x03"          # reverse request
    assert f[22:28] == mac and f[32:38] == mac


def test_restore_announces_the_mac(daemon, tmp_path):
    """After a restore (as after a migration) the device sends RARPs from
    the guest's MAC into the tap once the guest runs, so switches learn
    where it is: none while it is restored paused, then QEMU's five
    rounds once it is unpaused.  A persistent tap made beforehand lets
    the test listen before the daemon attaches to it."""
    import subprocess
    mac = "00:16:3e:5a:00:02"
    want = bytes.fromhex(mac.replace(":", ""))
    tap = "xtann0"
    subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"],
                   check=True)
    try:
        # A guest that runs on (the counter guest ignores the device):
        # a guest that has shut down is not announced.
        daemon.create("ann", cmdline="interval=200",
                      extra=f"vif = [ 'mac={mac}, vifname={tap}' ]\n",
                      paused=True)
        saved = str(tmp_path / "ann.xkvm")
        daemon.xl("save", "ann", saved)
        subprocess.run(["ip", "link", "set", tap, "up"], check=True)
        s = tap_socket(tap)
        daemon.xl("restore", "-p", saved)
        # Paused: not announced (the same guest may still run elsewhere).
        early = rarps(s, 1, want, lambda: True)
        assert not early, "a RARP before the guest runs"
        daemon.xl("unpause", "ann")
        done = "announced the guest's MAC (5 RARPs)"
        frames = rarps(s, 5, want, lambda: done in daemon.log())
        s.close()
        assert len(frames) == 5, (len(frames), daemon.log()[-2000:])
        for f in frames:
            assert_rarp(f, want)
    finally:
        # The daemon lets go of the tap first: a tap in use is not deleted.
        if "ann" in daemon.domains():
            daemon.xl("destroy", "ann", check=False)
        subprocess.run(["ip", "tuntap", "del", "dev", tap, "mode", "tap"])
