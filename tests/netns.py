"""Two network namespaces joined by a veth pair: two hosts on one machine
(tests/test_migration_tls.py).  Needs root and `ip` (iproute2), as this
machine and the QEMU test host have; it fails, naming why, where they are
missing, rather than skipping.

A socket belongs to the namespace of the thread that created it, so
in_netns() lets the test process itself open sockets in either side."""
import ctypes
import os
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_count = 0


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def in_netns(name, fn):
    """fn() run in a thread that joined netns `name`; its result."""
    out = {}

    def run():
        fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                out["err"] = OSError(e, f"setns {name}: {os.strerror(e)}")
                return
        finally:
            os.close(fd)
        try:
            out["val"] = fn()
        except Exception as e:      # handed to the caller
            out["err"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["val"]


class VethPair:
    """Namespaces <tag>a (address .1) and <tag>b (.2) on 10.77.N.0/24,
    joined by a veth pair; remove() deletes both (and so the pair)."""

    def __init__(self):
        global _count
        if os.geteuid() != 0:
            raise RuntimeError("network namespaces need root")
        _count += 1
        tag = f"xk{os.getpid() % 100000}n{_count}"
        self.ns = [tag + "a", tag + "b"]
        self.addr = [f"10.77.{_count % 250}.1", f"10.77.{_count % 250}.2"]
        # The test host loads no module by itself: veth may be one.
        subprocess.run(["modprobe", "veth"], capture_output=True)
        try:
            self._make(tag)
        except Exception:
            self.remove()
            raise

    def _make(self, tag):
        for ns in self.ns:
            ip("netns", "add", ns)
        va, vb = tag + "x", tag + "y"
        ip("link", "add", va, "netns", self.ns[0], "type", "veth",
           "peer", "name", vb, "netns", self.ns[1])
        for ns, dev, addr in zip(self.ns, (va, vb), self.addr):
            ip("-n", ns, "addr", "add", addr + "/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def prefix(self, side):
        """The command prefix that runs a program on side 0 or 1."""
        return ["ip", "netns", "exec", self.ns[side]]

    def remove(self):
        for ns in self.ns:
            ip("netns", "del", ns, check=False)
