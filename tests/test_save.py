"""xl save / xl restore against real daemons, checked on what the guests
report: the counter guest's status block (read from outside through the
daemon's RAM memfd and, for the saved state, out of the stream file) and
its console lines.  Then every kind of bad stream, each made with
tests/streamlib.py so that it holds exactly one fault, and the checked-in
old-format streams of tests/data/streams/."""
import glob
import os
import re
import shutil
import socket
import stat
import struct
from types import SimpleNamespace

import pytest

import streamlib as sl
from harness import (STATUS_GPA, STATUS_MAGIC, Api, CounterWatch, Daemon,
                     assert_counter_frozen, complete_status_lines, guest_path,
                     parse_status_lines, ram_memfds, run_xl,
                     status_from_bytes, stop_and_check, wait_until)

STREAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                       "streams")
STATUS_PFN = STATUS_GPA // sl.PAGE_SIZE
# The list record fields that come from the domain's config.
CONFIG_KEYS = ("memory_mib", "vcpus", "kernel", "cmdline", "on_poweroff",
               "on_reboot", "on_crash")

SAVED_RX = re.compile(
    r"^Saved (?P<dom>\S+) to (?P<path>\S+): (?P<bytes>\d+) bytes "
    r"\([\d.]+ MiB\), (?P<pages>\d+) pages, (?P<zero>\d+) zero pages, "
    r"format (?P<format>\d+), compress (?P<compress>\w+), "
    r"(?P<seconds>[\d.]+) s(?P<ck> \(checkpoint: the domain keeps "
    r"running\))?$")
RESTORED_RX = re.compile(
    r"^Restored (?P<name>\S+) \(id (?P<id>\d+)\) from (?P<path>\S+) in "
    r"(?P<seconds>[\d.]+) s(?P<paused> \(paused\))?$")


# ---------------------------------------------------------------- helpers

def counter_cmdline(ws, rate=5000):
    return f"ws={ws} rate={rate} interval=200 verify=300"


def start(d, name, memory=16, ws="1M", rate=5000, extra="", timeout=30,
          kernel="counter"):
    d.create(name, kernel=kernel, memory=memory,
             cmdline=counter_cmdline(ws, rate), extra=extra)
    return CounterWatch(d, name, timeout)


def xl_save(d, *args, timeout=60):
    r = d.xl("save", *args, timeout=timeout)
    m = SAVED_RX.match(r.out.strip())
    assert m and r.out.count("\n") == 1, f"xl save printed {r.out!r}"
    s = m.groupdict()
    for k in ("bytes", "pages", "zero", "format"):
        s[k] = int(s[k])
    return s


def xl_restore(d, *args, timeout=60):
    r = d.xl("restore", *args, timeout=timeout)
    m = RESTORED_RX.match(r.out.strip())
    assert m and r.out.count("\n") == 1, f"xl restore printed {r.out!r}"
    return m.groupdict()


def xl_message(r):
    return "\n".join(line for line in r.err.splitlines()
                     if line.startswith("xl: "))


def assert_xl_error(r, code, *patterns):
    msg = xl_message(r)
    assert r.returncode == code, \
        f"xl exited {r.returncode}, not {code}: {r.err}{r.out}"
    assert msg, f"no 'xl: ' message in {r.err!r}"
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in xl's message {msg!r}"
    return msg


def saved_status(path):
    """The status block as the stream holds it: the state the restored
    guest must continue from."""
    st = status_from_bytes(sl.guest_page(path, STATUS_PFN))
    assert st["magic"] == STATUS_MAGIC, f"no status block in {path}: {st}"
    return st


WS_GPA = 0x600000       # the working set of every ws= these tests use
GEN_GPA = 0x400000      # the generation array (tests/guests/README.md)


def pattern_word(p, gen, i):
    return ((p << 32) | gen) ^ ((i * 0x9E3779B97F4A7C15) & (2**64 - 1))


