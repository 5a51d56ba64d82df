"""Helpers for tests and benchmarks: run the daemon and xl, talk JSON,
watch consoles, read the counter guest's status block from outside."""
import json
import mmap
import os
import re
import socket
import struct
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("XEN_BUILD", os.path.join(ROOT, "build"))
XEN = os.path.join(BUILD, "bin", "xen")
XL = os.path.join(BUILD, "bin", "xl")
GUESTS = os.path.join(BUILD, "guests")

# The counter guest's status block (tests/guests/README.md).
STATUS_GPA = 0x00200000
STATUS_MAGIC = b"CNTRGST1"
STATUS_FIELDS = ("magic", "counter", "rounds", "verifications", "errors",
                 "ws_pages", "rate", "tsc_khz", "pages_dirtied", "last_tsc",
                 "max_gap_tsc", "idle_us", "sleeps", "halts",
                 "gap_log_count", "gap_log_min_tsc")
STATUS_STRUCT = "<8s15Q"
# ...and the gap log behind it in the same page: (end_tsc, gap_tsc) pairs.
GAP_LOG_OFFSET = 0x800
GAP_LOG_SIZE = 128


# How much longer than natively a wait on a condition may take: the test
# host (tests/testhost) runs everything 10-50 times slower and sets it.
# Only deadlines stretch; what a test checks stays the same.
TIME_SCALE = float(os.environ.get("XEN_TIME_SCALE", "1"))


def scaled(seconds):
    return seconds * TIME_SCALE


def deadline_after(seconds):
    """The monotonic time `seconds` (scaled) from now."""
    return time.monotonic() + scaled(seconds)


def guest_path(name):
    return os.path.join(GUESTS, name + ".elf")


def require_binaries():
    for p in (XEN, XL, guest_path("counter"), guest_path("exit")):
        if not os.path.exists(p):
            raise RuntimeError(f"{p} is missing: run `make` first")


def kvm_usable():
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm does not exist on this machine"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user"
    return True, ""


def kvm_module():
    """The KVM module behind /dev/kvm here: kvm_intel, kvm_amd, kvm_pvm
    (their semantics differ at the edges: see test_exits), or kvm."""
    for mod in ("kvm_intel", "kvm_amd", "kvm_pvm"):
        if os.path.isdir(f"/sys/module/{mod}"):
            return mod
    return "kvm"


# The skip reason of a test left for the test host (tests/testhost).
DEFERRED = "needs KVM: deferred to the test host"


def run_xen(*args, timeout=30, **kw):
    """Run the daemon to completion; one that is still running after
    `timeout` seconds (it started when it should not have) is stopped
    and reported with exit status None."""
    p = subprocess.Popen([XEN] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.terminate()
        out, err = p.communicate(timeout=30)
        rc = None
    return subprocess.CompletedProcess(p.args, rc, out, err)


def require_kvm():
    """For a test that needs KVM: fails it, naming why, where there is
    none, since `make test` runs such tests in a test host there
    (tests/testhost/README.md).  It skips only when the suite defers it to
    the test host (XEN_KVM_DEFER, set by tests/testhost/suite.py) or with
    XEN_ALLOW_KVM_SKIP=1."""
    import pytest
    if os.environ.get("XEN_KVM_DEFER"):
        pytest.skip(DEFERRED)
    ok, why = kvm_usable()
    if ok:
        return
    if os.environ.get("XEN_ALLOW_KVM_SKIP") == "1":
        pytest.skip(why)
    pytest.fail(f"this test needs KVM: {why}.  `make test` runs it in a "
                f"test host where /dev/kvm is missing; set "
                f"XEN_ALLOW_KVM_SKIP=1 to skip it instead", pytrace=False)


_features = None


def build_features():
    """Kconfig features of the build under test, from its autoconf.h."""
    global _features
    if _features is None:
        path = os.path.join(BUILD, "include", "generated", "autoconf.h")
        _features = set()
        with open(path) as f:
            for line in f:
                m = re.match(r"#define CONFIG_(\w+) 1$", line.strip())
                if m:
                    _features.add(m.group(1))
    return _features


def build_has(name):
    return name in build_features()


def kconfig_bools():
    """Names of the bool options declared in the Kconfig file(s)."""
    names, seen = set(), set()

    def scan(path):
        if path in seen or not os.path.exists(path):
            return
        seen.add(path)
        current = None
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*(?:menu)?config\s+(\w+)", line)
                if m:
                    current = m.group(1)
                    continue
                m = re.match(r'\s*source\s+"([^"]+)"', line)
                if m:
                    scan(os.path.join(ROOT, m.group(1)))
                    continue
                if current and re.match(r"\s*(def_)?bool\b", line):
                    names.add(current)
                    current = None

    scan(os.path.join(ROOT, "Kconfig"))
    return names


def build_bool_features():
    """The bool Kconfig options enabled in the build under test: what
    the daemon lists as `features`."""
    return build_features() & kconfig_bools()


def build_config_int(name, default=None):
    """An integer Kconfig value (e.g. MAX_DOMAINS) of the build under
    test, from its autoconf.h; `default` when it is not there."""
    path = os.path.join(BUILD, "include", "generated", "autoconf.h")
    with open(path) as f:
        for line in f:
            m = re.match(rf"#define CONFIG_{name} (\d+)$", line.strip())
            if m:
                return int(m.group(1))
    return default


def unix_connect(path, timeout=30):
    """A stream socket connected to `path`, with `timeout` on later
    operations.  With a timeout Python connects non-blocking, and a Unix
    socket whose listen backlog is full then fails with EAGAIN at once
    instead of waiting for the daemon to accept: retry that, for up to
    `timeout` seconds, as a blocking connect() would wait."""
    deadline = deadline_after(timeout)
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(timeout))
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
        except BaseException:
            s.close()
            raise


