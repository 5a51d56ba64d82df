#!/usr/bin/python3
"""The test host: a QEMU virtual machine that gives a real KVM anywhere.

Where /dev/kvm is missing or unusable, the tests that need KVM run inside
QEMU (`-accel tcg -cpu qemu64,+svm,+npt`) booting Debian's kernel with
kvm-amd loaded on the emulated SVM.  Its root filesystem is this
machine's own "/" shared read-only over virtio-9p, so Python, pytest and
every installed package come from here; the checkout is shared
read-write at its own path; /tmp and /run are tmpfs.  A job is a shell
command run from the checkout; its output comes back here as it is
written, and its exit status is the run's.

    testhost.py where                 print where KVM comes from
    testhost.py run [opts] -- CMD...  run CMD in a test host

See tests/testhost/README.md.
"""
import argparse
import fcntl
import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import syshost  # noqa: E402
import sysimages  # noqa: E402
from harness import kvm_module  # noqa: E402

# qemu64 with emulated SVM and nested paging, as in the system tier, plus
# the x86-64-v2 instructions that every cloud host has and that compiled
# tools assume (libFuzzer's runtime executes popcnt).  No XSAVE: restoring
# on a host with fewer XSAVE components than the saver's is tested here.
HOST_CPU = "qemu64,+svm,+npt,+cx16,+ssse3,+sse4.1,+sse4.2,+popcnt"
# 9p over virtio, and the virtio console the job's output comes back on.
# kvm-amd is loaded later from the shared /lib/modules.
INITRD_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")
RC_MARK = re.compile(rb"^@@TESTHOST-RC (\d+)\r?$", re.M)
HOST_TROUBLE = re.compile(r"Kernel panic|soft lockup - CPU#\d+ stuck|"
                          r"rcu_\w+ detected stalls")
# What the job does not inherit from this side's environment.
ENV_DROP = {"HOME", "PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "MAKEFLAGS",
            "MFLAGS", "MAKELEVEL", "MAKE_TERMOUT", "MAKE_TERMERR",
            "MAKEOVERRIDES", "GNUMAKEFLAGS"}
LABEL = "test host (QEMU TCG + kvm-amd)"
# Everything runs 10-50 times slower in a test host: waits on conditions
# stretch this much there (tests/harness.py: scaled()).
TIME_SCALE = 10

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