def assert_ws_in_stream(path, saved, samples=4):
    """Working-set pages as the stream holds them carry the guest's
    pattern for their generation (away from the page the guest was
    refilling when it was stopped)."""
    n, cur = saved["ws_pages"], saved["pages_dirtied"] % saved["ws_pages"]
    for k in range(samples):
        p = (cur + n // 2 + k * (n // (2 * samples))) % n
        gpage = sl.guest_page(path, (GEN_GPA + 4 * p) // sl.PAGE_SIZE)
        gen = struct.unpack_from("<I", gpage, (4 * p) % sl.PAGE_SIZE)[0]
        page = sl.guest_page(path, WS_GPA // sl.PAGE_SIZE + p)
        words = struct.unpack("<512Q", page)
        assert words == tuple(pattern_word(p, gen, i) for i in range(512)), \
            f"working-set page {p} (gen {gen}) in {path} is not as written"


def config_of(d, name):
    rec = d.domain(name)
    assert rec is not None, f"no domain {name}: {sorted(d.domains())}"
    return {k: rec[k] for k in CONFIG_KEYS}


def listing(d):
    return sorted((x["id"], x["name"]) for x in d.call("list")["domains"])


def assert_continues(d, name, saved, timeout=30):
    """A restored counter guest carries on from the saved state: the
    counter starts at or above the saved value (not reset), the guest did
    not boot again (same ws, rate, calibration; one READY line), it keeps
    counting with errors=0 on the block and on every new status line, and
    it completes new verifications of its working set."""
    w = CounterWatch(d, name, timeout)
    first = w.counter_mark
    block = w.reader.read()
    assert first >= saved["counter"], \
        f"{name}: counter {first} restarted below the saved {saved}"
    for k in ("ws_pages", "rate", "tsc_khz"):
        assert block[k] == saved[k], f"{name}: {k} {block} vs {saved}"
    assert block["pages_dirtied"] >= saved["pages_dirtied"]
    assert block["verifications"] >= saved["verifications"]
    assert block["errors"] == 0, f"{name}: {block}"
    text = d.console(name)
    assert text.count("COUNTER READY") == 1, \
        f"{name} booted again after restore:\n{text[-2000:]}"
    lines = w.assert_counting(lines=2, timeout=timeout)
    assert all(s["counter"] > saved["counter"] for s in lines)
    goal = block["verifications"] + 1
    wait_until(lambda: w.reader.read()["verifications"] >= goal, timeout,
               f"{name}: a verification after restore")
    w.assert_counting(lines=1, timeout=timeout)
    assert w.reader.read()["errors"] == 0
    return w


# ---------------------------------------------------------------- round trip

ROUND_TRIPS = [
    pytest.param(64, "32M", "none", id="64M-none"),
    pytest.param(64, "32M", "lz4", id="64M-lz4"),
    pytest.param(64, "32M", "zlib", id="64M-zlib"),
    pytest.param(256, "192M", "zlib", id="256M-zlib"),
    pytest.param(1024, "768M", "lz4", id="1G-lz4"),
    pytest.param(2048, "1G", "none", id="2G-none"),
]


@pytest.mark.parametrize("memory,ws,enc", ROUND_TRIPS)
def test_save_restore_round_trip(daemon, tmp_path, memory, ws, enc):
    t = 120 if memory >= 1024 else 30
    w = start(daemon, "rt", memory, ws, timeout=t)
    w.assert_counting(lines=2, timeout=t)
    cfg = config_of(daemon, "rt")
    old_id = daemon.domid("rt")
    before_save = w.reader.counter()
    pre = daemon.xl("console", "--dump", "rt").out
    w.close()

    path = str(tmp_path / "rt.xkvm")
    s = xl_save(daemon, "--compress", enc, "rt", path, timeout=600)
    assert (s["dom"], s["path"], s["format"], s["compress"]) == \
        ("rt", path, 2, enc)
    assert s["bytes"] == os.path.getsize(path)
    assert s["pages"] == memory * 256
    assert 0 < s["zero"] < s["pages"]
    assert glob.glob(path + ".tmp*") == []
    # Without -c the domain is gone, memory and all.
    assert "rt" not in daemon.domains()
    assert old_id not in ram_memfds(daemon)
    assert_xl_error(daemon.xl("list", "rt", check=False), 4, "rt")

    # The stream holds what was saved, in the encoding asked for.
    batches = sl.scan_batches(path)
    assert sum(b[1] for b in batches) == s["pages"] - s["zero"]
    encs = {b[2] for b in batches}
    want = {"none": sl.ENC_NONE, "lz4": sl.ENC_LZ4, "zlib": sl.ENC_ZLIB}[enc]
    assert want in encs and encs <= {sl.ENC_NONE, want}, encs
    saved = saved_status(path)
    assert saved["counter"] >= before_save and saved["errors"] == 0
    assert saved["ws_pages"] * 4096 == int(ws[:-1]) << {"M": 20,
                                                        "G": 30}[ws[-1]]
    assert_ws_in_stream(path, saved)

    r = xl_restore(daemon, path, timeout=600)
    assert r["name"] == "rt" and r["path"] == path and not r["paused"]
    new_id = int(r["id"])
    assert new_id != old_id and daemon.domid("rt") == new_id
    row = [ln for ln in daemon.xl("list").out.splitlines()
           if ln.startswith("rt ")]
    assert len(row) == 1 and re.search(
        rf"\s{new_id}\s+{memory}\s+1\s+r-----\s", row[0]), row
    assert config_of(daemon, "rt") == cfg

    w = assert_continues(daemon, "rt", saved, timeout=t)
    # The console history from before the save is all there.
    post = daemon.xl("console", "--dump", "rt").out
    assert post.startswith(pre), "console history changed by save/restore"
    # (`pre` may end in the middle of a line the guest was printing.)
    assert complete_status_lines(pre) and \
        complete_status_lines(pre) == complete_status_lines(post)[:len(
            complete_status_lines(pre))]
    w.close()


def test_relative_file_names_are_made_absolute(daemon, tmp_path):
    w = start(daemon, "rel")
    w.assert_counting(1)
    work = tmp_path / "work"
    work.mkdir()
    r = run_xl(daemon.sock, "save", "-c", "rel", "rel.xkvm", cwd=str(work))
    m = SAVED_RX.match(r.out.strip())
    assert m and m["path"] == str(work / "rel.xkvm") and m["ck"], r.out
    assert os.path.isfile(work / "rel.xkvm")
    r = run_xl(daemon.sock, "restore", "--name", "rel2", "./rel.xkvm",
               cwd=str(work))
    m = RESTORED_RX.match(r.out.strip())
    assert m and m["name"] == "rel2" and m["path"] == str(work / "rel.xkvm")
    assert_continues(daemon, "rel2", saved_status(str(work / "rel.xkvm")))
    w.assert_counting(1)


# ---------------------------------------------------------------- checkpoint

def test_checkpoint_restored_into_a_second_daemon(daemon, tmp_path):
    w = start(daemon, "ck", 64, "32M")
    w.assert_counting(2)
    path = str(tmp_path / "ck.xkvm")
    s = xl_save(daemon, "-c", "ck", path)
    assert s["ck"]
    # -c: the original keeps running, from where it was.
    assert daemon.domain("ck")["state"] == "running"
    w.assert_counting(2)
    saved = saved_status(path)

    root = tmp_path / "second"
    root.mkdir()
    d2 = Daemon(str(root))
    d2.start()
    try:
        assert d2.proc.pid != daemon.proc.pid
        xl_restore(d2, path)
        assert config_of(d2, "ck") == config_of(daemon, "ck")
        w2 = assert_continues(d2, "ck", saved)
        w.assert_counting(1)
        # Two guests from one state, in two processes: each counts on its
        # own.  Pausing one freezes it and not the other.
        d2.xl("pause", "ck")
        frozen = assert_counter_frozen(w2.reader)
        w.assert_counting(2)
        assert w.reader.counter() != frozen
        d2.xl("unpause", "ck")
        w2.mark()
        w2.assert_counting(2)
        a, b = w.reader.read(), w2.reader.read()
        assert a["counter"] > saved["counter"] < b["counter"]
        assert a["errors"] == 0 == b["errors"]
        assert a["counter"] != b["counter"]
        w2.close()
    finally:
        problems = stop_and_check(d2)
    assert not problems, f"second daemon: {problems}"
    w.close()


def test_restore_under_a_new_name_beside_the_original(daemon, tmp_path):
    w = start(daemon, "orig", 64, "32M")
    w.assert_counting(1)
    path = str(tmp_path / "orig.xkvm")
    xl_save(daemon, "-c", "orig", path)
    saved = saved_status(path)
    r = xl_restore(daemon, "--name", "copy", path)
    assert r["name"] == "copy"
    assert sorted(daemon.domains()) == ["copy", "orig"]
    assert config_of(daemon, "copy") == config_of(daemon, "orig")
    w2 = assert_continues(daemon, "copy", saved)
    w.assert_counting(2)
    daemon.xl("pause", "orig")
    assert_counter_frozen(w.reader)
    w2.assert_counting(2)
    # The copy is saved under its own name.
    path2 = str(tmp_path / "copy.xkvm")
    xl_save(daemon, "-c", "copy", path2)
    assert sl.Stream.load(path2).config()["name"] == "copy"
    w.close()
    w2.close()


def test_paused_restore(daemon, tmp_path):
    w = start(daemon, "ps", 64, "32M")
    w.assert_counting(1)
    w.close()
    path = str(tmp_path / "ps.xkvm")
    xl_save(daemon, "ps", path)
    saved = saved_status(path)
    r = xl_restore(daemon, "-p", path)
    assert r["paused"]
    assert daemon.domain("ps")["state"] == "paused"
    assert re.search(r"^ps\s.*--p---", daemon.xl("list").out, re.M)
    reader = wait_until(lambda: _reader(daemon, daemon.domid("ps")), 10,
                        "RAM memfd")
    # Not one instruction has run: the block is exactly the saved one.
    assert reader.read() == saved
    total = daemon.console_mark("ps")
    assert assert_counter_frozen(reader, settle=1.0) == saved["counter"]
    assert daemon.console_mark("ps") == total
    reader.close()
    daemon.xl("unpause", "ps")
    assert_continues(daemon, "ps", saved)


def _reader(d, domid):
    try:
        r = d.status_reader(domid)
    except FileNotFoundError:
        return None
    return r


# ---------------------------------------------------------------- format v1

def test_format_version_1(daemon, tmp_path):
    w = start(daemon, "v1", 64, "32M")
    w.assert_counting(1)
    w.close()
    path = str(tmp_path / "v1.xkvm")
    s = xl_save(daemon, "--format-version", "1", "v1", path)
    assert s["format"] == 1 and s["compress"] == "none"
    assert sl.read_header(path).version == 1
    assert {b[2] for b in sl.scan_batches(path)} == {sl.ENC_NONE}
    xl_restore(daemon, path)
    assert_continues(daemon, "v1", saved_status(path))


@pytest.mark.parametrize("args,pattern", [
    (("--format-version", "1", "--compress", "lz4"),
     r"format version 1 has no compression"),
    (("--format-version", "1", "--compress", "zlib"),
     r"format version 1 has no compression"),
    (("--format-version", "3"), r"'format_version' must be 1 or 2"),
    (("--compress", "gzip"), r"'compress' must be none, lz4 or zlib"),
    (("--workers", "17"), r"'workers' must be 1 to 16"),
])
def test_refused_save_options_leave_the_domain_running(daemon, tmp_path,
                                                       args, pattern):
    w = start(daemon, "opt")
    w.assert_counting(1)
    path = str(tmp_path / "opt.xkvm")
    r = daemon.xl("save", *args, "opt", path, check=False)
    assert_xl_error(r, 3, pattern)
    assert not os.path.exists(path) and glob.glob(path + ".tmp*") == []
    assert daemon.domain("opt")["state"] == "running"
    w.assert_counting(2)


# ---------------------------------------------------------------- workers

def _batch_bodies(path):
    return [r.body for r in sl.Stream.load(path).batches()]


def test_workers_write_the_same_pages_in_order(daemon, tmp_path):
    """docs/page-pipeline.md: however many threads build the batches, the
    records leave in the order the pages were handed in, so the pages of
    a paused guest come out byte for byte the same; batches hold non-zero
    pages only (zero pages between them left out); and a stream written
    by four workers restores into a guest that carries on."""
    w = start(daemon, "wk", 64, "32M")
    w.assert_counting(1)
    w.close()
    daemon.xl("pause", "wk")
    for enc in ("none", "lz4"):
        bodies = None
        for n in (1, 2, 4):
            path = str(tmp_path / f"wk-{enc}-{n}.xkvm")
            s = xl_save(daemon, "-c", "--compress", enc, "--workers",
                        str(n), "wk", path)
            assert s["pages"] == 64 * 256 and 0 < s["zero"] < s["pages"]
            got = _batch_bodies(path)
            assert sum(sl.Batch(b).nr_pages for b in got) == \
                s["pages"] - s["zero"]
            for b in got:
                batch = sl.Batch(b)
                assert batch.pfns == sorted(batch.pfns)
            if bodies is None:
                bodies = got
            assert got == bodies, f"{enc}: {n} workers wrote other batches"
        # Every page a batch carries has data (none of the zeros).
        if enc == "none":
            for b in got:
                batch = sl.Batch(b)
                data = b[batch.data_offset:]
                for i in range(batch.nr_pages):
                    assert any(data[i * 4096:(i + 1) * 4096])
    path = str(tmp_path / "wk-lz4-4.xkvm")
    saved = saved_status(path)
    xl_restore(daemon, "--name", "wk2", path)
    assert_continues(daemon, "wk2", saved)


def test_workers_refused_values_via_the_api(daemon, tmp_path):
    w = start(daemon, "wa")
    w.assert_counting(1)
    path = str(tmp_path / "wa.xkvm")
    for bad in (0, 17, "2", 1.5):
        with pytest.raises(Exception) as ei:
            daemon.call("save", domain="wa", path=path, workers=bad)
        assert re.search(r"'workers' must be 1 to 16", str(ei.value))
    assert not os.path.exists(path)
    r = daemon.call("save", domain="wa", path=path, checkpoint=True,
                    workers=3)
    assert r["workers"] == 3
    assert daemon.domain("wa")["state"] == "running"
    w.assert_counting(2)
    w.close()


# ---------------------------------------------------------------- save errors

def test_save_errors_leave_the_domain_running(daemon, tmp_path):
    w = start(daemon, "se")
    w.assert_counting(1)
    missing = str(tmp_path / "nodir" / "se.xkvm")
    r = daemon.xl("save", "se", missing, check=False)
    assert_xl_error(r, 3, re.escape(missing), "No such file or directory")
    w.assert_counting(1)
    r = daemon.xl("save", "nosuch", str(tmp_path / "x.xkvm"), check=False)
    assert_xl_error(r, 4, "nosuch")
    w.assert_counting(1)
    # FILE is a directory: a bad argument (3), found before the guest is
    # paused for a save that cannot end in FILE.
    r = daemon.xl("save", "se", str(tmp_path), check=False)
    assert_xl_error(r, 3, re.escape(str(tmp_path)), "(?i)is a directory")
    assert os.path.isdir(tmp_path)
    assert glob.glob(str(tmp_path) + ".tmp*") == []
    assert daemon.domain("se")["state"] == "running"
    w.assert_counting(2)


def test_save_ignores_a_link_planted_at_the_temporary_name(daemon,
                                                          tmp_path):
    """In a directory others can write to, a symlink planted at PATH.tmp
    (the old temporary name) must not make the daemon write through it:
    its target is untouched and the save lands in PATH."""
    w = start(daemon, "pl")
    w.assert_counting(1)
    victim = tmp_path / "victim"
    victim.write_text("precious data\n")
    path = str(tmp_path / "pl.xkvm")
    os.symlink(victim, path + ".tmp")
    s = xl_save(daemon, "-c", "pl", path)
    assert victim.read_text() == "precious data\n"
    assert os.readlink(path + ".tmp") == str(victim)
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_size == s["bytes"]
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert saved_status(path)["errors"] == 0
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["victim", "pl.xkvm", "pl.xkvm.tmp"] +
        [n for n in os.listdir(tmp_path) if n.endswith((".cfg", ".log",
                                                         ".sock", "state",
                                                         ".stderr"))])
    w.assert_counting(1)


def _not_a_file(kind, tmp_path, daemon):
    """A path of the kind, and a function telling it is unchanged."""
    if kind == "control-socket":
        path = daemon.sock
    else:
        path = str(tmp_path / kind)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a null
    elif kind == "symlink":
        (tmp_path / "victim").write_text("precious data\n")
        os.symlink(tmp_path / "victim", path)
    before = os.lstat(path)

    def unchanged():
        now = os.lstat(path)
        same = (stat.S_IFMT(now.st_mode) == stat.S_IFMT(before.st_mode) and
                now.st_ino == before.st_ino and now.st_rdev == before.st_rdev)
        if kind == "symlink":
            same = same and \
                (tmp_path / "victim").read_text() == "precious data\n"
        return same
    return path, unchanged


@pytest.mark.parametrize("kind", ["fifo", "device", "control-socket",
                                  "symlink"])
def test_save_refuses_a_target_that_is_not_a_regular_file(daemon, tmp_path,
                                                          kind):
    """A FIFO, a device node (even a null device), the daemon's own
    control socket or a symlink at PATH is refused before the domain is
    paused, and left as it was."""
    w = start(daemon, "nf")
    w.assert_counting(1)
    path, unchanged = _not_a_file(kind, tmp_path, daemon)
    r = daemon.xl("save", "nf", path, check=False)
    assert_xl_error(r, 3, re.escape(path),
                    "exists and is not a regular file")
    assert unchanged(), f"the save replaced the {kind} at {path}"
    assert glob.glob(path + ".tmp*") == []
    assert daemon.domain("nf")["state"] == "running"
    assert daemon.call("version")["protocol"] == 1   # the socket works
    w.assert_counting(2)


def test_save_path_too_long_for_the_temporary_name(daemon, tmp_path):
    """A 4095-byte path leaves no room for the temporary name beside it:
    refused with a clear error, and the file already there is kept."""
    w = start(daemon, "long")
    w.assert_counting(1)
    d = str(tmp_path)
    while len(d) < 4095 - 250:
        d = os.path.join(d, "d" * min(200, 4095 - 250 - len(d) - 1 or 1))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "f" * (4095 - len(d) - 1))
    assert len(path) == 4095
    with open(path, "w") as f:
        f.write("keep me\n")
    r = daemon.xl("save", "long", path, check=False)
    assert_xl_error(r, 3, "path is longer than", "temporary file")
    with open(path) as f:
        assert f.read() == "keep me\n"
    assert os.listdir(d) == [os.path.basename(path)]
    assert daemon.domain("long")["state"] == "running"
    w.assert_counting(2)


@pytest.mark.parametrize("args", [
    ("save",), ("save", "dom"), ("save", "a", "b", "c"),
    ("save", "--compress"), ("save", "--format-version", "x", "d", "f"),
    ("save", "--format-version", "0", "d", "f"), ("save", "--bogus", "d", "f"),
    ("restore",), ("restore", "a", "b"), ("restore", "--name"),
    ("restore", "--bogus", "f"), ("save", "d", ""), ("restore", ""),
])
def test_usage_errors_exit_64(tmp_path, args):
    r = run_xl(str(tmp_path / "no.sock"), *args, check=False)
    assert r.returncode == 64, (args, r.returncode, r.err)
    assert r.err.startswith(f"xl: {args[0]}: "), r.err
    assert f"Usage: xl {args[0]}" in r.err


def test_no_daemon_exits_69(tmp_path):
    for args in (("save", "d", "f"), ("restore", "f")):
        r = run_xl(str(tmp_path / "no.sock"), *args, check=False)
        assert_xl_error(r, 69, "cannot connect")


# ---------------------------------------------------------------- bad input

@pytest.fixture
def bad(daemon, tmp_path):
    """A daemon with a counting witness guest `w`, and good streams of it
    (checkpoints: `w` keeps running) in each encoding to spoil."""
    w = start(daemon, "w", rate=1000)
    w.assert_counting(1)
    e = SimpleNamespace(d=daemon, w=w, tmp=tmp_path)
    for enc in ("none", "lz4", "zlib"):
        path = str(tmp_path / f"good-{enc}.xkvm")
        xl_save(daemon, "-c", "--compress", enc, "w", path)
        with open(path, "rb") as f:
            setattr(e, enc, f.read())
    e.data = e.none
    e.good = str(tmp_path / "good-none.xkvm")
    e.stream = sl.Stream(e.none)
    assert e.stream.to_bytes() == e.none        # streamlib is exact
    yield e
    w.close()


def assert_refused(e, path, code, patterns, name="restored", raw=False):
    """Restoring `path` fails with `code` and a message matching every
    pattern; nothing is left behind and the witness keeps counting."""
    before = listing(e.d)
    memfds = ram_memfds(e.d)
    log_len = len(e.d.log())
    if raw:
        try:
            e.d.call("restore", path=path, name=name)
        except Exception as err:   # noqa: BLE001 - checked below
            assert getattr(err, "code", None) == code, err
            msg = err.message
        else:
            raise AssertionError(f"restore of {path} succeeded")
    else:
        r = e.d.xl("restore", "--name", name, path, check=False)
        msg = xl_message(r)
        assert r.returncode == code, \
            f"xl exited {r.returncode}, not {code}: {r.err}{r.out}"
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in the message {msg!r}"
    assert e.d.alive()
    assert listing(e.d) == before, "a failed restore left a domain behind"
    log = e.d.log()[log_len:]
    assert not re.search(rf"d\d+: (restored|destroying) '{re.escape(name)}'",
                         log), f"the failed restore started a domain:\n{log}"
    assert ram_memfds(e.d) == memfds, "a failed restore left its RAM behind"
    e.w.assert_counting(1)
    return msg, log


def _write(e, data):
    path = str(e.tmp / "bad.xkvm")
    with open(path, "wb") as f:
        f.write(data)
    return path


def _flip(data, offset, mask=0x10):
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def _status_batch(s):
    for r in s.batches():
        if STATUS_PFN in sl.Batch(r.body).pfns:
            return r
    raise AssertionError("no batch holds the status page")


def _set_len(data, rec, length):
    b = bytearray(data)
    struct.pack_into("<I", b, rec.offset + 8, length)
    return bytes(b)


def _edit(e, fn, enc="none"):
    """A copy of the good stream edited by fn(stream), checksums fixed."""
    s = sl.Stream(getattr(e, enc))
    fn(s)
    return s.to_bytes(), s


def case_empty(e):
    return b"", [r"offset 0: truncated: no complete 72-byte header"]


def case_cut_in_header(e):
    return e.data[:40], [r"offset 0: truncated: no complete 72-byte header"]


def case_cut_in_record_head(e):
    off = e.stream.first(sl.MEMORY_LAYOUT).offset
    return e.data[:off + 8], [rf"offset {off}: truncated: stream ends "
                              r"without an END record"]


def case_cut_in_page_batch(e):
    r = _status_batch(e.stream)
    return e.data[:r.offset + 16 + len(r.body) // 2], [
        rf"offset {r.offset}: truncated: record PAGE_BATCH \(0x3\) says "
        rf"{len(r.body)} bytes, the stream ends first"]


def case_cut_before_end(e):
    off = e.stream.first(sl.END).offset
    return e.data[:off], [rf"offset {off}: truncated: stream ends without "
                          r"an END record"]


def case_bit_flip_in_page_batch(e):
    r = _status_batch(e.stream)
    return _flip(e.data, r.offset + 16 + len(r.body) - 100), [
        rf"offset {r.offset}: checksum mismatch in record PAGE_BATCH "
        r"\(0x3\)"]


def _middle_batch(s):
    bs = s.batches()
    return bs[len(bs) // 2]


def case_bit_flip_mid_file_in_a_raw_batch(e):
    """Read straight into the new guest's RAM, the batch fails its
    checksum there: refused, the half-built domain discarded."""
    r = _middle_batch(e.stream)
    return _flip(e.data, r.offset + 16 + len(r.body) // 2 + 3, 0x01), [
        rf"offset {r.offset}: checksum mismatch in record PAGE_BATCH "
        r"\(0x3\)"]


def case_bit_flip_in_a_raw_batch_pfn_list(e):
    """A pfn spoilt to one outside RAM: the checksum names the damage,
    not the pfn it happens to say."""
    r = _middle_batch(e.stream)
    return _flip(e.data, r.offset + 16 + 16 + 5, 0x40), [
        rf"offset {r.offset}: checksum mismatch in record PAGE_BATCH "
        r"\(0x3\)"]


def case_bit_flip_mid_file_in_an_lz4_batch(e):
    s = sl.Stream(e.lz4)
    r = _middle_batch(s)
    return _flip(e.lz4, r.offset + 16 + len(r.body) // 2, 0x01), [
        rf"offset {r.offset}: checksum mismatch in record PAGE_BATCH "
        r"\(0x3\)"]


def case_bit_flip_in_header(e):
    return _flip(e.data, 30), [r"offset 64: header checksum mismatch"]


def case_wrong_magic(e):
    return b"XKVMSTRX" + e.data[8:], [r"offset 0: bad magic: not a state "
                                      r"stream"]


def case_record_length_past_eof(e):
    r = e.stream.first(sl.DEV_RTC)
    n = len(e.data) - r.offset
    return _set_len(e.data, r, n), [
        rf"offset {r.offset}: truncated: record DEV_RTC \(0x31\) says {n} "
        r"bytes, the stream ends first"]


def case_record_length_over_limit(e):
    r = e.stream.first(sl.DEV_RTC)
    return _set_len(e.data, r, 0x7fffffff), [
        rf"offset {r.offset}: record DEV_RTC \(0x31\) length 2147483647 "
        r"exceeds 67108864"]


def case_unknown_mandatory_record(e):
    data, s = _edit(e, lambda s: s.insert_before_end(
        sl.Record(0x7777, 0, b"from a newer build\n")))
    off = s.first(0x7777).offset
    return data, [rf"offset {off}: unknown mandatory record type 0x7777"]


def case_unknown_record_flags(e):
    data, s = _edit(e, lambda s: setattr(s.first(sl.DEV_BOARD), "flags", 2))
    off = s.first(sl.DEV_BOARD).offset
    return data, [rf"offset {off}: record 0x32 has unknown flags 0x2"]


def case_config_for_another_memory_size(e):
    data, _ = _edit(e, lambda s: s.set_config(memory=32))
    return data, [r"offset \d+: MEMORY_LAYOUT: 16777216 bytes of RAM, the "
                  r"config has 32 MiB"]


def case_layout_for_another_memory_size(e):
    data, _ = _edit(e, lambda s: s.set_layout(ram_bytes=32 << 20))
    return data, [r"offset \d+: MEMORY_LAYOUT: 33554432 bytes of RAM, the "
                  r"config has 16 MiB"]


def case_config_not_json(e):
    def spoil(s):
        s.first(sl.DOMAIN_CONFIG).body = b'{"name": "w", "memory": '
    return _edit(e, spoil)[0], [r"DOMAIN_CONFIG"]


def case_config_bad_value(e):
    return _edit(e, lambda s: s.set_config(vcpus=0))[0], [r"vcpus"]


def case_no_config(e):
    return _edit(e, lambda s: s.remove(sl.DOMAIN_CONFIG))[0], [
        r"offset 72: expected a DOMAIN_CONFIG record, found MEMORY_LAYOUT"]


def case_page_outside_ram(e):
    def spoil(s):
        r = s.batches()[0]
        b = bytearray(r.body)
        struct.pack_into("<Q", b, sl.BATCH_HEAD_LEN, 0x100000)
        r.body = bytes(b)
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.batches()[0].offset}: PAGE_BATCH page 0: "
                  r"pfn 0x100000 is outside the 16 MiB of RAM"]


