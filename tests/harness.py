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
                 "ws_pages", "rate", "tsc_khz", "pages_dirtied", "last_tsc")


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


class ApiError(Exception):
    def __init__(self, code, name, message):
        super().__init__(f"{name} ({code}): {message}")
        self.code, self.name, self.message = code, name, message


class Api:
    """A raw JSON client on the control socket."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
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


class Daemon:
    """One xen daemon with its socket, state dir and log under `root`."""

    def __init__(self, root, binary=XEN):
        self.root = root
        self.binary = binary
        self.sock = os.path.join(root, "xen.sock")
        self.state = os.path.join(root, "state")
        self.log_path = os.path.join(root, "xen.log")
        self.proc = None
        self.cfg_count = 0

    # -- lifecycle
    def start(self, timeout=20):
        self.proc = subprocess.Popen(
            [self.binary, "--socket", self.sock, "--state-dir", self.state,
             "--foreground", "--log", self.log_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "xen.stderr"), "w"))
        deadline = time.monotonic() + timeout
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
                self.proc.wait(timeout=20)
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
                           capture_output=True, timeout=timeout)
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
               extra="", paused=False):
        k = kernel if kernel.startswith("/") else guest_path(kernel)
        cfg = (f'name = "{name}"\nmemory = {memory}\nkernel = "{k}"\n'
               f'cmdline = "{cmdline}"\n{extra}')
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
        deadline = time.monotonic() + timeout
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dom not in self.domains():
                return
            time.sleep(0.05)
        raise AssertionError(f"domain {dom} still exists after {timeout}s")

    def wait_state(self, dom, state, timeout=20):
        deadline = time.monotonic() + timeout
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
        deadline = time.monotonic() + timeout
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
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.console_since(dom, mark)
            except ApiError:
                pass
            lines = COUNTER_LINE_RX.findall(text)
            if len(lines) >= count:
                return parse_status_lines("".join(lines))
            time.sleep(0.05)
        raise AssertionError(f"console of {dom}: fewer than {count} status "
                             f"lines in {timeout}s; it says:\n{text[-3000:]}")

    def wait_log(self, pattern, timeout=20, start=0):
        """Wait until the daemon's log file (from byte `start`) matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
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


class StatusReader:
    """Maps a domain's RAM memfd through /proc/PID/fd and reads the
    counter guest's status block, as an outside tool would."""

    def __init__(self, pid, domid):
        target = f"/memfd:dom{domid}-ram"
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith(target + " "):
                self.f = open(os.path.join(fd_dir, fd), "rb")
                break
        else:
            raise FileNotFoundError(f"no RAM memfd for domain {domid}")
        self.map = mmap.mmap(self.f.fileno(), STATUS_GPA + 4096,
                             prot=mmap.PROT_READ)

    def read(self):
        vals = struct.unpack_from("<8s9Q", self.map, STATUS_GPA)
        return dict(zip(STATUS_FIELDS, vals))

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


def wait_until(pred, timeout=20, what="condition", interval=0.05):
    """Poll pred() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
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
        deadline = time.monotonic() + timeout
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
        rc = self.p.wait(timeout=timeout)
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
            f'cmdline = "{cmdline}"\n{extra}')


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
        """Since the last mark(): the counter grew, at least `lines` new
        status lines appeared, every one with errors=0 and a counter above
        the mark; the status block says errors=0.  Then marks again."""
        wait_counter_advances(self.reader, 1, timeout,
                              start=self.counter_mark)
        st = self.d.wait_status_lines(self.name, lines, self.console_mark,
                                      timeout)
        for s in st:
            assert s["errors"] == 0, f"{self.name} reports errors: {s}"
            assert s["counter"] > self.counter_mark, \
                f"{self.name}: status line {s} not past {self.counter_mark}"
        block = self.reader.read()
        assert block["magic"] == STATUS_MAGIC and block["errors"] == 0, \
            f"{self.name}: status block {block}"
        self.mark()
        return st

    def close(self):
        self.reader.close()
