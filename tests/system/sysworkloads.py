"""The disk and network workloads of the system tier, driven from the
harness: commands typed at a guest's shell (guest-workload.sh, /bin/systest
in the guests) and run in the host VM (seqstream, ping, e2fsck), and what
the guest's init reports of its virtio devices (guest-init.sh).  The same
functions drive our hypervisor's guests and the QEMU twins
(test_virtio_devices.py)."""
import hashlib
import re
import time

from syshost import record_measure

GUEST_IP = "10.0.2.15"
HOST_IP = "10.0.2.2"
PREFIX = 24


# ------------------------------------------------------------ init reports
def init_report(g, start=0):
    """What guest-init.sh printed of the devices, once it is ready:
    {"root": {dev, fstype, opts} or None, "disks": {vda: {size, ro,
    serial}}, "rng": {current, available} or None, "nets": {eth0: {mac,
    driver, mtu}}, "pci": [(slot, device, driver)], "modules": {...}}."""
    g.wait(r"SYSTEST: ready", start=start)
    text = g.console()[start:]

    def kv(s):
        return dict(x.split("=", 1) for x in s.split() if "=" in x)
    rep = {"root": None, "disks": {}, "rng": None, "nets": {}, "pci": [],
           "modules": {}, "failed_modules": []}
    m = re.search(r"SYSTEST: root (dev=.*)\n", text)
    if m:
        rep["root"] = kv(m.group(1))
    for name, rest in re.findall(r"SYSTEST: disk (vd\w+) (.*)\n", text):
        rep["disks"][name] = kv(rest)
    m = re.search(r"SYSTEST: rng (.*)\n", text)
    if m:
        rep["rng"] = kv(m.group(1))
    for name, rest in re.findall(r"SYSTEST: net (\S+) (mac=.*)\n", text):
        rep["nets"][name] = kv(rest)
    rep["pci"] = re.findall(r"SYSTEST: pci (\S+) device=(\S+) driver=(\S*)",
                            text)
    m = re.search(r"SYSTEST: modules (.*)\n", text)
    if m:
        rep["modules"] = kv(m.group(1))
    rep["failed_modules"] = re.findall(r"SYSTEST: module (\S+) failed: (.*)",
                                       text)
    return rep


def check_modules(g, rep):
    """Every module of the initramfs loaded (soft dependencies such as
    crc32c-intel may not)."""
    if rep["failed_modules"] or rep["modules"].get("failed") or \
            rep["modules"].get("missing"):
        g.fail(f"guest {g.name}: modules failed: {rep['failed_modules']} "
               f"{rep['modules']}")


