#!/usr/bin/python3
"""Run the test suite where KVM is: natively, or natively and in test hosts.

    suite.py [--hosts N] --pass BUILD ARGS [--pass BUILD ARGS ...]

Each pass runs pytest with XEN_BUILD=BUILD and the arguments ARGS (one
shell-quoted string).  The first line printed says where KVM comes from.

With a usable /dev/kvm (and XEN_TEST_HOST unset) each pass runs here.
Otherwise each pass first runs here with XEN_KVM_DEFER set: whatever needs
no KVM runs (builds, tools, the system tier, which boots its own QEMU
host), and every test that needs KVM is listed instead of run.  Then N test
hosts (testhost.py) run the listed tests, each every Nth of them.  The
last line adds up every pass, deferred tests counted once, where they ran:
"suite: N passed, N failed, N skipped, N errors".
"""
import argparse
import os
import shlex
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import testhost  # noqa: E402
from harness import DEFERRED  # noqa: E402

PYTEST = ["/usr/bin/python3", "-m", "pytest"]


class Pass:
    def __init__(self, build, args):
        self.build = os.path.abspath(build)
        self.args = args
        self.name = os.path.basename(self.build)
        self.results = os.path.join(self.build, "test-results")
        self.deferred = os.path.join(self.results, "deferred.txt")

    def junit(self, tag):
        return os.path.join(self.results, f"{tag}.xml")

    def argv(self, tag):
        return PYTEST + shlex.split(self.args) + \
            [f"--junitxml={self.junit(tag)}"]

    def deferred_ids(self):
        try:
            with open(self.deferred) as f:
                return [ln for ln in f.read().splitlines() if ln]
        except FileNotFoundError:
            return []


def counts(junit, skip_deferred=False):
    """{passed, failed, skipped, errors} in one run's JUnit XML, or None
    when it wrote none; tests deferred to a test host left out."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return None
    c = dict(passed=0, failed=0, skipped=0, errors=0)
    for case in root.iter("testcase"):
        kids = {k.tag: k for k in case}
        if "failure" in kids:
            c["failed"] += 1
        elif "error" in kids:
            c["errors"] += 1
        elif "skipped" in kids:
            if skip_deferred and \
                    DEFERRED in (kids["skipped"].get("message") or ""):
                continue
            c["skipped"] += 1
        else:
            c["passed"] += 1
    return c


class Run:
    """One pytest run and what it reported."""

    def __init__(self, label, junit, deferring=False, host_pass=None):
        self.label, self.junit, self.deferring = label, junit, deferring
        self.host_pass = host_pass      # the pass it ran in a host for
        self.rc = None
        self.c = None

    def counts(self):
        """The run's counts, read once its JUnit XML is complete."""
        if self.c is None:
            self.c = counts(self.junit, self.deferring)
        return self.c


def native(p, defer):
    tag = "native"
    env = dict(os.environ, XEN_BUILD=p.build)
    os.makedirs(p.results, exist_ok=True)
    for f in (p.junit(tag), p.deferred):
        if os.path.exists(f):
            os.unlink(f)
    if defer:
        env["XEN_KVM_DEFER"] = p.deferred
    print(f"\n=== {p.name}, here: pytest {p.args}", flush=True)
    r = Run(f"{p.name} here", p.junit(tag), defer)
    r.rc = subprocess.call(p.argv(tag), env=env, cwd=ROOT)
    return r


def host_runs(passes, shard, nhosts):
    """(shell command, runs) of test host `shard`: its share of each
    pass's deferred tests."""
    lines, runs = ["rc=0"], []
    for p in passes:
        if not p.deferred_ids():
            continue
        tag = f"host{shard}"
        if os.path.exists(p.junit(tag)):
            os.unlink(p.junit(tag))
        label = f"{p.name} in test host {shard}/{nhosts}"
        env = {"XEN_BUILD": p.build, "XEN_TEST_ONLY": p.deferred,
               "XEN_TEST_SHARD": f"{shard}/{nhosts}"}
        lines.append(f"echo {shlex.quote('=== ' + label)}")
        lines.append("env " + " ".join(f"{k}={shlex.quote(v)}"
                                       for k, v in env.items()) + " " +
                     " ".join(map(shlex.quote, p.argv(tag))) +
                     " || { s=$?; [ $rc = 0 ] && rc=$s; }")
        runs.append(Run(label, p.junit(tag), host_pass=p))
    lines.append("exit $rc")
    return ["sh", "-c", "\n".join(lines)], runs


