"""virtio-blk and virtio-net throughput: our devices beside QEMU's
(`--only virtio`).

Linux guests cannot boot natively on this project's KVM-PVM machines (see
../shared/DESIGN.md), so this benchmark runs in ONE host VM of the system
tier (tests/system: QEMU TCG, emulated SVM, kvm-amd inside) and boots, one
after the other, the same Debian guest (kernel, busybox initramfs, root on
a virtio-blk ext4 disk, a second raw data disk, eth0 on a tap with
10.0.2.2/24 on the host VM's side):
- under our daemon, with `disk = [...]` and `vif = [...]`;
- under QEMU `-accel kvm -machine pc` in the same host VM, with
  `virtio-blk-pci`/`virtio-net-pci` (`disable-legacy=on`), the system
  tier's twin (syshost.QemuGuest).
Each gets its own copy of the root disk and a fresh zeroed data disk, both
files in the host VM's tmpfs; the same tap name and addresses.

Every figure is measured inside the nested setup, so absolute numbers say
little (everything runs under TCG); compare the ratios of one run.
See bench/README.md for the methods.
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "system"))

import common  # noqa: E402
from common import BenchError, summary  # noqa: E402
import sysimages  # noqa: E402
import syshost  # noqa: E402
from syshost import GUEST_CMDLINE, Guest, HostVM, QemuGuest  # noqa: E402
from sysimages import GUEST_INITRD, GUEST_KERNEL  # noqa: E402

WHERE = ("QEMU TCG test host with kvm-amd (tests/system host VM): "
         "compare ratios only")
LABEL = "QEMU pc, virtio-*-pci, in the test host (+)"
NOTE = (f"(+) virtio rows: measured in the {WHERE}; ours and QEMU "
        f"-accel kvm boot the same Debian guest one after the other in one "
        f"host VM; higher is better there, so ours/QEMU above 1 means "
        f"ours is faster (bench/README.md)")

ROOT_CMDLINE = f"{GUEST_CMDLINE} systest=shell systest_root=/dev/vda"
MAC = "00:16:3e:12:34:58"
TAP = "tapb0"
GUEST_IP, HOST_IP = "10.0.2.15", "10.0.2.2"
GUEST_MEM = 256
DATA_DEV = "/dev/vdb"

TIME_RX = re.compile(r"real\s+(\d+)m\s*([\d.]+)s")
RAND_RX = re.compile(r"SYSTEST: randread count=(\d+) block=(\d+) "
                     r"seconds=([\d.]+) iops=([\d.]+) mibps=([\d.]+)")
PUMP_RX = re.compile(r"SYSTEST: pump recv bytes=(\d+) seconds=([\d.]+) "
                     r"mibps=([\d.]+)")
SOURCE_RX = re.compile(r"seqstream source: bytes=(\d+) seconds=([\d.]+) "
                       r"mibps=([\d.]+) result=(\S+)")

METRICS = [
    # key, table row, unit
    ("seq_write_mibps", "virtio-blk sequential write, MiB/s", "MiB/s"),
    ("seq_read_mibps", "virtio-blk sequential read, MiB/s", "MiB/s"),
    ("rand_read_iops", "virtio-blk random 4 KiB reads (QD1), IOPS",
     "IOPS"),
    ("tcp_guest_to_host_mibps", "virtio-net TCP guest -> host VM, MiB/s",
     "MiB/s"),
    ("tcp_host_to_guest_mibps", "virtio-net TCP host VM -> guest, MiB/s",
     "MiB/s"),
]


def methods(plan):
    mib, n, net = plan["blk_mib"], plan["rand_count"], plan["net_mib"]
    return {
        "where": WHERE,
        "guest": f"Debian bzImage + the system tier's busybox initramfs, 1 "
                 f"vCPU, {GUEST_MEM} MiB, `{ROOT_CMDLINE}`; root: a private "
                 f"copy of rootfs.ext4 (virtio-blk vda); data: a raw "
                 f"{mib} MiB zeroed file (virtio-blk vdb); both in the host "
                 f"VM's tmpfs",
        "ours": "`disk = [ 'format=raw, vdev=xvda, access=rw, target=ROOT', "
                "'format=raw, vdev=xvdb, access=rw, target=DATA' ]`, "
                f"`vif = [ 'mac={MAC}, vifname={TAP}' ]` (cache=writeback, "
                "the default)",
        "qemu": "qemu-system-x86_64 -accel kvm -cpu host -machine pc "
                "-nodefaults, -drive file=..,format=raw,if=none (cache "
                "writeback, the default) + virtio-blk-pci,disable-legacy=on "
                "for each disk, -netdev tap,ifname=" + TAP + ",script=no + "
                "virtio-net-pci,disable-legacy=on,romfile=",
        "seq_write_mibps": f"`busybox time dd if=/dev/zero of={DATA_DEV} "
                           f"bs=1M count={mib} oflag=direct conv=fsync` in "
                           f"the guest; MiB / `real` (10 ms resolution, "
                           f"guest clock)",
        "seq_read_mibps": f"`sync; echo 3 > /proc/sys/vm/drop_caches`, then "
                          f"`busybox time dd if={DATA_DEV} of=/dev/null "
                          f"bs=1M count={mib} iflag=direct`; MiB / `real`",
        "rand_read_iops": f"`seqstream randread {DATA_DEV} {n}` in the guest "
                          f"(tests/system/seqstream.c): {n} pread()s of "
                          f"4 KiB with O_DIRECT, one at a time (queue depth "
                          f"1), at 4 KiB-aligned offsets from a fixed "
                          f"xorshift sequence (the same every run), after "
                          f"drop_caches; timed on the guest's "
                          f"CLOCK_MONOTONIC",
        "tcp_guest_to_host_mibps": f"`seqstream sink PORT` in the host VM, "
                                   f"`seqstream source {HOST_IP} PORT {net}` "
                                   f"in the guest: {net} MiB in 256 KiB "
                                   f"writes; the sink's figure (first byte "
                                   f"to FIN, the host VM's clock)",
        "tcp_host_to_guest_mibps": f"`seqstream sink PORT` in the guest, "
                                   f"`seqstream source {GUEST_IP} PORT {net}`"
                                   f" in the host VM; the source's figure "
                                   f"(connect to the sink's report, i.e. "
                                   f"every byte received; the host VM's "
                                   f"clock)",
        "order": "ours first (every measurement, N runs each, interleaved "
                 "by round), then QEMU the same way; medians",
    }


# ------------------------------------------------------------ one guest
class Bench:
    """Measurements typed at a booted guest's shell."""

    def __init__(self, host, g, plan, log):
        self.host, self.g, self.plan, self.log = host, g, plan, log
        self.n = 0

    def shell(self, command, timeout=900):
        """Type a command line; the console text it printed (up to an end
        marker that the typed line's echo cannot match)."""
        self.n += 1
        end = f"BENCH-END-{self.n * 7}"
        mark = len(self.g.console())
        self.g.type(f"{command}; echo BENCH-END-$(({self.n} * 7))\n")
        m = self.g.wait(re.escape(end) + r"\s*\n", start=mark,
                        timeout=timeout)
        return self.g.console()[mark:m.start()]

    def seq_write(self):
        mib = self.plan["blk_mib"]
        out = self.shell(f"busybox time dd if=/dev/zero of={DATA_DEV} bs=1M "
                         f"count={mib} oflag=direct conv=fsync 2>&1")
        return self._dd(out, mib, "write")

    def seq_read(self):
        mib = self.plan["blk_mib"]
        self.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
        out = self.shell(f"busybox time dd if={DATA_DEV} of=/dev/null bs=1M "
                         f"count={mib} iflag=direct 2>&1")
        return self._dd(out, mib, "read")

    def _dd(self, out, mib, what):
        m = TIME_RX.search(out)
        if not m or f"{mib}+0 records out" not in out:
            raise BenchError(f"dd {what} in {self.g.name}: {out[-600:]!r}")
        secs = int(m.group(1)) * 60 + float(m.group(2))
        if secs <= 0:
            raise BenchError(f"dd {what}: 0 s (size too small): {out!r}")
        return mib / secs, {"seconds": secs}

    def rand_read(self):
        self.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
        out = self.shell(f"seqstream randread {DATA_DEV} "
                         f"{self.plan['rand_count']} 2>&1")
        m = RAND_RX.search(out)
        if not m:
            raise BenchError(f"randread in {self.g.name}: {out[-600:]!r}")
        return float(m.group(4)), {"seconds": float(m.group(3)),
                                   "mibps": float(m.group(5))}

    def tcp_guest_to_host(self, port):
        h, net = self.host, self.plan["net_mib"]
        logf = f"/tmp/guests/sink{port}.log"
        h.sh(f"(seqstream sink {port} >{logf} 2>&1 &); i=0; "
             f"until grep -q listening {logf} 2>/dev/null || [ $i -ge 100 ];"
             f" do sleep 0.1; i=$((i + 1)); done")
        out = self.shell(f"seqstream source {HOST_IP} {port} {net} 2>&1")
        src = SOURCE_RX.search(out)
        if not src or src.group(4) != "ok":
            raise BenchError(f"source in {self.g.name}: {out[-600:]!r}\n"
                             f"{h.read_file(logf)}")
        deadline = time.monotonic() + 60
        while True:
            text = h.read_file(logf)
            m = PUMP_RX.search(text)
            if m:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"sink in the host VM: {text!r}")
            time.sleep(0.5)
        return float(m.group(3)), {"sink_seconds": float(m.group(2)),
                                   "bytes": int(m.group(1)),
                                   "guest_source_mibps":
                                   float(src.group(3))}

    def tcp_host_to_guest(self, port):
        net = self.plan["net_mib"]
        mark = len(self.g.console())
        self.g.type(f"seqstream sink {port}\n")
        self.g.wait(rf"seqstream sink: listening on {port}", start=mark)
        rc, out = self.host.run(f"seqstream source {GUEST_IP} {port} {net}",
                                timeout=900, check=False)
        m = SOURCE_RX.search(out)
        if rc != 0 or not m or m.group(4) != "ok":
            raise BenchError(f"source in the host VM ({rc}): {out!r}")
        g = self.g.wait(PUMP_RX.pattern, start=mark, timeout=120)
        return float(m.group(3)), {"source_seconds": float(m.group(2)),
                                   "bytes": int(m.group(1)),
                                   "guest_sink_mibps": float(g.group(3))}


