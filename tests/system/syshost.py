"""The host VM of the system tier and the Linux guests inside it.

QEMU (TCG, emulated AMD SVM with nested paging) boots Debian's kernel as
the *host* with an initramfs (sysimages.py, host-init.sh) that loads
kvm-amd and starts our daemon.  The harness talks to the host over a
virtio-serial port that QEMU connects to a Unix socket here: a line
protocol that runs one shell command at a time and returns its output and
exit status (see host-init.sh).  The host's serial port is its console,
kept in a file.

Guests run under our daemon inside the host.  Each one's console is
captured in the host by `xl console` (its stdin a FIFO, so the harness can
type into the guest) into a file the harness polls.
"""
import base64
import ctypes
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time

# Where the guests are inside the host VM (sysimages puts them there).
from sysimages import GUEST_INITRD, GUEST_KERNEL, HOST_QEMU_FIRMWARE

# loglevel=5: quiet enough to keep console exits few (each byte is a
# nested exit), loud enough that WARNING/BUG/Oops/panic (levels 0-4) reach
# the console.  no_timer_check: Linux checks that the PIT's IRQ 0 arrives
# through the IOAPIC by counting ticks during a 40 ms busy wait; on an
# emulated host that is itself descheduled for longer than that the check
# fails at random and the kernel panics ("IO-APIC + timer doesn't work"),
# which is why cloud images boot their VMs with it too.
GUEST_CMDLINE = "console=ttyS0 loglevel=5 no_timer_check"
BOOTS = []      # (what, seconds): printed at the end of the run
MEASURES = []   # (what, value): printed at the end of the run too
CURRENT_HOST = None     # the session's HostVM, for the failure hook

# The host kernel in trouble: nothing it runs will answer in time.
HOST_TROUBLE = re.compile(r"soft lockup - CPU#\d+ stuck|hung_task|"
                          r"rcu_\w+ detected stalls|Kernel panic")
# What a guest console must never show (WARN(), BUG(), oopses, panics).
# A kernel message printed into the middle of a console line.
# Right after a character of ours that is not a blank: our own lines may
# quote kernel messages after a space ("SYSTEST: e820 [    0.0] BIOS-e820").
KMSG_IN_LINE = re.compile(r"(?<=\S)\[ *\d+\.\d+\] [^\n]*\n")
BAD_CONSOLE = re.compile(r"WARNING:|BUG:|Oops|Call Trace|Kernel panic")
HOST_CPU = "qemu64,+svm,+npt"