class ApiError(Exception):
    def __init__(self, code, name, message):
        super().__init__(f"{name} ({code}): {message}")
        self.code, self.name, self.message = code, name, message


class Api:
    """A raw JSON client on the control socket."""

    def __init__(self, path, timeout=30):
        self.sock = unix_connect(path, timeout)
        self.file = self.sock.makefile("rb")
        self.next_id = 1

    def send_line(self, raw):
        self.sock.sendall(raw if isinstance(raw, bytes) else raw.encode())

    def read_reply(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("daemon closed the connection")
        return json.loads(line)

    def request(self, command, **args):
        req = {"version": 1, "id": self.next_id, "command": command,
               "args": args}
        self.next_id += 1
        self.send_line(json.dumps(req) + "\n")
        return self.read_reply()

    def call(self, command, **args):
        r = self.request(command, **args)
        if not r["ok"]:
            e = r["error"]
            raise ApiError(e["code"], e["name"], e["message"])
        return r["result"]

    def close(self):
        self.file.close()
        self.sock.close()


def become_subreaper():
    """Orphans of our children come to us, as to a service manager: the
    daemon a build-ahead live update starts is the old daemon's child,
    and once that exits it is ours to reap (docs/live-update.md)."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)                  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on (for now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class DaemonProcess:
    """The daemon's process, wherever a live update moved it: the one we
    started, then the one its pid file names (a build-ahead update starts
    a new process; the old one exits).  Popen's interface, as the tests
    use it: pid, poll(), returncode, wait(), terminate(), kill()."""

    def __init__(self, popen, pid_file):
        self.popen = popen
        self.pid_file = pid_file
        self._pid = popen.pid
        self.returncode = None

    def _successor(self):
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and pid != self._pid else None

    @staticmethod
    def _running(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
        except (OSError, IndexError):
            return False

    def _reap(self, pid, block=False):
        """Exit status of `pid` if it ended (None if it runs)."""
        if pid == self.popen.pid:
            if block:
                return self.popen.wait()
            return self.popen.poll()
        try:
            got, st = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Not ours (no subreaper): gone once /proc says so.
            while block and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.02)
            return 0 if not os.path.exists(f"/proc/{pid}") else None
        if got == 0:
            return None
        return os.waitstatus_to_exitcode(st)

    def _follow(self, block=False):
        while True:
            rc = self._reap(self._pid, block=block)
            if rc is None:
                return None
            nxt = self._successor() if rc == 0 else None
            if nxt is None:
                self.returncode = rc
                return rc
            self._pid = nxt

    @property
    def pid(self):
        # The new image names itself in the pid file just before the old
        # one exits: from then on it is the daemon.
        nxt = self._successor()
        if nxt and self._running(nxt):
            if self._pid == self.popen.pid:
                self.popen.poll()
            self._pid = nxt
        self._follow()
        return self._pid

    def poll(self):
        if self.returncode is not None:
            return self.returncode
        return self._follow()

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("xen", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig):
        pid = self.pid              # the pid file's, once it moved
        if self.poll() is None:
            os.kill(pid, sig)

    def terminate(self):
        self.send_signal(15)

    def kill(self):
        self.send_signal(9)


class Daemon:
    """One xen daemon with its socket, state dir and log under `root`."""

    def __init__(self, root, binary=XEN, extra_args=(), prefix=()):
        """prefix: a command to run it under (`ip netns exec NS`: it
        must exec the daemon, so that proc is the daemon's)."""
        self.root = root
        self.binary = binary
        self.extra_args = list(extra_args)
        self.prefix = list(prefix)
        self.sock = os.path.join(root, "xen.sock")
        self.state = os.path.join(root, "state")
        self.log_path = os.path.join(root, "xen.log")
        self.proc = None
        self.cfg_count = 0

    # -- lifecycle
    def start(self, timeout=20):
        become_subreaper()
        self.proc = DaemonProcess(subprocess.Popen(
            self.prefix + [self.binary, "--socket", self.sock,
                           "--state-dir", self.state, "--foreground",
                           "--log", self.log_path] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "xen.stderr"), "w")),
            os.path.join(self.state, "xen.pid"))
        deadline = deadline_after(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}"
                                   f": {self.read_file('xen.stderr')}")
            try:
                Api(self.sock).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("daemon did not open its socket")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_file(self, name):
        try:
            with open(os.path.join(self.root, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        return self.read_file("xen.log")

    # -- clients
    def api(self):
        return Api(self.sock)

    def call(self, command, **args):
        a = self.api()
        try:
            return a.call(command, **args)
        finally:
            a.close()

    def xl(self, *args, check=True, input=None, timeout=60):
        env = dict(os.environ, XL_SOCKET=self.sock)
        r = subprocess.run([XL] + list(args), env=env, input=input,
                           capture_output=True, timeout=scaled(timeout))
        r.out = r.stdout.decode(errors="replace")
        r.err = r.stderr.decode(errors="replace")
        if check and r.returncode != 0:
            raise AssertionError(f"xl {' '.join(args)} exited "
                                 f"{r.returncode}: {r.err}{r.out}")
        return r

    # -- domains
    def write_cfg(self, text, name=None):
        self.cfg_count += 1
        path = os.path.join(self.root, name or f"guest{self.cfg_count}.cfg")
        with open(path, "w") as f:
            f.write(text)
        return path

    def create(self, name, kernel="counter", memory=32, cmdline="",
               extra="", paused=False, strict_io=True):
        """The project's own guests touch no port or address that no
        device claims: with strict_io (the default here) doing so
        crashes the domain, so a device that stops answering shows."""
        k = kernel if kernel.startswith("/") else guest_path(kernel)
        cfg = (f'name = "{name}"\nmemory = {memory}\nkernel = "{k}"\n'
               f'cmdline = "{cmdline}"\nstrict_io = {int(strict_io)}\n'
               f'{extra}')
        args = ["create", self.write_cfg(cfg, name + ".cfg")]
        if paused:
            args.append("-p")
        self.xl(*args)
        return name

    def domains(self):
        return {d["name"]: d for d in self.call("list")["domains"]}

    def console(self, dom):
        """Everything the guest has written to its console so far."""
        r = self.call("console-read", domain=dom)
        return r["data"].encode("latin1").decode(errors="replace")

    def wait_console(self, dom, pattern, timeout=30, start=0):
        """Wait until the console (from offset `start`) matches; returns
        the match.  Fails with the console text on timeout."""
        rx = re.compile(pattern)
        deadline = deadline_after(timeout)
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.console(dom)
            except ApiError:
                pass
            m = rx.search(text, start)
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"console of {dom} never matched {pattern!r} "
                             f"in {timeout}s; it says:\n{text[-3000:]}")

    def wait_domain_gone(self, dom, timeout=20):
        deadline = deadline_after(timeout)
        while time.monotonic() < deadline:
            if dom not in self.domains():
                return
            time.sleep(0.05)
        raise AssertionError(f"domain {dom} still exists after {timeout}s")

    def wait_state(self, dom, state, timeout=20):
        deadline = deadline_after(timeout)
        d = None
        while time.monotonic() < deadline:
            d = self.domains().get(dom)
            if d and d["state"] == state:
                return d
            time.sleep(0.05)
        raise AssertionError(f"domain {dom} is {d and d['state']}, "
                             f"not {state}, after {timeout}s")

    def save_consoles(self, dest):
        try:
            for name in self.domains():
                with open(os.path.join(dest, f"console-{name}.txt"),
                          "w") as f:
                    f.write(self.console(name))
        except Exception as e:  # noqa: BLE001 - best effort on failure
            print(f"could not save consoles: {e}")

    # -- watching a counter guest from outside the hypervisor
    def status_reader(self, domid):
        return StatusReader(self.proc.pid, domid)

    # -- helpers for the test files
    def cfg_text(self, name, kernel="counter", memory=32, cmdline="",
                 extra=""):
        return _cfg_text(name, kernel, memory, cmdline, extra)

    def domain(self, dom):
        """The `list` record of a domain (by name or id), or None."""
        for d in self.call("list")["domains"]:
            if d["name"] == dom or str(d["id"]) == str(dom):
                return d
        return None

    def domid(self, name):
        d = self.domain(name)
        assert d is not None, f"no domain {name}: {sorted(self.domains())}"
        return d["id"]

    def console_read(self, dom):
        """(bytes of the history, absolute position of its end)."""
        r = self.call("console-read", domain=dom)
        return r["data"].encode("latin1"), r["total"]

    def console_mark(self, dom):
        """Absolute console position now; pass to console_since()."""
        return self.console_read(dom)[1]

    def console_since(self, dom, mark):
        """Console text written since `mark` (as far as the history
        still holds it)."""
        data, total = self.console_read(dom)
        skip = mark - (total - len(data))
        return data[max(skip, 0):].decode(errors="replace")

    def wait_console_since(self, dom, pattern, mark=0, timeout=30):
        rx = re.compile(pattern)
        deadline = deadline_after(timeout)
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.console_since(dom, mark)
            except ApiError:
                pass
            m = rx.search(text)
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"console of {dom} never matched {pattern!r} "
                             f"in {timeout}s; since the mark it says:\n"
                             f"{text[-3000:]}")

    def wait_status_lines(self, dom, count=1, mark=0, timeout=30):
        """Wait for `count` complete COUNTER status lines after `mark`;
        returns them parsed (parse_status_lines)."""
        deadline = deadline_after(timeout)
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.console_since(dom, mark)
            except ApiError:
                pass
            lines = complete_status_lines(text)
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        raise AssertionError(f"console of {dom}: fewer than {count} status "
                             f"lines in {timeout}s; it says:\n{text[-3000:]}")

    def wait_log(self, pattern, timeout=20, start=0):
        """Wait until the daemon's log file (from byte `start`) matches."""
        rx = re.compile(pattern)
        deadline = deadline_after(timeout)
        text = ""
        while time.monotonic() < deadline:
            text = self.log()[start:]
            m = rx.search(text)
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"daemon log never matched {pattern!r} in "
                             f"{timeout}s; it ends with:\n{text[-3000:]}")

    def counter_reader(self, name, timeout=30):
        """A StatusReader for a counter guest once its block is valid."""
        domid = self.domid(name)
        r = wait_until(lambda: _try_reader(self, domid), timeout,
                       f"RAM memfd of {name}")
        wait_until(r.counter, timeout, f"status block of {name}")
        return r

    def xl_popen(self, *args):
        return Proc([XL] + list(args), env=xl_env(self.sock))

    def start_counter(self, name, interval=200, memory=32, extra="",
                      cmdline_extra=""):
        """Create a counter guest and wait until it counts; returns a
        CounterWatch on it."""
        self.create(name, memory=memory,
                    cmdline=f"interval={interval} {cmdline_extra}".strip(),
                    extra=extra)
        return CounterWatch(self, name)