def measure(host, g, plan, log, res):
    """Every measurement, `runs` rounds, into res[metric]["samples"]."""
    b = Bench(host, g, plan, log)
    syshost_net_up(g)
    port = 5200
    for r in range(plan["runs"]):
        for key, fn in (("seq_write_mibps", b.seq_write),
                        ("seq_read_mibps", b.seq_read),
                        ("rand_read_iops", b.rand_read),
                        ("tcp_guest_to_host_mibps",
                         lambda: b.tcp_guest_to_host(port)),
                        ("tcp_host_to_guest_mibps",
                         lambda: b.tcp_host_to_guest(port + 1))):
            ent = res.setdefault(key, {"samples": [], "detail": [],
                                       "errors": []})
            try:
                v, detail = fn()
                ent["samples"].append(v)
                ent["detail"].append(detail)
                log(f"  {g.name} round {r + 1}: {key} {v:.1f}")
            except (BenchError, AssertionError) as e:
                ent["errors"].append(str(e)[:2000])
                log(f"  {g.name} round {r + 1}: {key} FAILED: "
                    f"{str(e).splitlines()[0][:200]}")
        port += 2
    for ent in res.values():
        ent.update(summary(ent["samples"]) or {})


def syshost_net_up(g):
    m = g.do(f"systest net-up {GUEST_IP}/24 eth0",
             r"SYSTEST: net-up (\S+) addr=(\S+) state=(\S+)", 120)
    if m.group(3) != "up":
        raise BenchError(f"eth0 is not up: {m.group(0)}")


