"""Live migration between two daemons (docs/migration.md).

The two daemons run on this host and talk over loopback TCP (plain TCP
with --migrate-insecure, which is only allowed to a loopback address;
test_migration_tls.py runs them as two hosts over TLS).  The helpers
they share with it are in miglib.py.  Every test checks the guest by its own
verification: the counter guest re-reads its working set and reports
errors=N; CounterWatch.assert_counting() wants errors=0 and a counter that
keeps growing.  After every failure the guest must run on exactly one
side: the source, still counting.  No test has a wall-time threshold."""
import os
import random
import signal

import pytest

from harness import (ROOT, XEN, CounterWatch, build_has, elf_notes,
                     max_gap_ms, parse_status_lines, ram_fds, require_binaries,
                     require_kvm, scaled, stop_and_check, wait_until)
from miglib import (Cut, Host, Proxy, assert_only_on, migrate,
                    start_migrate, wait_dropped, wait_exit, wait_phase)

# The daemon one state-format version ahead (`make variants`).
XEN_NEXT = os.path.join(ROOT, "build-next", "bin", "xen")

pytestmark = pytest.mark.skipif(not build_has("MIGRATION"),
                                reason="MIGRATION is not in this build")


@pytest.fixture
def pair(tmp_path):
    require_binaries()
    require_kvm()
    a = Host(str(tmp_path / "a"))
    b = Host(str(tmp_path / "b"))
    yield a, b
    problems = [stop_and_check(h.d) for h in (a, b)
                if not getattr(h, "killed", False)]
    assert not any(problems), problems


def test_idle_and_busy_guests_migrate_and_keep_counting(pair):
    a, b = pair
    a.d.start_counter("idle", interval=200, cmdline_extra="rate=0")
    busy = a.d.start_counter("busy", interval=200,
                             cmdline_extra="ws=8M rate=20000")
    busy.assert_counting()
    for name in ("idle", "busy"):
        rep = migrate(a, b.addr, name)
        assert rep["state"] == "completed"
        assert rep["iteration"] >= 1
        assert rep["format_version"] == 2
        assert_only_on(b, a, name)
        CounterWatch(b.d, name).assert_counting(lines=2)
    assert "migrated in as 'busy'" in b.d.log()


def test_guest_sees_the_downtime(pair):
    """The guest's TSC and kvmclock go on across the switch by the time
    that passed (CLOCK_REALTIME, the same clock on both sides here): its
    longest loop gap by its own TSC is of the order of the daemon's
    downtime, and its TSC is ahead by at least the downtime."""
    a, b = pair
    # A downtime well above the gaps a loaded host gives the guest anyway
    # (40 ms was seen at load 12; the longest gap is the guest's maximum
    # since boot, so such a gap before the migration would hide it): an
    # 8 MiB/s link and a guest dirtying 3 MiB/s leave about 100-200 ms of
    # dirty pages for the stop-and-copy.
    cw = a.d.start_counter("gap", interval=200,
                           cmdline_extra="ws=8M rate=800 verify=500")
    cw.assert_counting(2)
    before = cw.reader.read()
    rep = migrate(a, b.addr, "gap", "--bandwidth", "8")
    assert rep["state"] == "completed"
    cw = CounterWatch(b.d, "gap")
    cw.assert_counting(2)
    after = cw.reader.read()
    down = rep["downtime_ms"]
    gap = max_gap_ms(after)
    print(f"\ndowntime {down:.2f} ms, guest gap {gap:.2f} ms "
          f"(before {max_gap_ms(before):.2f} ms)")
    assert after["errors"] == 0
    assert gap > 0
    assert after["max_gap_tsc"] > before["max_gap_tsc"], (before, after)
    # A ratio, no wall-time threshold; the slack lets host noise through
    # and still catches a clock moved on in the wrong unit.
    assert down / 10 <= gap <= down * 10 + 1000, (gap, down)
    assert after["last_tsc"] - before["last_tsc"] >= down * after["tsc_khz"]
    cw.assert_counting(2)  # lines printed after that read
    lines = parse_status_lines(b.d.console("gap"))
    assert lines[-1]["max_gap_us"] >= gap * 1000 - 1
    assert all(s["errors"] == 0 for s in lines)


