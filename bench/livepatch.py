"""Benchmark 6: livepatch apply and revert under running guests.

Two payloads are built once, by tools/livepatch/livepatch-build from this
tree (--src $ROOT, so their dependency is $XEN_BUILD/bin/xen's build-id):
  function  a patch that changes the version string `version` answers:
            the tool replaces the whole function (a jump at its entry);
  range     a patch that changes one shift in `info`'s host memory (MiB
            to KiB): the tool writes a 4-byte range in place.
Per point and payload: one daemon, N counter guests (cmdline CMDLINE, 64
MiB, one vCPU each) counting, the payload uploaded once, then `runs`
apply + revert pairs.  Per apply (and per revert):
  latency_ms     the `livepatch-apply` request's round trip on the control
                 socket (what an operator's tool waits for; the payload is
                 already uploaded, so no ELF work is in it);
  pause_ms       the daemon's own figure from the reply: from asking every
                 vCPU to park until they may run again (park, check that
                 no thread is inside the bytes, write them, sync every
                 core), CLOCK_MONOTONIC;
  park_ms        of that, the wait for every vCPU to park;
  check_ms       and the check that no thread is inside the bytes;
  max_stall_ms   what the guests saw: build/bin/counter-watch, started 0.3 s
                 before and stopped 0.3 s after, reports per guest the
                 longest time its counter (bumped in a tight loop) did not
                 change; the largest over the guests is the sample.  On a
                 2-core host with more vCPUs than cores, scheduling alone
                 makes stalls of many ms, so the same watch over an equal
                 window without a switch is recorded too
                 (`baseline_stall_ms`).
Series: 1, 2, 4, 8 guests.  QEMU has no counterpart: no QEMU column.
"""
import os
import shutil
import subprocess
import tempfile
import time

from common import BenchError, Ours, _cleanups, harness, summary
from liveupdate import STATUS_RX, _stall

CMDLINE = "ws=8M rate=5000 interval=1000"
GUEST_SERIES = (1, 2, 4, 8)
GUEST_MIB = 64
WATCH_PAD_S = 0.3
READY_TIMEOUT = 90
TOOL = os.path.join(harness.ROOT, "tools", "livepatch", "livepatch-build")
# kind: (old text, new text, what the tool must say it did)
KINDS = {
    "function": ('"hypervisor", XEN_VERSION,',
                 '"hypervisor", XEN_VERSION "-lpbench",',
                 "the whole function"),
    "range": ("(json_int_t)pages * psz >> 20,",
              "(json_int_t)pages * psz >> 10,",
              "in place"),
}


def applied(ours, kind, mib):
    """Whether the `kind` payload shows in what the daemon answers."""
    if kind == "function":
        return ours.d.call("version")["hypervisor"].endswith("-lpbench")
    return ours.d.call("info")["host"]["memory_mib"] >> 10 == mib


def build_payload(tmp, log, kind):
    """A payload for the running build (KINDS)."""
    old, new, form = KINDS[kind]
    src = os.path.join(harness.ROOT, "xen", "commands.c")
    with open(src) as f:
        text = f.read()
    if old not in text:
        raise BenchError(f"{src}: '{old}' not found; update bench/"
                         "livepatch.py")
    tmp = os.path.join(tmp, kind)
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    for d, t in ((a, text), (b, text.replace(old, new))):
        os.makedirs(os.path.join(d, "xen"))
        with open(os.path.join(d, "xen", "commands.c"), "w") as f:
            f.write(t)
    diff = subprocess.run(["diff", "-u", "a/xen/commands.c",
                           "b/xen/commands.c"], cwd=tmp,
                          capture_output=True, text=True).stdout
    patch = os.path.join(tmp, "version.patch")
    with open(patch, "w") as f:
        f.write(diff)
    out = os.path.join(tmp, "version.o")
    t0 = time.monotonic()
    r = subprocess.run([TOOL, "-q", "--src", harness.ROOT, "--patch", patch,
                        "--out", out], capture_output=True, text=True,
                       timeout=900)
    if r.returncode:
        raise BenchError(f"livepatch-build: {r.stderr[-2000:]}")
    if form not in r.stdout:
        raise BenchError(f"livepatch-build did not patch {kind} as "
                         f"'{form}': {r.stdout[-1000:]}")
    log(f"  {kind} payload built in {time.monotonic() - t0:.1f} s")
    return out


def _switch(ours, ids, command):
    """One apply or revert, watched from outside."""
    w = harness.CounterWatchProc(ours.pid, interval_us=200)
    try:
        time.sleep(WATCH_PAD_S)
        t0 = time.monotonic()
        res = ours.d.call(command, name="bench")
        latency = (time.monotonic() - t0) * 1e3
        time.sleep(WATCH_PAD_S)
    finally:
        report = w.stop()
    return {"latency_ms": latency, "pause_ms": res["pause_ms"],
            "park_ms": res["park_ms"], "check_ms": res.get("check_ms"),
            "vcpus": res["vcpus"], "max_stall_ms": _stall(report, ids)}


