#!/usr/bin/python3
"""Run the x86 tests of kvm-unit-tests on this hypervisor.

    scripts/kvm-unit-tests.py [--build] [--timeout S] [--only NAME,...] SRC

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
TCG only, or in the `nodefault` group are SKIPped as run_tests.sh does.
One line per test: RESULT NAME (the guest's SUMMARY line or the reason);
the exit status is 1 if any test FAILed.  See docs/kvm-unit-tests.md.
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


def skip_reason(t, src):
    if t.get("arch", "x86_64") != "x86_64":
        return f"{t['arch']} only"
    if t.get("accel") and t["accel"] != "kvm":
        return f"{t['accel']} only"
    if "nodefault" in t.get("groups", "").split():
        return "nodefault group (run_tests.sh skips it too)"
    if not os.path.exists(os.path.join(src, "x86", t.get("file", ""))):
        return f"{t.get('file')} not built"
    return None


def summary(text):
    """The guest's SUMMARY line, else its last line."""
    m = re.findall(r"^SUMMARY: .*$", text, re.M)
    lines = text.strip().splitlines()
    return m[-1].strip() if m else (lines[-1].strip() if lines else "")


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
    if code == 1:
        return "PASS", s, text
    if code == 77:
        return "SKIP", s, text
    return "FAIL", f"exit status {code} ({dom.get('shutdown_reason')}); " \
                   f"{s}", text


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
                    print(f"SKIP {name} ({why})", flush=True)
                    continue
                res, why, text = run_one(d, re.sub(r"[^\w.-]", "_", name),
                                         t, src, a.timeout)
                failed |= res == "FAIL"
                print(f"{res} {name} ({why})", flush=True)
                if a.logs:
                    os.makedirs(a.logs, exist_ok=True)
                    with open(os.path.join(a.logs, name + ".log"), "w") as f:
                        f.write(text)
        finally:
            d.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
