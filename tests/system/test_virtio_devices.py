"""Debian's kernel on virtio devices: root on a virtio-blk ext4 disk, a
read-only disk, virtio-rng, virtio-net on a tap and on a bridge; the disk
and network workloads survive an interruption (our hypervisor: `xl
live-update`, and `xl save` + `xl restore`).

Each set of checks runs twice with the same guest (kernel, initramfs, root
disk) and the same workloads (sysworkloads.py):
- under our hypervisor, with its virtio-pci devices from the domain's
  config (`disk = [...]`, `vif = [...]`, `rng = 1`);
- under QEMU (`-accel kvm`) inside the same host VM, with QEMU's virtio
  devices (`disable-legacy=on`, as ours are modern-only): the twin, which
  passes now and proves the images and the workloads.  Its interruption is
  a 1 s `stop`/`cont` of the VM (what a blackout looks like to the guest)
  and a save to a file and a restore in a new QEMU.  It is also what a
  benchmark compares ours with.
"""
import hashlib
import os
import re
import time

import pytest

from syshost import (GUEST_CMDLINE, QemuGuest, boot_guest, guest_disk,
                     host_bridge, host_bridge_port, host_link_del, host_tap,
                     record_boot, record_measure)
from sysimages import GUEST_INITRD, GUEST_KERNEL, GUEST_ROOTFS, ROOTFS_MIB
import sysworkloads as wl

pytestmark = pytest.mark.system

# A build without DEV_VIRTIO has no devices to test (make test's minimal
# pass ignores the system tier anyway).
VIRTIO = pytest.mark.skipif(
    "DEV_VIRTIO" not in open(os.path.join(
        os.environ.get("XEN_BUILD", "build"),
        "include/generated/autoconf.h")).read(),
    reason="this build leaves the virtio devices out (Kconfig DEV_VIRTIO)")

ROOT_CMDLINE = f"{GUEST_CMDLINE} systest=shell systest_root=/dev/vda"
SHELL_CMDLINE = f"{GUEST_CMDLINE} systest=shell"
MAC = "00:16:3e:12:34:56"
BRIDGE_MAC = "00:16:3e:12:34:57"
# Virtio PCI device IDs: modern-only (virtio 1.x: 0x1040 + the type, what
# QEMU's disable-legacy=on shows) or transitional (0x1000..).  Either will
# do: what counts is that Linux's drivers bind.
PCI_NET, PCI_BLK, PCI_RNG = ("0x1041", "0x1000"), ("0x1042", "0x1001"), \
    ("0x1044", "0x1005")
PAUSE_S = 1     # the QEMU twin's stop/cont


def live_update(host):
    """`xl live-update` of the daemon to its own image; the blackout."""
    out = host.sh("xl live-update $(command -v xen) && xl live-update status",
                  timeout=300)
    assert re.search(r"result\s+: ok", out), out
    m = re.search(r"blackout_ms\s*:\s*([\d.]+)", out)
    return float(m.group(1)) if m else None


def wait_ready(g, what):
    g.wait(r"SYSTEST: ready", timeout=400)
    g.boot_seconds = time.monotonic() - g.started
    record_boot(f"{what} ({g.name})", g.boot_seconds)
    return g


def rootfs_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def qemu_drive(idx, path, serial, readonly=False):
    return ["-drive", f"file={path},format=raw,if=none,id=d{idx}"
            + (",readonly=on" if readonly else ""),
            "-device", f"virtio-blk-pci,disable-legacy=on,drive=d{idx},"
            f"serial={serial}"]


def qemu_nic(tap, mac):
    # romfile=: no iPXE option ROM (the guest boots from -kernel).
    return ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,disable-legacy=on,netdev=n0,mac={mac},"
            "romfile="]


QEMU_RNG = ["-device", "virtio-rng-pci,disable-legacy=on"]