def qemu_devices(root, data):
    # As the system tier's twins (test_virtio_devices.py).
    devs = []
    for i, (path, serial) in enumerate(((root, "xvda"), (data, "xvdb"))):
        devs += ["-drive", f"file={path},format=raw,if=none,id=d{i}",
                 "-device", f"virtio-blk-pci,disable-legacy=on,drive=d{i},"
                 f"serial={serial}"]
    devs += ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
             "-device", f"virtio-net-pci,disable-legacy=on,netdev=n0,"
             f"mac={MAC},romfile="]
    return devs


def one_side(host, side, plan, log):
    """Boot the guest under `side` (ours/qemu), measure, tear down."""
    name = {"ours": "bvirt", "qemu": "qvirt"}[side]
    root = f"/tmp/disks/{name}-root.img"
    data = f"/tmp/disks/{name}-data.img"
    host.sh(f"mkdir -p /tmp/disks /tmp/guests && cp {sysimages.GUEST_ROOTFS}"
            f" {root} && dd if=/dev/zero of={data} bs=1M "
            f"count={plan['blk_mib']} 2>/dev/null")
    syshost.host_tap(host, TAP, f"{HOST_IP}/24")
    res = {"metrics": {}}
    g = None
    try:
        if side == "ours":
            g = Guest(host, name, GUEST_KERNEL["bzimage"], GUEST_INITRD,
                      ROOT_CMDLINE, memory=GUEST_MEM,
                      extra=f"disk = [ 'format=raw, vdev=xvda, access=rw, "
                      f"target={root}', 'format=raw, vdev=xvdb, access=rw, "
                      f"target={data}' ]\nvif = [ 'mac={MAC}, "
                      f"vifname={TAP}' ]\n")
            res["config"] = g.cfg
        else:
            g = QemuGuest(host, name, GUEST_KERNEL["bzimage"], GUEST_INITRD,
                          ROOT_CMDLINE, memory=GUEST_MEM,
                          devices=qemu_devices(root, data))
            res["argv"] = g.argv()
        t0 = time.monotonic()
        g.start()
        g.wait(r"SYSTEST: ready", timeout=600)
        res["boot_s"] = time.monotonic() - t0
        log(f"  {side}: guest {name} ready in {res['boot_s']:.1f} s")
        measure(host, g, plan, log, res["metrics"])
    finally:
        if g is not None:
            g.destroy()
            try:
                g.wait_gone(60)
            except AssertionError as e:
                res.setdefault("errors", []).append(str(e)[:500])
        syshost.host_link_del(host, TAP)
        host.run(f"rm -f {root} {data}", check=False)
    return res


