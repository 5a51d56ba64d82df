"""Benchmark 4: live update of the hypervisor under running guests, and
QEMU 7.2's way of replacing its process before CPR: migration over
localhost to a new QEMU process.

Ours.  One daemon per point; counter guests created and counting; two
copies of $XEN_BUILD/bin/xen at different paths (so every update really
executes another file); per point one unrecorded warm-up update, then N
recorded `xl live-update IMAGE` (load + exec), alternating between the
copies.  The guests are IDLE (cmdline IDLE_CMDLINE: each loop iteration
sleeps IDLE_US in hlt on the local APIC timer, as an idle OS does; no
status lines, each costs the guest ~10 ms of port exits) unless said
SPINNING (SPIN_CMDLINE: the loop never waits; 8 of them on 2 host CPUs are
time-sliced, tens of ms of gaps with or without an update).  Per update:
  blackout_ms    the daemon's own figure (`live-update-status` / the exec
                 reply): from the exec request's arrival (all vCPUs are
                 parked right after) until the guests run again on the new
                 image, CLOCK_MONOTONIC;
  guest_gap_ms   the guest-seen blackout by the guests' own clocks: the
                 longest gap a guest logged (its gap log: the time it
                 wanted to run and could not, an iteration's gap less the
                 sleep it asked for) that ended while the update ran:
                 between the spawn of `xl live-update` and its exit +
                 ATTRIB_SLACK_S, as build/bin/counter-watch (watching from
                 0.3 s before to 0.3 s after) timed its reading of it; the
                 largest over the guests is the sample (`guest_gap_wide_ms`:
                 over the whole watch);
  watcher_ms     the same seen from outside: counter-watch's longest time
                 a guest's counter did not change (sampled every 200 us)
                 that ended in the same span, less IDLE_US (a counter that
                 sleeps IDLE_US between two batches stands still that long
                 without any update); `max_stall_ms` is the raw figure;
  total_ms       what the operator waits for: from spawning `xl
                 live-update IMAGE` to its exit after the reply (staging
                 checks, the update, xl's own start-up).
After each recorded update the same watch without an update, over a
span as long 0.3 s into it, gives `baseline_guest_gap_ms` /
`baseline_watcher_ms` (the host's own noise floor over as long a time).
Series: guest RAM 256 MiB, 1, 4, 8 GiB with one guest (8 GiB only when
`MemAvailable` leaves 2 GiB beside it); 1, 2, 4, 8 guests of 256 MiB.
Each point with idle guests in both MODES in the same run: the
build-ahead design (the default: the new image builds every VM while the
guests run, the blackout holds only the small state) and the previous
design (`--mode reexec`: exec in place, every VM rebuilt inside the
blackout); and with spinning guests in build-ahead mode (`spinning`).

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
counters.  The guest is the idle one, with status lines
(QEMU_CMDLINE); the destination guest must print a status line with
errors=0 afterwards or the run counts as failed.  Guest RAM as ours.

Ratios (reported, not judged): QEMU total-time / our total update time at
1 GiB (the issue's target: >= 10), our blackout and our guest-seen
blackout / QEMU downtime at each size (target: <= 1), the previous
design's guest-seen blackout / ours; the issue's targets for the
guest-seen blackout (idle guests, build-ahead): <= 3 ms for one 1 GiB
guest, <= 5 ms for eight, within 1 ms from 256 MiB to 8 GiB.  Medians of
the recorded runs.
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

IDLE_US = 1000
SPIN_CMDLINE = "ws=64M rate=5000 interval=1000"
IDLE_CMDLINE = f"ws=64M rate=5000 interval=0 idle={IDLE_US}"
QEMU_CMDLINE = f"ws=64M rate=5000 interval=1000 idle={IDLE_US}"
# (key in the results, mode, guests): what each series measures
SERIES = (("ours", "build-ahead", "idle"), ("previous", "reexec", "idle"),
          ("spinning", "build-ahead", "spin"))
RAM_SERIES_ALL = (256, 1024, 4096, 8192)
MODES = ("build-ahead", "reexec")
GUEST_SERIES = (1, 2, 4, 8)
GUEST_SERIES_MIB = 256
WATCH_PAD_S = 0.3
# A gap or stall counts as the update's when it ended between the spawn
# of `xl live-update` and its exit plus this (the guests run again before
# the reply reaches xl; counter-watch reads a gap within 200 us).
ATTRIB_SLACK_S = 0.02
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


def _seen(report, ids, idle_us, t_from=None, t_to=None):
    """What the guests saw in one counter-watch window: the largest over
    the guests of their own longest gap (gap log), of the watcher's
    longest stall less the sleep, and of the raw stall.  With t_from and
    t_to (CLOCK_MONOTONIC seconds): guest_gap_ms and watcher_ms count only
    the gaps and stalls that ended in that span (the update's own, not the
    host's noise before or after it; 0 when none: every gap under 0.1 ms,
    every stall under the sleep + 0.5 ms); the whole window's figures are
    kept as *_wide_ms."""
    if sorted(report) != sorted(ids):
        raise BenchError(f"counter-watch saw domains {sorted(report)}, "
                         f"expected {sorted(ids)}")
    bad = [g for g in report.values() if g["errors"] or g["last"] <=
           g["first"] or g["idle_us"] != idle_us]
    if bad:
        raise BenchError(f"a guest stopped, reported errors or is not "
                         f"idle={idle_us}: {bad}")
    stall = max(g["max_stall_ms"] for g in report.values())
    # gaps_lost: log entries the ring overwrote before counter-watch read
    # them (then guest_gap_ms is a lower bound)
    # events_dropped: gaps or stalls past counter-watch's list (a figure
    # taken from the lists may then miss the largest)
    out = {"guest_gap_ms": max(g["window_max_gap_ms"]
                               for g in report.values()),
           "watcher_ms": max(0.0, stall - idle_us / 1e3),
           "max_stall_ms": stall,
           "gaps_lost": sum(g["gaps_lost"] for g in report.values()),
           "events_dropped": sum(g["events_dropped"]
                                 for g in report.values())}
    if t_from is None:
        return out

    def within(events):
        return max([ms for t, ms in events if t_from <= t <= t_to],
                   default=0.0)
    out["guest_gap_wide_ms"] = out["guest_gap_ms"]
    out["watcher_wide_ms"] = out["watcher_ms"]
    out["guest_gap_ms"] = max(within(g["gaps"]) for g in report.values())
    out["watcher_ms"] = max(0.0, max(within(g["stalls"])
                                     for g in report.values())
                            - idle_us / 1e3)
    out["max_stall_ms"] = max(within(g["stalls"]) for g in report.values())
    return out


def _stall(report, ids):
    """The longest counter stall of spinning guests (livepatch.py)."""
    return _seen(report, ids, 0)["max_stall_ms"]


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


def ours_point(images, nguests, mib, runs, log, mode="build-ahead",
               guests="idle"):
    """One daemon, `nguests` counter guests of `mib` MiB (`guests`: idle or
    spin), one warm-up and `runs` recorded updates in `mode`."""
    ours = Ours(f"lu{nguests}x{mib}{mode[0]}{guests[0]}")
    cmdline = IDLE_CMDLINE if guests == "idle" else SPIN_CMDLINE
    idle_us = IDLE_US if guests == "idle" else 0
    pt = {"guests": nguests, "memory_mib": mib, "mode": mode,
          "guest_kind": guests, "cmdline": cmdline, "samples": [],
          "baseline": []}
    try:
        names, ids = ours.start_counters("lu", nguests, cmdline, mib,
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
            t1 = t0 + total / 1e3 + ATTRIB_SLACK_S
            s = {"blackout_ms": res["blackout_ms"],
                 **_seen(report, ids, idle_us, t0, t1), "total_ms": total,
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
                b0 = time.monotonic() + WATCH_PAD_S
                time.sleep(2 * WATCH_PAD_S + total / 1e3)
            finally:
                report = w.stop()
            pt["baseline"].append(_seen(report, ids, idle_us, b0,
                                        b0 + t1 - t0))
        _check_guests(ours, names)
    finally:
        ours.stop()
    for k in ("blackout_ms", "guest_gap_ms", "watcher_ms", "max_stall_ms",
              "total_ms"):
        pt[k] = summary([s[k] for s in pt["samples"]])
    for k in ("guest_gap_ms", "watcher_ms", "max_stall_ms"):
        pt["baseline_" + k] = summary([s[k] for s in pt["baseline"]])
    pt["gaps_lost"] = sum(s["gaps_lost"] for s in pt["samples"])
    pt["events_dropped"] = sum(s["events_dropped"] for s in pt["samples"])
    if pt["gaps_lost"] or pt["events_dropped"]:
        log(f"  ({mode}, {guests}) {nguests} x {mib} MiB: counter-watch "
            f"lost {pt['gaps_lost']} gap log entries and dropped "
            f"{pt['events_dropped']} events: the figures may miss some")
    log(f"  live update ({mode}, {guests}) {nguests} x {mib} MiB: blackout "
        f"{pt['blackout_ms']['median']:.2f} ms, guest-seen "
        f"{pt['guest_gap_ms']['median']:.2f} ms (watcher "
        f"{pt['watcher_ms']['median']:.2f}; without update "
        f"{pt['baseline_guest_gap_ms']['median']:.2f} / "
        f"{pt['baseline_watcher_ms']['median']:.2f}), xl total "
        f"{pt['total_ms']['median']:.1f} ms (medians of {runs})")
    return pt


def _check_guests(ours, names):
    """After the updates every guest verified its working set again with
    no error: its status block (idle guests print no status lines) and,
    where it prints them, its console."""
    for n in names:
        r = ours.d.counter_reader(n)
        try:
            v0 = r.read()["verifications"]
            harness.wait_until(lambda: r.read()["verifications"] > v0, 30,
                               f"{n} verifying")
            st = r.read()
        finally:
            r.close()
        con = ours.d.console(n)
        errs = [int(m.group(2)) for m in STATUS_RX.finditer(con.encode())]
        if st["errors"] or any(errs) or "VERIFY ERROR" in con:
            raise BenchError(f"{n}: errors={st['errors']}, status lines "
                             f"{errs[-3:]} after the updates")


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
             harness.guest_path("counter"), "-append", QEMU_CMDLINE,
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
    res = {"method": __doc__.strip(), "idle_us": IDLE_US,
           "cmdline": {"idle": IDLE_CMDLINE, "spin": SPIN_CMDLINE,
                       "qemu": QEMU_CMDLINE},
           "series": {k: {"mode": m, "guests": g} for k, m, g in SERIES},
           "ram_series_mib": list(RAM_SERIES),
           "guest_series": list(GUEST_SERIES),
           "guest_series_mib": GUEST_SERIES_MIB,
           "qemu": {}, "errors": []}
    for key, _, _ in SERIES:
        res[key] = {"ram": {}, "guests": {}}
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

    for key, mode, kind in SERIES:
        for mib in RAM_SERIES:
            attempt(res[key]["ram"], str(mib),
                    lambda mib=mib, mode=mode, kind=kind: ours_point(
                        images, 1, mib, plan["runs"], log, mode, kind))
        for n in GUEST_SERIES:
            if n == 1 and str(GUEST_SERIES_MIB) in res[key]["ram"]:
                res[key]["guests"]["1"] = res[key]["ram"][
                    str(GUEST_SERIES_MIB)]
                continue
            attempt(res[key]["guests"], str(n),
                    lambda n=n, mode=mode, kind=kind: ours_point(
                        images, n, GUEST_SERIES_MIB, plan["runs"], log,
                        mode, kind))
    if qemu_ok:
        for mib in RAM_SERIES:
            pt = qemu_point(mib, plan["qemu_runs"], log)
            res["qemu"][str(mib)] = pt
            res["errors"] += pt["errors"]
    res["ratios"] = ratios(res)
    return res


def _med(d, k):
    return ((d or {}).get(k) or {}).get("median")


def _ram_point(res, key, mib):
    return (res.get(key) or {}).get("ram", {}).get(str(mib))


def _guests_point(res, key, n):
    return (res.get(key) or {}).get("guests", {}).get(str(n))


def _div(a, b):
    return a / b if a is not None and b else None


def ratios(res):
    out = {}
    for mib in RAM_SERIES:
        o = _ram_point(res, "ours", mib)
        p = _ram_point(res, "previous", mib)
        q = res["qemu"].get(str(mib))
        qd = _med(q, "downtime_ms")
        out[str(mib)] = {
            "qemu_total_over_ours_total": _div(_med(q, "total_time_ms"),
                                               _med(o, "total_ms")),
            "ours_blackout_over_qemu_downtime": _div(_med(o, "blackout_ms"),
                                                     qd),
            "ours_guest_seen_over_qemu_downtime": _div(
                _med(o, "guest_gap_ms"), qd),
            "previous_guest_seen_over_ours": _div(_med(p, "guest_gap_ms"),
                                                  _med(o, "guest_gap_ms"))}
    one = out.get("1024", {})
    seen = [_med(_ram_point(res, "ours", m), "guest_gap_ms")
            for m in RAM_SERIES]
    seen = [x for x in seen if x is not None]
    out["headline"] = {
        "qemu_total_over_ours_total_1GiB": one.get(
            "qemu_total_over_ours_total"),
        "target_qemu_total_over_ours_total": ">= 10",
        "ours_blackout_over_qemu_downtime_1GiB": one.get(
            "ours_blackout_over_qemu_downtime"),
        "target_ours_blackout_over_qemu_downtime": "<= 1",
        "guest_seen_ms_1x1GiB": _med(_ram_point(res, "ours", 1024),
                                     "guest_gap_ms"),
        "target_guest_seen_ms_1x1GiB": "<= 3",
        "guest_seen_ms_8_guests": _med(_guests_point(res, "ours", 8),
                                       "guest_gap_ms"),
        "target_guest_seen_ms_8_guests": "<= 5",
        "guest_seen_spread_ms_over_ram": (max(seen) - min(seen)
                                          if seen else None),
        "target_guest_seen_spread_ms_over_ram": "<= 1",
        "guest_seen_ms_over_ram": dict(zip(map(str, RAM_SERIES), seen))
        if len(seen) == len(RAM_SERIES) else seen}
    return out


def _size(mib):
    return f"{mib} MiB" if mib < 1024 else f"{mib // 1024} GiB"


def table_rows(lu, add):
    """Rows for run.py's table: add(metric, ours, qemu, variant).  The
    guest-seen figures are the idle guests' (build-ahead); the full
    series, with the previous design and spinning guests, is
    print_series()'s table."""
    for mib in RAM_SERIES:
        o = _ram_point(lu, "ours", mib)
        q = lu["qemu"].get(str(mib))
        v = QEMU_VARIANT if q else None
        add(f"live update blackout vs migration downtime, {_size(mib)}, ms",
            _med(o, "blackout_ms"), _med(q, "downtime_ms"), v)
        add(f"  guest-seen blackout (idle guests) vs migration downtime, "
            f"{_size(mib)}, ms", _med(o, "guest_gap_ms"),
            _med(q, "downtime_ms"), v)
        add(f"  update total (xl) vs migration total-time, {_size(mib)}, ms",
            _med(o, "total_ms"), _med(q, "total_time_ms"), v)
    for n in GUEST_SERIES:
        o = _guests_point(lu, "ours", n)
        add(f"live update blackout, {n} guest(s) x {GUEST_SERIES_MIB} MiB,"
            f" ms", _med(o, "blackout_ms"), None, None)
        add(f"  guest-seen blackout (idle guests), {n} x "
            f"{GUEST_SERIES_MIB} MiB, ms", _med(o, "guest_gap_ms"), None,
            None)


