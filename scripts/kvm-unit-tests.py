#!/usr/bin/python3
"""Run the x86 tests of kvm-unit-tests on this hypervisor.

    scripts/kvm-unit-tests.py [--build] [--timeout S] [--only NAME,...]
                              [--qemu] [--qemu-cpu MODEL] SRC

SRC is a kvm-unit-tests checkout (https://gitlab.com/kvm-unit-tests/
kvm-unit-tests, or its GitHub mirror), kept outside this repository; with
--build it is configured (--arch=x86_64) and built first.  Each test of
SRC/x86/unittests.cfg runs as one domain of a private daemon
(build/bin/xen): kernel = its .flat (a multiboot ELF), vcpus = its `smp`,
memory = its `-m` (else QEMU's 128 MiB), cmdline = its `test_args` and
any `-append` of its `extra_params`/`qemu_params`.  Its exit status comes
through the debug-exit port 0xf4, as under QEMU's isa-debug-exit: status
1 (exit code 0) is PASS, 77 (report_summary()'s "all skipped") SKIP,
anything else, a crash or the timeout FAIL.  Tests for i386 only, for
TCG only, in the `nodefault` group, or whose `check` (a host setting such
as a KVM module parameter) this host does not meet are SKIPped as
run_tests.sh does.
One line per test: RESULT NAME (the guest's SUMMARY line or the reason);
the exit status is 1 if any test FAILed.

With --qemu each test also runs under QEMU on the same /dev/kvm, the way
the suite's own x86/run starts it (pc-testdev, isa-debug-exit, pci-testdev,
the test's -cpu/-device/-machine options, -cpu host where it names none;
--qemu-bare leaves the two test devices out, --qemu-cpu forces a model),
and each line reads OURS QEMU NAME [verdict]: "ours only" when it fails
here but not under QEMU (a bug of ours, or a device we do not have),
"qemu only" the other way round; a test failing under both fails on this
host's KVM.  The exit status is then 1 if any test fails only here.
See docs/kvm-unit-tests.md.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness import ApiError, Daemon  # noqa: E402

DEFAULT_MEMORY = 128            # MiB: QEMU's default, which the suite gets

# What the suite's x86/run gives every test (besides -kernel, -smp and the
# test's own options): the exit port and its test devices, pc-testdev
# (ports 0xe0-0xe7 and the "IORAM" at 0xff000000 that emulator and lam
# use) and pci-testdev, which --qemu-bare leaves out (we have neither).
QEMU_BASE = ["--no-reboot", "-nodefaults",
             "-global", "kvm-pit.lost_tick_policy=discard",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
             "-display", "none", "-serial", "stdio", "-machine", "accel=kvm"]
QEMU_TESTDEVS = ["-device", "pc-testdev", "-device", "pci-testdev"]


def parse_cfg(path):
    """The sections of unittests.cfg, in order: [(name, {key: value})]."""
    tests, cur, last = [], None, None
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if m := re.fullmatch(r"\[(.+)\]", line.strip()):
                cur, last = {}, None
                tests.append((m.group(1), cur))
            elif cur is not None and "=" in line and not raw[0].isspace():
                last, v = (x.strip() for x in line.split("=", 1))
                cur[last] = v
            elif cur is not None and last:      # a continued value
                cur[last] += " " + line.strip()
    return tests


def qemu_args(t):
    args = []
    for k in ("extra_params", "qemu_params"):
        if t.get(k):
            args += shlex.split(t[k])
    return args


def domain_config(name, t, src):
    args = qemu_args(t)
    memory, append = DEFAULT_MEMORY, []
    for i, a in enumerate(args):
        if a == "-m" and i + 1 < len(args):
            memory = int(re.match(r"\d+", args[i + 1]).group(0))
            if args[i + 1].lower().endswith("g"):
                memory *= 1024
        elif a == "-append" and i + 1 < len(args):
            append.append(args[i + 1])
    if t.get("test_args"):
        append = shlex.split(t["test_args"]) + append
    return {"name": name, "kernel": os.path.join(src, "x86", t["file"]),
            "vcpus": int(t.get("smp", "1")), "memory": memory,
            "cmdline": " ".join(append), "on_poweroff": "preserve",
            "on_crash": "preserve", "on_reboot": "preserve",
            "strict_io": False}


def failed_check(t):
    """The first `check` of the test (PATH=VALUE: a host setting it needs)
    that this host does not meet, as run_tests.sh reads them."""
    for c in t.get("check", "").split():
        path, _, value = c.partition("=")
        try:
            with open(path) as f:
                if f.read().strip() == value:
                    continue
        except OSError:
            pass
        return f"{path} not equal to {value}"
    return None


def skip_reason(t, src):
    if t.get("arch", "x86_64") != "x86_64":
        return f"{t['arch']} only"
    if t.get("accel") and t["accel"] != "kvm":
        return f"{t['accel']} only"
    if "nodefault" in t.get("groups", "").split():
        return "nodefault group (run_tests.sh skips it too)"
    if why := failed_check(t):
        return why
    if not os.path.exists(os.path.join(src, "x86", t.get("file", ""))):
        return f"{t.get('file')} not built"
    return None


def summary(text):
    """The guest's SUMMARY line, else its last line."""
    m = re.findall(r"^SUMMARY: .*$", text, re.M)
    lines = text.strip().splitlines()
    return m[-1].strip() if m else (lines[-1].strip() if lines else "")


