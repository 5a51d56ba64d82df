"""Every xl command against a real daemon, checked on what the guests
report (console lines, the counter guest's status block) and on what xl
and the daemon print; then xl's error paths and exit codes."""
import json
import os
import pty
import re
import select
import socket
import subprocess
import termios
import time

import pytest

from harness import (XL, ApiError, CounterWatch, Daemon,
                     assert_counter_frozen, build_bool_features,
                     build_config_int, build_has,
                     complete_status_lines, guest_path, parse_status_lines,
                     request_and_probe, unblock_fifo, wait_counter_advances,
                     wait_until)

# `xl list` rows: name, id, memory, vcpus, state letters, cpu time.
LIST_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-rpscd]{6})"
                      r"\s+(\d+\.\d)$")
STATE_LETTERS = {"running": "r-----", "paused": "--p---",
                 "shutdown": "---s--", "crashed": "----c-"}


def list_rows(daemon, *names):
    r = daemon.xl("list", *names)
    lines = r.out.splitlines()
    assert re.match(r"^Name\s+ID\s+Mem\s+VCPUs\s+State\s+Time\(s\)$",
                    lines[0]), r.out
    rows = {}
    for line in lines[1:]:
        m = LIST_ROW.match(line)
        assert m, f"malformed xl list row {line!r} in:\n{r.out}"
        rows[m.group(1)] = {"id": int(m.group(2)), "mem": int(m.group(3)),
                            "vcpus": int(m.group(4)), "flags": m.group(5),
                            "time": float(m.group(6))}
    return rows


def assert_xl_error(r, code, *needles):
    """xl exited with `code` and said `xl: ...` with every needle."""
    assert r.returncode == code, \
        f"xl exited {r.returncode}, not {code}: {r.err}{r.out}"
    msg = [line for line in r.err.splitlines() if line.startswith("xl: ")]
    assert msg, f"no 'xl: ' message in {r.err!r}"
    for n in needles:
        assert any(n in line for line in msg), \
            f"{n!r} not in xl's message {r.err!r}"


# ---------------------------------------------------------------- create

def test_create_plain_runs_the_guest(daemon):
    cfg = daemon.write_cfg(daemon.cfg_text("c1", cmdline="interval=200"))
    r = daemon.xl("create", cfg)
    assert f"Parsing config from {cfg}" in r.err
    w = CounterWatch(daemon, "c1")
    w.assert_counting(lines=2)
    d = daemon.domain("c1")
    assert d["state"] == "running"
    assert d["kernel"] == guest_path("counter")
    assert d["cmdline"] == "interval=200"
    assert "d%d: created 'c1'" % d["id"] in daemon.log()


def test_create_quiet_prints_nothing(daemon):
    cfg = daemon.write_cfg(daemon.cfg_text("q1", kernel="exit",
                                           cmdline="mode=echo"))
    r = daemon.xl("create", "-q", cfg)
    assert r.err == "" and r.out == ""
    daemon.wait_console("q1", r"ECHO READY")


def test_create_paused_counter_does_not_move_until_unpause(daemon):
    daemon.create("p1", cmdline="interval=200", paused=True)
    d = daemon.domain("p1")
    assert d["state"] == "paused"
    assert list_rows(daemon)["p1"]["flags"] == "--p---"
    # The guest has not run one instruction: no status block, no output.
    reader = wait_until(lambda: _reader(daemon, d["id"]), 10, "RAM memfd")
    for _ in range(5):
        assert reader.read()["counter"] == 0
        assert reader.counter() is None
        time.sleep(0.1)
    assert daemon.console("p1") == ""
    daemon.xl("unpause", "p1")
    daemon.wait_console("p1", r"COUNTER READY")
    wait_until(reader.counter, 20, "status block after unpause")
    wait_counter_advances(reader, by=1000)
    assert daemon.domain("p1")["state"] == "running"
    reader.close()


def _reader(daemon, domid):
    try:
        return daemon.status_reader(domid)
    except FileNotFoundError:
        return None


def test_create_console_attaches(daemon):
    cfg = daemon.write_cfg(daemon.cfg_text("cc", cmdline="interval=200"))
    p = daemon.xl_popen("create", "-c", cfg)
    try:
        p.wait_output(r"COUNTER READY")
        p.wait_output(r"COUNTER counter=\d+ rounds=\d+ verifications=\d+ "
                      r"errors=0")
        assert f"Parsing config from {cfg}" in p.err
    finally:
        rc = p.stop()
    assert rc == 0, p.err
    # Leaving the console does not touch the domain.
    assert daemon.domain("cc")["state"] == "running"
    out = p.out
    assert out.startswith("counter guest: ws_pages="), out[:200]