def _fmt(x):
    return "-" if x is None else f"{x:.1f}"


def _fmt2(x):
    return "-" if x is None else f"{x:.2f}"


def print_series(lu):
    """The guest-seen blackout per point: build-ahead and the previous
    design with idle guests, build-ahead with spinning guests; medians,
    ms.  daemon = blackout_ms, guest = guest_gap_ms, watch = watcher_ms,
    idle = the same two without an update (baseline), stall = the
    spinning guests' raw counter-watch stall."""
    print(f"\nlive update, what the guests saw (medians, ms; idle guests "
          f"sleep {IDLE_US} us per iteration, their figures are the excess "
          f"over it):")
    head = ("point", "daemon", "guest", "watch", "no-upd g/w",
            "| reexec daemon", "guest", "watch",
            "| spinning daemon", "guest", "stall", "no-upd g/s",
            "| QEMU downtime")
    rows = []
    points = [(f"1 x {_size(m)}", lambda k, m=m: _ram_point(lu, k, m),
               lu["qemu"].get(str(m))) for m in RAM_SERIES]
    points += [(f"{n} x {_size(GUEST_SERIES_MIB)}",
                lambda k, n=n: _guests_point(lu, k, n), None)
               for n in GUEST_SERIES if n > 1]
    for name, get, q in points:
        o, p, sp = get("ours"), get("previous"), get("spinning")
        rows.append((
            name, _fmt2(_med(o, "blackout_ms")),
            _fmt2(_med(o, "guest_gap_ms")), _fmt2(_med(o, "watcher_ms")),
            f"{_fmt2(_med(o, 'baseline_guest_gap_ms'))}/"
            f"{_fmt2(_med(o, 'baseline_watcher_ms'))}",
            _fmt2(_med(p, "blackout_ms")), _fmt2(_med(p, "guest_gap_ms")),
            _fmt2(_med(p, "watcher_ms")),
            _fmt2(_med(sp, "blackout_ms")), _fmt2(_med(sp, "guest_gap_ms")),
            _fmt(_med(sp, "max_stall_ms")),
            f"{_fmt(_med(sp, 'baseline_guest_gap_ms'))}/"
            f"{_fmt(_med(sp, 'baseline_max_stall_ms'))}",
            _fmt(_med(q, "downtime_ms"))))
    w = [max(len(str(r[i])) for r in [head] + rows)
         for i in range(len(head))]
    fmt = "  ".join(["{:<%d}" % w[0]] + ["{:>%d}" % x for x in w[1:]])
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))