def case_page_batch_lengths_disagree(e):
    def spoil(s):
        r = s.batches()[0]
        b = bytearray(r.body)
        struct.pack_into("<I", b, 8, struct.unpack_from("<I", b, 8)[0] - 8)
        r.body = bytes(b)
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.batches()[0].offset}: PAGE_BATCH lengths "
                  r"disagree"]


def _spoil_compressed(enc):
    def spoil(s):
        for r in s.batches():
            b = sl.Batch(r.body)
            if b.encoding == enc:
                r.body = r.body[:b.data_offset] + b"\xff" * len(b.data)
                spoil.offset_rec = r
                return
        raise AssertionError(f"no batch with encoding {enc}")
    return spoil


def case_lz4_data_corrupt(e):
    spoil = _spoil_compressed(sl.ENC_LZ4)
    data, s = _edit(e, spoil, "lz4")
    return data, [rf"offset {spoil.offset_rec.offset}: LZ4 data of "
                  r"PAGE_BATCH is corrupt"]


def case_zlib_data_corrupt(e):
    spoil = _spoil_compressed(sl.ENC_ZLIB)
    data, s = _edit(e, spoil, "zlib")
    return data, [rf"offset {spoil.offset_rec.offset}: zlib data of "
                  r"PAGE_BATCH is corrupt"]


