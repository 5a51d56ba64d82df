#!/usr/bin/python3
"""Live-update soak (`make soak`, outside `make test`; docs/live-update.md).

N consecutive build-ahead live updates between two copies of the image,
with 8 counter guests dirtying memory.  Every tenth update has a fault
injected at a random phase (the `fail_phase` of live-update-exec); it
must fail the way that phase fails (rolled back, or failed before the new
image started) and the guests must go on.  After every update each
guest's counter (read from its RAM memfd, as counter-watch does) must
move on; at the end every guest's own verification must report zero
errors, and counter-watch, which ran through the whole soak, must have
seen every guest progress.  Prints a summary; exits 1 on any unexpected
outcome.

    tests/soak_liveupdate.py [--updates N] [--guests G] [--seed S]
"""
import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (BUILD, XEN, CounterWatchProc, Daemon,  # noqa
                     build_has, copy_image, parse_status_lines,
                     wait_until)
from test_liveupdate import (LOAD, NEW_SIDE, OLD_SIDE, Image,  # noqa
                             lu_status)

# `started` crashes the guests on purpose (their state is stale once the
# new image ran them): it is tested alone, not soaked.
PHASES = OLD_SIDE + NEW_SIDE
PROGRESS_TIMEOUT_S = 30


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def wait_progress(readers, marks):
    """Every guest's counter moves past its mark; the new marks."""
    now = {}
    for name, r in readers.items():
        def moved():
            c = r.counter()
            return c if c is not None and c > marks[name] else None
        now[name] = wait_until(moved, timeout=PROGRESS_TIMEOUT_S,
                               what=f"{name}: counter past {marks[name]}")
    return now


def one_update(d, img, phase):
    args = {"fail_phase": phase} if phase else {}
    d.call("live-update-load", image=img.path)
    api = d.api()
    try:
        r = api.request("live-update-exec", **args)
    finally:
        api.close()
    return r


def classify(r, phase, img):
    """'ok', 'injected' or a string saying what was unexpected."""
    if phase is None:
        if not r["ok"]:
            return f"failed: {r['error']}"
        res = r["result"]
        if res["result"] != "ok" or res["to_build_id"] != img.build_id:
            return f"bad result: {res}"
        return "ok"
    if r["ok"]:
        return f"phase {phase}: succeeded"
    want = 11 if phase in OLD_SIDE else 13
    if r["error"]["code"] != want:
        return f"phase {phase}: error {r['error']}"
    return "injected"


def run(args):
    if not os.path.exists("/dev/kvm"):
        sys.exit("soak: needs /dev/kvm (run it in the test host there)")
    if not build_has("LIVE_UPDATE"):
        sys.exit("soak: LIVE_UPDATE is not in this build's Kconfig")
    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="xen-soak-")
    imgs = []
    for key in ("a", "b"):
        dest = os.path.join(root, key, "xen")
        os.makedirs(os.path.dirname(dest))
        copy_image(XEN, dest)
        imgs.append(Image(dest, BUILD))
    d = Daemon(os.path.join(root, "d"))
    os.makedirs(d.root, exist_ok=True)
    d.start()
    counts = {"ok": 0, "injected": 0}
    unexpected, blackout = [], []
    watch = None
    try:
        names = [f"s{i}" for i in range(args.guests)]
        for n in names:
            d.create(n, memory=32, cmdline=f"interval=200 {LOAD}")
        for n in names:
            d.wait_console(n, r"COUNTER READY", timeout=60)
        readers = {n: d.counter_reader(n, 30) for n in names}
        marks = {n: readers[n].counter() or 0 for n in names}
        marks = wait_progress(readers, marks)
        watch = CounterWatchProc(d.proc.pid, interval_us=200)
        t0 = time.monotonic()
        for i in range(args.updates):
            img = imgs[i % 2]
            phase = rng.choice(PHASES) if i % 10 == 9 else None
            r = one_update(d, img, phase)
            what = classify(r, phase, img)
            if what in counts:
                counts[what] += 1
            else:
                unexpected.append(f"update {i}: {what}")
            if what == "ok":
                blackout.append(r["result"]["blackout_ms"])
            elif phase and d.call("live-update-status").get("staged"):
                d.call("live-update-unload")
            marks = wait_progress(readers, marks)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} updates, {time.monotonic() - t0:.0f} s",
                      flush=True)
        elapsed = time.monotonic() - t0
        report = watch.stop()
        watch = None
        errors = {}
        for n in names:
            st = readers[n].read()
            lines = parse_status_lines(d.console(n))
            bad = st["errors"] + sum(s.get("errors", 0) for s in lines)
            if bad or "VERIFY ERROR" in d.console(n):
                errors[n] = bad
        if sorted(report) != sorted(d.domid(n) for n in names):
            unexpected.append(f"counter-watch saw {sorted(report)}")
        for domid, g in report.items():
            if g["errors"] or g["last"] <= g["first"]:
                unexpected.append(f"counter-watch d{domid}: {g}")
    finally:
        if watch:
            watch.stop()
        d.stop()
        shutil.rmtree(root, ignore_errors=True)
    stall = max(g["max_stall_ms"] for g in report.values())
    print(f"soak: {args.updates} updates, {args.guests} guests ({LOAD}) in "
          f"{elapsed:.0f} s ({args.updates / elapsed:.2f} updates/s)")
    print(f"  ok {counts['ok']}, rolled back / failed as injected "
          f"{counts['injected']}, unexpected {len(unexpected)}")
    if blackout:
        print(f"  blackout ms: median {statistics.median(blackout):.2f} "
              f"p99 {pct(blackout, 99):.2f} max {max(blackout):.2f}")
    print(f"  guest-seen max stall (counter-watch): {stall:.1f} ms")
    print(f"  guests' own verification errors: {sum(errors.values())}"
          f"{' ' + str(errors) if errors else ''}")
    for u in unexpected[:20]:
        print(f"  UNEXPECTED {u}")
    return 1 if unexpected or errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--guests", type=int, default=8)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    print(f"soak: seed {args.seed}", flush=True)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