def print_ratios(lu):
    r = lu.get("ratios", {})
    h = r.get("headline", {})
    print_series(lu)

    f = _fmt2
    print("\nlive update vs QEMU migration (medians):")
    print(f"  QEMU total migration time / our total update time at 1 GiB: "
          f"{f(h.get('qemu_total_over_ours_total_1GiB'))} (target >= 10)")
    print(f"  our blackout / QEMU downtime at 1 GiB: "
          f"{f(h.get('ours_blackout_over_qemu_downtime_1GiB'))} "
          f"(target <= 1)")
    print(f"  guest-seen blackout, idle guests: one 1 GiB guest "
          f"{f(h.get('guest_seen_ms_1x1GiB'))} ms (target <= 3), eight "
          f"guests {f(h.get('guest_seen_ms_8_guests'))} ms (target <= 5), "
          f"spread over the RAM series "
          f"{f(h.get('guest_seen_spread_ms_over_ram'))} ms (target <= 1)")
    for mib in RAM_SERIES:
        x = r.get(str(mib), {})
        print(f"    {mib:>5} MiB: QEMU total / ours total "
              f"{f(x.get('qemu_total_over_ours_total'))}, our blackout / "
              f"QEMU downtime {f(x.get('ours_blackout_over_qemu_downtime'))}"
              f", guest-seen / QEMU downtime "
              f"{f(x.get('ours_guest_seen_over_qemu_downtime'))}, previous "
              f"design's guest-seen / ours "
              f"{f(x.get('previous_guest_seen_over_ours'))}")