def in_hosts(passes, nhosts, memory):
    """Every pass's deferred tests in nhosts test hosts at once.  Host 1's
    output is shown as it comes, the others' when they end."""
    jobs = []
    for i in range(1, nhosts + 1):
        argv, runs = host_runs(passes, i, nhosts)
        if not runs:
            continue
        rundir = os.path.join(passes[0].build, f"testhost-{i}")
        os.makedirs(rundir, exist_ok=True)
        jobs.append(dict(i=i, argv=argv, runs=runs, rundir=rundir,
                         log=os.path.join(rundir, "suite-output.log")))
    if not jobs:
        return []
    print(f"\n=== {sum(len(p.deferred_ids()) for p in passes)} tests that "
          f"need KVM, in {len(jobs)} test host(s) at once", flush=True)

    def go(job):
        t0 = time.monotonic()
        job["rc"] = testhost.run(job["argv"], ROOT, job["rundir"], memory,
                                 5400, out=job["out"])
        job["seconds"] = time.monotonic() - t0

    threads = []
    for n, job in enumerate(jobs):
        job["out"] = sys.stdout.buffer if n == 0 else open(job["log"], "wb")
        t = threading.Thread(target=go, args=(job,))
        t.start()
        threads.append(t)
        time.sleep(3)       # not both booting on the same instant
    for t in threads:
        t.join()
    runs = []
    for n, job in enumerate(jobs):
        if n > 0:
            job["out"].close()
            print(f"\n=== output of test host {job['i']}", flush=True)
            with open(job["log"], "rb") as f:
                sys.stdout.buffer.write(f.read())
            sys.stdout.flush()
        print(f"test host {job['i']}: exit status {job['rc']} after "
              f"{job['seconds']:.0f} s", flush=True)
        for r in job["runs"]:
            r.rc = job["rc"]
            runs.append(r)
    return runs


def summary(runs, passes, seconds):
    total = dict(passed=0, failed=0, skipped=0, errors=0)
    bad = False
    print(f"\n=== suite summary ({seconds / 60:.1f} min)")
    for r in runs:
        c = r.counts()
        if c is None:
            print(f"{r.label}: no results (exit status {r.rc})")
            bad = True
            continue
        for k in total:
            total[k] += c[k]
        print(f"{r.label}: {c['passed']} passed, {c['failed']} failed, "
              f"{c['skipped']} skipped, {c['errors']} errors")
        if r.rc not in (0, None, 5):
            bad = True
    # Every deferred test must have run in some test host.
    for p in passes:
        want = len(p.deferred_ids())
        got = sum(sum(r.counts().values()) for r in runs
                  if r.host_pass is p and r.counts())
        if want != got:
            print(f"{p.name}: {want} tests deferred to the test hosts, "
                  f"{got} ran there")
            bad = True
    bad = bad or total["failed"] or total["errors"]
    print(f"suite: {total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped, {total['errors']} errors")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pass", dest="passes", nargs=2, action="append",
                    metavar=("BUILD", "ARGS"), required=True)
    ap.add_argument("--hosts", type=int,
                    default=int(os.environ.get("XEN_TEST_HOSTS", "2")))
    ap.add_argument("--memory", type=int, default=6144,
                    help="MiB per test host")
    a = ap.parse_args()
    passes = [Pass(b, args) for b, args in a.passes]
    print(testhost.where(), flush=True)
    nested = testhost.use_test_host()
    if nested:
        missing = testhost.tools_missing()
        if missing:
            print("suite: the test host needs " + ", ".join(missing) +
                  ": run scripts/setup.sh", file=sys.stderr)
            return 2
    t0 = time.monotonic()
    runs = [native(p, nested) for p in passes]
    if nested:
        runs += in_hosts(passes, max(a.hosts, 1), a.memory)
    return summary(runs, passes if nested else [], time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