def run(plan, qemu_ok, log):
    """The virtio section: {"where", "methods", "host_vm", "ours", "qemu",
    "errors"}."""
    harness = common.harness
    out = {"where": WHERE, "methods": methods(plan), "plan": plan,
           "errors": []}
    missing = sysimages.tools_missing()
    if missing:
        out["errors"].append("the system tier needs " + ", ".join(missing))
        return out
    work = os.path.join(harness.BUILD, "system")
    progs = sysimages.workload_progs(harness.BUILD)
    for p in [harness.XEN, harness.XL] + progs:
        if not os.path.exists(p):
            out["errors"].append(f"{p} is missing: run `make`")
            return out
    t0 = time.monotonic()
    images = sysimages.build_images(work, [harness.XEN, harness.XL],
                                    harness.guest_path("exit"), progs)
    log(f"  system images ready in {time.monotonic() - t0:.1f} s")
    host = HostVM(work, images["vmlinuz"], images["host_initrd"])
    try:
        secs = host.start()
        out["host_vm"] = {"boot_s": secs, "release": host.release,
                          "argv": host.argv(), "cpu": host.cpu,
                          "smp": host.smp, "memory_mib": host.memory_mib}
        log(f"  host VM up in {secs:.1f} s (Debian {host.release})")
        info = host.run("xl info", check=False)[1]
        out["xl_info"] = info
        m = re.search(r"build.id\s*:\s*(\S+)", info)
        if m:
            out["build_id"] = m.group(1)
        out["host_vm"]["qemu_in_host"] = host.run(
            "qemu-system-x86_64 --version | head -1", check=False)[1].strip()
        sides = ["ours"] + (["qemu"] if qemu_ok else [])
        for side in sides:
            try:
                out[side] = one_side(host, side, plan, log)
            except (BenchError, AssertionError, syshost.HostError) as e:
                out["errors"].append(f"{side}: {str(e)[:3000]}")
                log(f"  {side} FAILED: {str(e).splitlines()[0][:300]}")
                if isinstance(e, syshost.HostError):
                    break
        for side in sides:
            for key, ent in (out.get(side) or {}).get("metrics", {}).items():
                out["errors"] += [f"{side} {key}: {e}"
                                  for e in ent.get("errors", [])]
            out["errors"] += [f"{side}: {e}" for e in
                              (out.get(side) or {}).get("errors", [])]
        # Nothing of ours or QEMU's may be left in the host VM.
        out["left_running"] = host.run(
            "xl list; pidof qemu-system-x86_64 || true",
            check=False)[1].strip()
    except syshost.HostError as e:
        out["errors"].append(f"host VM: {str(e)[:3000]}")
    finally:
        host.stop()
    return out


def table_rows(v, add):
    """Rows for run.py's table: add(metric, ours, qemu, variant)."""
    def med(side, key):
        return (((v.get(side) or {}).get("metrics") or {}).get(key)
                or {}).get("median")
    for key, row, _unit in METRICS:
        q = med("qemu", key)
        add(row + " (+)", med("ours", key), q, LABEL if q is not None
            else None)