def case_compressed_batch_in_v1_stream(e):
    data, s = _edit(e, lambda s: setattr(s.header, "version", 1), "lz4")
    return data, [r"compressed PAGE_BATCH in a version-1 stream"]


def case_newer_format_version(e):
    data, s = _edit(e, lambda s: setattr(s.header, "version", 3))
    return data, [r"offset 12: format version 3; this build reads 1 to 2"]


def case_missing_vcpu_registers(e):
    return _edit(e, lambda s: s.remove(sl.VCPU_REGS))[0], [
        r"stream ends without VCPU_REGS for vCPU 0 of 1"]


def case_vcpu_record_for_a_missing_vcpu(e):
    def spoil(s):
        r = s.first(sl.VCPU_REGS)
        r.body = struct.pack("<I", 1) + r.body[4:]
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.first(sl.VCPU_REGS).offset}: VCPU_REGS for "
                  r"vCPU 1, the config has 1 vCPUs"]


def case_missing_device_record(e):
    return _edit(e, lambda s: s.remove(sl.DEV_RTC))[0], [
        r"stream ends without a DEV_RTC record"]


def case_duplicate_device_record_instead_of_a_missing_one(e):
    """DEV_RTC is missing and DEV_UART comes twice: the RTC's state is
    lost just as when it is missing, so this must be refused too."""
    def spoil(s):
        s.records[s.index(sl.DEV_RTC)] = sl.Record(
            sl.DEV_UART, 0, s.first(sl.DEV_UART).body)
    data, s = _edit(e, spoil)
    off = s.find(sl.DEV_UART)[1].offset
    return data, [rf"offset {off}: a second DEV_UART record"]