def _baseline(ours, ids):
    w = harness.CounterWatchProc(ours.pid, interval_us=200)
    try:
        time.sleep(2 * WATCH_PAD_S)
    finally:
        report = w.stop()
    return _stall(report, ids)


def point(kind, payload, nguests, runs, log):
    ours = Ours(f"lp{kind[0]}{nguests}")
    pt = {"guests": nguests, "apply": [], "revert": [],
          "baseline_stall_ms": []}
    try:
        names, ids = ours.start_counters("lp", nguests, CMDLINE, GUEST_MIB,
                                         READY_TIMEOUT)
        mib = ours.d.call("info")["host"]["memory_mib"]
        ours.d.call("livepatch-upload", name="bench", path=payload)
        time.sleep(0.5)
        for _ in range(runs):
            pt["apply"].append(_switch(ours, ids, "livepatch-apply"))
            if not applied(ours, kind, mib):
                raise BenchError(f"the {kind} payload is applied but the "
                                 "daemon does not show it")
            pt["revert"].append(_switch(ours, ids, "livepatch-revert"))
            pt["baseline_stall_ms"].append(_baseline(ours, ids))
        for n in names:
            errs = [int(m.group(2)) for m in STATUS_RX.finditer(
                ours.d.console(n).encode())]
            if not errs or any(errs):
                raise BenchError(f"{n}: status lines {errs[-3:]}")
    finally:
        ours.stop()
    for sw in ("apply", "revert"):
        s = pt[sw]
        pt[sw] = {k: summary([x[k] for x in s]) for k in (
            "latency_ms", "pause_ms", "park_ms", "check_ms",
            "max_stall_ms")}
        pt[sw]["samples"] = s
    pt["baseline_stall_ms"] = summary(pt["baseline_stall_ms"])
    a = pt["apply"]
    log(f"  livepatch {kind} apply, {nguests} guest(s): pause "
        f"{a['pause_ms']['median']:.3f} ms (park "
        f"{a['park_ms']['median']:.3f}, check "
        f"{a['check_ms']['median']:.3f}), latency "
        f"{a['latency_ms']['median']:.2f} ms, guest-seen max stall "
        f"{a['max_stall_ms']['median']:.1f} ms (without: "
        f"{pt['baseline_stall_ms']['median']:.1f}) (medians of {runs})")
    return pt


def run(plan, log):
    """plan: {"runs": N}.  points: the function payload's (as before);
    range_points: the range payload's."""
    res = {"method": __doc__.strip(), "cmdline": CMDLINE,
           "guest_series": list(GUEST_SERIES), "points": {},
           "range_points": {}, "errors": []}
    tmp = tempfile.mkdtemp(prefix="xen-bench-lp-")
    _cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    for kind, key in (("function", "points"), ("range", "range_points")):
        try:
            payload = build_payload(tmp, log, kind)
        except (BenchError, subprocess.SubprocessError) as e:
            res["errors"].append(f"{kind} payload: {e}")
            continue
        for n in GUEST_SERIES:
            try:
                res[key][str(n)] = point(kind, payload, n, plan["runs"],
                                         log)
            except Exception as e:  # noqa: BLE001 - recorded, run goes on
                res["errors"].append(f"{kind}, {n} guests: {e}")
                log(f"  livepatch {kind} {n} guests: ERROR {e}")
    return res


def table_rows(lp, add):
    """Rows for run.py's table: add(metric, ours, qemu, variant)."""
    def med(d, k):
        return ((d or {}).get(k) or {}).get("median")

    for n in GUEST_SERIES:
        p = lp["points"].get(str(n)) or {}
        rp = (lp.get("range_points") or {}).get(str(n)) or {}
        for kind in ("apply", "revert"):
            o, ro = p.get(kind), rp.get(kind)
            add(f"livepatch {kind}, {n} guest(s): pause, ms",
                med(o, "pause_ms"), None, None)
            add("  of which the thread check, ms", med(o, "check_ms"),
                None, None)
            add("  the same with a range patch (in place), ms",
                med(ro, "pause_ms"), None, None)
            add("  of which the thread check, ms", med(ro, "check_ms"),
                None, None)
            add(f"  guest-seen max stall, ms (no switch: "
                f"{_fmt(med(p, 'baseline_stall_ms'))})",
                med(o, "max_stall_ms"), None, None)
            add("  latency (API round trip), ms", med(o, "latency_ms"),
                None, None)


def _fmt(x):
    return "-" if x is None else f"{x:.1f}"