def test_back_and_forth_with_compression(pair):
    """Each encoding, both ways.  The guest dirties at most its 1 MiB
    working set per round, and the downtime allowed scales with the host
    (zlib runs at about 1.3 MiB/s in the QEMU test host), so that every
    migration converges and the test is about the encodings."""
    a, b = pair
    a.d.start_counter("g", interval=200, cmdline_extra="ws=1M rate=1000")
    hosts = [a, b]
    downtime = str(int(scaled(300)))
    for i, enc in enumerate(["none", "lz4", "zlib", "lz4"]):
        src, dst = hosts[i % 2], hosts[(i + 1) % 2]
        migrate(src, dst.addr, "g", "--compress", enc, "--max-downtime",
                downtime)
        assert_only_on(dst, src, "g")
        CounterWatch(dst.d, "g").assert_counting(lines=2)


@pytest.mark.parametrize("vcpus", [2, 4])
def test_smp_guests(pair, vcpus):
    """2 and 4 vCPUs, there and back.  The counter guest runs on its
    boot vCPU only (it starts no AP): the others migrate in the state
    KVM holds them in (waiting for INIT/SIPI) and the guest's own check
    runs on the boot vCPU."""
    a, b = pair
    a.d.start_counter("smp", interval=200, extra=f"vcpus = {vcpus}\n",
                      cmdline_extra="ws=4M rate=5000")
    for src, dst in ((a, b), (b, a)):
        migrate(src, dst.addr, "smp")
        assert dst.d.domains()["smp"]["vcpus"] == vcpus
        assert_only_on(dst, src, "smp")
        CounterWatch(dst.d, "smp").assert_counting(lines=2)


@pytest.fixture
def next_pair(tmp_path):
    """This build and build-next (stream version one ahead)."""
    require_binaries()
    require_kvm()
    if not os.path.exists(XEN_NEXT):
        pytest.skip(f"{XEN_NEXT} is missing: run `make variants`")
    a = Host(str(tmp_path / "a"))
    b = Host(str(tmp_path / "b"), binary=XEN_NEXT)
    yield a, b
    problems = [stop_and_check(h.d) for h in (a, b)]
    assert not any(problems), problems


def test_to_the_next_version_and_back(next_pair):
    """N -> N+1 -> N: the two sides agree on the older side's newest
    stream version both ways (this build reads and writes 1..2,
    build-next 2..3), and the guest counts on with errors=0."""
    a, b = next_pair
    older = elf_notes(XEN)["xkvm"][3]          # the newest it writes
    assert elf_notes(XEN_NEXT)["xkvm"][3] == older + 1
    a.d.start_counter("g", interval=200, cmdline_extra="ws=4M rate=5000")
    for src, dst, enc in ((a, b, "none"), (b, a, "lz4"), (a, b, "zlib"),
                          (b, a, "none")):
        rep = migrate(src, dst.addr, "g", "--compress", enc)
        assert rep["format_version"] == older, rep
        assert_only_on(dst, src, "g")
        CounterWatch(dst.d, "g").assert_counting(lines=2)


def test_a_migrated_in_guest_is_not_sent_twice(pair):
    """A guest migrated in and at once migrated on, reading (verifying) its
    32 MiB working set meanwhile: KVM marks the pages it reads for the
    first time since the daemon wrote them dirty (it maps them writable
    on a read fault), and they were all sent again in the next round,
    doubling the stream.  Dirty pages whose content has not changed since
    they were sent are not sent again: the way back sends no more than
    the way there."""
    a, b = pair
    for k in range(3):
        name = f"g{k}"
        a.d.start_counter(name, interval=200, memory=64,
                          cmdline_extra="ws=32M rate=0 verify=50")
        there = migrate(a, b.addr, name)
        back = migrate(b, a.addr, name)
        assert back["sent_bytes"] <= there["sent_bytes"] + (1 << 20), \
            (there, back)
        assert_only_on(a, b, name)
        CounterWatch(a.d, name).assert_counting(lines=2)
        a.d.xl("destroy", name)


def ram_file(daemon, name):
    """The domain's RAM memfd, opened anew through /proc/PID/fd: the open
    file keeps the memfd (and what it holds) after the daemon closes it."""
    path = ram_fds(daemon.proc.pid).get(daemon.domains()[name]["id"])
    if path is None:
        raise FileNotFoundError(f"no RAM memfd for {name}")
    return open(path, "rb")


def differing_pages(f1, f2):
    out, pfn = [], 0
    while True:
        p1, p2 = f1.read(4096), f2.read(4096)
        if not p1 and not p2:
            return out
        if p1 != p2:
            out.append(hex(pfn))
        pfn += 1


