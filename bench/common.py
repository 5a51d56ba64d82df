"""Shared pieces of the benchmarks: host facts, statistics, /proc/PID/smaps
accounting, timestamped output streams, our daemon and QEMU launchers.

Nothing here judges a number: the benchmarks measure and report."""
import atexit
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("XEN_BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import harness  # noqa: E402  (tests/harness.py: Daemon, Api, guest paths)

BUILD = harness.BUILD
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
GUEST_MEM_MIB = 64

# The counter guest's first line, the banner (tests/guests/README.md).
BANNER_RX = re.compile(rb"counter guest: ws_pages=[^\r\n]*\r\n")
READY_RX = re.compile(rb"COUNTER READY\r\n")
IOBENCH_RX = re.compile(
    rb"IOBENCH port=0x([0-9a-f]+) count=(\d+) out_cycles=(\d+) "
    rb"out_ns=(\d+\.\d) in_cycles=(\d+) in_ns=(\d+\.\d)\r\n")


class BenchError(Exception):
    """A measurement could not be taken (not a judgement on a number)."""


# ------------------------------------------------------------ statistics

def summary(samples):
    """Median and spread of a list of numbers (None if empty)."""
    xs = [x for x in samples if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs),
            "max": max(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0}


def slope(points):
    """Least-squares slope and intercept of [(x, y), ...]."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    k = sxy / sxx
    return k, my - k * mx


# ------------------------------------------------------------ host facts

def _first_line(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def psi_cpu_some_us():
    """Host-wide time (us) during which some runnable task waited for a
    CPU (/proc/pressure/cpu), or None without PSI."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Pressure:
    """CPU pressure over a window: the fraction of wall time in which some
    task on the host waited for a CPU (0 = idle host, 1 = always
    contended).  Recorded with each sample: it says how much the host's
    other load may have inflated that sample."""

    def __init__(self):
        self.t0, self.p0 = time.monotonic(), psi_cpu_some_us()

    def fraction(self):
        p1, t1 = psi_cpu_some_us(), time.monotonic()
        if p1 is None or self.p0 is None or t1 <= self.t0:
            return None
        return round((p1 - self.p0) / ((t1 - self.t0) * 1e6), 3)


def qemu_version():
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True,
                             text=True, timeout=20).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _pressure_line():
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().strip()
    except OSError:
        return None


def host_info():
    return {
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "nr_cpus": os.cpu_count(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "kvm_modules": sorted(m for m in os.listdir("/sys/module")
                              if m.startswith("kvm")),
        "mem_total_kib": int(_first_line("/proc/meminfo", "MemTotal")
                             .split()[0]),
        "qemu": qemu_version(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
        "cpu_pressure_at_start": _pressure_line(),
    }


# ------------------------------------------------------------ smaps

def smaps(pid):
    """Every VMA of a process with its smaps counters (kB)."""
    vmas, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)",
                         line)
            if m:
                cur = {"size": (int(m.group(2), 16) - int(m.group(1), 16))
                       // 1024, "perm": m.group(3), "inode": int(m.group(4)),
                       "name": m.group(5).strip()}
                vmas.append(cur)
                continue
            key, _, val = line.partition(":")
            parts = val.split()
            if cur is not None and len(parts) == 2 and parts[1] == "kB":
                cur[key] = int(parts[0])
    return vmas


def memory_split(vmas, is_guest_ram):
    """Sums over VMAs, guest RAM apart.  `overhead_*` is everything but the
    guest-RAM VMAs; anon/file split the overhead RSS by kind (file also
    counts non-guest shmem and device mappings such as kvm_run)."""
    guest = [v for v in vmas if is_guest_ram(v)]
    other = [v for v in vmas if not is_guest_ram(v)]

    def tot(vs, key):
        return sum(v.get(key, 0) for v in vs)
    return {
        "rss_total_kib": tot(vmas, "Rss"),
        "guest_ram_vmas": len(guest),
        "guest_ram_rss_kib": tot(guest, "Rss"),
        "overhead_rss_kib": tot(other, "Rss"),
        "overhead_pss_kib": tot(other, "Pss"),
        "overhead_anon_kib": tot(other, "Anonymous"),
        "overhead_file_kib": tot(other, "Rss") - tot(other, "Anonymous"),
        "overhead_private_kib": tot(other, "Private_Clean")
        + tot(other, "Private_Dirty"),
    }


# ------------------------------------------------------------ streams

