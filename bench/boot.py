"""Benchmark 1: boot to the counter guest's first console line.

Ours: from just before `xl create CFG` is spawned until the banner line
(`counter guest: ws_pages=...` CR LF) has arrived on a `console` stream
of the control socket, attached as soon as `xl create` returns (with
history, so nothing printed before the attach is missed; the guest needs
>100 ms of PIT calibration before its banner, the attach takes a few ms).

QEMU: from just before the process is spawned until the same line has
arrived on its `-serial stdio`.  Same guest file, command line and memory.

Every sample is taken from a chunk's arrival time (a reader thread stamps
each chunk as it arrives), not from polling.
"""
import re
import time

from common import BANNER_RX, Pressure, Qemu, summary

CMDLINE = "ws=1M interval=1000"
TIMEOUT = 60
TSC_RX = re.compile(rb"tsc_khz=(\d+)")
CAL_FAILED = b"PIT calibration failed"


def _parse_banner(m):
    t = TSC_RX.search(m.group(0))
    return int(t.group(1)) if t else None


def once_ours(ours, name):
    cfg = ours.cfg(name, "counter", CMDLINE)
    pr = Pressure()
    t0 = time.monotonic()
    ours.xl_create(cfg)
    t_created = time.monotonic()
    try:
        st = ours.console(name)
    except BaseException:
        ours.destroy(name)
        raise
    try:
        m, t_line = st.wait(BANNER_RX, TIMEOUT)
        sample = {"banner_ms": (t_line - t0) * 1e3,
                  "first_byte_ms": (st.first_byte - t0) * 1e3,
                  "xl_create_returned_ms": (t_created - t0) * 1e3,
                  "guest_tsc_khz": _parse_banner(m),
                  "calibration_failed": CAL_FAILED in bytes(st.buf),
                  "cpu_pressure": pr.fraction()}
    finally:
        ours.close_console(st)
        ours.destroy(name)
    return sample


def once_qemu(variant):
    pr = Pressure()
    q = Qemu(variant, "counter", CMDLINE)
    try:
        m, t_line = q.out.wait(BANNER_RX, TIMEOUT)
        sample = {"banner_ms": (t_line - q.t0) * 1e3,
                  "first_byte_ms": (q.out.first_byte - q.t0) * 1e3,
                  "guest_tsc_khz": _parse_banner(m),
                  "calibration_failed": CAL_FAILED in bytes(q.out.buf),
                  "cpu_pressure": pr.fraction()}
    finally:
        q.kill()
    sample["argv"] = q.argv
    return sample


def run(ours, variants, runs, log):
    """`variants`: {variant: number of runs}; ours gets `runs` runs.
    Runs are interleaved (ours, then each QEMU variant, round after round)
    so that background load on the host hits every column alike.  One
    unrecorded warm-up run each first (page cache), except for variants
    that get a single run."""
    res = {"method": __doc__.strip(), "cmdline": CMDLINE,
           "ours": {"samples": [], "errors": []}}
    for v in variants:
        res[v] = {"samples": [], "errors": []}

    def attempt(key, fn, record):
        try:
            s = fn()
        except Exception as e:  # noqa: BLE001 - recorded, run goes on
            res[key]["errors"].append(str(e))
            log(f"  boot {key}: ERROR {e}")
            return
        if record:
            res[key]["samples"].append(s)
            log(f"  boot {key}: {s['banner_ms']:.1f} ms "
                f"(host CPU pressure {s['cpu_pressure']})")

    seq = [0]

    def ours_once():
        seq[0] += 1
        return once_ours(ours, f"boot{seq[0]}")

    attempt("ours", ours_once, False)
    for v, n in variants.items():
        if n > 1:
            attempt(v, lambda v=v: once_qemu(v), False)
    for i in range(max([runs] + list(variants.values()))):
        if i < runs:
            attempt("ours", ours_once, True)
        for v, n in variants.items():
            if i < n:
                attempt(v, lambda v=v: once_qemu(v), True)

    for key in ["ours"] + list(variants):
        r = res[key]
        r["banner_ms"] = summary([s["banner_ms"] for s in r["samples"]])
        r["first_byte_ms"] = summary([s["first_byte_ms"]
                                      for s in r["samples"]])
        r["cpu_pressure"] = summary([s["cpu_pressure"]
                                     for s in r["samples"]])
        if key == "ours":
            r["xl_create_returned_ms"] = summary(
                [s["xl_create_returned_ms"] for s in r["samples"]])
    return res