@pytest.mark.parametrize("conns", ["1", "4"])
def test_destination_ram_equals_the_source_at_the_switch(pair, conns):
    """Byte for byte: the source's RAM as the stop-and-copy left it (its
    memfd held open by the test, so it outlives the source's domain; the
    parked vCPUs write nothing more) against the destination's, kept
    paused (-p) so that nothing has run there either.  A page that
    arrives stale but self-consistent, which the guest's own check cannot
    see, shows here."""
    a, b = pair
    a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=20000")
    src = ram_file(a.d, "g")
    try:
        migrate(a, b.addr, "g", "-p", "--connections", conns)
        assert "g" not in a.d.domains()
        assert b.d.domains()["g"]["state"] == "paused"
        with ram_file(b.d, "g") as dst:
            assert os.fstat(src.fileno()).st_size == \
                os.fstat(dst.fileno()).st_size
            bad = differing_pages(src, dst)
        assert not bad, f"{len(bad)} pages differ: {bad[:20]}"
    finally:
        src.close()
    b.d.xl("unpause", "g")
    CounterWatch(b.d, "g").assert_counting(lines=2)


def test_paused_and_renamed_on_the_destination(pair):
    a, b = pair
    a.d.start_counter("orig", interval=200)
    migrate(a, b.addr, "orig", "-p", "--name", "moved")
    assert "orig" not in a.d.domains()
    assert b.d.domains()["moved"]["state"] == "paused"
    b.d.xl("unpause", "moved")
    CounterWatch(b.d, "moved").assert_counting(lines=2)


# The 100 cuts: how many of each kind (see cut_for()).
CUT_KINDS = {"hello": 8, "anywhere": 37, "tail": 25, "go": 15, "answer": 15}
# "tail" cuts fall in the last TAIL bytes of the stream: the stop-and-copy
# (the last round's dirty pages, the vCPU and device records, END) and
# the end of the round before it.
TAIL = 96 << 10


def cut_for(kind, rng, total):
    """A Cut of this kind for a stream of about `total` bytes (the length
    of the last uncut one: streams differ by what the guest dirtied)."""
    if kind == "hello":                 # connect, hello, stream header
        return Cut(src_bytes=rng.randrange(0, 400))
    if kind == "anywhere":
        return Cut(src_bytes=rng.randrange(400, total))
    if kind == "tail":
        return Cut(src_bytes=total - rng.randrange(1, TAIL))
    if kind == "go":                    # GO cut (0..2 bytes) or passed (3)
        return Cut(go_bytes=rng.randrange(0, 4))
    # The answer to GO cut: 0..8 bytes of "RUNNING <id>\n".
    return Cut(answer_bytes=rng.randrange(0, 9))


def test_hundred_cuts(pair):
    """100 cuts of the connection at random points of the stream, the
    last round and the handover included, each a migration attempt
    between the two daemons (there, or back after one went through): the
    guest runs on exactly one side every time and counts on with
    errors=0.  A cut before GO resumes it on the source; a cut after GO
    was sent (GO lost, or the destination's answer lost) makes the source
    ask the destination on a new connection what became of it, and the
    answer decides: never paused on both sides, never running on both.
    The seed is printed; XKVM_CUT_SEED=N repeats a run."""
    a, b = pair
    seed = (int(os.environ.get("XKVM_CUT_SEED", "0")) or
            random.SystemRandom().randrange(1, 1 << 31))
    print(f"\ncut seed {seed} (XKVM_CUT_SEED={seed} repeats it)")
    rng = random.Random(seed)
    a.d.start_counter("g", interval=200, cmdline_extra="ws=1M rate=500")
    here, there = a, b
    # The length of a whole stream, through a proxy that cuts nothing.
    proxy = Proxy(there.port)
    migrate(here, proxy.addr, "g")
    proxy.close()
    total = proxy.src_bytes
    here, there = there, here
    kinds = [k for k, n in CUT_KINDS.items() for _ in range(n)]
    rng.shuffle(kinds)
    tally = {}
    for i, kind in enumerate(kinds):
        cut = cut_for(kind, rng, total)
        what = f"cut {i} ({kind}, {cut}, stream {total}, seed {seed})"
        proxy = Proxy(there.port, cut)
        r = migrate(here, proxy.addr, "g", check=False)
        proxy.close()
        st = here.d.call("migrate-status", domain="g")
        if r.returncode == 0:
            assert_only_on(there, here, "g")
            outcome = "moved" + (" after a cut" if proxy.was_cut.is_set()
                                 else "")
            if not proxy.was_cut.is_set():
                total = proxy.src_bytes
            here, there = there, here
        else:
            assert "migration failed" in r.err, (what, r.err)
            assert "kept paused" not in r.err, (what, r.err)
            wait_dropped(there, "g")
            assert_only_on(here, there, "g")
            outcome = f"failed in {st['failed_phase']}"
        tally[kind, outcome] = tally.get((kind, outcome), 0) + 1
        w = CounterWatch(here.d, "g")
        try:
            w.assert_counting(lines=1)
        finally:
            w.close()
    print(f"stream of {total} bytes")
    for (kind, outcome), n in sorted(tally.items()):
        print(f"{kind:9} {outcome:30} {n}")
    outcomes = {o for _, o in tally}
    # The cuts reached every part of the stream and the handover, and a
    # lost answer to GO was resolved by asking, both ways.
    for want in ("failed in precopy", "failed in stop-copy",
                 "failed in asking", "moved after a cut"):
        assert want in outcomes, (want, tally, seed)
    # And a migration after all that goes through.
    migrate(here, there.addr, "g")
    w = CounterWatch(there.d, "g")
    w.assert_counting(lines=1)
    w.close()