# ==================================================================== disk
class BlkChecks:
    """Root on a virtio-blk ext4 disk (vda, rw), a second disk read-only
    (vdb: the root disk's pristine image), the rng; files written and
    checked across an interruption and a save/restore, then a clean
    file system after poweroff.  A subclass boots the guest (fixture
    `guest`, with `.disk` its disk's path in the host) and says what an
    interruption is."""
    SERIALS = None      # {vda: serial} when the device's serial is known
    WHAT = ""

    def interrupt(self, host, guest):
        raise NotImplementedError

    def test_root_on_virtio_blk(self, guest):
        rep = wl.init_report(guest)
        wl.check_modules(guest, rep)
        root = rep["root"]
        assert root and root["dev"] == "/dev/vda" and \
            root["fstype"] == "ext4" and root["opts"].startswith("rw"), \
            f"root: {root}\n{guest.console()[-3000:]}"
        disks = rep["disks"]
        assert sorted(disks) == ["vda", "vdb"], disks
        for name, ro in (("vda", "0"), ("vdb", "1")):
            assert disks[name]["size"] == str(ROOTFS_MIB << 20), disks
            assert disks[name]["ro"] == ro, disks
            if self.SERIALS:
                assert disks[name]["serial"] == self.SERIALS[name], disks
        blk = [p for p in rep["pci"] if p[1] in PCI_BLK]
        assert len(blk) == 2 and all(p[2] == "virtio-pci" for p in blk), \
            rep["pci"]
        print(f"{self.WHAT}: disks {disks}")

    def test_readonly_disk(self, guest, system_host, system_images):
        """access=ro: ro in the guest, writes refused, the image intact."""
        wl.check_ro_disk(guest, "/dev/vdb")
        host_sha = system_host.sh(f"sha256sum {GUEST_ROOTFS}").split()[0]
        assert host_sha == rootfs_sha(system_images["rootfs"]), \
            "the read-only disk's image changed"

    def test_rng_is_virtio_rng(self, guest):
        rep = wl.init_report(guest)
        assert rep["rng"] and \
            re.fullmatch(r"virtio_rng\.\d+", rep["rng"]["current"]), \
            f"rng: {rep['rng']}"
        assert [p for p in rep["pci"] if p[1] in PCI_RNG], rep["pci"]
        m = guest.do("systest rng-read", r"SYSTEST: rng read bytes=(\d+)")
        assert m.group(1) == "64", m.group(0)

    def test_files_survive_interruption(self, guest, system_host):
        guest.wl = wl.DiskWorkload(guest, n=16)
        guest.wl.write()
        guest.wl.verify("after writing")
        what = self.interrupt(system_host, guest)
        guest.wl.verify(f"after {what}")

    def test_files_survive_save_restore(self, guest, system_host):
        if not hasattr(guest, "wl"):
            pytest.skip("the files were not written")
        path = f"/tmp/guests/{guest.name}.state"
        t0 = time.monotonic()
        guest.save(path)
        t1 = time.monotonic()
        guest.restore(path)
        t2 = time.monotonic()
        record_measure(f"{self.WHAT}: save / restore (256 MiB guest)",
                       f"{t1 - t0:.1f} s / {t2 - t1:.1f} s")
        system_host.run(f"rm -f {path}", check=False)
        guest.wl.verify("after save and restore")

    def test_clean_fs_after_poweroff(self, guest, system_host):
        wl.shutdown(guest)
        out = wl.fsck_clean(system_host, guest.disk)
        print(out)


@VIRTIO
class TestVirtioBlk(BlkChecks):
    """Our hypervisor: `disk = [...]` (rw root, ro second disk), `rng = 1`;
    the interruption is `xl live-update`."""
    WHAT = "virtio-blk (ours)"

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        disk = guest_disk(system_host, "vblk")
        try:
            g = boot_guest(
                system_host, "vblk", "bzimage", memory=256,
                cmdline=ROOT_CMDLINE,
                extra=f"disk = [ 'format=raw, vdev=xvda, access=rw, "
                f"target={disk}', 'format=raw, vdev=xvdb, access=ro, "
                f"target={GUEST_ROOTFS}' ]\nrng = 1\n")
            g.disk = disk
            yield g
        finally:
            system_host.run(f"xl destroy vblk; rm -f {disk}", check=False)

    def interrupt(self, host, guest):
        blackout = live_update(host)
        record_measure("xl live-update under a virtio-blk guest: blackout",
                       f"{blackout} ms")
        return "xl live-update"