def classify(code, text):
    """RESULT and reason of a finished run from its QEMU-style exit status
    ((status << 1) | 1 of the debug-exit port)."""
    s = summary(text)
    if code == 1:
        return "PASS", s
    if code == 77:
        return "SKIP", s
    return "FAIL", f"exit status {code}; {s}"


def run_one(d, name, t, src, timeout):
    cfg = domain_config(name, t, src)
    try:
        d.call("create", config=cfg)
    except ApiError as e:
        return "FAIL", f"create refused: {e}", ""
    deadline = time.monotonic() + timeout
    dom = None
    while time.monotonic() < deadline:
        dom = d.domain(name)
        if dom and dom["state"] in ("shutdown", "crashed"):
            break
        time.sleep(0.2)
    text = d.console(name)
    d.call("destroy", domain=name)
    s = summary(text)
    if not dom or dom["state"] not in ("shutdown", "crashed"):
        return "FAIL", f"timeout after {timeout}s; last: {s}", text
    if dom["state"] == "crashed":
        return "FAIL", f"crashed ({dom.get('shutdown_reason')}); " \
                       f"last: {s}", text
    code = dom.get("exit_code")
    res, why = classify(code, text)
    if res == "FAIL":
        why = f"exit status {code} ({dom.get('shutdown_reason')}); {s}"
    return res, why, text


def host_cpu(model):
    """QEMU 7.2 writes IA32_ARCH_CAPABILITIES (MSR 0x10a) for -cpu host and
    max, which KVM-PVM refuses (QEMU aborts before the guest runs): leave
    that MSR out there.  Other models do not expose it."""
    base = model.split(",", 1)[0]
    if base in ("host", "max") and "arch-capabilities" not in model:
        return model + ",-arch-capabilities"
    return model


def qemu_command(qemu, t, src, cpu=None, bare=False):
    """The command line x86/run builds for test t; cpu, if given, replaces
    the test's own -cpu; bare leaves the test devices out."""
    args, out, model = qemu_args(t), [], "host"
    i = 0
    while i < len(args):
        if args[i] == "-cpu" and i + 1 < len(args):
            model = args[i + 1]
            i += 2
            continue
        out.append(args[i])
        i += 1
    if t.get("test_args"):
        out = ["-append", " ".join(shlex.split(t["test_args"]))] + out
    devs = [] if bare else QEMU_TESTDEVS
    return [qemu] + QEMU_BASE + devs + ["-cpu", host_cpu(cpu or model),
                                 "-kernel", os.path.join(src, "x86",
                                                         t["file"]),
                                 "-smp", t.get("smp", "1")] + out


def run_qemu(qemu, t, src, timeout, cpu=None, bare=False):
    cmd = qemu_command(qemu, t, src, cpu, bare)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace")
        return "FAIL", f"timeout after {timeout}s; last: {summary(text)}", \
            text
    text = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace").strip()
    # QEMU refusing its options exits 1, as a passing test does; the
    # guest then printed nothing.
    if p.returncode < 0 or (err and not text.strip()):
        return "FAIL", f"qemu failed ({p.returncode}): {err[-200:]}", \
            text + err
    return (*classify(p.returncode, text), text + err)


def verdict(ours, theirs):
    if ours == theirs:
        return "same"
    if ours == "FAIL":
        return "ours only"
    if theirs == "FAIL":
        return "qemu only"
    return "differs"


def save_log(logs, name, text):
    if logs:
        os.makedirs(logs, exist_ok=True)
        with open(os.path.join(logs, name + ".log"), "w") as f:
            f.write(text)


def build(src):
    subprocess.run(["./configure", "--arch=x86_64"], cwd=src, check=True)
    subprocess.run(["make", "-j2"], cwd=src, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--only", default="")
    ap.add_argument("--logs", help="directory for each test's console")
    ap.add_argument("--qemu", action="store_true",
                    help="compare each test with a run under QEMU")
    ap.add_argument("--qemu-binary",
                    default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--qemu-cpu", help="QEMU's -cpu for every test "
                    "(default: the test's own, else host)")
    ap.add_argument("--qemu-bare", action="store_true",
                    help="QEMU without pc-testdev and pci-testdev")
    a = ap.parse_args()
    src = os.path.abspath(a.src)
    if a.build:
        build(src)
    only = set(filter(None, a.only.split(",")))
    failed = False
    with tempfile.TemporaryDirectory(prefix="kut-") as tmp:
        d = Daemon(tmp)
        d.start()
        try:
            for name, t in parse_cfg(os.path.join(src, "x86",
                                                  "unittests.cfg")):
                if only and name not in only:
                    continue
                why = skip_reason(t, src)
                if why:
                    print(f"SKIP {'SKIP ' if a.qemu else ''}{name} ({why})",
                          flush=True)
                    continue
                res, why, text = run_one(d, re.sub(r"[^\w.-]", "_", name),
                                         t, src, a.timeout)
                save_log(a.logs, name, text)
                if not a.qemu:
                    failed |= res == "FAIL"
                    print(f"{res} {name} ({why})", flush=True)
                    continue
                qres, qwhy, qtext = run_qemu(a.qemu_binary, t, src,
                                             a.timeout, a.qemu_cpu,
                                             a.qemu_bare)
                save_log(a.logs, name + ".qemu", qtext)
                v = verdict(res, qres)
                failed |= v == "ours only"
                print(f"{res} {qres} {name} [{v}] (ours: {why}; "
                      f"qemu: {qwhy})", flush=True)
        finally:
            d.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