# ------------------------------------------------------------ disk
def file_content(i, tag):
    """File i of `systest disk-write` (guest-workload.sh)."""
    size = 4096 * (1 + (i * 7) % 64)
    line = f"systest {tag} file {i}\n".encode()
    return (line * (size // len(line) + 1))[:size]


def manifest_sha(n, tag):
    """The SHA-256 of the manifest `systest disk-write DIR n tag` makes."""
    text = "".join(f"{hashlib.sha256(file_content(i, tag)).hexdigest()}  "
                   f"f{i:03d}\n" for i in range(1, n + 1))
    return hashlib.sha256(text.encode()).hexdigest()


class DiskWorkload:
    """N files of known content and their manifest on the guest's disk,
    written once and verified (from the disk: the guest drops its page
    cache first) as often as wanted.  `tag` makes the content this run's
    own, so that a stale disk cannot pass."""

    def __init__(self, guest, n=16, directory="/data", tag=None):
        self.g = guest
        self.n = n
        self.dir = directory
        self.tag = tag or f"t{int(time.time())}"
        self.sha = manifest_sha(n, self.tag)

    def write(self, timeout=300):
        m = self.g.do(f"systest disk-write {self.dir} {self.n} {self.tag}",
                      r"SYSTEST: disk write (.*)\n", timeout)
        want = f"ok {self.n} files manifest={self.sha}"
        if m.group(1).strip() != want:
            self.g.fail(f"disk write: {m.group(0)!r}, wanted {want!r}")

    def verify(self, when, timeout=300):
        m = self.g.do(f"systest disk-verify {self.dir}",
                      r"SYSTEST: disk verify (.*)\n", timeout)
        want = f"ok {self.n} files manifest={self.sha}"
        if m.group(1).strip() != want:
            self.g.fail(f"disk verify {when}: {m.group(0)!r}, wanted "
                        f"{want!r}")


def check_ro_disk(g, dev="/dev/vdb", timeout=180):
    """A read-only disk, seen from the guest: ro in sysfs and BLKROGET, a
    raw write refused, an ext4 mount only read-only and refusing writes,
    content as built (its /bin/busybox is the guest's own)."""
    m = g.do(f"systest ro-check {dev}", r"SYSTEST: ro \w+ sysfs_ro=.*\n",
             timeout)
    want = (f"SYSTEST: ro {dev.split('/')[-1]} sysfs_ro=1 getro=1 "
            f"write=refused fs_write=refused mount_ro=ok content=same")
    if m.group(0).strip() != want:
        g.fail(f"read-only disk {dev}: {m.group(0)!r}, wanted {want!r}")


def shutdown(g, timeout=180):
    """sync, / read-only, poweroff -f; waits until the guest is gone."""
    g.do("systest shutdown", r"SYSTEST: shutdown remount-ro=(\S+)", timeout)
    if "SYSTEST: shutdown remount-ro=ok" not in g.console():
        g.fail("the guest could not remount / read-only before poweroff")
    g.wait_gone(timeout)


def fsck_clean(host, path):
    """`e2fsck -fn` of a guest's disk in the host: clean, or the failure
    with its output."""
    rc, out = host.run(f"e2fsck -fn {path}", timeout=300, check=False)
    assert rc == 0, f"e2fsck -fn {path} exited {rc}:\n{out}"
    return out


# ------------------------------------------------------------ network
def net_up(g, addr=f"{GUEST_IP}/{PREFIX}", ifc="eth0", timeout=120):
    m = g.do(f"systest net-up {addr} {ifc}",
             r"SYSTEST: net-up (\S+) addr=(\S+) state=(\S+) mac=(\S+)",
             timeout)
    if m.group(3) != "up":
        g.fail(f"{ifc} is not up: {m.group(0)}")
    return m.group(4)


def ping_from_guest(g, host_ip=HOST_IP, count=3, timeout=120):
    m = g.do(f"systest ping {host_ip} {count}",
             r"SYSTEST: ping \S+ sent=(\d+) received=(\d+).*\n", timeout)
    if int(m.group(2)) != count:
        g.fail(f"ping from the guest to {host_ip}: {m.group(0)}")
    return m.group(0).strip()


def ping_from_host(host, ip=GUEST_IP, count=3):
    rc, out = host.run(f"ping -c {count} -W 5 {ip}", timeout=60,
                       check=False)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    assert rc == 0 and m and int(m.group(2)) == count, \
        f"ping from the host VM to {ip}:\n{out}"
    return out


class SeqStream:
    """A TCP stream of numbered lines, every `interval_ms`, from the host
    VM (seqstream send) to the guest (seqstream recv, through `systest
    seq-recv`), which checks that none is missing, repeated or garbled and
    echoes them; the sender checks the echo the same way and measures the
    longest pause between echoes on the host VM's clock.  (The guest's own
    figure misses any time its clock stood still: under QEMU a 1 s
    stop/cont showed as 0.1 s there, kvmclock being stopped with the VM.)
    Both sides report at the end (tests/system/seqstream.c)."""

    def __init__(self, host, guest, ip=GUEST_IP, port=5001, interval_ms=10):
        self.host = host
        self.g = guest
        self.ip = ip
        self.port = port
        self.interval = interval_ms
        self.log = f"/tmp/guests/{guest.name}.seqsend"
        self.pidf = self.log + ".pid"
        self.mark = 0

    def start(self):
        self.mark = len(self.g.console())
        self.g.do(f"systest seq-recv {self.port}",
                  rf"seqstream recv: listening on {self.port}")
        self.host.sh(f"(seqstream send {self.ip} {self.port} "
                     f"-i {self.interval} >{self.log} 2>&1 & "
                     f"echo $! >{self.pidf})")
        deadline = time.monotonic() + 120
        while "connected" not in self.host.read_file(self.log):
            if time.monotonic() > deadline:
                self.g.fail(f"seqstream send did not connect:\n"
                            f"{self.host.read_file(self.log)}")
            time.sleep(1)

    def wait_lines(self, lines, timeout=300):
        """Until the receiver's progress line (every 10 s) counts at least
        `lines`."""
        deadline = time.monotonic() + timeout
        while True:
            got = [int(x) for x in re.findall(
                r"SYSTEST: seq progress lines=(\d+)",
                self.g.console()[self.mark:])]
            if got and got[-1] >= lines:
                return got[-1]
            if time.monotonic() > deadline:
                self.g.fail(f"the stream did not reach {lines} lines in "
                            f"{timeout}s (progress: {got})")
            time.sleep(2)

    def stop(self, timeout=180):
        """SIGTERM to the sender, which half-closes and waits for the
        receiver's report; {"guest": {...}, "sender": {...}}."""
        self.host.run(f"kill -TERM $(cat {self.pidf})", check=False)
        m = self.g.wait(r"SYSTEST: seq (lines=.*)\n", start=self.mark,
                        timeout=timeout)
        guest = dict(x.split("=", 1) for x in m.group(1).split())
        deadline = time.monotonic() + 120
        while True:
            out = self.host.read_file(self.log)
            s = re.search(r"seqstream send: (sent=.*)", out)
            if s:
                break
            if time.monotonic() > deadline:
                self.g.fail(f"seqstream send did not finish:\n{out}")
            time.sleep(1)
        sender = dict(x.split("=", 1) for x in s.group(1).split())
        return {"guest": guest, "sender": sender, "sender_log": out}

    def check(self, result, what):
        """No gap, no duplicate, no garbled line, no reset, a clean end on
        both sides, every line sent received and echoed; records the
        longest pause (host clock, and the guest's) and returns it (ms)."""
        gst, snd = result["guest"], result["sender"]
        bad = [k for k in ("gaps", "dups", "bad") if gst[k] != "0" or
               snd[k] != "0"]
        if bad or gst["end"] != "eof" or snd["result"] != "ok" or \
                int(gst["lines"]) != int(snd["sent"]) or \
                snd["echoed"] != snd["sent"]:
            self.g.fail(f"TCP stream {what}: receiver {gst}, sender "
                        f"{snd}\n{result['sender_log']}")
        record_measure(f"TCP stream {what}: longest pause",
                       f"{snd['longest_pause_ms']} ms on the host's clock "
                       f"(at line {snd['pause_at']} of {snd['sent']}, "
                       f"{self.interval} ms apart; "
                       f"{gst['longest_pause_ms']} ms on the guest's)")
        return int(snd["longest_pause_ms"])