def test_destination_killed_mid_stream(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=2000")
    p = start_migrate(a, b.addr, "g", "--bandwidth", "2")
    wait_phase(a, "g", ("precopy",))
    b.d.proc.send_signal(signal.SIGKILL)
    b.d.proc.wait()
    b.killed = True
    assert wait_exit(p) != 0
    assert "migration failed" in p.err, p.err
    assert a.d.domains()["g"]["state"] == "running"
    w.mark()
    w.assert_counting(lines=2)


def test_cancel_leaves_the_guest_on_the_source(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=2000")
    p = start_migrate(a, b.addr, "g", "--bandwidth", "2")
    wait_phase(a, "g", ("precopy",))
    # A second migration of the same domain is refused meanwhile, and so
    # is a live update.
    r = migrate(a, b.addr, "g", check=False)
    assert r.returncode != 0 and "already being migrated" in r.err, r.err
    if build_has("LIVE_UPDATE"):
        r = a.d.xl("live-update", "load", XEN, check=False)
        assert r.returncode != 0 and "being migrated" in r.err, r.err
    a.d.xl("migrate-cancel", "g")
    assert wait_exit(p) != 0
    assert "cancelled" in p.err, p.err
    st = a.d.call("migrate-status", domain="g")
    assert st["state"] == "cancelled"
    wait_dropped(b, "g")
    assert_only_on(a, b, "g")
    w.mark()
    w.assert_counting(lines=2)
    # And it can migrate afterwards.
    migrate(a, b.addr, "g")
    CounterWatch(b.d, "g").assert_counting(lines=1)


@pytest.mark.parametrize("end", ["destroy", "poweroff"])
def test_domain_ended_while_migrating(pair, end):
    """The source domain is destroyed (xl destroy) or powered off by the
    guest's own request path (xl shutdown -F, a power cut) mid-migration: the migration
    ends as cancelled, the source daemon keeps serving and its other
    guest keeps counting, and the destination drops its half-built copy."""
    a, b = pair
    other = a.d.start_counter("other", interval=200)
    a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=2000")
    p = start_migrate(a, b.addr, "g", "--bandwidth", "2")
    wait_phase(a, "g", ("precopy",))
    if end == "destroy":
        a.d.xl("destroy", "g")
    else:
        a.d.xl("shutdown", "-F", "-t", "0", "g")
    assert wait_exit(p) != 0
    assert a.d.alive(), a.d.read_file("xen.stderr")
    wait_until(lambda: "g" not in a.d.domains() or None, scaled(30),
               "the source domain gone")
    assert a.d.call("migrate-status", domain="g")["state"] == "cancelled"
    assert "destroyed while migrating" in a.d.log()
    wait_dropped(b, "g")
    other.mark()
    other.assert_counting(lines=2)


def test_destination_refuses_a_name_it_has(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200)
    b.d.start_counter("g", interval=200)
    r = migrate(a, b.addr, "g", check=False)
    assert r.returncode != 0
    assert "already exists" in r.err, r.err
    w.mark()
    w.assert_counting(lines=1)
    assert len(b.d.domains()) == 1


def test_four_connections_busy_guest(pair):
    """--connections 4: the pages go over three page connections beside
    the main one, both ways, with each encoding the guest's check sees
    nothing wrong."""
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=5000")
    w.assert_counting()
    hosts = [a, b]
    for i, enc in enumerate(["none", "lz4"]):
        src, dst = hosts[i % 2], hosts[(i + 1) % 2]
        rep = migrate(src, dst.addr, "g", "--connections", "4",
                      "--compress", enc)
        assert rep["state"] == "completed"
        assert_only_on(dst, src, "g")
        assert "incoming migration of g: 3 page connections" in dst.d.log()
        CounterWatch(dst.d, "g").assert_counting(lines=2)


@pytest.mark.parametrize("cut", [1, 3])
def test_cut_page_connection(pair, cut):
    """One page connection cut mid-stream: the migration fails, the guest
    counts on at the source only, and the destination drops its copy."""
    a, b = pair
    w = a.d.start_counter("g", interval=200, cmdline_extra="ws=8M rate=5000")
    proxy = Proxy(b.port, Cut(src_bytes=1 << 20), which=cut)
    r = migrate(a, proxy.addr, "g", "--connections", "4", check=False)
    proxy.close()
    assert proxy.was_cut.is_set()
    assert r.returncode != 0 and "migration failed" in r.err, r.err
    assert "page connection" in r.err, r.err
    wait_dropped(b, "g")
    assert_only_on(a, b, "g")
    w.mark()
    w.assert_counting(lines=2)
    # And it migrates afterwards.
    migrate(a, b.addr, "g", "--connections", "4")
    CounterWatch(b.d, "g").assert_counting(lines=1)


def test_connections_argument_checked(pair):
    a, b = pair
    a.d.start_counter("g", interval=200)
    for bad in ("0", "17"):
        r = a.d.xl("migrate", "--insecure", "--connections", bad, "g",
                   b.addr, check=False)
        assert r.returncode != 0 and "connections" in r.err, r.err
    assert a.d.domains()["g"]["state"] == "running"


# A guest that rewrites its 4 MiB working set as fast as it can.  Over a
# 1 MiB/s link with 5 ms of downtime allowed (one page), even a guest
# slowed by a test host (TCG) or starved of CPU by a busy host dirties
# more per round than that.  A duty cycle cannot bring a guest down to
# one page a round (a round of 1024 pages lasts 4 s there, and 1 % of it
# is 40 ms of running), so the throttle test allows 80 pages: 10 ms of a
# 32 MiB/s link.
NON_CONVERGING = ("--bandwidth", "1", "--max-downtime", "5")
THROTTLED = ("--bandwidth", "32", "--max-downtime", "10")


def test_non_converging_guest(pair):
    a, b = pair
    w = a.d.start_counter("g", interval=200,
                          cmdline_extra="ws=4M rate=max")
    r = migrate(a, b.addr, "g", *NON_CONVERGING, check=False, timeout=300)
    assert r.returncode != 0
    assert "does not converge" in r.err and "--auto-converge" in r.err, \
        r.err
    assert a.d.call("migrate-status", domain="g")["throttle_pct"] == 0
    assert_only_on(a, b, "g")
    w.mark()
    w.assert_counting(lines=2)


@pytest.mark.parametrize("rate", ["max", "50000"])
def test_auto_converge_throttles_until_it_converges(pair, rate):
    """The same guest with --auto-converge: the throttle's
    duty cycle slows the guest step by step until a round's dirty pages
    fit.  rate=50000 paces the guest by its clock with up to 1 s of
    credit, which it catches up after each pause: only short periods
    with little running time in each slow it down."""
    a, b = pair
    a.d.start_counter("g", interval=200,
                      cmdline_extra=f"ws=4M rate={rate}")
    rep = migrate(a, b.addr, "g", *THROTTLED, "--auto-converge",
                  timeout=600)
    assert rep["state"] == "completed"
    assert rep["throttle_pct"] > 0, rep
    assert rep["throttle_ms"] > 0, rep
    assert_only_on(b, a, "g")
    CounterWatch(b.d, "g").assert_counting(lines=2)


def test_plain_tcp_is_loopback_only(pair):
    a, b = pair
    a.d.start_counter("g", interval=200)
    r = a.d.xl("migrate", "--insecure", "g", "192.0.2.1:8002", check=False)
    assert r.returncode != 0 and "loopback" in r.err, r.err
    r = a.d.xl("migrate", "g", b.addr, check=False)
    assert r.returncode != 0 and "TLS" in r.err, r.err
    assert a.d.domains()["g"]["state"] == "running"



def test_refused_while_a_live_update_is_staged(pair):
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build")
    a, b = pair
    w = a.d.start_counter("g", interval=200)
    a.d.xl("live-update", "load", XEN)
    r = migrate(a, b.addr, "g", check=False)
    assert r.returncode != 0 and "live update is staged" in r.err, r.err
    assert_only_on(a, b, "g")
    a.d.xl("live-update", "unload")
    migrate(a, b.addr, "g")
    CounterWatch(b.d, "g").assert_counting(lines=1)