class TestQemuVirtioBlk(BlkChecks):
    """The twin: the same guest and disks under QEMU in the host VM; the
    interruption is a 1 s stop/cont."""
    WHAT = "virtio-blk (QEMU)"
    SERIALS = {"vda": "xvda", "vdb": "xvdb"}

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        disk = guest_disk(system_host, "qblk")
        g = QemuGuest(system_host, "qblk", GUEST_KERNEL["bzimage"],
                      GUEST_INITRD, ROOT_CMDLINE, memory=256,
                      devices=qemu_drive(0, disk, "xvda")
                      + qemu_drive(1, GUEST_ROOTFS, "xvdb", readonly=True)
                      + QEMU_RNG)
        g.disk = disk
        try:
            g.start()
            yield wait_ready(g, "QEMU -accel kvm in the host VM, bzimage, "
                             "root on virtio-blk: QEMU started to init "
                             "ready")
        finally:
            g.destroy()
            system_host.run(f"rm -f {disk}", check=False)

    def interrupt(self, host, guest):
        guest.monitor("stop")
        time.sleep(PAUSE_S)
        guest.monitor("cont")
        return f"a {PAUSE_S} s stop/cont"


# ==================================================================== net
class NetChecks:
    """virtio-net on a tap whose host side is 10.0.2.2/24: the guest's
    eth0 with the configured MAC, ping both ways, and a TCP stream from
    the host VM to the guest that survives an interruption with no reset,
    no gap and no duplicate (the longest pause is reported)."""
    WHAT = ""

    def interrupt(self, host, guest):
        raise NotImplementedError

    def test_nic_seen(self, guest):
        rep = wl.init_report(guest)
        wl.check_modules(guest, rep)
        assert rep["nets"].get("eth0", {}).get("mac") == MAC, rep["nets"]
        assert rep["nets"]["eth0"]["driver"] == "virtio_net", rep["nets"]
        assert [p for p in rep["pci"] if p[1] in PCI_NET], rep["pci"]

    def test_ping_both_ways(self, guest, system_host):
        mac = wl.net_up(guest)
        assert mac == MAC, mac
        wl.ping_from_guest(guest)
        wl.ping_from_host(system_host)
        guest.net_up = True

    def test_tcp_stream_survives_interruption(self, guest, system_host):
        if not getattr(guest, "net_up", False):
            pytest.skip("eth0 is not up")
        s = wl.SeqStream(system_host, guest)
        s.start()
        try:
            before = s.wait_lines(300)
            what = self.interrupt(system_host, guest)
            s.wait_lines(before + 300)
        finally:
            result = s.stop()
        pause = s.check(result, f"{self.WHAT} across {what}")
        self.check_pause(pause)
        # The network still answers afterwards.
        wl.ping_from_host(system_host)

    def check_pause(self, pause_ms):
        pass


@VIRTIO
class TestVirtioNetTap(NetChecks):
    """Our hypervisor: `vif = [ 'mac=..., vifname=tap0' ]` on a tap the
    host VM made (tunctl) with 10.0.2.2/24; the interruption is
    `xl live-update`."""
    WHAT = "virtio-net on a tap (ours)"

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        host_tap(system_host, "tap0")
        try:
            yield boot_guest(system_host, "vnet", "bzimage", memory=256,
                             cmdline=SHELL_CMDLINE,
                             extra=f"vif = [ 'mac={MAC}, vifname=tap0' ]\n")
        finally:
            system_host.run("xl destroy vnet", check=False)
            host_link_del(system_host, "tap0")

    def interrupt(self, host, guest):
        blackout = live_update(host)
        record_measure("xl live-update under a virtio-net guest: blackout",
                       f"{blackout} ms")
        return "xl live-update"

    def test_rng_on_by_default(self, guest):
        """No `rng` key in this config: virtio-rng is there anyway."""
        rep = wl.init_report(guest)
        assert rep["rng"] and \
            re.fullmatch(r"virtio_rng\.\d+", rep["rng"]["current"]), \
            f"rng: {rep['rng']}"