def test_create_console_of_a_guest_that_ends_at_once(daemon):
    """`xl create -c` shows everything the guest printed, even when the
    guest ends (and its domain is destroyed) right after booting, and
    exits 0: the domain was created."""
    for i in range(20):
        cfg = daemon.write_cfg(daemon.cfg_text(f"quick{i}", kernel="exit",
                                               cmdline="mode=triplefault"))
        r = daemon.xl("create", "-c", cfg, check=False, timeout=30)
        assert r.returncode == 0, \
            f"run {i}: xl create -c exited {r.returncode}: {r.err}"
        assert r.out == "TRIPLE FAULT NOW\r\n", f"run {i}: {r.out!r}"
    assert daemon.domains() == {}


def test_create_paused_with_console(daemon):
    cfg = daemon.write_cfg(daemon.cfg_text("pc", kernel="exit",
                                           cmdline="mode=echo"))
    p = daemon.xl_popen("create", "-p", "-c", cfg)
    try:
        wait_until(lambda: daemon.domain("pc"), 20, "domain pc")
        assert daemon.domain("pc")["state"] == "paused"
        time.sleep(0.3)
        assert p.out == ""
        daemon.xl("unpause", "pc")
        p.wait_output(r"ECHO READY")
        p.send(b"hi\r")
        p.wait_output(r"ECHO LINE: hi")
    finally:
        assert p.stop() == 0


# ---------------------------------------------------------------- list

def test_list_table_and_json(daemon):
    daemon.create("run1", cmdline="interval=200")
    daemon.create("pau2", memory=48, paused=True, extra="vcpus = 2\n")
    daemon.create("shut3", kernel="exit", cmdline="mode=echo",
                  extra='on_poweroff = "preserve"\n')
    daemon.create("crash4", kernel="exit", cmdline="mode=triplefault",
                  extra='on_crash = "preserve"\n')
    daemon.wait_console("run1", r"COUNTER READY")
    daemon.wait_console("shut3", r"ECHO READY")
    daemon.xl("shutdown", "-F", "-t", "0", "shut3")
    daemon.wait_state("shut3", "shutdown")
    daemon.wait_state("crash4", "crashed")

    api = {d["name"]: d for d in daemon.call("list")["domains"]}
    rows = list_rows(daemon)
    assert set(rows) == set(api) == {"run1", "pau2", "shut3", "crash4"}
    for name, row in rows.items():
        a = api[name]
        assert row["id"] == a["id"]
        assert row["mem"] == a["memory_mib"]
        assert row["vcpus"] == a["vcpus"]
        assert row["flags"] == STATE_LETTERS[a["state"]]
    assert rows["run1"]["mem"] == 32 and rows["run1"]["vcpus"] == 1
    assert rows["pau2"]["mem"] == 48 and rows["pau2"]["vcpus"] == 2
    assert rows["run1"]["flags"] == "r-----"
    assert rows["pau2"]["flags"] == "--p---"
    assert rows["shut3"]["flags"] == "---s--"
    assert rows["crash4"]["flags"] == "----c-"
    ids = [r["id"] for r in rows.values()]
    assert len(set(ids)) == 4

    for opt in ("--json", "-l", "--long"):
        js = json.loads(daemon.xl("list", opt).out)
        assert isinstance(js, list)
        by_name = {d["name"]: d for d in js}
        assert set(by_name) == set(api)
        for name, d in by_name.items():
            for key in ("id", "state", "memory_mib", "vcpus", "kernel",
                        "cmdline", "on_poweroff", "on_reboot", "on_crash",
                        "exit_code", "shutdown_reason"):
                assert d[key] == api[name][key], (name, key)
    assert by_name["shut3"]["shutdown_reason"] == "poweroff"
    assert by_name["crash4"]["shutdown_reason"] == "crash"
    assert by_name["run1"]["shutdown_reason"] is None

    # Selecting domains by name and by id.
    assert set(list_rows(daemon, "pau2")) == {"pau2"}
    assert set(list_rows(daemon, str(api["run1"]["id"]), "crash4")) == \
        {"run1", "crash4"}
    js = json.loads(daemon.xl("list", "--json", "shut3").out)
    assert [d["name"] for d in js] == ["shut3"]
    r = daemon.xl("list", "run1", "nosuch", check=False)
    assert_xl_error(r, 4, "nosuch")


def test_list_empty(daemon):
    assert list_rows(daemon) == {}
    assert json.loads(daemon.xl("list", "--json").out) == []


# ---------------------------------------------------------------- info