# A domain's RAM as /proc/PID/fd names it: a memfd, or a file in the
# daemon's --mem-path (xen/memory.c).
RAM_FD_RX = re.compile(r"^(?:/memfd:|.*/)dom(\d+)-ram(?:\.\w{6})? \(deleted\)$")


def ram_fds(pid):
    """{domid: /proc/PID/fd/N} of every domain's RAM the daemon holds."""
    out = {}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = RAM_FD_RX.match(link)
        if m:
            out[int(m.group(1))] = os.path.join(fd_dir, fd)
    return out


class StatusReader:
    """Maps a domain's RAM through /proc/PID/fd and reads the counter
    guest's status block, as an outside tool would."""

    def __init__(self, pid, domid):
        path = ram_fds(pid).get(domid)
        if path is None:
            raise FileNotFoundError(f"no RAM memfd for domain {domid}")
        self.f = open(path, "rb")
        self.map = mmap.mmap(self.f.fileno(), STATUS_GPA + 4096,
                             prot=mmap.PROT_READ)

    def read(self):
        return status_from_bytes(self.map, STATUS_GPA)

    def counter(self):
        st = self.read()
        return st["counter"] if st["magic"] == STATUS_MAGIC else None

    def close(self):
        self.map.close()
        self.f.close()


def parse_status_lines(text):
    """All `COUNTER counter=... errors=...` lines as dicts of ints."""
    out = []
    for m in re.finditer(r"COUNTER ((?:\w+=\d+ ?)+)", text):
        out.append({k: int(v) for k, v in
                    (kv.split("=") for kv in m.group(1).split())})
    return out