def case_empty_vcpu_msrs_record(e):
    """A VCPU_MSRS record whose structure is 0 bytes: the message must
    say so (not read the missing entry count)."""
    def spoil(s):
        s.first(sl.VCPU_MSRS).body = struct.pack("<II", 0, 0)
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.first(sl.VCPU_MSRS).offset}: "
                  r"VCPU_MSRS of 0 bytes, at least 8 expected"]


def case_xsave_state_in_a_component_the_host_lacks(e):
    """XSTATE_BV names component 40, which no host has: KVM would refuse
    the area with EINVAL; the daemon says which component (a stream
    from a host with more XSAVE state than this one)."""
    def spoil(s):
        body = bytearray(s.first(sl.VCPU_XSAVE).body)
        bv, = struct.unpack_from("<Q", body, 8 + 512)
        struct.pack_into("<Q", body, 8 + 512, bv | 1 << 40)
        s.first(sl.VCPU_XSAVE).body = bytes(body)
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.first(sl.VCPU_XSAVE).offset}: vCPU 0: "
                  r"VCPU_XSAVE: the vCPU has state in XSAVE component 40, "
                  r"which this host's KVM does not support"]


def case_msr_the_host_refuses(e):
    """An MSR no KVM has, with a value: refused, naming it (one at 0 is
    left out: a stream from a host whose KVM has more MSRs)."""
    def spoil(s):
        body = bytearray(s.first(sl.VCPU_MSRS).body)
        vcpu, size = struct.unpack_from("<II", body, 0)
        nmsrs, = struct.unpack_from("<I", body, 8)
        body += struct.pack("<IIQ", 0xc0de0001, 0, 0x5a)
        struct.pack_into("<II", body, 0, vcpu, size + 16)
        struct.pack_into("<I", body, 8, nmsrs + 1)
        s.first(sl.VCPU_MSRS).body = bytes(body)
    data, s = _edit(e, spoil)
    return data, [rf"offset {s.first(sl.VCPU_MSRS).offset}: vCPU 0: "
                  r"VCPU_MSRS: this host's KVM refuses MSR 0xc0de0001 = "
                  r"0x5a"]