class Stream:
    """Collects what a reader function returns, chunk by chunk, on a thread,
    stamping each chunk with time.monotonic() on arrival."""

    def __init__(self, read_chunk, name="stream"):
        self._read = read_chunk
        self.buf = bytearray()
        self.first_byte = None
        self.eof = False
        self._cond = threading.Condition()
        self._marks = []        # (end offset, arrival time)
        self._t = threading.Thread(target=self._pump, name=name, daemon=True)
        self._t.start()

    def _pump(self):
        while True:
            try:
                chunk = self._read()
            except OSError:
                chunk = b""
            now = time.monotonic()
            with self._cond:
                if not chunk:
                    self.eof = True
                    self._cond.notify_all()
                    return
                if self.first_byte is None:
                    self.first_byte = now
                self.buf.extend(chunk)
                self._marks.append((len(self.buf), now))
                self._cond.notify_all()

    def _arrival(self, end):
        for off, t in self._marks:
            if off >= end:
                return t
        return self._marks[-1][1]

    def wait(self, rx, timeout, start=0):
        """(match, arrival time of the byte that completed it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(bytes(self.buf), start)
                if m:
                    return m, self._arrival(m.end())
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    tail = bytes(self.buf[-600:]).decode(errors="replace")
                    raise BenchError(
                        f"never saw {rx.pattern!r} "
                        f"({'closed' if self.eof else f'{timeout}s'}); "
                        f"got: {tail!r}")
                self._cond.wait(min(left, 0.5))

    def text(self):
        with self._cond:
            return bytes(self.buf).decode(errors="replace")

    def join(self, timeout=5):
        self._t.join(timeout)


# ------------------------------------------------------------ our daemon

class Ours:
    """Our daemon (tests/harness.Daemon) plus a raw console stream."""

    def __init__(self, tag):
        harness.require_binaries()
        self.root = tempfile.mkdtemp(prefix=f"xen-bench-{tag}-")
        self.d = harness.Daemon(self.root)
        self.d.start()
        _cleanups.append(self.stop)

    @property
    def pid(self):
        return self.d.proc.pid

    def stop(self):
        """Stop the daemon; its directory (log, configs) goes too unless
        BENCH_KEEP=1 is set."""
        self.d.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def info(self):
        return self.d.call("info")

    def cfg(self, name, kernel, cmdline, memory=GUEST_MEM_MIB,
            extra=""):
        text = harness._cfg_text(name, kernel, memory, cmdline, extra)
        return self.d.write_cfg(text, name + ".cfg")

    def xl_create(self, cfg_path, timeout=60):
        r = subprocess.run([harness.XL, "create", cfg_path],
                           env=harness.xl_env(self.d.sock),
                           capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"xl create {cfg_path} exited {r.returncode}: "
                             f"{r.stderr.decode(errors='replace')}")

    def console(self, dom, history=True):
        """A Stream of the domain's console (raw `console` connection; the
        daemon closes it when the domain goes away)."""
        s = harness.unix_connect(self.d.sock, timeout=30)
        req = {"version": 1, "id": 1, "command": "console",
               "args": {"domain": dom, "history": history}}
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError("daemon closed the console connection")
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        reply = json.loads(line)
        if not reply.get("ok"):
            s.close()
            raise BenchError(f"console {dom}: {reply.get('error')}")
        s.settimeout(None)
        pending = [rest] if rest else []

        def read():
            if pending:
                return pending.pop()
            return s.recv(65536)
        st = Stream(read, f"console-{dom}")
        st.sock = s
        return st

    @staticmethod
    def close_console(st):
        try:
            st.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        st.join()
        st.sock.close()

    def start_counters(self, prefix, n, cmdline, memory, timeout=90):
        """n counter guests PREFIX0.., created and counting; their ids."""
        names = [f"{prefix}{i}" for i in range(n)]
        for name in names:
            self.xl_create(self.cfg(name, "counter", cmdline, memory=memory))
        for name in names:
            self.d.wait_console(name, r"COUNTER READY", timeout)
        return names, [self.d.domid(name) for name in names]

    def destroy(self, dom, timeout=30):
        try:
            self.d.call("destroy", domain=dom)
        except harness.ApiError as e:
            if e.name != "no-such-domain":
                raise
        self.d.wait_domain_gone(dom, timeout)


# ------------------------------------------------------------ QEMU

# Machine variants.  Every one gets -accel kvm -m 64 -nodefaults (no VGA,
# NIC, floppy or CD-ROM: like our domains) -serial stdio.
QEMU_VARIANTS = {
    "qemu-seabios": {
        "label": "QEMU pc, SeaBIOS (default firmware)",
        "args": ["-machine", "pc"],
        "note": "the default PC firmware; its POST is most of the time",
    },
    "qemu-qboot": {
        "label": "QEMU pc, -bios qboot.rom",
        "args": ["-machine", "pc", "-bios", "qboot.rom"],
        "note": "minimal firmware, same pc machine and devices",
    },
    "qemu-microvm": {
        "label": "QEMU microvm (*)",
        "args": ["-machine", "microvm"],
        "note": "(*) no port 0x61 (no PC speaker): the guest's PIT TSC "
                "calibration fails at once and it skips its ~100-150 ms "
                "calibration, so its boot is not like-for-like",
    },
}


def _pdeathsig():
    # The QEMU child dies with us, whatever happens to this process.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


class Qemu:
    """One QEMU process with its serial console on stdout as a Stream."""

    def __init__(self, variant, kernel, cmdline, debug_exit=False,
                 memory=GUEST_MEM_MIB):
        self.variant = variant
        self.argv = [QEMU, "-accel", "kvm", "-m", str(memory),
                     "-nodefaults", "-display", "none", "-no-reboot",
                     "-serial", "stdio"] + QEMU_VARIANTS[variant]["args"]
        if debug_exit:
            self.argv += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x01"]
        self.argv += ["-kernel", harness.guest_path(kernel),
                      "-append", cmdline]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  preexec_fn=_pdeathsig)
        _cleanups.append(self.kill)
        fd = self.p.stdout.fileno()
        self.out = Stream(lambda: os.read(fd, 65536), f"qemu-{self.p.pid}")
        efd = self.p.stderr.fileno()
        self.err = Stream(lambda: os.read(efd, 65536), f"qemu-err-{self.p.pid}")

    @property
    def pid(self):
        return self.p.pid

    def wait_exit(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"QEMU did not exit in {timeout}s: "
                             f"{self.out.text()[-400:]!r}")
        self.out.join()
        self.err.join()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        # The readers see EOF once QEMU is gone; close the pipes only then
        # (closing under a blocked os.read could hand it a reused fd).
        self.out.join()
        self.err.join()
        for f in (self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def stderr_text(self):
        return self.err.text()


def qemu_available():
    if not harness.kvm_usable()[0]:
        return False, "/dev/kvm is not usable"
    v = qemu_version()
    if not v:
        return False, f"{QEMU} not found"
    return True, v


# ------------------------------------------------------------ cleanup

_cleanups = []


def cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(cleanup_all)