# ---------------------------------------------------------------------------
# Helpers shared by the test files (test_xl, test_config, test_exits,
# test_multi, test_socket, test_daemon).  Timeouts here are failure guards
# only: nothing asserts on how long something took.

COUNTER_LINE_RX = re.compile(r"COUNTER counter=\d+[^\r\n]*\r?\n")
# What every status line of the counter guest holds (tests/guests/counter.c):
# a byte of the console lost or printed twice shows as another key.
STATUS_LINE_KEYS = {"counter", "rounds", "verifications", "errors",
                    "dirtied", "max_gap_us"}
# ...and what it held before max_gap_us: the guests in the streams of
# tests/data/streams, saved by earlier builds, still print that.
STATUS_LINE_KEYS_OLD = STATUS_LINE_KEYS - {"max_gap_us"}


def complete_status_lines(text):
    """parse_status_lines() of the complete (CR LF ended) lines only: the
    guest may be in the middle of printing the last one."""
    return parse_status_lines("".join(COUNTER_LINE_RX.findall(text)))


def wait_until(pred, timeout=20, what="condition", interval=0.05):
    """Poll pred() until it returns a true value; return that value."""
    deadline = deadline_after(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout}s")
        time.sleep(interval)


def wait_counter_advances(reader, by=1, timeout=20, start=None):
    """Wait until the counter in the status block has grown by at least
    `by` over `start` (default: its current value); returns the new value.
    """
    first = reader.counter() if start is None else start
    if first is None:
        first = wait_until(reader.counter, timeout,
                           "status block never became valid")
    last = [first]

    def moved():
        c = reader.counter()
        if c is not None:
            last[0] = c
        return c is not None and c >= first + by

    try:
        wait_until(moved, timeout, "counter advancing")
    except AssertionError:
        raise AssertionError(f"counter did not advance by {by} in {timeout}s"
                             f": {first} -> {last[0]}; status "
                             f"{reader.read()}") from None
    return last[0]