@VIRTIO
class TestVirtioNetVhost(NetChecks):
    """The same on vhost-net (`vhost=1`): the host VM's kernel carries the
    rings; the live update stops it in the old image and the new image
    starts its own from the saved ring positions."""
    WHAT = "virtio-net on a tap with vhost-net (ours)"

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        host_tap(system_host, "tap2")
        try:
            yield boot_guest(system_host, "vhnet", "bzimage", memory=256,
                             cmdline=SHELL_CMDLINE,
                             extra=f"vif = [ 'mac={MAC}, vifname=tap2, "
                                   "vhost=1' ]\n")
        finally:
            system_host.run("xl destroy vhnet", check=False)
            host_link_del(system_host, "tap2")

    def vhost_starts(self, host):
        _, out = host.run("grep -c 'virtio-net tap2: vhost-net carries "
                          "its queues' /var/log/xen.log", check=False)
        return out.strip()

    def interrupt(self, host, guest):
        before = int(self.vhost_starts(host) or 0)
        assert before >= 1, "vhost-net did not take the queues"
        blackout = live_update(host)
        record_measure("xl live-update under a vhost-net guest: blackout",
                       f"{blackout} ms")
        # The new image started vhost again (its log line adds to the
        # same log file).
        assert int(self.vhost_starts(host) or 0) > before
        return "xl live-update"


@VIRTIO
class TestVirtioNetBridge:
    """Our hypervisor: `vif = [ 'mac=..., bridge=br0' ]`: the daemon makes
    the tap and puts it in br0 (10.0.2.2/24 in the host VM)."""

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        host_bridge(system_host, "br0")
        try:
            yield boot_guest(
                system_host, "vbr", "bzimage", memory=256,
                cmdline=SHELL_CMDLINE,
                extra=f"vif = [ 'mac={BRIDGE_MAC}, bridge=br0' ]\n")
        finally:
            system_host.run("xl destroy vbr", check=False)
            host_link_del(system_host, "br0")

    def test_ping_both_ways(self, guest, system_host):
        rep = wl.init_report(guest)
        assert rep["nets"].get("eth0", {}).get("mac") == BRIDGE_MAC, \
            rep["nets"]
        ports = system_host.sh("ls /sys/class/net/br0/brif")
        assert ports.split(), "no port in br0"
        assert wl.net_up(guest) == BRIDGE_MAC
        wl.ping_from_guest(guest)
        wl.ping_from_host(system_host)


class TestQemuVirtioNetTap(NetChecks):
    """The twin: QEMU's virtio-net on a tap the host VM made the same way;
    the interruption is a 1 s stop/cont, which the stream must show as a
    pause of about that length (so the checker sees pauses)."""
    WHAT = "virtio-net on a tap (QEMU)"

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        host_tap(system_host, "tapq0")
        g = QemuGuest(system_host, "qnet", GUEST_KERNEL["bzimage"],
                      GUEST_INITRD, SHELL_CMDLINE, memory=256,
                      devices=qemu_nic("tapq0", MAC))
        try:
            g.start()
            yield wait_ready(g, "QEMU -accel kvm in the host VM, bzimage, "
                             "virtio-net: QEMU started to init ready")
        finally:
            g.destroy()
            host_link_del(system_host, "tapq0")

    def interrupt(self, host, guest):
        guest.monitor("stop")
        time.sleep(PAUSE_S)
        guest.monitor("cont")
        return f"a {PAUSE_S} s stop/cont"

    def check_pause(self, pause_ms):
        assert pause_ms >= PAUSE_S * 1000 * 0.9, \
            f"a {PAUSE_S} s stop showed as a {pause_ms} ms pause"


class TestQemuVirtioNetBridge:
    """The twin of the bridge test: a tap in br0 (made by the harness, as
    QEMU does not add taps to bridges itself without its helper)."""

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        host_bridge(system_host, "br0")
        host_bridge_port(system_host, "br0", "tapq1")
        g = QemuGuest(system_host, "qbr", GUEST_KERNEL["bzimage"],
                      GUEST_INITRD, SHELL_CMDLINE, memory=256,
                      devices=qemu_nic("tapq1", BRIDGE_MAC))
        try:
            g.start()
            yield wait_ready(g, "QEMU -accel kvm in the host VM, bzimage, "
                             "virtio-net on a bridge: QEMU started to "
                             "init ready")
        finally:
            g.destroy()
            host_link_del(system_host, "tapq1", "br0")

    def test_ping_both_ways(self, guest, system_host):
        rep = wl.init_report(guest)
        assert rep["nets"].get("eth0", {}).get("mac") == BRIDGE_MAC, \
            rep["nets"]
        assert wl.net_up(guest) == BRIDGE_MAC
        wl.ping_from_guest(guest)
        wl.ping_from_host(system_host)