def case_data_after_end(e):
    """docs/state-format.md: nothing may follow END."""
    end = e.stream.first(sl.END).offset
    return e.data + b"\0" * 16, [
        rf"offset {end + 16}|(?i:after (the )?END)"]


def case_handover_record_in_a_file(e):
    """DOMAIN_END (0x52) belongs to live-update handover streams only;
    restore must refuse it before the domain is started."""
    data, s = _edit(e, lambda s: s.insert_before_end(sl.Record(0x52, 0)))
    return data, [r"DOMAIN_END|0x52|after the domain's end"]


BAD_STREAMS = {name[5:]: fn for name, fn in list(globals().items())
               if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_bad_stream_is_refused(bad, case):
    data, patterns = BAD_STREAMS[case](bad)
    path = _write(bad, data)
    msg, log = assert_refused(bad, path, 3, patterns)
    assert f"restore from {path} failed: " in log, log


def test_unknown_optional_record_is_skipped(bad):
    s = sl.Stream(bad.none)
    s.insert_before_end(sl.Record(0x7777, sl.REC_F_OPTIONAL,
                                  b"optional, from a newer build\n"))
    path = _write(bad, s.to_bytes())
    saved = saved_status(path)
    xl_restore(bad.d, "--name", "restored", path)
    assert sorted(bad.d.domains()) == ["restored", "w"]
    assert_continues(bad.d, "restored", saved)
    bad.w.assert_counting(1)


def test_unknown_config_member_is_ignored(bad):
    """docs/state-format.md: DOMAIN_CONFIG members a reader does not know
    are ignored."""
    s = sl.Stream(bad.none)
    s.set_config(from_a_newer_build={"x": 1})
    path = _write(bad, s.to_bytes())
    xl_restore(bad.d, "--name", "restored", path)
    assert_continues(bad.d, "restored", saved_status(path))


def test_corrupt_page_with_a_good_checksum_is_caught_by_the_guest(bad):
    """The other tests trust errors=0: here a working-set page is spoilt
    and its record's crc fixed, and the restored guest reports it.  The
    source never re-dirties pages (rate=0), so the page stays spoilt."""
    bad.d.create("src", memory=16, cmdline="ws=1M rate=0 interval=200 "
                 "verify=300")
    CounterWatch(bad.d, "src").close()
    path = str(bad.tmp / "src.xkvm")
    xl_save(bad.d, "src", path)
    s = sl.Stream.load(path)
    saved = status_from_bytes(s.page(STATUS_PFN))
    assert saved["ws_pages"] == 256 and saved["errors"] == 0
    ws_pfn = WS_GPA // sl.PAGE_SIZE
    gen = struct.unpack_from("<I", s.page(GEN_GPA // sl.PAGE_SIZE))[0]
    page = s.page(ws_pfn)
    assert [struct.unpack_from("<Q", page, 8 * i)[0] for i in range(512)] \
        == [pattern_word(0, gen, i) for i in range(512)], \
        "the stream does not hold page 0 of the working set as written"
    for r in s.batches():
        b = sl.Batch(r.body)
        if ws_pfn in b.pfns:
            body = bytearray(r.body)
            body[b.data_offset + b.pfns.index(ws_pfn) * sl.PAGE_SIZE +
                 8 * 5] ^= 0x01
            r.body = bytes(body)
    path = _write(bad, s.to_bytes())
    xl_restore(bad.d, "--name", "spoilt", path)
    reader = wait_until(lambda: _reader(bad.d, bad.d.domid("spoilt")), 10,
                        "RAM memfd")
    try:
        wait_until(lambda: reader.read()["errors"] > 0, 20,
                   "the guest's verification finding the spoilt page")
        bad.d.wait_console("spoilt", rf"VERIFY ERROR page=0 gen={gen} "
                           r"word=5 ")
    finally:
        reader.close()
    bad.w.assert_counting(1)


def test_directory_as_the_path(bad):
    d = str(bad.tmp / "adir")
    os.mkdir(d)
    assert_refused(bad, d, 3, [re.escape(d), r"(?i)directory"])


def test_fifo_as_the_path_does_not_block_the_daemon(bad):
    """The daemon reads the file on its control thread: a FIFO must be
    refused, not waited on (every client would wait with it)."""
    fifo = str(bad.tmp / "fifo")
    os.mkfifo(fifo)
    a = Api(bad.d.sock, timeout=5)
    try:
        reply = a.request("restore", path=fifo, name="restored")
    except (socket.timeout, TimeoutError):
        reply = None
    finally:
        a.close()
    if reply is None:
        try:                    # let the blocked open() go on, then fail
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        wait_until(lambda: _answers(bad.d), 10, "daemon answering again")
        pytest.fail("the daemon blocked in open() of a FIFO for 5 s and "
                    "served no other client meanwhile")
    assert not reply["ok"] and reply["error"]["code"] == 3, reply
    assert re.search(r"(?i)regular file|fifo", reply["error"]["message"])
    assert_refused(bad, fifo, 3, [re.escape(fifo)])


def _answers(d):
    try:
        Api(d.sock, timeout=1).call("list")
        return True
    except Exception:   # noqa: BLE001
        return False


def test_nonexistent_path(bad):
    p = str(bad.tmp / "missing.xkvm")
    assert_refused(bad, p, 3, [rf"cannot read {re.escape(p)}: No such file "
                               r"or directory"])


def test_relative_path_over_the_api(bad):
    assert_refused(bad, "good-none.xkvm", 3,
                   [r"'path' must be an absolute file name"], raw=True)


def test_name_that_already_exists(bad):
    before = listing(bad.d)
    r = bad.d.xl("restore", bad.good, check=False)
    assert_xl_error(r, 5, r"a domain named 'w' already exists")
    assert listing(bad.d) == before
    bad.w.assert_counting(1)
    assert_refused(bad, bad.good, 5, [r"'w' already exists"], name="w")


@pytest.mark.parametrize("name", ["bad name", "", "a/b", "y" * 64],
                         ids=["space", "empty", "slash", "64-chars"])
def test_invalid_new_name_is_refused(bad, name):
    """--name follows the config's rule: 1-63 of [A-Za-z0-9_.-]."""
    assert_refused(bad, bad.good, 3, [r"name"], name=name)


def test_long_new_name_does_not_duplicate_a_name(bad):
    long63 = "x" * 63
    xl_restore(bad.d, "--name", long63, bad.good)
    bad.d.xl("restore", "--name", long63 + "z", bad.good, check=False)
    names = [x["name"] for x in bad.d.call("list")["domains"]]
    assert len(names) == len(set(names)), f"duplicate names: {names}"


# ---------------------------------------------------------------- records

def test_every_device_and_vcpu_has_its_records(daemon, tmp_path):
    w = start(daemon, "dev", extra="vcpus = 2\n")
    w.assert_counting(1)
    path = str(tmp_path / "dev.xkvm")
    xl_save(daemon, "-c", "dev", path)
    s = sl.Stream.load(path)
    info = daemon.call("info")

    h = s.header
    assert (h.magic, h.byte_order, h.version, h.header_len) == \
        (sl.MAGIC, sl.BYTE_ORDER, 2, sl.HEADER_LEN) and h.crc_ok()
    assert h.writer_version.rstrip(b"\0").decode() == info["hypervisor"]
    assert h.build_id[:h.build_id_len].hex() == \
        info["build_id"][:2 * h.build_id_len]
    assert all(r.crc_ok() for r in s.records)
    types = s.types()
    assert types[:2] == [sl.DOMAIN_CONFIG, sl.MEMORY_LAYOUT]
    assert types[-1] == sl.END and s.records[-1].body == b""
    assert s.config()["vcpus"] == 2 and s.config()["name"] == "dev"
    assert s.layout()["ram_bytes"] == 16 << 20

    for t in sl.VCPU_TYPES:
        vcpus = sorted(r.vcpu for r in s.find(t))
        assert vcpus == [0, 1], f"{sl.TYPE_NAMES[t]} for vCPUs {vcpus}"
    chips = sorted(struct.unpack_from("<I", r.body)[0]
                   for r in s.find(sl.VM_IRQCHIP))
    assert chips == [0, 1, 2]           # PIC master, PIC slave, IOAPIC
    for t in (sl.VM_PIT, sl.VM_CLOCK, sl.DEV_UART, sl.DEV_RTC, sl.DEV_BOARD,
              sl.CONSOLE_HISTORY):
        assert types.count(t) == 1, f"{sl.TYPE_NAMES[t]}: {types.count(t)}"
    total, hist = s.console()
    assert b"COUNTER READY" in hist and total >= len(hist)

    saved = saved_status(path)
    xl_restore(daemon, "--name", "dev2", path)
    assert daemon.domain("dev2")["vcpus"] == 2
    assert_continues(daemon, "dev2", saved)
    w.close()


# ---------------------------------------------------------------- old streams

# The checked-in streams (tests/data/streams/README.md), each written by an
# earlier build: the file, the format version in its header, the page
# encodings of its batches and a bound on its size.
CHECKED_IN_STREAMS = [
    pytest.param("counter-v1.xkvm", 1, {sl.ENC_NONE}, 1200 * 1024, id="v1"),
    pytest.param("counter-v2.xkvm", 2, {sl.ENC_LZ4}, 700 * 1024, id="v2"),
]


@pytest.mark.parametrize("fname, version, encodings, max_bytes",
                         CHECKED_IN_STREAMS)
def test_checked_in_stream_restores(daemon, fname, version, encodings,
                                    max_bytes):
    path = os.path.join(STREAMS, fname)
    assert os.path.getsize(path) < max_bytes
    s = sl.Stream.load(path)
    assert s.header.version == version
    assert {sl.Batch(r.body).encoding for r in s.batches()} == encodings
    cfg = s.config()
    # The kernel the guest was booted from is gone: memory carries it.
    assert not os.path.exists(cfg["kernel"]), cfg["kernel"]
    saved = status_from_bytes(s.page(STATUS_PFN))
    assert saved["magic"] == STATUS_MAGIC and saved["errors"] == 0
    _, hist = s.console()

    xl_restore(daemon, path)
    name = cfg["name"]
    rec = daemon.domain(name)
    assert (rec["memory_mib"], rec["kernel"], rec["cmdline"]) == \
        (cfg["memory"], cfg["kernel"], cfg["cmdline"])
    w = assert_continues(daemon, name, saved)
    dump = daemon.xl("console", "--dump", name).out
    assert dump.encode("latin1", "replace").startswith(hist) or \
        dump.startswith(hist.decode(errors="replace"))
    assert parse_status_lines(hist.decode(errors="replace"))
    w.close()


def test_stream_whose_kernel_is_gone_restores(daemon, tmp_path):
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    kernel = str(kdir / "counter.elf")
    shutil.copy(guest_path("counter"), kernel)
    w = start(daemon, "kg", kernel=kernel)
    w.assert_counting(1)
    w.close()
    path = str(tmp_path / "kg.xkvm")
    xl_save(daemon, "kg", path)
    shutil.rmtree(kdir)
    assert sl.Stream.load(path).config()["kernel"] == kernel
    xl_restore(daemon, path)
    assert daemon.domain("kg")["kernel"] == kernel
    assert_continues(daemon, "kg", saved_status(path))