def assert_counter_frozen(reader, settle=0.4, checks=4):
    """The counter does not move for `settle` seconds (paused guest)."""
    first = reader.counter()
    for _ in range(checks):
        time.sleep(settle / checks)
        now = reader.counter()
        assert now == first, f"counter moved while frozen: {first} -> {now}"
    return first


def latin1_text(data):
    return data.encode("latin1").decode(errors="replace")


def xl_env(sock):
    return dict(os.environ, XL_SOCKET=sock)


class Proc:
    """A long-running child (xl console, xl create -c) whose stdout is
    collected by a thread, so tests can wait for output and write stdin."""

    def __init__(self, argv, env=None, stdin=subprocess.PIPE):
        self.argv = argv
        self.p = subprocess.Popen(argv, env=env, stdin=stdin,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self._out = bytearray()
        self._err = bytearray()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.p.stdout,
                                                      self._out),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr,
                                                      self._err),
                             daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, f, buf):
        while True:
            chunk = f.read1(65536) if hasattr(f, "read1") else f.read(4096)
            if not chunk:
                return
            with self._lock:
                buf.extend(chunk)

    @property
    def out(self):
        with self._lock:
            return bytes(self._out).decode(errors="replace")

    @property
    def err(self):
        with self._lock:
            return bytes(self._err).decode(errors="replace")

    def send(self, data):
        self.p.stdin.write(data if isinstance(data, bytes) else data.encode())
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def wait_output(self, pattern, timeout=30, start=0):
        rx = re.compile(pattern)
        deadline = deadline_after(timeout)
        while time.monotonic() < deadline:
            m = rx.search(self.out, start)
            if m:
                return m
            if self.p.poll() is not None:
                # it ended: the pump threads may still hold the last bytes
                for t in self._threads:
                    t.join(5)
                m = rx.search(self.out, start)
                if m:
                    return m
                break
            time.sleep(0.05)
        raise AssertionError(f"{' '.join(self.argv[:3])} never printed "
                             f"{pattern!r} (exit {self.p.poll()}); "
                             f"stdout:\n{self.out[-3000:]}\nstderr:\n"
                             f"{self.err[-2000:]}")

    def wait_exit(self, timeout=20):
        rc = self.p.wait(timeout=scaled(timeout))
        for t in self._threads:
            t.join(5)
        return rc

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit code."""
        if self.p.poll() is None:
            self.p.terminate()
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"{self.argv[:3]} ignored SIGTERM")
        finally:
            self.close_stdin()


def _cfg_text(name, kernel="counter", memory=32, cmdline="", extra=""):
    k = kernel if kernel.startswith("/") else guest_path(kernel)
    if extra and not extra.endswith("\n"):
        extra += "\n"
    return (f'name = "{name}"\nmemory = {memory}\nkernel = "{k}"\n'
            f'cmdline = "{cmdline}"\nstrict_io = 1\n{extra}')


def _try_reader(d, domid):
    try:
        r = d.status_reader(domid)
    except FileNotFoundError:
        return None
    if r.counter() is None:
        r.close()
        return None
    return r


class CounterWatch:
    """A running counter guest, watched both from outside (its status
    block in the RAM memfd) and through what it prints."""

    def __init__(self, daemon, name, timeout=30):
        self.d = daemon
        self.name = name
        self.d.wait_console(name, r"COUNTER READY", timeout=timeout)
        self.reader = self.d.counter_reader(name, timeout)
        self.mark()

    def mark(self):
        """Remember the counter and console position as of now."""
        self.counter_mark = self.reader.counter()
        self.console_mark = self.d.console_mark(self.name)

    def assert_counting(self, lines=1, timeout=30):
        """Since the last mark(): the counter grew; at least `lines` new
        status lines appeared with counters past the mark, every status
        line since the mark says errors=0 and their counters increase;
        the status block says errors=0.  Then marks again.

        (The first line after the mark may carry a counter read just
        before the mark: the guest reads the counter, then prints.)"""
        wait_counter_advances(self.reader, 1, timeout,
                              start=self.counter_mark)
        want = lines
        while True:
            st = self.d.wait_status_lines(self.name, want,
                                          self.console_mark, timeout)
            fresh = [s for s in st if s["counter"] > self.counter_mark]
            if len(fresh) >= lines:
                break
            want = len(st) + 1        # one more line
        for s in st:
            assert set(s) in (STATUS_LINE_KEYS, STATUS_LINE_KEYS_OLD), \
                f"{self.name}: a status line lost or repeated bytes: {s}"
            assert s["errors"] == 0, f"{self.name} reports errors: {s}"
        counters = [s["counter"] for s in st]
        assert counters == sorted(counters), \
            f"{self.name}: status counters go backwards: {counters}"
        assert len(st) - len(fresh) <= 1, \
            f"{self.name}: stale status lines after the mark: {st}"
        block = self.reader.read()
        assert block["magic"] == STATUS_MAGIC and block["errors"] == 0, \
            f"{self.name}: status block {block}"
        self.mark()
        return fresh

    def close(self):
        self.reader.close()


class ConsoleStream:
    """A raw `console` connection on the control socket: once the
    constructor returns the daemon has attached it, and a thread collects
    everything the guest writes until the daemon closes the stream.
    (Plain recv(), no buffered file: a timeout can lose the data of a
    socket file object.)"""

    def __init__(self, sock_path, dom, history=True, timeout=30):
        self.sock = unix_connect(sock_path, timeout)
        req = {"version": 1, "id": "console", "command": "console",
               "args": {"domain": dom, "history": history}}
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        head = b""
        while b"\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.sock.close()
                raise ConnectionError("daemon closed the connection")
            head += chunk
        line, rest = head.split(b"\n", 1)
        r = json.loads(line)
        if not r["ok"]:
            self.sock.close()
            e = r["error"]
            raise ApiError(e["code"], e["name"], e["message"])
        self.sock.settimeout(0.2)
        self._buf = bytearray(rest)
        self._lock = threading.Lock()
        self._stop = False
        self.eof = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        while not self._stop:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof.set()
                return
            with self._lock:
                self._buf.extend(chunk)

    @property
    def text(self):
        with self._lock:
            return bytes(self._buf).decode(errors="replace")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes)
                          else data.encode())

    def wait(self, pattern, timeout=30, start=0):
        rx = re.compile(pattern)
        deadline = deadline_after(timeout)
        while time.monotonic() < deadline:
            m = rx.search(self.text, start)
            if m:
                return m
            if self.eof.is_set():
                m = rx.search(self.text, start)
                if m:
                    return m
                break
            time.sleep(0.05)
        raise AssertionError(f"console stream never showed {pattern!r} "
                             f"(closed: {self.eof.is_set()}); it got:\n"
                             f"{self.text[-3000:]}")

    def wait_closed(self, timeout=20):
        if not self.eof.wait(scaled(timeout)):
            raise AssertionError(f"the daemon did not close the console "
                                 f"stream in {timeout}s")

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.sock.close()


# ---------------------------------------------------------------------------
# Helpers for save/restore (test_save.py, tests/data/streams/regenerate.py).

def status_from_bytes(buf, offset=0):
    """The counter guest's status block fields decoded from raw guest
    memory, e.g. the status page as a saved state stream holds it."""
    vals = struct.unpack_from(STATUS_STRUCT, buf, offset)
    return dict(zip(STATUS_FIELDS, vals))


def gap_log(buf, st, offset=0):
    """The gap log entries of a status block `st` read from `buf`, oldest
    first, as (end_tsc, gap_tsc) pairs (what the ring still holds)."""
    n = st["gap_log_count"]
    out = []
    for i in range(max(0, n - GAP_LOG_SIZE), n):
        out.append(struct.unpack_from(
            "<2Q", buf, offset + GAP_LOG_OFFSET + 16 * (i % GAP_LOG_SIZE)))
    return out


def max_gap_ms(st):
    """The longest gap the counter guest saw in its loop, by its own TSC,
    in milliseconds (from a status block as read above)."""
    return st["max_gap_tsc"] / st["tsc_khz"] if st["tsc_khz"] else 0.0


def run_xl(sock, *args, cwd=None, check=True, timeout=60):
    """xl against the daemon on `sock`, run in directory `cwd` (for
    relative FILE arguments); the result as Daemon.xl() returns it."""
    r = subprocess.run([XL] + list(args), env=xl_env(sock), cwd=cwd,
                       capture_output=True, timeout=scaled(timeout))
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise AssertionError(f"xl {' '.join(args)} exited "
                             f"{r.returncode}: {r.err}{r.out}")
    return r


DAEMON_SANITIZER_RX = re.compile(r"^==\d+==ERROR: \w+Sanitizer|"
                                 r"^SUMMARY: \w+Sanitizer|: runtime error: ",
                                 re.M)


def stop_and_check(d):
    """Stop a daemon a test started itself (not the `daemon` fixture) and
    return what went wrong with it as text: a sanitizer report in its
    xen.stderr, a death before the stop, an unclean exit; '' if clean."""
    died = d.proc is not None and d.proc.poll() is not None
    d.stop()
    text = d.read_file("xen.stderr")
    m = DAEMON_SANITIZER_RX.search(text)
    if m:
        return "sanitizer report:\n" + text[max(m.start() - 200, 0):][:6000]
    if died:
        return f"daemon died ({d.proc.returncode}):\n{text[-3000:]}"
    if d.proc is not None and d.proc.returncode != 0:
        return f"daemon exited {d.proc.returncode}:\n{text[-3000:]}"
    return ""


def still_fine(daemon, witness):
    """The daemon serves and the `witness` counter guest (the conftest
    fixture) kept counting, without errors."""
    assert daemon.alive(), daemon.read_file("xen.stderr")
    assert daemon.domain("witness")["state"] == "running"
    witness.assert_counting(lines=1)


def ram_memfds(daemon):
    """Domain ids whose RAM memfd the daemon holds open."""
    return set(ram_fds(daemon.proc.pid))


# ---------------------------------------------------------------------------
# Helpers for live update (test_liveupdate.py, bench/liveupdate.py).

COUNTER_WATCH = os.path.join(BUILD, "bin", "counter-watch")


def elf_notes(path):
    """What an image's PT_NOTE segments say, parsed without libelf:
    {"build_id": hex or None, "xkvm": (read_min, read_max, write_min,
    write_max) or None, "xkvm_desc_offset": file offset of the XKVM
    note's 16-byte descriptor or None, "features": the XKVM features
    note's flags or None (an image older than build-ahead),
    "features_desc_offset", "complete": the file holds every
    PT_LOAD segment and the section header table (not truncated)}."""
    with open(path, "rb") as f:
        data = f.read()
    out = {"build_id": None, "xkvm": None, "xkvm_desc_offset": None,
           "features": None, "features_desc_offset": None,
           "complete": False}
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return out
    phoff, = struct.unpack_from("<Q", data, 0x20)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data,
                                                            0x36)
    ends = [shoff + shentsize * shnum]
    for i in range(phnum):
        p_type, _, p_off, _, _, p_filesz, _, p_align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:                             # PT_LOAD
            ends.append(p_off + p_filesz)
        if p_type != 4:                             # PT_NOTE
            continue
        align = 8 if p_align == 8 else 4
        off, end = p_off, min(p_off + p_filesz, len(data))
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, off)
            name = data[off + 12:off + 12 + namesz]
            desc_off = off + 12 + (namesz + align - 1) // align * align
            desc = data[desc_off:desc_off + descsz]
            if name == b"GNU\0" and ntype == 3:     # NT_GNU_BUILD_ID
                out["build_id"] = desc.hex()
            elif name == b"XKVM\0" and ntype == 1 and descsz == 16:
                out["xkvm"] = struct.unpack("<4I", desc)
                out["xkvm_desc_offset"] = desc_off
            elif name == b"XKVM\0" and ntype == 3 and descsz == 4:  # features
                out["features"], = struct.unpack("<I", desc)
                out["features_desc_offset"] = desc_off
            off = desc_off + (descsz + align - 1) // align * align
    out["complete"] = max(ends) <= len(data)
    return out


def copy_image(src, dest, tries=20):
    """Copy a hypervisor image to `dest` (mode 0755) and check the copy
    is a whole one: the tree is shared and a build may be relinking
    `src` right now.  Returns elf_notes(dest)."""
    for _ in range(tries):
        with open(src, "rb") as f:
            data = f.read()
        tmp = dest + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest)
        notes = elf_notes(dest)
        if notes["complete"] and notes["build_id"] and notes["xkvm"]:
            return notes
        time.sleep(0.5)
    raise RuntimeError(f"{src}: no complete image after {tries} tries")


def build_bool_features_of(build_dir):
    """The bool Kconfig options enabled in another build tree (what its
    daemon lists as `features`)."""
    path = os.path.join(build_dir, "include", "generated", "autoconf.h")
    feats = set()
    with open(path) as f:
        for line in f:
            m = re.match(r"#define CONFIG_(\w+) 1$", line.strip())
            if m:
                feats.add(m.group(1))
    return feats & kconfig_bools()


class CounterWatchProc:
    """build/bin/counter-watch on the daemon's pid: starts watching every
    guest RAM memfd the daemon holds now; stop() returns its report as
    {domid: {"max_stall_ms", "samples", "first", "last", "errors",
    "guest_max_gap_ms", "window_max_gap_ms", "gaps_logged", "gaps_lost",
    "idle_us", "sleeps"}} (tools/watch/counter-watch.c)."""

    def __init__(self, pid, interval_us=200, binary=None):
        self.p = subprocess.Popen(
            [binary or COUNTER_WATCH, "--pid", str(pid), "--interval-us",
             str(interval_us)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.p.stderr.readline().decode(errors="replace")
        if "watching" not in line:
            self.p.kill()
            self.p.wait()
            raise RuntimeError(f"counter-watch did not start: {line}")
        self.watching = int(re.search(r"watching (\d+)", line).group(1))
        self.report = None

    def stop(self, timeout=20):
        if self.report is not None:
            return self.report
        if self.p.poll() is None:
            self.p.send_signal(2)                   # SIGINT: report
        out, err = self.p.communicate(timeout=scaled(timeout))
        text = out.decode(errors="replace")
        try:
            js = json.loads(text)
        except ValueError:
            raise RuntimeError(f"counter-watch exited {self.p.returncode}"
                               f": {text!r} {err!r}") from None
        self.seconds = js.get("seconds")
        self.report = {g["domid"]: g for g in js["guests"]}
        return self.report

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ------------------------------------------------ files that are no files

def unblock_fifo(path):
    """Let a reader blocked in open() of the FIFO `path` go on: open and
    close its write end (the reader then reads end-of-file)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def request_and_probe(d, command, args, timeout=5, unblock=None):
    """Send `command` on one connection, then ask `version` on a second
    before reading the first answer: a daemon stuck in the first request
    (in open() of a FIFO, reading a device) leaves the second unanswered.
    `timeout` is a hang guard, not a measure.  Returns (the first reply or
    None, whether the second was answered); when it was not, unblock() is
    called so that the daemon can recover."""
    a = Api(d.sock, timeout=timeout)
    try:
        a.send_line(json.dumps({"version": 1, "id": 1, "command": command,
                                "args": args}) + "\n")
        try:
            b = Api(d.sock, timeout=timeout)
            try:
                answered = "protocol" in b.call("version")
            finally:
                b.close()
        except OSError:             # socket.timeout included
            answered = False
        if not answered:
            if not unblock:
                return None, False
            unblock()
        a.sock.settimeout(scaled(60))
        return a.read_reply(), answered
    finally:
        a.close()
