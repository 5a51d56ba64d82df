"""The counter guest's idle mode (`idle=US`, tests/guests/README.md): it
sleeps in hlt on its local APIC timer between loop iterations, as an idle
OS does, and its gaps (max_gap_tsc, max_gap_us=, the gap log) are the
time it wanted to run and could not: a gap less the sleep it asked for.

Judged on what the guest reports (its status block, read from outside
through the daemon's RAM memfd, and its console) and on the vCPU thread's
CPU time as the host counts it.  Both timers are tried: TSC-deadline
(what the guest takes where CPUID offers it) and one-shot
(`idletimer=oneshot`, what it falls back to)."""
import os
import time

import pytest

from harness import (STATUS_GPA, CounterWatch, complete_status_lines,
                     gap_log, max_gap_ms, wait_counter_advances, wait_until)

TIMERS = ("deadline", "oneshot")
# An 8 MiB working set dirtied at 2000 pages/s, verified every 500 ms.
LOAD = "ws=8M rate=2000 verify=500"


def start_idle(d, name, idle_us, timer="deadline", extra=LOAD):
    d.create(name, memory=32, cmdline=f"interval=200 idle={idle_us} "
             f"idletimer={timer} {extra}")
    want = "tsc-deadline" if timer == "deadline" else "oneshot"
    d.wait_console(name, rf"idle={idle_us} timer={want}")
    cw = CounterWatch(d, name)
    cw.assert_counting(2)
    return cw


def vcpu_ticks(d, domid):
    """utime + stime (clock ticks) of the domain's vCPU 0 thread."""
    pid = d.proc.pid
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if comm != f"d{domid}v0":
                continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        return int(fields[11]) + int(fields[12])    # stat fields 14, 15
    raise AssertionError(f"no thread d{domid}v0 in daemon {pid}")


@pytest.mark.parametrize("timer", TIMERS)
def test_idle_guest_counts_and_sleeps(daemon, timer):
    """It counts, dirties, verifies without error and halts: its vCPU
    thread uses well under half a CPU over the time measured, and the
    guest's own sleep count moves with it."""
    d = daemon
    cw = start_idle(d, "idle", 1000, timer)
    domid = d.domid("idle")
    st0 = cw.reader.read()
    assert st0["idle_us"] == 1000
    t0, c0 = time.monotonic(), vcpu_ticks(d, domid)
    time.sleep(1.5)
    t1, c1 = time.monotonic(), vcpu_ticks(d, domid)
    st1 = cw.reader.read()
    cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
    sleeps = st1["sleeps"] - st0["sleeps"]
    print(f"\nvCPU thread CPU {cpu:.1%}, sleeps {sleeps}, halts "
          f"{st1['halts'] - st0['halts']}, max gap "
          f"{max_gap_ms(st1):.2f} ms")
    assert cpu < 0.5, f"an idle guest's vCPU used {cpu:.0%} of a CPU"
    assert st1["sleeps"] > st0["sleeps"] and st1["halts"] >= \
        st1["sleeps"], (st0, st1)
    assert st1["pages_dirtied"] > st0["pages_dirtied"]
    assert st1["verifications"] > st0["verifications"]
    cw.assert_counting(2)


@pytest.mark.parametrize("timer", TIMERS)
def test_a_sleep_asked_for_is_no_gap(daemon, timer):
    """With 300 ms sleeps every gap the guest reports stays far below the
    sleep: what it asked for is subtracted (were it not, every gap would
    be at least 300 ms)."""
    d = daemon
    cw = start_idle(d, "long", 300000, timer, extra="ws=1M rate=10")
    wait_until(lambda: cw.reader.read()["sleeps"] >= 5, 30,
               "five sleeps of 300 ms")
    st = cw.reader.read()
    lines = complete_status_lines(d.console("long"))
    print(f"\nmax gap {max_gap_ms(st):.2f} ms after {st['sleeps']} "
          f"sleeps; lines {lines[-2:]}")
    assert max_gap_ms(st) < 150, st
    assert all(s["max_gap_us"] < 150000 for s in lines), lines
    assert all(g < 150 * st["tsc_khz"] for _, g in
               gap_log(cw.reader.map, st, STATUS_GPA))


@pytest.mark.parametrize("timer", TIMERS)
def test_a_pause_shows_in_the_idle_guests_gap(daemon, timer):
    """`xl pause` for 1.5 s: the guest (asleep or running when paused)
    reports a gap of at least the pause less one sleep, in its status
    block, its gap log and its console; then it counts on."""
    d = daemon
    cw = start_idle(d, "p", 1000, timer)
    before = cw.reader.read()
    d.xl("pause", "p")
    t0 = time.monotonic()
    time.sleep(1.5)
    t1 = time.monotonic()           # the pause lasted at least t1 - t0
    d.xl("unpause", "p")
    # read at once: the log keeps the last 128 gaps of 100 us and more,
    # and a busy host makes many of those
    wait_counter_advances(cw.reader, 1)
    after = cw.reader.read()
    log = gap_log(cw.reader.map, after, STATUS_GPA)
    least = (t1 - t0) * 1e3 - 1.0   # less one idle period (1 ms)
    gap = max_gap_ms(after)
    print(f"\npaused {least + 1:.1f} ms, guest gap {gap:.1f} ms "
          f"(before {max_gap_ms(before):.1f})")
    assert gap >= least, (least, before, after)
    assert max(g for _, g in log) / after["tsc_khz"] >= least, log
    cw.assert_counting(2)
    lines = complete_status_lines(d.console("p"))
    assert lines[-1]["max_gap_us"] >= least * 1000
    assert after["errors"] == 0


def test_bad_idle_values_are_refused_and_others_run_on(daemon):
    """A bad idle= or idletimer= value: a line saying so, the default
    (spinning, or the timer CPUID offers) taken; a running idle guest
    keeps counting."""
    d = daemon
    cw = start_idle(d, "ok", 1000)
    d.create("bad", cmdline="interval=200 idle=soon")
    d.wait_console("bad", r"counter guest: bad value idle=soon, using the "
                   r"default")
    bad = CounterWatch(d, "bad")
    bad.assert_counting(1)
    assert bad.reader.read()["idle_us"] == 0
    assert bad.reader.read()["sleeps"] == 0
    d.create("bad2", cmdline="interval=200 idle=500 idletimer=hpet")
    d.wait_console("bad2", r"counter guest: bad value idletimer=hpet, "
                   r"using the default")
    d.wait_console("bad2", r"idle=500 timer=(tsc-deadline|oneshot)")
    bad2 = CounterWatch(d, "bad2")
    bad2.assert_counting(1)
    wait_until(lambda: bad2.reader.read()["sleeps"] > 0, 10, "bad2 sleeps")
    cw.assert_counting(2)
    # idle= above 1 s is taken as 1 s
    d.create("big", cmdline="interval=0 idle=5000000 ws=1M rate=0")
    d.wait_console("big", r"counter guest: idle=1000000 timer=")
    d.wait_console("big", r"COUNTER READY")
