"""Benchmark 4: live update of the hypervisor under running guests, and
QEMU 7.2's way of replacing its process before CPR: migration over
localhost to a new QEMU process.

Ours.  One daemon per point; counter guests (cmdline CMDLINE) created and
counting; two copies of $XEN_BUILD/bin/xen at different paths (so every
update really executes another file); per point one unrecorded warm-up
update, then N recorded `xl live-update IMAGE` (load + exec), alternating
between the copies.  Per update:
  blackout_ms    the daemon's own figure (`live-update-status` / the exec
                 reply): from the exec request's arrival (all vCPUs are
                 parked right after) until the guests run again on the new
                 image, CLOCK_MONOTONIC;
  max_stall_ms   what the guests saw: build/bin/counter-watch, started
                 0.3 s before the update and stopped 0.3 s after, reports
                 per guest the longest time its counter did not change (the
                 largest over the guests is the sample).  It includes host
                 scheduling after the resume; on a 2-core host with more
                 vCPUs than cores that alone can be tens of ms, so the
                 same watch over an equal window without an update is
                 recorded too (`baseline_stall_ms`);
  total_ms       what the operator waits for: from spawning `xl
                 live-update IMAGE` to its exit after the reply (staging
                 checks, the update, xl's own start-up).
Series: guest RAM 256 MiB, 1, 4, 8 GiB with one guest (8 GiB only when
`MemAvailable` leaves 2 GiB beside it); 1, 2, 4, 8 guests of 256 MiB.
Each point twice in the same run: MODES, the build-ahead design (the
default: the new image builds every VM while the guests run, the
blackout holds only the small state) and the previous design
(`--mode reexec`: exec in place, every VM rebuilt inside the blackout).

QEMU.  Source `qemu-system-x86_64 -accel kvm -machine pc -bios qboot.rom
-m SIZE -nodefaults -display none -serial file:... -kernel counter.elf
-append CMDLINE -qmp unix:...`, destination the same plus `-incoming
tcp:127.0.0.1:PORT`; once the source guest prints COUNTER READY (+1 s),
QMP `migrate {"uri": "tcp:127.0.0.1:PORT"}` with every parameter at its
default (downtime-limit 300 ms, no multifd, no compression, no
postcopy), then `query-migrate` every 10 ms until `completed`.  Recorded
from query-migrate: `downtime` (ms, QEMU's own: source VM stopped until
the end of the migration on the source) and `total-time` (ms, from the
`migrate` command), plus the wall time of the same span and the RAM
counters.  The destination guest must print a status line with errors=0
afterwards or the run counts as failed.  Guest RAM 256 MiB, 1, 2, 4 GiB.

Ratios (reported, not judged): QEMU total-time / our total update time at
1 GiB (the issue's target: >= 10), and our blackout / QEMU downtime at each
size (target: <= 1).  Medians of the recorded runs.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from common import (BenchError, Ours, Pressure, QEMU, QEMU_VARIANTS,
                    _cleanups, _pdeathsig, harness, summary)

CMDLINE = "ws=64M rate=5000 interval=1000"
RAM_SERIES_ALL = (256, 1024, 4096, 8192)
MODES = ("build-ahead", "reexec")
GUEST_SERIES = (1, 2, 4, 8)
GUEST_SERIES_MIB = 256
WATCH_PAD_S = 0.3
READY_TIMEOUT = 90
QEMU_VARIANT = "qemu-qboot"
STATUS_RX = re.compile(rb"COUNTER counter=(\d+) [^\r\n]*errors=(\d+)")


def _median(xs):
    s = summary(xs)
    return s["median"] if s else None


# ------------------------------------------------------------ ours

def _xl_json(ours, *args, timeout=120):
    r = subprocess.run([harness.XL] + list(args),
                       env=harness.xl_env(ours.d.sock), capture_output=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"xl {' '.join(args)} exited {r.returncode}: "
                         f"{r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def _stall(report, ids):
    if sorted(report) != sorted(ids):
        raise BenchError(f"counter-watch saw domains {sorted(report)}, "
                         f"expected {sorted(ids)}")
    bad = [g for g in report.values() if g["errors"] or g["last"] <=
           g["first"]]
    if bad:
        raise BenchError(f"a guest stopped or reported errors: {bad}")
    return max(g["max_stall_ms"] for g in report.values())


def _mem_available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def ram_series():
    """The sizes this host has the memory for (two copies of the guest's
    page tables and the daemon beside it: 2 GiB of margin)."""
    avail = _mem_available_mib()
    return tuple(m for m in RAM_SERIES_ALL if m + 2048 <= avail or m <= 1024)


RAM_SERIES = ram_series()


def ours_point(images, nguests, mib, runs, log, mode="build-ahead"):
    """One daemon, `nguests` counter guests of `mib` MiB, one warm-up and
    `runs` recorded updates in `mode`."""
    ours = Ours(f"lu{nguests}x{mib}{mode[0]}")
    pt = {"guests": nguests, "memory_mib": mib, "mode": mode, "samples": [],
          "baseline_stall_ms": []}
    try:
        names, ids = ours.start_counters("lu", nguests, CMDLINE, mib,
                                         READY_TIMEOUT)
        time.sleep(0.5)
        for i in range(runs + 1):
            img = images[i % 2]
            w = harness.CounterWatchProc(ours.pid, interval_us=200)
            try:
                time.sleep(WATCH_PAD_S)
                pressure = Pressure()
                t0 = time.monotonic()
                res = _xl_json(ours, "live-update", img, "--mode", mode,
                               "--json")
                total = (time.monotonic() - t0) * 1e3
                cpu = pressure.fraction()
                time.sleep(WATCH_PAD_S)
            finally:
                report = w.stop()
            if res.get("result") != "ok" or res.get("domains") != nguests:
                raise BenchError(f"live update: {res}")
            s = {"blackout_ms": res["blackout_ms"],
                 "max_stall_ms": _stall(report, ids), "total_ms": total,
                 "phases_ms": res.get("phases_ms"),
                 "build_ahead_ms": res.get("build_ahead_ms"),
                 "format_version": res.get("format_version"),
                 "cpu_pressure": cpu}
            if i == 0:
                pt["warmup"] = s
                continue
            pt["samples"].append(s)
            # the same watch over the same window, no update
            w = harness.CounterWatchProc(ours.pid, interval_us=200)
            try:
                time.sleep(2 * WATCH_PAD_S + total / 1e3)
            finally:
                report = w.stop()
            pt["baseline_stall_ms"].append(_stall(report, ids))
        for n in names:
            con = ours.d.console(n)
            errs = [int(m.group(2)) for m in STATUS_RX.finditer(
                con.encode())]
            if not errs or any(errs) or "VERIFY ERROR" in con:
                raise BenchError(f"{n}: status lines {errs[-3:]} after the "
                                 f"updates")
    finally:
        ours.stop()
    for k in ("blackout_ms", "max_stall_ms", "total_ms"):
        pt[k] = summary([s[k] for s in pt["samples"]])
    pt["baseline_stall_ms"] = summary(pt["baseline_stall_ms"])
    log(f"  live update ({mode}) {nguests} x {mib} MiB: blackout "
        f"{pt['blackout_ms']['median']:.1f} ms, guest-seen max stall "
        f"{pt['max_stall_ms']['median']:.1f} ms (without update "
        f"{pt['baseline_stall_ms']['median']:.1f}), xl total "
        f"{pt['total_ms']['median']:.1f} ms (medians of {runs})")
    return pt


# ------------------------------------------------------------ QEMU

class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"QMP socket {path} never came up")
                time.sleep(0.05)
        s.settimeout(timeout)
        self.s = s
        self.f = s.makefile("rwb")
        greeting = json.loads(self.f.readline())
        if "QMP" not in greeting:
            raise BenchError(f"QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write((json.dumps(req) + "\n").encode())
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise BenchError(f"QMP closed during {name}")
            r = json.loads(line)
            if "event" in r:
                continue
            if "error" in r:
                raise BenchError(f"QMP {name}: {r['error']}")
            return r["return"]

    def close(self):
        try:
            self.f.close()
            self.s.close()
        except OSError:
            pass


def _qemu_argv(mib, serial, qmp, incoming=None):
    argv = [QEMU, "-accel", "kvm", "-m", str(mib), "-nodefaults",
            "-display", "none", "-no-reboot"]
    argv += QEMU_VARIANTS[QEMU_VARIANT]["args"]
    argv += ["-serial", f"file:{serial}", "-kernel",
             harness.guest_path("counter"), "-append", CMDLINE,
             "-qmp", f"unix:{qmp},server=on,wait=off"]
    if incoming:
        argv += ["-incoming", incoming]
    return argv


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _wait_file(path, rx, timeout, what, start=0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = rx.search(_read(path), start)
        if m:
            return m
        time.sleep(0.05)
    raise BenchError(f"{what}: never saw {rx.pattern!r} in {timeout}s: "
                     f"{_read(path)[-300:]!r}")


def qemu_migrate_once(mib, tmp):
    port = harness.free_port()
    procs, qmps = [], []

    def spawn(tag, incoming=None):
        serial = os.path.join(tmp, f"{tag}.serial")
        qmp = os.path.join(tmp, f"{tag}.qmp")
        for p in (serial, qmp):
            if os.path.exists(p):
                os.unlink(p)
        argv = _qemu_argv(mib, serial, qmp, incoming)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, preexec_fn=_pdeathsig)
        procs.append(p)
        return argv, serial, qmp

    def kill_all():
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    _cleanups.append(kill_all)
    try:
        src_argv, src_serial, src_qmp = spawn("src")
        dst_argv, dst_serial, dst_qmp = spawn(
            "dst", f"tcp:127.0.0.1:{port}")
        qs = Qmp(src_qmp)
        qmps.append(qs)
        qd = Qmp(dst_qmp)
        qmps.append(qd)
        _wait_file(src_serial, re.compile(rb"COUNTER READY"), READY_TIMEOUT,
                   "source QEMU")
        time.sleep(1.0)
        pressure = Pressure()
        t0 = time.monotonic()
        qs.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        while True:
            st = qs.cmd("query-migrate")
            if st.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - t0 > 300:
                raise BenchError(f"migration not done after 300 s: {st}")
            time.sleep(0.01)
        wall = (time.monotonic() - t0) * 1e3
        cpu = pressure.fraction()
        if st["status"] != "completed":
            raise BenchError(f"migration {st['status']}: {st}")
        dst_status = qd.cmd("query-status")
        # the guest goes on counting on the destination, without errors
        m = _wait_file(dst_serial, STATUS_RX, 30, "destination guest")
        if int(m.group(2)):
            raise BenchError(f"destination guest reports errors: "
                             f"{m.group(0)!r}")
        return {"downtime_ms": st["downtime"],
                "total_time_ms": st["total-time"],
                "setup_time_ms": st.get("setup-time"), "wall_ms": wall,
                "ram": st.get("ram"), "dst_status": dst_status,
                "cpu_pressure": cpu, "src_argv": src_argv,
                "dst_argv": dst_argv}
    finally:
        for q in qmps:
            q.close()
        kill_all()
        _cleanups.remove(kill_all)


def qemu_point(mib, runs, log):
    tmp = tempfile.mkdtemp(prefix="xen-bench-qemu-mig-")
    pt = {"memory_mib": mib, "samples": [], "errors": []}
    try:
        for i in range(runs):
            try:
                pt["samples"].append(qemu_migrate_once(mib, tmp))
            except (BenchError, OSError, ValueError) as e:
                pt["errors"].append(f"{mib} MiB run {i}: {e}")
                log(f"  QEMU migration {mib} MiB: ERROR {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for k in ("downtime_ms", "total_time_ms", "wall_ms"):
        pt[k] = summary([s[k] for s in pt["samples"]])
    if pt["samples"]:
        pt["argv"] = {"src": pt["samples"][0]["src_argv"],
                      "dst": pt["samples"][0]["dst_argv"]}
        for s in pt["samples"]:
            del s["src_argv"], s["dst_argv"]
        log(f"  QEMU migration {mib} MiB: downtime "
            f"{pt['downtime_ms']['median']:.0f} ms, total-time "
            f"{pt['total_time_ms']['median']:.0f} ms (medians of "
            f"{len(pt['samples'])})")
    return pt


# ------------------------------------------------------------ run

def run(plan, qemu_ok, log):
    """plan: {"runs": N, "qemu_runs": M}."""
    res = {"method": __doc__.strip(), "cmdline": CMDLINE,
           "ram_series_mib": list(RAM_SERIES),
           "guest_series": list(GUEST_SERIES),
           "guest_series_mib": GUEST_SERIES_MIB,
           "ours": {"ram": {}, "guests": {}},
           "previous": {"ram": {}, "guests": {}},
           "qemu": {}, "errors": []}
    tmp = tempfile.mkdtemp(prefix="xen-bench-lu-images-")
    _cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    images = []
    for tag in ("a", "b"):
        os.makedirs(os.path.join(tmp, tag))
        p = os.path.join(tmp, tag, "xen")
        notes = harness.copy_image(harness.XEN, p)
        images.append(p)
    res["image_build_id"] = notes["build_id"]

    def attempt(where, key, fn):
        try:
            where[key] = fn()
        except Exception as e:  # noqa: BLE001 - recorded, run goes on
            res["errors"].append(f"{key}: {e}")
            log(f"  live update {key}: ERROR {e}")

    for key, mode in (("ours", "build-ahead"), ("previous", "reexec")):
        for mib in RAM_SERIES:
            attempt(res[key]["ram"], str(mib),
                    lambda mib=mib, mode=mode: ours_point(
                        images, 1, mib, plan["runs"], log, mode))
        for n in GUEST_SERIES:
            if n == 1 and str(GUEST_SERIES_MIB) in res[key]["ram"]:
                res[key]["guests"]["1"] = res[key]["ram"][
                    str(GUEST_SERIES_MIB)]
                continue
            attempt(res[key]["guests"], str(n),
                    lambda n=n, mode=mode: ours_point(
                        images, n, GUEST_SERIES_MIB, plan["runs"], log,
                        mode))
    if qemu_ok:
        for mib in RAM_SERIES:
            pt = qemu_point(mib, plan["qemu_runs"], log)
            res["qemu"][str(mib)] = pt
            res["errors"] += pt["errors"]
    res["ratios"] = ratios(res)
    return res


def ratios(res):
    out = {}
    for mib in RAM_SERIES:
        o = res["ours"]["ram"].get(str(mib)) or {}
        q = res["qemu"].get(str(mib)) or {}
        ob = (o.get("blackout_ms") or {}).get("median")
        ot = (o.get("total_ms") or {}).get("median")
        qd = (q.get("downtime_ms") or {}).get("median")
        qt = (q.get("total_time_ms") or {}).get("median")
        out[str(mib)] = {
            "qemu_total_over_ours_total": qt / ot if qt and ot else None,
            "ours_blackout_over_qemu_downtime": ob / qd if ob and qd
            else None}
    one = out.get("1024", {})
    out["headline"] = {
        "qemu_total_over_ours_total_1GiB": one.get(
            "qemu_total_over_ours_total"),
        "target_qemu_total_over_ours_total": ">= 10",
        "ours_blackout_over_qemu_downtime_1GiB": one.get(
            "ours_blackout_over_qemu_downtime"),
        "target_ours_blackout_over_qemu_downtime": "<= 1"}
    return out


def table_rows(lu, add):
    """Rows for run.py's table: add(metric, ours, qemu, variant)."""
    def med(d, k):
        return ((d or {}).get(k) or {}).get("median")

    prev = lu.get("previous") or {"ram": {}, "guests": {}}
    for mib in RAM_SERIES:
        o = lu["ours"]["ram"].get(str(mib))
        p = prev["ram"].get(str(mib))
        q = lu["qemu"].get(str(mib))
        size = f"{mib} MiB" if mib < 1024 else f"{mib // 1024} GiB"
        v = QEMU_VARIANT if q else None
        add(f"live update blackout vs migration downtime, {size}, ms",
            med(o, "blackout_ms"), med(q, "downtime_ms"), v)
        add(f"  previous design (reexec): blackout {size}, ms "
            f"(guest-seen {_fmt(med(p, 'max_stall_ms'))})",
            med(p, "blackout_ms"), None, None)
        add(f"  update total (xl) vs migration total-time, {size}, ms",
            med(o, "total_ms"), med(q, "total_time_ms"), v)
        add(f"  guest-seen max stall, {size}, ms (no update: "
            f"{_fmt(med(o, 'baseline_stall_ms'))})",
            med(o, "max_stall_ms"), None, None)
    for n in GUEST_SERIES:
        o = lu["ours"]["guests"].get(str(n))
        p = prev["guests"].get(str(n))
        add(f"live update blackout, {n} guest(s) x {GUEST_SERIES_MIB} MiB,"
            f" ms", med(o, "blackout_ms"), None, None)
        add(f"  previous design (reexec): blackout {n} x "
            f"{GUEST_SERIES_MIB} MiB, ms (guest-seen "
            f"{_fmt(med(p, 'max_stall_ms'))})",
            med(p, "blackout_ms"), None, None)
        add(f"  guest-seen max stall, {n} x {GUEST_SERIES_MIB} MiB, ms "
            f"(no update: {_fmt(med(o, 'baseline_stall_ms'))})",
            med(o, "max_stall_ms"), None, None)
        add(f"  update total (xl), {n} x {GUEST_SERIES_MIB} MiB, ms",
            med(o, "total_ms"), None, None)


def _fmt(x):
    return "-" if x is None else f"{x:.1f}"


def print_ratios(lu):
    r = lu.get("ratios", {})
    h = r.get("headline", {})

    def f(x):
        return "-" if x is None else f"{x:.2f}"
    print("\nlive update vs QEMU migration (medians):")
    print(f"  QEMU total migration time / our total update time at 1 GiB: "
          f"{f(h.get('qemu_total_over_ours_total_1GiB'))} (target >= 10)")
    print(f"  our blackout / QEMU downtime at 1 GiB: "
          f"{f(h.get('ours_blackout_over_qemu_downtime_1GiB'))} "
          f"(target <= 1)")
    for mib in RAM_SERIES:
        x = r.get(str(mib), {})
        print(f"    {mib:>5} MiB: QEMU total / ours total "
              f"{f(x.get('qemu_total_over_ours_total'))}, our blackout / "
              f"QEMU downtime {f(x.get('ours_blackout_over_qemu_downtime'))}"
              )