def test_info(daemon):
    daemon.create("i1", kernel="exit", cmdline="mode=echo")
    r = daemon.xl("info")
    kv = {}
    for line in r.out.splitlines():
        k, sep, v = line.partition(":")
        assert sep, f"bad xl info line {line!r}"
        kv[k.strip()] = v.strip()
    ver = daemon.call("version")
    assert kv["hypervisor_version"] == ver["hypervisor"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", kv["hypervisor_version"])
    assert re.fullmatch(r"[0-9a-f]{40}", kv["build_id"]), kv["build_id"]
    assert kv["build_id"] == ver["build_id"]
    assert kv["protocol"] == "1"
    features = set(kv["features"].split())
    want = build_bool_features()
    assert "BOOT_MULTIBOOT" in want
    assert features == want
    assert float(kv["uptime"]) >= 0
    assert kv["nr_domains"] == "1"
    assert int(kv["nr_cpus"]) == os.cpu_count()
    assert int(kv["total_memory"]) > 0
    assert int(kv["kvm_api"]) == 12
    assert int(kv["daemon_pid"]) == daemon.proc.pid

    js = json.loads(daemon.xl("info", "--json").out)
    assert js["build_id"] == kv["build_id"]
    assert set(js["features"]) == want
    assert js["domains"] == 1 and js["pid"] == daemon.proc.pid
    assert js["protocol_min"] <= js["protocol"] <= js["protocol_max"]
    assert js["host"]["nr_cpus"] == os.cpu_count()
    assert js["host"]["tsc_khz"] > 0
    # Uptime is the daemon's: it grows.
    up1 = js["uptime_s"]
    up2 = wait_until(lambda: (lambda u: u if u > up1 else None)(
        daemon.call("info")["uptime_s"]), 10, "uptime growing")
    assert up2 > up1
    r = daemon.xl("info", "extra", check=False)
    assert r.returncode == 64


# ---------------------------------------------------------------- destroy

def test_destroy(daemon):
    w = daemon.start_counter("d1")
    other = daemon.start_counter("d2")
    daemon.xl("destroy", "d1")
    assert "d1" not in daemon.domains()
    assert_xl_error(daemon.xl("list", "d1", check=False), 4, "d1")
    assert "destroying 'd1'" in daemon.log()
    # By id as well.
    daemon.create("d3", kernel="exit", cmdline="mode=echo")
    daemon.xl("destroy", str(daemon.domid("d3")))
    assert set(daemon.domains()) == {"d2"}
    other.assert_counting()
    assert_xl_error(daemon.xl("destroy", "d1", check=False), 4, "d1")
    w.close()


# ---------------------------------------------------------------- pause

def test_pause_unpause(daemon):
    w = daemon.start_counter("pp")
    w.assert_counting()
    daemon.xl("pause", "pp")
    assert daemon.domain("pp")["state"] == "paused"
    assert list_rows(daemon)["pp"]["flags"] == "--p---"
    cpu = daemon.domain("pp")["cpu_time_s"]
    frozen = assert_counter_frozen(w.reader, settle=0.6)
    # The vCPU thread is parked: it used next to no CPU in that time
    # (a running one uses all of it).
    assert daemon.domain("pp")["cpu_time_s"] - cpu < 0.05
    mark = daemon.console_mark("pp")
    assert_counter_frozen(w.reader, settle=0.4)
    assert daemon.console_mark("pp") == mark, "paused guest printed"

    r = daemon.xl("pause", "pp", check=False)
    assert_xl_error(r, 6, "paused")
    daemon.xl("unpause", "pp")
    assert daemon.domain("pp")["state"] == "running"
    wait_counter_advances(w.reader, by=1000, start=frozen)
    w.assert_counting()

    r = daemon.xl("unpause", "pp", check=False)
    assert_xl_error(r, 6, "running", "not paused")
    assert daemon.domain("pp")["state"] == "running"
    w.assert_counting()
    w.close()


# ---------------------------------------------------------------- shutdown
# The counter guest ignores the ACPI power button (tests/test_acpi.py has
# guests that do not): `xl shutdown -F -t 0` stops it at once, as a
# power cut.

def test_shutdown_on_poweroff_destroy(daemon):
    daemon.start_counter("s1", extra='on_poweroff = "destroy"\n')
    r = daemon.xl("shutdown", "-F", "-t", "0", "s1")
    assert "did not power off within 0 s: stopping it" in r.err, r.err
    daemon.wait_domain_gone("s1")
    log = daemon.log()
    assert "shutdown requested by the toolstack" in log
    assert "poweroff -> destroy" in log


def test_shutdown_on_poweroff_preserve(daemon):
    w = daemon.start_counter("s2", extra='on_poweroff = "preserve"\n')
    daemon.xl("shutdown", "-F", "-t", "0", "s2")
    d = daemon.wait_state("s2", "shutdown")
    assert d["shutdown_reason"] == "poweroff"
    assert d["exit_code"] is None
    assert list_rows(daemon)["s2"]["flags"] == "---s--"
    # Preserved, not running.
    assert_counter_frozen(w.reader, settle=0.4)
    for cmd, word in (("shutdown", "shutdown already"),
                      ("reboot", "shutdown already"),
                      ("pause", "not running"),
                      ("unpause", "not paused")):
        assert_xl_error(daemon.xl(cmd, "s2", check=False), 6, word)
    daemon.xl("destroy", "s2")
    daemon.wait_domain_gone("s2")
    w.close()


def test_shutdown_paused_domain(daemon):
    daemon.create("s3", paused=True, extra='on_poweroff = "preserve"\n')
    daemon.xl("shutdown", "-F", "-t", "0", "s3")
    d = daemon.wait_state("s3", "shutdown")
    assert d["shutdown_reason"] == "poweroff"


# ---------------------------------------------------------------- reboot

def test_reboot_restart_boots_again(daemon):
    w = daemon.start_counter("rb")
    w.assert_counting()
    domid = daemon.domid("rb")
    # Let the first boot run for 2 s of its own time (it dirties 1000
    # pages a second).
    def two_seconds_in():
        st = complete_status_lines(daemon.console("rb"))
        return st[-1] if st and st[-1]["dirtied"] >= 2000 else None
    before = wait_until(two_seconds_in, 30, "2 s of counting")
    assert before["errors"] == 0
    w.close()
    mark = daemon.console_mark("rb")
    daemon.xl("reboot", "rb")
    daemon.wait_console_since("rb", r"COUNTER READY", mark)
    text = daemon.console("rb")
    assert text.count("COUNTER READY") == 2, text
    assert daemon.domid("rb") == domid
    # A fresh guest: it counts from zero again.
    reader = daemon.counter_reader("rb")
    first = reader.counter()
    # The first status line of the new boot (the old one may have printed
    # a few between the mark and the reboot).
    m = daemon.wait_console_since(
        "rb", r"COUNTER READY\r?\n(COUNTER counter=[^\r\n]*\r?\n)", mark)
    st = parse_status_lines(m.group(1))[0]
    assert st["errors"] == 0 and st["rounds"] == 0
    assert st["dirtied"] < 1000 <= before["dirtied"], (st, before)
    assert st["counter"] < before["counter"], (st, before)
    wait_counter_advances(reader, by=1000, start=first)
    assert daemon.domain("rb")["state"] == "running"
    assert daemon.domain("rb")["shutdown_reason"] is None
    log = daemon.log()
    assert "reboot requested by the toolstack" in log
    assert f"d{domid}: restarted" in log
    reader.close()


@pytest.mark.parametrize("action,state", [("destroy", None),
                                          ("preserve", "shutdown")])
def test_reboot_other_actions(daemon, action, state):
    daemon.start_counter("rb2", extra=f'on_reboot = "{action}"\n')
    daemon.xl("reboot", "rb2")
    if state is None:
        daemon.wait_domain_gone("rb2")
    else:
        d = daemon.wait_state("rb2", state)
        assert d["shutdown_reason"] == "reboot"
        assert daemon.console("rb2").count("COUNTER READY") == 1


def test_reboot_rename_restart(daemon):
    w = daemon.start_counter("rr", extra='on_reboot = "rename-restart"\n')
    old = daemon.domid("rr")
    daemon.xl("reboot", "rr")
    renamed = f"rr-{old}"
    d = daemon.wait_state(renamed, "shutdown")
    assert d["id"] == old and d["shutdown_reason"] == "reboot"
    fresh = daemon.wait_state("rr", "running")
    assert fresh["id"] != old
    w.close()
    CounterWatch(daemon, "rr").assert_counting()
    daemon.xl("destroy", renamed)
    assert set(daemon.domains()) == {"rr"}


def test_rename_restart_keeps_names_unique(daemon):
    """The preserved domain's new name must not be one that is taken."""
    daemon.create("rr-2", kernel="exit", cmdline="mode=echo")     # id 1
    daemon.create("rr", kernel="exit", cmdline="mode=echo",       # id 2
                  extra='on_reboot = "rename-restart"\n')
    assert daemon.domid("rr") == 2
    daemon.xl("reboot", "rr")
    wait_until(lambda: len(daemon.call("list")["domains"]) == 3, 20,
               "the fresh domain")
    names = [d["name"] for d in daemon.call("list")["domains"]]
    assert len(set(names)) == len(names), f"duplicate names: {names}"


# ---------------------------------------------------------------- console

@pytest.mark.parametrize("mode", ["echo", "echo-irq"])
def test_console_echo(daemon, mode):
    daemon.create("e1", kernel="exit", cmdline=f"mode={mode}")
    p = daemon.xl_popen("console", "e1")
    try:
        p.wait_output(r"ECHO READY")      # from the history
        p.send(b"hello\r")
        if mode == "echo":
            m = p.wait_output(r"ECHO LINE: hello\r?\n")
        else:
            m = p.wait_output(r"ECHO LINE \(irq\): hello irqs=(\d+)\r?\n")
            assert int(m.group(1)) > 0, m.group(0)
        end = m.end()
        p.send(b"second line\r\n")
        if mode == "echo":
            p.wait_output(r"ECHO LINE: second line\r?\n", start=end)
        else:
            m = p.wait_output(r"ECHO LINE \(irq\): second line "
                              r"irqs=(\d+)\r?\n",
                              start=end)
            assert int(m.group(1)) > 0
    finally:
        rc = p.stop()
    assert rc == 0, p.err
    # What the guest echoed is in its console history too.
    hist = daemon.console("e1")
    assert "hello" in hist and "second line" in hist


def test_console_ends_when_domain_is_destroyed(daemon):
    daemon.start_counter("cd")
    p = daemon.xl_popen("console", "cd")
    try:
        p.wait_output(r"COUNTER counter=\d+")
        daemon.xl("destroy", "cd")
        rc = p.wait_exit(20)
    finally:
        p.stop()
    assert rc == 0, p.err
    assert "COUNTER counter=" in p.out


def test_console_no_history(daemon):
    daemon.start_counter("nh")
    daemon.wait_status_lines("nh", 1)
    p = daemon.xl_popen("console", "-n", "nh")
    try:
        p.wait_output(r"COUNTER counter=\d+ [^\n]*errors=0")
    finally:
        p.stop()
    assert "COUNTER READY" not in p.out
    assert "ws_pages" not in p.out


def test_console_dump(daemon):
    daemon.start_counter("cdump")
    daemon.wait_status_lines("cdump", 2)
    r = daemon.xl("console", "--dump", "cdump")
    hist = daemon.console("cdump")
    assert r.out.startswith("counter guest: ws_pages=")
    assert "COUNTER READY" in r.out
    # The dump is the history as it was then: a prefix of it now.
    assert hist.startswith(r.out)
    assert r.out.count("COUNTER counter=") >= 2
    r2 = daemon.xl("console", "-d", "cdump")
    assert r2.out.startswith(r.out[:len(r.out) // 2])
    assert daemon.xl("console", "-d", "-n", "cdump",
                     check=False).returncode == 64
    assert_xl_error(daemon.xl("console", "-d", "nosuch", check=False), 4,
                    "nosuch")


# ---------------------------------------------------------------- dmesg

def test_dmesg_and_clear(daemon):
    daemon.create("dm1", kernel="exit", cmdline="mode=echo")
    domid = daemon.domid("dm1")
    r = daemon.xl("dmesg")
    line = f"d{domid}: created 'dm1': 32 MiB, 1 vCPU(s), kernel " \
           f"{guest_path('exit')}"
    assert line in r.out
    assert "serving on" in r.out
    assert re.search(r"^\(XEN\) \[\d{4}-\d\d-\d\d [\d:.]+\] info: ", r.out,
                     re.M)
    r = daemon.xl("dmesg", "-c")
    assert line in r.out
    r = daemon.xl("dmesg")
    assert line not in r.out
    assert "serving on" not in r.out
    daemon.xl("destroy", "dm1")
    r = daemon.xl("dmesg", "--clear")
    assert f"d{domid}: destroying 'dm1'" in r.out
    # Left: the clear's own audit line (docs/control-api.md), written once
    # the log is cleared, so clearing the log leaves a trace.
    out = daemon.xl("dmesg").out
    assert re.fullmatch(r"\(XEN\) \[[^\]]+\] info: audit: uid=\d+ pid=\d+ "
                        r"cmd=dmesg result=ok\n", out), out
    # The log file keeps everything.
    assert line in daemon.log()


def test_names_with_control_characters_are_escaped_in_the_log(daemon,
                                                              tmp_path):
    """A file name with a newline must not forge a line in xen.log or
    `xl dmesg`, nor one with an escape sequence reach the terminal: the
    log writes control characters (C0, DEL, C1) as \\xHH; other UTF-8
    stays as it is."""
    forged = "(XEN) [2020-01-01 00:00:00.000] error: forged"
    name = f"caf\u00e9-evil\n{forged}\x1b[31m\u009b2J.xkvm"
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(b"not a stream\n")
    with pytest.raises(ApiError):
        daemon.call("restore", path=path)
    escaped = str(tmp_path) + "/caf\u00e9-evil\\x0a" + forged + \
        "\\x1b[31m\\xc2\\x9b2J.xkvm"
    for where, text in (("xen.log", daemon.log()),
                        ("xl dmesg", daemon.xl("dmesg").out)):
        lines = text.splitlines()
        assert not [ln for ln in lines if ln.startswith(forged[:20])], \
            f"a forged line in {where}:\n{text}"
        assert all(ln.startswith("(XEN) [") for ln in lines), text
        assert f"restore from {escaped} failed: " in text, \
            f"{escaped!r} not in {where}:\n{text}"
        assert "\x1b" not in text and "\u009b" not in text


# ---------------------------------------------------------------- version

def test_version(daemon):
    r = daemon.xl("version")
    kv = dict((k.strip(), v.strip()) for k, _, v in
              (line.partition(":") for line in r.out.splitlines()))
    ver = daemon.call("version")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kv["xl_version"])
    assert kv["xl_protocol"] == "1"
    assert kv["hypervisor_version"] == ver["hypervisor"]
    assert kv["build_id"] == ver["build_id"]
    assert re.fullmatch(r"[0-9a-f]{40}", kv["build_id"])
    assert kv["protocol_min"] == "1" and kv["protocol_max"] == "1"


def test_help(daemon):
    r = daemon.xl("help")
    for cmd in ("create", "list", "info", "destroy", "pause", "unpause",
                "shutdown", "reboot", "console", "dmesg", "version"):
        assert re.search(rf"^  {cmd} ", r.out, re.M), cmd
    r = daemon.xl("help", "create")
    assert r.out.startswith("Usage: xl create")
    assert daemon.xl("create", "--help").out.startswith("Usage: xl create")
    r = daemon.xl("help", "nosuch", check=False)
    assert r.returncode == 64


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("cmd", ["destroy", "pause", "unpause", "shutdown",
                                 "reboot", "console"])
def test_unknown_domain_exits_4(daemon, cmd):
    daemon.start_counter("known")
    r = daemon.xl(cmd, "nosuch", check=False)
    assert_xl_error(r, 4, "no domain 'nosuch'")
    r = daemon.xl(cmd, "4242", check=False)
    assert_xl_error(r, 4, "4242")
    assert daemon.domain("known")["state"] == "running"


def test_duplicate_name_exits_5(daemon):
    w = daemon.start_counter("dup")
    cfg = daemon.write_cfg(daemon.cfg_text("dup", kernel="exit",
                                           cmdline="mode=echo"))
    r = daemon.xl("create", cfg, check=False)
    assert_xl_error(r, 5, "'dup' already exists")
    assert len(daemon.call("list")["domains"]) == 1
    assert daemon.domain("dup")["kernel"] == guest_path("counter")
    w.assert_counting()
    w.close()


@pytest.mark.parametrize("what", ["text", "blob", "elf-not-kernel"])
def test_not_a_kernel_exits_8(daemon, tmp_path, what):
    if what == "text":
        path = "/etc/hostname" if os.path.getsize("/etc/hostname") else \
            str(tmp_path / "text")
        if path != "/etc/hostname":
            (tmp_path / "text").write_text("just some text\n")
    elif what == "blob":
        path = str(tmp_path / "blob.bin")
        with open(path, "wb") as f:
            f.write(bytes((i * 7 + 13) & 0xFF for i in range(65536)))
    else:
        path = "/bin/true"
    cfg = daemon.write_cfg(daemon.cfg_text("nk", kernel=path))
    r = daemon.xl("create", cfg, check=False)
    assert_xl_error(r, 8, path, "not a kernel this build boots",
                    "multiboot1 ELF")
    assert daemon.domains() == {}
    assert "create 'nk' failed" in daemon.log()


def test_fake_bzimage(daemon, tmp_path):
    """A file with a Linux setup header but an old boot protocol: refused
    by the Linux loader when built in, else not recognised at all."""
    img = bytearray(8192)
    img[0x1fe:0x200] = b"\x55\xaa"
    img[0x202:0x206] = b"HdrS"
    img[0x206:0x208] = (0x0200).to_bytes(2, "little")
    path = tmp_path / "bzImage"
    path.write_bytes(bytes(img))
    cfg = daemon.write_cfg(daemon.cfg_text("bz", kernel=str(path)))
    r = daemon.xl("create", cfg, check=False)
    if build_has("BOOT_LINUX"):
        assert_xl_error(r, 8, "boot protocol 2.00 without a 64-bit entry")
    else:
        assert_xl_error(r, 8, "not a kernel this build boots")
        assert "Linux" not in r.err
    assert daemon.domains() == {}


def test_missing_kernel_file_exits_8_from_the_daemon(daemon, tmp_path):
    """xl does not open the kernel: the daemon does and answers
    bad-kernel (8), naming the file and the reason."""
    path = str(tmp_path / "no-such-kernel.elf")
    cfg = daemon.write_cfg(daemon.cfg_text("mk", kernel=path))
    r = daemon.xl("create", cfg, check=False)
    assert_xl_error(r, 8, path, "No such file or directory")
    assert daemon.domains() == {}
    for bad in ("/", str(tmp_path)):     # directories are no kernels either
        cfg = daemon.write_cfg(daemon.cfg_text("mk", kernel=bad))
        assert_xl_error(daemon.xl("create", cfg, check=False), 8,
                        "not a regular file")
    empty = tmp_path / "empty.elf"
    empty.write_bytes(b"")
    cfg = daemon.write_cfg(daemon.cfg_text("mk", kernel=str(empty)))
    assert_xl_error(daemon.xl("create", cfg, check=False), 8, str(empty))


def test_missing_config_file_exits_66(daemon, tmp_path):
    path = str(tmp_path / "nope.cfg")
    r = daemon.xl("create", path, check=False)
    assert_xl_error(r, 66, f"cannot read {path}", "No such file")
    r = daemon.xl("create", str(tmp_path), check=False)   # a directory
    assert r.returncode == 66, r.err
    assert daemon.domains() == {}


@pytest.mark.parametrize("key", ["kernel", "ramdisk"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_kernel_or_ramdisk_that_is_no_file_does_not_block(daemon, tmp_path,
                                                          key, kind):
    """The daemon reads kernel= and ramdisk= on its control thread: a FIFO
    there must be refused, not waited on, while other clients are
    served."""
    path = str(tmp_path / "fifo") if kind == "fifo" else "/dev/zero"
    if kind == "fifo":
        os.mkfifo(path)
    config = {"name": "nofile", "kernel": guest_path("counter")}
    config[key] = path
    reply, answered = request_and_probe(
        daemon, "create", {"config": config},
        unblock=lambda: unblock_fifo(path))
    assert answered, f"the daemon served no other client while opening " \
        f"{key} {path}"
    assert not reply["ok"] and reply["error"]["code"] == 8, reply
    assert f"{path}: not a regular file" in reply["error"]["message"], reply
    assert daemon.domains() == {}


def test_config_that_is_a_fifo_is_refused(daemon, tmp_path):
    """xl reads the config: a FIFO would block it until someone writes;
    it is refused as unreadable (66) without waiting (the timeout is a
    hang guard)."""
    fifo = str(tmp_path / "guest.cfg")
    os.mkfifo(fifo)
    try:
        r = daemon.xl("create", fifo, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"xl create blocked on the FIFO {fifo}")
    finally:
        unblock_fifo(fifo)
    assert_xl_error(r, 66, f"cannot read {fifo}: not a regular file")
    for dev in ("/dev/zero", "/dev/null"):
        assert_xl_error(daemon.xl("create", dev, check=False, timeout=30),
                        66, f"cannot read {dev}: not a regular file")
    assert daemon.domains() == {}


def test_daemon_not_running_exits_69(tmp_path):
    d = Daemon(str(tmp_path))       # never started: no socket
    for args in (["list"], ["info"], ["destroy", "x"], ["console", "x"],
                 ["version"], ["dmesg"]):
        r = d.xl(*args, check=False)
        assert r.returncode == 69, (args, r.returncode, r.err)
        assert "cannot connect to" in r.err and d.sock in r.err
    # A socket file nobody listens on.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(d.sock)
    s.close()
    r = d.xl("list", check=False)
    assert r.returncode == 69, r.err
    assert "Connection refused" in r.err
    # --socket overrides $XL_SOCKET.
    env = dict(os.environ, XL_SOCKET="/nonexistent/sock")
    r = subprocess.run([XL, "--socket", d.sock + ".none", "list"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 69 and d.sock + ".none" in r.stderr


def test_usage_errors_exit_64(daemon):
    cases = [["frobnicate"], ["--bogus", "list"], ["list", "--bogus"],
             ["create"], ["create", "-Z", "x.cfg"], ["destroy"],
             ["destroy", "a", "b"], ["console"], ["pause"],
             ["version", "extra"], ["dmesg", "extra"], ["--socket"], []]
    for args in cases:
        r = daemon.xl(*args, check=False)
        assert r.returncode == 64, (args, r.returncode, r.err)
        assert r.err, args
    r = daemon.xl("frobnicate", check=False)
    assert "unknown command 'frobnicate'" in r.err
    # The daemon was never asked anything that changed it.
    assert daemon.domains() == {}


# ---------------------------------------------------------------- naming

def test_all_digit_name_is_listed_like_other_commands_see_it(daemon):
    """A name may be all digits.  With no domain of that id, every
    command that takes DOM finds the domain by that name; `xl list DOM`
    must select the same domain."""
    daemon.create("9", kernel="exit", cmdline="mode=echo")
    assert daemon.domid("9") == 1
    daemon.wait_console("9", r"ECHO READY")
    assert "ECHO READY" in daemon.xl("console", "--dump", "9").out
    daemon.xl("pause", "9")
    assert daemon.domain("9")["state"] == "paused"
    r = daemon.xl("list", "9", check=False)
    assert r.returncode == 0, f"xl list 9: {r.returncode} {r.err}"
    assert set(list_rows(daemon, "9")) == {"9"}
    daemon.xl("destroy", "9")
    assert daemon.domains() == {}


def test_a_name_equal_to_another_domains_id_is_not_a_duplicate(daemon):
    """Names are unique among names: a domain may be called "1" while
    the domain with id 1 is called something else."""
    daemon.create("first", kernel="exit", cmdline="mode=echo")
    assert daemon.domid("first") == 1
    cfg = daemon.write_cfg(daemon.cfg_text("1", kernel="exit",
                                           cmdline="mode=echo"))
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 0, \
        f"create name '1' (no domain has that name): {r.returncode} {r.err}"
    assert set(daemon.domains()) == {"first", "1"}


# ---------------------------------------------------------------- bytes

def test_console_bytes_survive_dump_and_attach(daemon):
    """Every byte value the guest writes comes out of `xl console` and
    `xl console --dump` unchanged (the API carries them as latin1)."""
    daemon.create("bytes", kernel="exit", cmdline="mode=echo")
    daemon.wait_console("bytes", r"ECHO READY")
    con = daemon.xl_popen("console", "bytes")
    payload = b"caf\xe9 \x01\x7f\x80\xff \x00nul"
    con.wait_output(r"ECHO READY")
    con.send(payload + b"\r")
    con.wait_output(r"ECHO LINE: caf")
    rc = con.stop()
    assert rc == 0
    want = b"ECHO READY\r\n" + payload + b"\r\nECHO LINE: caf\xe9 \x01\x7f" \
        b"\x80\xff \r\n"
    dump = subprocess.run([XL, "console", "--dump", "bytes"],
                          env=dict(os.environ, XL_SOCKET=daemon.sock),
                          capture_output=True, timeout=30).stdout
    assert dump == want
    assert bytes(con._out).startswith(want)
    data, total = daemon.console_read("bytes")
    assert data == want and total == len(want)


def test_two_consoles_on_one_domain(daemon):
    daemon.create("two", kernel="exit", cmdline="mode=echo")
    daemon.wait_console("two", r"ECHO READY")
    a = daemon.xl_popen("console", "two")
    b = daemon.xl_popen("console", "-n", "two")
    try:
        a.wait_output(r"ECHO READY")
        time.sleep(0.3)      # b has no history to show: let it attach
        a.send(b"from a\r")
        b.wait_output(r"ECHO LINE: from a")
        b.send(b"from b\r")
        a.wait_output(r"ECHO LINE: from b")
        a.wait_output(r"ECHO LINE: from a")
    finally:
        a.stop()
        b.stop()
    assert "ECHO READY" not in b.out


def test_console_paste_is_not_lost(daemon):
    """Text pasted into `xl console` faster than the guest reads it is
    queued, not dropped: 8 KB of lines, all echoed, in order."""
    daemon.create("paste", kernel="exit", cmdline="mode=echo")
    daemon.wait_console("paste", r"ECHO READY")
    con = daemon.xl_popen("console", "paste")
    n = 200
    paste = b"".join(b"line-%04d-%s\r" % (i, b"x" * 30) for i in range(n))
    assert len(paste) == 8200
    try:
        con.wait_output(r"ECHO READY")
        con.send(paste)
        # Wait for the whole last line (its start may come in an earlier
        # chunk than its end), or until the guest has gone quiet.
        last, quiet_since = "", time.monotonic()
        end = re.compile(rf"ECHO LINE: line-{n - 1:04d}-x{{30}}\r\n")
        while not end.search(con.out):
            if con.out != last:
                last, quiet_since = con.out, time.monotonic()
            elif time.monotonic() - quiet_since > 20:
                break           # a guard only: a loaded 2-core host stalls
            time.sleep(0.1)
    finally:
        con.stop()
    got = [int(x) for x in re.findall(r"ECHO LINE: line-(\d{4})-x{30}\r\n",
                                      con.out)]
    assert got == list(range(n)), \
        f"{len(got)} of {n} pasted lines reached the guest " \
        f"(last: {got[-1:]})"


def test_console_history_keeps_the_newest_bytes(daemon):
    """Once the guest wrote more than the history holds, console-read and
    --dump give exactly the newest CONSOLE_HISTORY_KIB."""
    size = build_config_int("CONSOLE_HISTORY_KIB", 64) * 1024
    daemon.create("chatty", cmdline="interval=1")
    wait_until(lambda: daemon.console_read("chatty")[1] > size + 4096,
               120, "console history wrapping")
    data, total = daemon.console_read("chatty")
    assert len(data) == size and total > size
    assert b"COUNTER READY" not in data       # the oldest bytes are gone
    dump = daemon.xl("console", "--dump", "chatty").stdout
    assert len(dump) == size
    assert b"COUNTER READY" not in dump
    # What console-read returned is the newest part: the guest is still
    # writing status lines after it.
    assert re.search(rb"COUNTER counter=\d+ [^\n]*errors=0[^\n]*\r\n"
                     rb"[^\n]*$", data), data[-300:]


def test_memory_above_the_pci_hole(daemon):
    """4 GiB: RAM below 3 GiB and the rest above 4 GiB; the guest's
    multiboot info reports the low part."""
    daemon.create("big", kernel="exit", memory=4096, cmdline="mode=cpuinfo",
                  extra='on_poweroff = "preserve"\non_crash = "preserve"\n')
    m = daemon.wait_console("big", r"CPUINFO mem_upper_kib=(\d+) ")
    assert int(m.group(1)) == 3 * 1024 * 1024 - 1024
    assert daemon.domain("big")["memory_mib"] == 4096


def test_console_on_a_terminal_detaches_with_ctrl_bracket(daemon):
    """With a terminal on stdin: raw mode (keys go to the guest as
    typed), Ctrl-] detaches with exit 0 and the terminal is restored."""
    daemon.create("tty", kernel="exit", cmdline="mode=echo")
    daemon.wait_console("tty", r"ECHO READY")
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([XL, "console", "tty"], stdin=slave, stdout=slave,
                         stderr=subprocess.PIPE,
                         env=dict(os.environ, XL_SOCKET=daemon.sock))
    out = b""
    try:
        def read_until(needle):
            nonlocal out
            deadline = time.monotonic() + 20
            while needle not in out and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    out += os.read(master, 4096)
            assert needle in out, out
        read_until(b"ECHO READY")
        # Raw mode: CR is not turned into LF, nothing is echoed locally.
        os.write(master, b"typed\r")
        read_until(b"ECHO LINE: typed")
        os.write(master, b"\x1d")
        assert p.wait(timeout=20) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    assert termios.tcgetattr(slave) == before
    assert out.count(b"typed") == 2          # the guest's echo and line
    os.close(master)
    os.close(slave)
    assert daemon.domain("tty")["state"] == "running"
