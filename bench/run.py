#!/usr/bin/python3
"""Benchmarks of xen-kvm beside QEMU/KVM on the same host.

    XEN_BUILD=$PWD/build python3 bench/run.py [--quick] [--no-qemu]
                                              [--only boot,io,mem,lu,state,lp,virtio,
                                                     migration]

Prints one table (rows = metric, columns = ours, QEMU, the QEMU variant,
ours/QEMU) and writes everything -- raw samples, medians, methods, host
facts, QEMU command lines -- to $XEN_BUILD/bench/results.json.

Benchmarks measure; they never pass or fail on a number.  The exit status
is 1 only when a measurement could not be taken at all (a guest did not
boot, QEMU is missing, ...); see "errors" in the JSON.
See bench/README.md for the methods and their caveats.
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boot  # noqa: E402
import common  # noqa: E402
import iobench  # noqa: E402
import livepatch  # noqa: E402
import liveupdate  # noqa: E402
import memory  # noqa: E402
import migration  # noqa: E402
import state  # noqa: E402
import virtio  # noqa: E402
from common import QEMU_VARIANTS, Ours  # noqa: E402

FULL = {
    "boot_runs": 10,
    "boot_qemu": {"qemu-seabios": 5, "qemu-qboot": 10, "qemu-microvm": 10},
    "io_count": 10000,
    "io_plan": {0x80: {"ours": 7, "qemu-qboot": 7, "qemu-seabios": 2},
                0x21: {"ours": 5, "qemu-qboot": 5}},
    "mem_qemu": {"qemu-qboot": memory.KS, "qemu-seabios": (1,)},
    "lu": {"runs": 7, "qemu_runs": 3},
    "state_runs": 5,
    "lp": {"runs": 7},
    "virtio": {"runs": 3, "blk_mib": 256, "rand_count": 1000,
               "net_mib": 128},
    "migration": {"runs": 2, "qemu_runs": 1},
}
QUICK = {
    "boot_runs": 3,
    "boot_qemu": {"qemu-seabios": 1, "qemu-qboot": 3, "qemu-microvm": 3},
    "io_count": 5000,
    "io_plan": {0x80: {"ours": 2, "qemu-qboot": 2},
                0x21: {"ours": 1, "qemu-qboot": 1}},
    "mem_qemu": {"qemu-qboot": memory.KS},
    "lu": {"runs": 2, "qemu_runs": 1},
    "state_runs": 1,
    "lp": {"runs": 2},
    "virtio": {"runs": 1, "blk_mib": 64, "rand_count": 500, "net_mib": 32},
    "migration": {"runs": 1, "qemu_runs": 1},
}

T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", flush=True)


# ------------------------------------------------------------ table

def _med(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d["median"] if isinstance(d, dict) and "median" in d else d


def table_rows(results):
    rows = []

    def add(metric, ours, qemu, variant):
        ratio = (ours / qemu) if ours is not None and qemu else None
        rows.append({"metric": metric, "ours": ours, "qemu": qemu,
                     "variant": QEMU_VARIANTS[variant]["label"]
                     if variant in QEMU_VARIANTS else (variant or ""),
                     "variant_key": variant,
                     "ratio_ours_over_qemu": ratio})

    b = results.get("boot")
    if b:
        o = _med(b, "ours", "banner_ms")
        nv = [v for v in QEMU_VARIANTS if v in b]
        for v in nv or [None]:
            add("boot to first console line, ms (median)", o,
                _med(b, v, "banner_ms") if v else None, v)
        add("  of which `xl create` returned, ms", _med(
            b, "ours", "xl_create_returned_ms"), None, None)
    m = results.get("memory")
    if m:
        o = m.get("ours", {})
        nv = [v for v in QEMU_VARIANTS if v in m]
        nvs = [v for v in nv if "per_domain_kib" in m[v]]
        for v in nvs or [None]:
            q = m.get(v, {}) if v else {}
            add("memory per extra domain, KiB (excl. guest RAM)",
                o.get("per_domain_kib"), q.get("per_domain_kib"), v)
        for v in nv or [None]:
            q = m.get(v, {}) if v else {}
            add("memory with 1 domain, KiB RSS (excl. guest RAM)",
                o.get("first_domain_rss_kib"), q.get("first_domain_rss_kib"),
                v)
    io = results.get("iobench")
    if io:
        for port, pres in io["ports"].items():
            where = {"0x80": "userspace", "0x21": "in-kernel PIC"}.get(
                port, "")
            nv = [v for v in QEMU_VARIANTS if v in pres]
            for d in ("out", "in"):
                for v in nv or [None]:
                    add(f"{d}b port {port} ({where}), ns (median)",
                        _med(pres, "ours", f"{d}_ns"),
                        _med(pres, v, f"{d}_ns") if v else None, v)
    lu = results.get("liveupdate")
    if lu:
        liveupdate.table_rows(lu, add)
    lp = results.get("livepatch")
    if lp:
        livepatch.table_rows(lp, add)
    vi = results.get("virtio")
    if vi:
        virtio.table_rows(vi, add)
    mi = results.get("migration")
    if mi:
        migration.table_rows(mi, add)
    return rows


def fmt(x, unit_digits=1):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{unit_digits}f}"


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 0.1 else f"{x:.2f}"


def print_table(rows):
    head = ("metric", "ours", "QEMU", "QEMU variant", "ours/QEMU")
    body = [(r["metric"], fmt(r["ours"]), fmt(r["qemu"]), r["variant"],
             fmt_ratio(r["ratio_ours_over_qemu"])) for r in rows]
    w = [max(len(str(x[i])) for x in [head] + body) for i in range(5)]
    line = "  ".join(["{:<%d}" % w[0], "{:>%d}" % w[1], "{:>%d}" % w[2],
                      "{:<%d}" % w[3], "{:>%d}" % w[4]])
    print(line.format(*head))
    print("  ".join("-" * x for x in w))
    for r in body:
        print(line.format(*r))
    notes = [v["note"] for v in QEMU_VARIANTS.values()
             if v["label"].endswith("(*)")
             and any(r["variant"] == v["label"] for r in rows)]
    for n in notes:
        print(n)
    if any(r["metric"].endswith("(+)") for r in rows):
        print(virtio.NOTE)


def _sample_groups(results):
    b = results.get("boot") or {}
    for v in b.values():
        if isinstance(v, dict) and "samples" in v:
            yield v["samples"]
    for pres in (results.get("iobench") or {}).get("ports", {}).values():
        for v in pres.values():
            yield v["samples"]


# ------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer runs (about a minute)")
    ap.add_argument("--no-qemu", action="store_true",
                    help="measure ours only")
    ap.add_argument("--only",
                    default="boot,io,mem,lu,state,lp,virtio,migration",
                    help="comma-separated subset of boot,io,mem,lu,state,"
                    "lp,virtio,migration")
    ap.add_argument("--out", default=None,
                    help="JSON path (default $XEN_BUILD/bench/results.json)")
    args = ap.parse_args()
    plan = QUICK if args.quick else FULL
    only = set(args.only.split(","))
    out = args.out or os.path.join(common.BUILD, "bench", "results.json")

    # virtio runs in the system tier's host VM (its own kvm-amd); every
    # other section needs this machine's /dev/kvm.
    ok, why = common.harness.kvm_usable()
    if not ok and only - {"virtio"}:
        print(f"bench: {why}", file=sys.stderr)
        return 1
    common.harness.require_binaries()

    errors = []
    qemu_ok, qemu_why = (False, "--no-qemu") if args.no_qemu \
        else common.qemu_available()
    if not qemu_ok and not args.no_qemu and only == {"virtio"}:
        # Only the host VM's QEMU is used (QEMU TCG here is checked when
        # the host VM boots).
        qemu_ok = True
    if not qemu_ok:
        log(f"QEMU columns left out: {qemu_why}")
        if not args.no_qemu:
            errors.append(f"QEMU unavailable: {qemu_why}")

    def qemu_only(d):
        return d if qemu_ok else {}

    results = {
        "schema": 1,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "build": common.BUILD,
        "host": common.host_info(),
        "plan": {k: ({f"0x{p:x}": r for p, r in v.items()}
                     if k == "io_plan" else v) for k, v in plan.items()},
        "qemu_variants": QEMU_VARIANTS,
    }
    log(f"host: {results['host']['cpu_model']}, {results['host']['nr_cpus']}"
        f" CPUs, kernel {results['host']['kernel']}, "
        f"{results['host']['qemu']}, loadavg "
        f"{results['host']['loadavg_at_start']}")

    try:
        if only & {"boot", "io"}:
            ours = Ours("main")
            info = ours.info()
            results["ours"] = {k: info.get(k) for k in (
                "hypervisor", "build_id", "protocol", "features", "host")}
            tsc_khz = info.get("host", {}).get("tsc_khz")
            log(f"ours: xen {info.get('hypervisor')} build-id "
                f"{info.get('build_id')}, host tsc_khz {tsc_khz}")
            try:
                if "boot" in only:
                    log("boot to first console line")
                    results["boot"] = boot.run(
                        ours, qemu_only(plan["boot_qemu"]),
                        plan["boot_runs"], log)
                if "io" in only:
                    log("port I/O round trip (exit guest, mode=iobench)")
                    io_plan = {p: {k: n for k, n in r.items()
                                   if k == "ours" or qemu_ok}
                               for p, r in plan["io_plan"].items()}
                    results["iobench"] = iobench.run(
                        ours, io_plan, plan["io_count"], tsc_khz, log)
            finally:
                ours.stop()
        if "mem" in only:
            log("memory per domain")
            results["memory"] = memory.run(qemu_only(plan["mem_qemu"]), log)
        if "state" in only:
            log("save/restore throughput per encoding vs memcpy")
            results["state"] = state.run(plan["state_runs"], log)
        if "lu" in only:
            log("live update vs QEMU migration to a new process")
            results["liveupdate"] = liveupdate.run(plan["lu"], qemu_ok, log)
        if "lp" in only and common.harness.build_has("LIVEPATCH"):
            log("livepatch apply/revert under running guests")
            results["livepatch"] = livepatch.run(plan["lp"], log)
        if "migration" in only and common.harness.build_has("MIGRATION"):
            log("live migration over loopback: plain TCP and TLS, "
                "ours beside QEMU's")
            results["migration"] = migration.run(plan["migration"], qemu_ok,
                                                 log)
        if "virtio" in only:
            log("virtio-blk and virtio-net throughput in the system tier's "
                "host VM (ours, then QEMU's)")
            results["virtio"] = virtio.run(plan["virtio"], not args.no_qemu,
                                           log)
    finally:
        common.cleanup_all()

    for bench in ("boot", "iobench", "memory"):
        r = results.get(bench) or {}
        groups = r.get("ports", {}).values() if bench == "iobench" else [r]
        for g in groups:
            for key, v in g.items():
                if isinstance(v, dict) and v.get("errors"):
                    errors += [f"{bench} {key}: {e}" for e in v["errors"]]
    errors += [f"state {e}" for e in
               (results.get("state") or {}).get("errors", [])]
    errors += [f"liveupdate {e}" for e in
               (results.get("liveupdate") or {}).get("errors", [])]
    errors += [f"livepatch {e}" for e in
               (results.get("livepatch") or {}).get("errors", [])]
    errors += [f"virtio {e}" for e in
               (results.get("virtio") or {}).get("errors", [])]
    errors += [f"migration {e}" for e in
               (results.get("migration") or {}).get("errors", [])]
    results["errors"] = errors
    results["host"]["loadavg_at_end"] = common.loadavg()
    results["host"]["cpu_pressure_at_end"] = common._pressure_line()
    pressures = [s.get("cpu_pressure")
                 for g in _sample_groups(results) for s in g]
    results["cpu_pressure_during_samples"] = common.summary(pressures)
    results["duration_s"] = time.monotonic() - T_START
    rows = table_rows(results)
    results["table"] = rows

    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1, default=str)
        f.write("\n")

    print()
    build_id = results.get("ours", {}).get("build_id") or \
        (results.get("virtio") or {}).get("build_id", "?")
    print(f"xen-kvm {build_id} vs "
          f"{results['host']['qemu']} on {results['host']['cpu_model']} "
          f"({results['host']['kernel']}), loadavg "
          f"{results['host']['loadavg_at_start']} -> "
          f"{results['host']['loadavg_at_end']}")
    cp = results["cpu_pressure_during_samples"]
    if cp:
        print(f"host CPU pressure during the timed samples (PSI cpu some, "
              f"0 = idle host): median {cp['median']:.2f}, max "
              f"{cp['max']:.2f}")
    print_table(rows)
    if results.get("state"):
        state.print_table(results["state"])
    if results.get("liveupdate"):
        liveupdate.print_ratios(results["liveupdate"])
    print(f"\nJSON: {out}  ({results['duration_s']:.0f} s)")
    if errors:
        print(f"\n{len(errors)} measurement(s) failed:")
        for e in errors:
            print(f"  {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