def die_with_parent():
    """In QEMU before exec: SIGKILL when the harness dies, so that no QEMU
    outlives a killed test run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG, SIGKILL


class HostError(Exception):
    """The host VM or its channel failed; the message has its console."""


# One host CPU.  With two (-smp 2, under either TCG threading mode), a
# 2-vCPU Linux guest of kvm-amd in the host triple-faulted at random
# points of its boot: 5 of 19 PVH boots in a loop (BSP or AP), bzImage
# ones in CI; never in 24 boots with one host CPU; 1-vCPU guests never did.  The
# guest's registers are lost (KVM on AMD INITs a vCPU at a shutdown) and
# nothing of ours touches a running guest's memory, so we take this for
# QEMU 7.2's emulated SVM with L2 vCPUs on two L1 CPUs (cross-CPU kicks and
# event injection), not for the hypervisor under test.  The guests still
# get two vCPUs and Linux still brings up the second one.
class HostVM:
    def __init__(self, workdir, vmlinuz, initrd, smp=1, memory_mib=2048,
                 cpu=HOST_CPU):
        self.workdir = workdir
        self.vmlinuz = vmlinuz
        self.initrd = initrd
        self.smp = smp
        self.memory_mib = memory_mib
        self.cpu = cpu
        self.console_path = os.path.join(workdir, "host-console.log")
        self.qemu_log_path = os.path.join(workdir, "qemu.log")
        self.sock_path = os.path.join(workdir, "host-channel.sock")
        self.proc = None
        self.conn = None
        self.buf = b""
        self.next_id = 1
        self.lock = threading.Lock()
        self.boot_seconds = None
        self.release = None
        self.broken = None      # why the host stopped answering, if it did

    # ------------------------------------------------------------ lifecycle
    def argv(self):
        return [
            "qemu-system-x86_64", "-accel", "tcg",
            "-cpu", self.cpu, "-smp", str(self.smp),
            "-m", str(self.memory_mib), "-machine", "pc",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot",
            "-kernel", self.vmlinuz, "-initrd", self.initrd,
            "-append", "console=ttyS0 panic=-1 loglevel=5",
            "-serial", f"file:{self.console_path}",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", f"socket,id=chan,path={self.sock_path}",
            "-device", "virtserialport,bus=vser.0,chardev=chan,"
                       "name=systest.0",
        ] + shlex.split(os.environ.get("SYSTEST_QEMU_ARGS", ""))

    def start(self, timeout=300):
        """Boot the host; returns how long it took (seconds)."""
        try:
            os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.sock_path)
        listener.listen(1)
        t0 = time.monotonic()
        with open(self.qemu_log_path, "w") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        listener.settimeout(60)
        try:
            self.conn, _ = listener.accept()
        except socket.timeout:
            self.stop()
            raise HostError("QEMU did not connect the host channel\n"
                            + self.console_tail())
        finally:
            listener.close()
        line = self._read_line(timeout, lambda l: l.startswith(b"@@"))
        self.boot_seconds = time.monotonic() - t0
        text = line.decode(errors="replace").strip()
        if not text.startswith("@@READY"):
            raise HostError(f"the host VM came up broken: {text}\n"
                            + self.console_tail())
        self.release = text.split()[1]
        return self.boot_seconds

    def stop(self):
        if self.conn:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _read(self, path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def console_text(self):
        return self._read(self.console_path)

    def console_tail(self, n=4000):
        return (f"--- host console (tail) ---\n{self.console_text()[-n:]}"
                f"\n--- qemu ---\n{self._read(self.qemu_log_path)[-2000:]}")

    # ------------------------------------------------------------ channel
    def host_trouble(self):
        """A lockup or panic of the host kernel on its console, or None."""
        m = HOST_TROUBLE.search(self.console_text())
        return m and m.group(0)

    def _read_line(self, timeout, accept=None):
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 30
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                if accept is None or accept(line):
                    return line
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError(f"no answer from the host in {timeout:.0f}s"
                                "\n" + self.console_tail())
            if time.monotonic() > next_check:
                next_check = time.monotonic() + 30
                trouble = self.host_trouble()
                if trouble:
                    raise HostError(f"the host VM's kernel reports "
                                    f"{trouble!r}\n" + self.console_tail())
            if not self.alive():
                raise HostError("the host VM exited\n" + self.console_tail())
            self.conn.settimeout(min(left, 1.0))
            try:
                chunk = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise HostError("the host channel closed\n"
                                + self.console_tail())
            self.buf += chunk

    def run(self, cmd, timeout=120, check=True, patience=180):
        """Run a shell command in the host; (exit status, output).  The
        host kills it after `timeout` seconds; the harness waits
        `patience` seconds more, since a busy TCG host can be slow to
        answer."""
        rc, out = self.run_bytes(cmd, timeout, patience)
        out = out.decode(errors="replace")
        if check and rc != 0:
            raise AssertionError(f"host command failed ({rc}): {cmd}\n{out}")
        return rc, out

    def run_bytes(self, cmd, timeout=120, patience=180):
        """run() with the output as bytes, exit status not checked."""
        if self.broken:
            raise HostError(f"the host VM is unusable: {self.broken}")
        try:
            return self._run_bytes(cmd, timeout, patience)
        except HostError as e:
            self.broken = str(e).split("\n")[0]
            raise

    def _run_bytes(self, cmd, timeout, patience):
        with self.lock:
            cid = self.next_id
            self.next_id += 1
            b64 = base64.b64encode(cmd.encode()).decode()
            self.conn.sendall(f"@@CMD {cid} {int(timeout)} {b64}\n".encode())
            want = f"@@OUT {cid}".encode()
            self._read_line(timeout + patience,
                            lambda l: l.strip() == want)
            chunks = []
            while True:
                line = self._read_line(timeout + patience)
                if line.startswith(b"@@RC "):
                    rc = int(line.split()[2])
                    break
                chunks.append(line.strip())
            return rc, base64.b64decode(b"".join(chunks))

    def sh(self, cmd, timeout=120):
        """Run a command that must succeed; its output."""
        return self.run(cmd, timeout)[1]

    def put(self, path, data):
        """Write a (small) file in the host."""
        if isinstance(data, str):
            data = data.encode()
        b64 = base64.b64encode(data).decode()
        self.sh(f"echo {b64} | base64 -d > {shlex.quote(path)}")

    def read_bytes(self, path, offset=0, patience=180):
        """A host file from byte `offset` on (empty if it does not exist)."""
        return self.run_bytes(f"tail -c +{offset + 1} {shlex.quote(path)} "
                              "2>/dev/null", patience=patience)[1]

    def read_file(self, path, offset=0, patience=180):
        return self.read_bytes(path, offset, patience).decode(
            errors="replace")

    def daemon_log(self, patience=180):
        return self.read_file("/var/log/xen.log", patience=patience)

    def collect_logs(self, dest):
        """Copy the daemon's log, every guest console, the host's dmesg
        and console to `dest`; returns the daemon log."""
        os.makedirs(dest, exist_ok=True)
        log = ""
        p = 30      # a hung host must not hold the run up for long
        try:
            log = self.daemon_log(patience=p)
            files = {"xen.log": log,
                     "xen.stderr": self.read_file("/var/log/xen.stderr",
                                                  patience=p),
                     "host-dmesg.txt": self.run("dmesg", 30, False, p)[1],
                     "xl-list.txt": self.run("xl list", 30, False, p)[1],
                     "channel.log": self.read_file("/run/channel.log",
                                                   patience=p)}
            names = self.run("ls /tmp/guests", 30, False, p)[1]
            for n in names.split():
                if n.endswith(".console"):
                    files[n + ".txt"] = self.read_file(f"/tmp/guests/{n}",
                                                       patience=p)
            for name, text in files.items():
                with open(os.path.join(dest, name), "w") as f:
                    f.write(text)
        except (HostError, AssertionError, OSError) as e:
            log += f"\n(could not collect every log: {str(e)[:300]})"
        with open(os.path.join(dest, "host-console.txt"), "w") as f:
            f.write(self.console_text())
        return log


class Guest:
    """A domain of our hypervisor inside the host VM, its console captured
    by `xl console` in the host and typed into through a FIFO."""

    DIR = "/tmp/guests"

    def __init__(self, host, name, kernel, ramdisk, cmdline, memory=256,
                 vcpus=1, on_poweroff="destroy", on_reboot="restart",
                 on_crash="preserve", extra=""):
        self.host = host
        self.name = name
        self.kernel = kernel
        self.memory = memory
        self.vcpus = vcpus
        self.cmdline = cmdline
        self.cfg = (f'name = "{name}"\nmemory = {memory}\nvcpus = {vcpus}\n'
                    f'kernel = "{kernel}"\n' +
                    (f'ramdisk = "{ramdisk}"\n' if ramdisk else "") +
                    f'cmdline = "{cmdline}"\non_poweroff = "{on_poweroff}"\n'
                    f'on_reboot = "{on_reboot}"\non_crash = "{on_crash}"\n'
                    + extra)
        self.console_file = f"{self.DIR}/{name}.console"
        self.fifo = f"{self.DIR}/{name}.in"
        self.raw = b""
        self.started = None
        # How to run xl against the daemon that has the domain (a
        # migration moves it: XL_SOCKET=... xl).
        self.xl = "xl"

    def start(self):
        """Create the domain paused, attach `xl console` to it (history
        and all), then unpause it."""
        h, n, d = self.host, self.name, self.DIR
        h.sh(f"mkdir -p {d}")
        h.put(f"{d}/{n}.cfg", self.cfg)
        h.sh(f"{self.xl} create -p {d}/{n}.cfg && rm -f {self.fifo} && "
             f"mkfifo {self.fifo} && "
             f"({self.xl} console {n} <{self.fifo} "
             f">{self.console_file} 2>&1 &) && "
             f"(sleep 1000000 >{self.fifo} &) && {self.xl} unpause {n}")
        self.started = time.monotonic()
        return self

    # ------------------------------------------------------------ console
    def console(self):
        """The guest's console so far (fetched from the host), without the
        kernel messages that the console printed into the middle of one
        of our lines (a loaded host delays a line long enough for a
        warning to land in it: 'content=same[   51.2] clocksource: ...')."""
        self.raw += self.host.read_bytes(self.console_file, len(self.raw))
        text = self.raw.decode(errors="replace").replace("\r\n", "\n")
        return KMSG_IN_LINE.sub("", text)

    def fail(self, why):
        raise AssertionError(f"{why}\n--- console of guest {self.name} "
                             f"(last 8000 characters) ---\n"
                             f"{self.console()[-8000:]}\n"
                             f"--- end of the console of {self.name} ---")

    def wait(self, pattern, timeout=300, start=0, poll=1.0):
        """Wait until the console (from character `start`) matches;
        returns the match.  Fails with the console on timeout, at once when
        the guest panics, or when the domain ends."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 10
        while True:
            text = self.console()
            m = rx.search(text, start)
            if m:
                return m
            if "Kernel panic" in text[start:]:
                time.sleep(3)       # let the panic message finish
                self.fail(f"guest {self.name} panicked while waiting for "
                          f"{pattern!r}")
            if time.monotonic() > next_check:
                next_check = time.monotonic() + 10
                d = self.record()
                if d is None or d.get("state") in ("crashed", "shutdown"):
                    self.fail(f"domain {self.name} ended "
                              f"({d and d.get('state')}) while waiting for "
                              f"{pattern!r}; daemon log:\n"
                              f"{self.host.daemon_log()[-3000:]}")
            if time.monotonic() > deadline:
                self.fail(f"console of guest {self.name} never matched "
                          f"{pattern!r} in {timeout}s")
            time.sleep(poll)

    def type(self, text):
        """Keystrokes for the guest: through the FIFO into `xl console`."""
        b64 = base64.b64encode(text.encode()).decode()
        self.host.sh(f"echo {b64} | base64 -d > {self.fifo}")

    def do(self, command, pattern, timeout=180):
        """Type `command` (a line) and wait for `pattern` in what the
        console shows after it; returns the match."""
        mark = len(self.console())
        self.type(command + "\n")
        return self.wait(pattern, start=mark, timeout=timeout)

    def attach_console(self, history=True):
        """Another `xl console` appending to the console file, its stdin
        the FIFO (which start()'s `sleep` still holds open)."""
        self.host.sh(f"({self.xl} console {'' if history else '-n '}"
                     f"{self.name} "
                     f"<{self.fifo} >>{self.console_file} 2>&1 &)")

    def save(self, path, timeout=600):
        """`xl save` (the domain ends; its console session with it)."""
        return self.host.sh(f"{self.xl} save {self.name} {path}",
                            timeout=timeout)

    def restore(self, path, timeout=600):
        """`xl restore -p`, a new `xl console -n` appending to the same
        file (the offsets the tests hold stay valid), then unpause."""
        out = self.host.sh(f"{self.xl} restore -p {path}", timeout=timeout)
        self.attach_console(history=False)
        self.host.sh(f"{self.xl} unpause {self.name}")
        return out

    def check_clean(self, start=0):
        """No WARNING:/BUG:/Oops/Call Trace/panic on the console."""
        text = self.console()[start:]
        m = BAD_CONSOLE.search(text)
        if m:
            lo = max(0, m.start() - 1500)
            self.fail(f"guest {self.name} console shows {m.group(0)!r}:\n"
                      f"{text[lo:m.start() + 2500]}")

    # ------------------------------------------------------------ reports
    def facts(self, start=0):
        """The key=value pairs of the first "SYSTEST: facts" line after
        character `start` (guest-init.sh)."""
        m = self.wait(r"SYSTEST: facts ([^\n]*)\n", start=start)
        return dict(kv.split("=", 1) for kv in m.group(1).split()
                    if "=" in kv)

    def e820(self, start=0):
        """The guest's BIOS-e820 map from its dmesg: [(first, last, kind)]."""
        self.wait(r"SYSTEST: ready", start=start)
        return [(int(a, 16), int(b, 16), kind) for a, b, kind in re.findall(
            r"SYSTEST: e820 .*BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] "
            r"(\w+)", self.console()[start:])]

    # ------------------------------------------------------------ domain
    def record(self):
        """The domain's `xl list --json` record, or None once it is gone."""
        out = self.host.run(f"{self.xl} list --json",
                            check=False)[1]
        try:
            doms = json.loads(out)
        except ValueError:
            raise AssertionError(f"xl list --json said: {out}") from None
        for d in doms:
            if d.get("name") == self.name:
                return d
        return None

    def wait_gone(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.record() is None:
                return
            time.sleep(1)
        self.fail(f"domain {self.name} still exists after {timeout}s: "
                  f"{self.record()}")

    def wait_state(self, state, timeout=120):
        deadline = time.monotonic() + timeout
        d = None
        while time.monotonic() < deadline:
            d = self.record()
            if d and d.get("state") == state:
                return d
            time.sleep(1)
        self.fail(f"domain {self.name} is not {state} after {timeout}s: "
                  f"{d}")

    def destroy(self):
        self.host.run(f"{self.xl} destroy {self.name}", check=False)


class QemuGuest(Guest):
    """The same Debian guest under QEMU (`-accel kvm`) inside the host VM,
    with QEMU's own virtio devices: the twin tests' reference.  Its serial
    port and its HMP monitor are QEMU `pipe` chardevs (FIFOs NAME.con.in /
    .out and NAME.mon.in / .out, which QEMU opens read-write, so neither
    side ever sees EOF); a `cat` appends each .out to a file the harness
    polls, and typing writes to .in, as for our guests."""

    def __init__(self, host, name, kernel, ramdisk, cmdline, memory=256,
                 vcpus=1, devices=()):
        super().__init__(host, name, kernel, ramdisk, cmdline, memory,
                         vcpus)
        self.ramdisk = ramdisk
        self.devices = list(devices)
        self.con = f"{self.DIR}/{name}.con"
        self.mon = f"{self.DIR}/{name}.mon"
        self.fifo = self.con + ".in"
        self.mon_log = f"{self.DIR}/{name}.monitor"
        self.pidfile = f"{self.DIR}/{name}.pid"
        self.qemu_log = f"{self.DIR}/{name}.qemu.log"
        self.mon_raw = 0

    def argv(self, incoming=None):
        a = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host",
             "-machine", "pc", "-m", str(self.memory),
             "-smp", str(self.vcpus), "-nodefaults", "-no-user-config",
             "-display", "none", "-no-reboot", "-L", HOST_QEMU_FIRMWARE,
             "-kernel", self.kernel, "-append", self.cmdline,
             "-chardev", f"pipe,id=con,path={self.con}",
             "-serial", "chardev:con",
             "-chardev", f"pipe,id=mon,path={self.mon}",
             "-mon", "chardev=mon,mode=readline",
             "-pidfile", self.pidfile] + self.devices
        if self.ramdisk:
            a += ["-initrd", self.ramdisk]
        if incoming:
            a += ["-incoming", incoming]
        return " ".join(shlex.quote(x) for x in a)

    def start(self, incoming=None):
        """Start QEMU in the background (a new one reading `incoming`, a
        QEMU migration URI, when restoring)."""
        h, d = self.host, self.DIR
        h.sh(f"mkdir -p {d} && rm -f {self.pidfile} && "
             f"for f in {self.con}.in {self.con}.out {self.mon}.in "
             f"{self.mon}.out; do [ -p $f ] || mkfifo $f; done && "
             f"touch {self.console_file} {self.mon_log} && "
             f"(cat {self.con}.out >>{self.console_file} &) && "
             f"(cat {self.mon}.out >>{self.mon_log} &) && "
             f"({self.argv(incoming)} >>{self.qemu_log} 2>&1 &) && "
             f"i=0; while [ ! -s {self.pidfile} ] && [ $i -lt 300 ]; do "
             f"sleep 0.1; i=$((i + 1)); done; "
             f"[ -s {self.pidfile} ] || {{ cat {self.qemu_log}; exit 1; }}")
        self.started = time.monotonic()
        return self

    def monitor(self, command, timeout=300):
        """An HMP command; its output (up to the next "(qemu)" prompt)."""
        h = self.host
        before = h.read_file(self.mon_log)
        h.sh(f"echo {shlex.quote(command)} >{self.mon}.in")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = h.read_file(self.mon_log)[len(before):]
            # The echo of the command, its output, the next prompt.
            i = text.find(command)
            if i >= 0 and "(qemu)" in text[i + len(command):]:
                out = text[i + len(command):]
                return out[:out.index("(qemu)")].strip()
            if self.record() is None:
                break
            time.sleep(0.5)
        self.fail(f"QEMU monitor: no answer to {command!r}:\n"
                  f"{h.read_file(self.mon_log)[-2000:]}\n"
                  f"{h.read_file(self.qemu_log)[-2000:]}")

    def pid(self):
        return self.host.run(f"cat {self.pidfile} 2>/dev/null",
                             check=False)[1].strip()

    def record(self):
        """{"state": "running"} while QEMU runs, else None."""
        pid = self.pid()
        if pid and self.host.run(f"kill -0 {pid}", check=False)[0] == 0:
            return {"name": self.name, "state": "running"}
        return None

    def save(self, path, timeout=900):
        """QEMU's save: migrate to a file, then quit."""
        self.monitor(f'migrate "exec:cat > {path}"', timeout)
        info = self.monitor("info migrate", 60)
        if not re.search(r"Migration status:\s*completed", info):
            self.fail(f"QEMU's migration to {path} did not complete:\n"
                      f"{info}")
        self.host.sh(f"echo quit >{self.mon}.in")    # no prompt follows
        self.wait_gone(60)
        return info

    def restore(self, path, timeout=900):
        """A new QEMU, same devices, reading the state from `path`; the
        guest runs on once the state is in."""
        self.start(incoming=f"exec:cat {path}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.monitor("info status", 60)
            if "running" in info:
                return info
            time.sleep(1)
        self.fail(f"QEMU did not run after loading {path}: {info}")

    def destroy(self):
        pid = self.pid()
        if pid:
            self.host.run(f"kill {pid}", check=False)


# ------------------------------------------------------------ host network
def host_tap(host, name, addr="10.0.2.2/24"):
    """A persistent tap `name` (busybox tunctl) with `addr` on the host's
    side, up.  The daemon (or QEMU) opening /dev/net/tun with this name
    attaches to it.  Any old one of that name goes first."""
    host.sh(f"tunctl -d {name} >/dev/null 2>&1; "
            f"tunctl -t {name} >/dev/null && ip addr add {addr} dev {name} "
            f"&& ip link set {name} up")


def host_bridge(host, name="br0", addr="10.0.2.2/24"):
    """A bridge `name` with `addr`, up, forwarding at once (no STP, no
    forward delay, set through sysfs: busybox's brctl has no stp/setfd):
    the guests' taps join it."""
    b = f"/sys/class/net/{name}/bridge"
    host.sh(f"ip link del {name} >/dev/null 2>&1; brctl addbr {name} && "
            f"echo 0 >{b}/stp_state && echo 0 >{b}/forward_delay && "
            f"ip addr add {addr} dev {name} && ip link set {name} up")


def host_bridge_port(host, bridge, tap):
    """A persistent tap, no address, in `bridge`."""
    host.sh(f"tunctl -d {tap} >/dev/null 2>&1; tunctl -t {tap} >/dev/null "
            f"&& brctl addif {bridge} {tap} && ip link set {tap} up")


def host_link_del(host, *names):
    """Remove taps (tunctl -d) or other links (ip link del)."""
    for n in names:
        host.run(f"ip link set {n} down 2>/dev/null; tunctl -d {n} "
                 f">/dev/null 2>&1 || ip link del {n} 2>/dev/null",
                 check=False)


# ------------------------------------------------------------ host disks
def guest_disk(host, name, src="/guest/rootfs.ext4"):
    """A private copy of the root disk for one guest (guests write to
    theirs), in the host's tmpfs; its path."""
    path = f"/tmp/disks/{name}.img"
    host.sh(f"mkdir -p /tmp/disks && cp {src} {path}")
    return path


def record_boot(what, secs):
    BOOTS.append((what, secs))
    print(f"boot: {what}: {secs:.1f} s")


def record_measure(what, value):
    """A figure worth seeing at the end of the run (a stream's longest
    pause, a save's duration): printed with the boot times."""
    MEASURES.append((what, value))
    print(f"measure: {what}: {value}")


def boot_guest(host, name, protocol="bzimage", vcpus=1, memory=256,
               action="shell", cmdline=None, wait=True, **actions):
    """Create a Debian guest (kernel through `protocol`, the busybox
    initramfs, systest=`action`) and wait for its init's ready line,
    recording how long the boot took."""
    if cmdline is None:
        cmdline = f"{GUEST_CMDLINE} systest={action}"
    g = Guest(host, name, GUEST_KERNEL[protocol], GUEST_INITRD, cmdline,
              memory=memory, vcpus=vcpus, **actions)
    g.start()
    if wait:
        g.wait(r"SYSTEST: ready")
        g.boot_seconds = time.monotonic() - g.started
        record_boot(f"{protocol}, {vcpus} vCPU(s), {memory} MiB: domain "
                    f"created to init ready ({name})", g.boot_seconds)
    return g