def native_kvm():
    """(True, module) when /dev/kvm exists and makes a VM here, else
    (False, why)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return False, "/dev/kvm speaks another API version"
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
    except OSError as e:
        return False, f"/dev/kvm cannot create a VM: {e.strerror}"
    finally:
        os.close(fd)
    return True, kvm_module()


def use_test_host():
    """Whether tests that need KVM go to a test host: forced by
    XEN_TEST_HOST=nested, else when there is no usable /dev/kvm."""
    return why_test_host() is not None


def why_test_host():
    """Why KVM has to come from a test host here, or None."""
    if os.environ.get("XEN_TEST_HOST") == "nested":
        return "XEN_TEST_HOST=nested"
    ok, why = native_kvm()
    return None if ok else f"no usable /dev/kvm here: {why}"


def where():
    """The line a test run starts with."""
    if os.environ.get("XEN_IN_TEST_HOST"):
        return f"KVM: {LABEL}"
    why = why_test_host()
    if why:
        return f"KVM: {LABEL}; {why}"
    return f"KVM: native ({native_kvm()[1]})"


def tools_missing():
    missing = sysimages.tools_missing()
    if not os.path.isdir("/lib/modules"):
        missing.append("/lib/modules")
    return missing


def build_initrd(dest):
    """The test host's initramfs: busybox, init.sh and the modules that
    mount the shares (cached at dest; rebuilt when an input changed)."""
    release, vmlinuz, moddir = sysimages.find_kernel()
    init = os.path.join(HERE, "init.sh")
    inputs = repr((moddir, INITRD_MODULES))
    if sysimages._newer(dest, init, sysimages.BUSYBOX, __file__) and \
            sysimages._same_inputs(dest, inputs):
        return vmlinuz, dest
    c = sysimages.Cpio()
    sysimages.busybox_base(c)
    c.copy("init", init, 0o755)
    order = []
    for rel in sysimages.module_order(moddir, INITRD_MODULES):
        name = re.sub(r"\.(xz|zst|gz)$", "", os.path.basename(rel))
        c.file(f"lib/modules/{name}",
               sysimages.read_module(os.path.join(moddir, rel)))
        order.append(name)
    c.file("lib/modules/order", ("\n".join(order) + "\n").encode())
    c.write(dest)
    sysimages._record_inputs(dest, inputs)
    return vmlinuz, dest


def job_script(path, workdir, argv, env):
    """The shell script the test host runs: this side's environment,
    the working directory, then the command."""
    lines = ["# written by tests/testhost/testhost.py"]
    for k, v in sorted(env.items()):
        if k in ENV_DROP or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            continue
        lines.append(f"export {k}={shlex.quote(v)}")
    lines.append("export XEN_IN_TEST_HOST=1")
    if "XEN_TIME_SCALE" not in env:
        lines.append(f"export XEN_TIME_SCALE={TIME_SCALE}")
    lines.append(f"cd {shlex.quote(workdir)} || exit 125")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class TestHost:
    """One test host running one job."""

    def __init__(self, rundir, checkout, memory_mib=6144):
        self.rundir = rundir
        self.checkout = checkout
        self.memory_mib = memory_mib
        self.console = os.path.join(rundir, "console.log")
        self.output = os.path.join(rundir, "output.log")
        self.job = os.path.join(rundir, "job.sh")
        self.proc = None

    def argv(self, vmlinuz, initrd):
        for p in (self.checkout, self.job):
            if re.search(r"\s", p):
                raise SystemExit(f"testhost: a path with blanks: {p!r}")
        append = (f"console=ttyS0 panic=-1 loglevel=4 "
                  f"testhost.job={self.job} testhost.work={self.checkout}")
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", HOST_CPU,
            "-smp", "1", "-m", str(self.memory_mib), "-machine", "pc",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
            "-append", append,
            "-serial", f"file:{self.console}",
            "-device", "virtio-serial-pci",
            "-chardev", f"file,id=out,path={self.output}",
            "-device", "virtconsole,chardev=out",
            "-virtfs", "local,path=/,mount_tag=root,security_model=none,"
                       "readonly=on,multidevs=remap",
            "-virtfs", f"local,path={self.checkout},mount_tag=work,"
                       "security_model=passthrough,multidevs=remap",
        ]

    def start(self, argv, env, vmlinuz, initrd):
        os.makedirs(self.rundir, exist_ok=True)
        for p in (self.console, self.output):
            open(p, "w").close()
        job_script(self.job, os.getcwd(), argv, env)
        self.log = open(os.path.join(self.rundir, "qemu.log"), "w")
        self.proc = subprocess.Popen(
            self.argv(vmlinuz, initrd), stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=syshost.die_with_parent)
        self.pos = 0
        self.rc = None
        self.pending = b""

    def poll_output(self):
        """New output of the job (bytes), with the exit marker taken
        out and remembered."""
        with open(self.output, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += len(data)
        data = self.pending + data
        # Hold back a partial last line: it may be the marker.
        nl = data.rfind(b"\n")
        self.pending, data = data[nl + 1:], data[:nl + 1]
        m = RC_MARK.search(data)
        if m:
            self.rc = int(m.group(1))
            data = data[:m.start()]
        return data

    def flush(self):
        data, self.pending = self.pending, b""
        return data

    def trouble(self):
        try:
            with open(self.console, errors="replace") as f:
                m = HOST_TROUBLE.search(f.read())
        except OSError:
            return None
        return m and m.group(0)

    def console_tail(self, n=3000):
        with open(self.console, errors="replace") as f:
            return f.read()[-n:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(argv, checkout, rundir, memory_mib, timeout, out=sys.stdout.buffer):
    """Run argv in one test host; its exit status."""
    missing = tools_missing()
    if missing:
        print("testhost: needs " + ", ".join(missing) +
              ": run scripts/setup.sh", file=sys.stderr)
        return 125
    if os.path.commonpath([rundir, checkout]) != checkout:
        print(f"testhost: the run directory {rundir} must be inside the "
              f"checkout {checkout}, which the test host shares",
              file=sys.stderr)
        return 125
    os.makedirs(rundir, exist_ok=True)
    vmlinuz, initrd = build_initrd(os.path.join(rundir, "initrd.cpio"))
    host = TestHost(rundir, checkout, memory_mib)
    host.start(argv, dict(os.environ), vmlinuz, initrd)
    deadline = time.monotonic() + timeout
    try:
        while True:
            exited = host.proc.poll() is not None
            data = host.poll_output()
            if data:
                out.write(data)
                out.flush()
            if host.rc is not None:
                break
            if exited:
                out.write(host.flush())
                print(f"testhost: QEMU exited ({host.proc.returncode}) "
                      f"before the job ended; its console:\n"
                      f"{host.console_tail()}", file=sys.stderr)
                return 125
            trouble = host.trouble()
            if trouble or time.monotonic() > deadline:
                why = trouble or f"no end after {timeout} s"
                print(f"testhost: {why}; its console:\n"
                      f"{host.console_tail()}", file=sys.stderr)
                return 124
            time.sleep(0.2)
    finally:
        host.stop()
    return host.rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("where", help="print where KVM comes from")
    sub.add_parser("needed", help="exit 0, saying why, if KVM needs a "
                   "test host here (no usable /dev/kvm, or "
                   "XEN_TEST_HOST=nested), else 1")
    r = sub.add_parser("run", help="run a command in a test host")
    r.add_argument("--memory", type=int, default=6144, help="MiB")
    r.add_argument("--timeout", type=int, default=5400, help="seconds")
    r.add_argument("--rundir", default=None,
                   help="where its logs go (default $XEN_BUILD/testhost)")
    r.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.cmd == "where":
        print(where())
        return 0
    if a.cmd == "needed":
        why = why_test_host()
        if why:
            print(why)
        return 0 if why else 1
    argv = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not argv:
        ap.error("run: no command")
    build = os.environ.get("XEN_BUILD", os.path.join(ROOT, "build"))
    rundir = os.path.abspath(a.rundir or os.path.join(build, "testhost"))
    return run(argv, ROOT, rundir, a.memory, a.timeout)


if __name__ == "__main__":
    sys.exit(main())
