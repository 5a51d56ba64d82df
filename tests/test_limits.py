"""Bounded everything (docs/control-api.md and README.md, "Limits"): a
guest crashing in a loop, clients that hold a connection and do nothing,
a guest flooding the daemon's log or its console."""
import json
import time
import re
import socket

from harness import Daemon, require_binaries, require_kvm, scaled, \
    unix_connect, wait_until

CRASH_RESTART_MAX = 5           # xen/crash_restart.h
CRASH_RESTART_WINDOW_S = 60
CRASH_RESTART_DELAY_MS = 250


def test_crash_loop_is_restarted_with_backoff_then_given_up(daemon,
                                                           witness):
    """A guest that crashes at once, with on_crash = "restart": restarted
    at once the first time, then after 250, 500, 1000, 2000 ms; its 6th
    crash within 60 s is not restarted and it is kept crashed.  Every
    boot is the guest's own (it prints BAD PORT NOW, then crashes); the
    other guest keeps counting."""
    d = daemon
    d.create("crashy", kernel="exit", cmdline="mode=badport",
             extra='on_crash = "restart"\n')
    wait_until(lambda: "not restarted again" in d.log(), timeout=120,
               what="the restarts given up")
    log = d.log()
    dom = d.domid("crashy")
    waits = re.findall(rf"d{dom}: crash (\d+) within "
                       rf"{CRASH_RESTART_WINDOW_S} s: restart in (\d+) ms",
                       log)
    assert [(int(n), int(ms)) for n, ms in waits] == \
        [(n, CRASH_RESTART_DELAY_MS << (n - 2))
         for n in range(2, CRASH_RESTART_MAX + 1)], waits
    assert log.count(f"d{dom}: restarted") == CRASH_RESTART_MAX, log
    assert re.search(rf"d{dom}: crashed {CRASH_RESTART_MAX + 1} times "
                     rf"within {CRASH_RESTART_WINDOW_S} s: not restarted "
                     rf"again", log), log
    assert d.domains()["crashy"]["state"] == "crashed"
    assert d.console(dom).count("BAD PORT NOW") >= 1
    witness.assert_counting()
    d.call("destroy", domain="crashy")
    assert "crashy" not in d.domains()


def test_destroy_while_a_restart_waits(daemon):
    """A domain whose restart is put off can be destroyed meanwhile; the
    timer then finds nothing to restart."""
    d = daemon
    d.create("crashy", kernel="exit", cmdline="mode=badport",
             extra='on_crash = "restart"\n')
    dom = d.domid("crashy")
    wait_until(lambda: f"d{dom}: crash 5 within" in d.log(), timeout=60,
               what="a restart put off")
    d.call("destroy", domain=dom)
    assert "crashy" not in d.domains()
    d.create("after", kernel="counter")
    d.wait_console("after", "COUNTER READY")
    assert f"d{dom}: restarted" not in d.log().split(
        f"d{dom}: crash 5 within")[1]


def _closed_with(sock, timeout):
    """The line the daemon sends before it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\n", 1)[0]) if data else None


def test_idle_connection_is_closed_console_streams_are_not(tmp_path,
                                                          guest):
    """With --client-idle-timeout 2 a connection that sent nothing is
    told so (busy, 12) and closed, and so is one once its request was
    answered; a console stream attached at the same time stays."""
    require_binaries()
    require_kvm()
    t = max(2, int(scaled(2)))
    d = Daemon(str(tmp_path), extra_args=["--client-idle-timeout", str(t)])
    d.start()
    try:
        d.create("c", kernel="counter")
        con = unix_connect(d.sock)
        con.sendall(b'{"id": 1, "command": "console", "args": '
                    b'{"domain": "c", "history": false}}\n')
        con.settimeout(30)
        assert json.loads(con.makefile("rb").readline())["ok"]
        idle = unix_connect(d.sock)
        asked = unix_connect(d.sock)
        asked.sendall(b'{"id": 7, "command": "version"}\n')
        r = _closed_with(idle, scaled(t + 60))
        assert r and r["error"]["code"] == 12, r
        assert r["error"]["message"] == \
            f"connection idle for {t} s: closed", r
        asked.settimeout(scaled(t + 60))
        data = b""
        while data.count(b"\n") < 2:
            chunk = asked.recv(4096)
            assert chunk, data
            data += chunk
        first, r = [json.loads(x) for x in data.split(b"\n")[:2]]
        assert first["id"] == 7 and first["ok"], first
        assert r["id"] is None and r["error"]["code"] == 12, r
        assert asked.recv(4096) == b""
        # The console stream outlived both and still carries output.
        got = b""
        con.settimeout(30)
        while b"COUNTER" not in got:
            chunk = con.recv(4096)
            assert chunk, "the console stream was closed"
            got += chunk
        con.close()
        assert d.call("version")["protocol"] == 1
    finally:
        d.stop()


LOG_LIMIT_BURST = 50            # xen/log_limit.h
LOG_LIMIT_PER_S = 1
DROPPED_RX = r"d{dom}: (\d+) log lines not logged \(a guest's lines are " \
    r"limited to 50 at once, then 1 a second\)"


def test_guest_rebooting_in_a_loop_is_limited_in_the_log(daemon, witness):
    """A guest that resets itself at once, on_reboot = "restart", makes
    the daemon log a few lines per reboot, many times a second: its lines
    are limited to 50 at once then 1 a second, what is left out is
    counted; the guest keeps rebooting (its console says so), another
    guest's lines and the toolstack's are logged as before."""
    d = daemon
    t0 = time.monotonic()
    d.create("loop", kernel="exit", cmdline="mode=reboot-cf9",
             extra='on_reboot = "restart"\n')
    dom = d.domid("loop")
    rx = re.compile(DROPPED_RX.format(dom=dom))
    wait_until(lambda: sum(int(n) for n in rx.findall(d.log())) >= 200,
               timeout=120, what="200 lines left out")
    mark = d.console_mark(dom)
    d.wait_console_since(dom, "REBOOT CF9 NOW", mark=mark)
    d.create("other", kernel="counter")
    other = d.domid("other")
    d.wait_console("other", "COUNTER READY")
    d.call("destroy", domain=dom)
    elapsed = time.monotonic() - t0
    log = d.log()
    own = [ln for ln in log.splitlines()
           if re.search(rf"info: d{dom}: (guest reset|reboot ->|"
                        rf"restarted)", ln)]
    assert len(own) <= LOG_LIMIT_BURST + LOG_LIMIT_PER_S * (elapsed + 1), \
        (len(own), elapsed)
    assert f"d{other}: created 'other'" in log
    assert f"d{dom}: destroying 'loop'" in log
    witness.assert_counting()


CONSOLE_RATE, CONSOLE_BURST = 1024, 2048  # --console-limit 1K,2K natively
FLOOD_LINE = 64                 # tests/guests/exit.c, mode=flood


def _read_flood(con, timeout):
    """A console stream's bytes until FLOOD DONE's line, with the time
    each chunk arrived (monotonic)."""
    data, marks = b"", []
    con.settimeout(timeout)
    while b"FLOOD DONE" not in data or not data.endswith(b"\n"):
        chunk = con.recv(65536)
        assert chunk, data[-300:]
        data += chunk
        marks.append((time.monotonic(), len(data)))
    return data, marks


def _console_stream(d, dom):
    con = unix_connect(d.sock)
    con.sendall(b'{"id": 1, "command": "console", "args": '
                b'{"domain": "%s", "history": true}}\n' % dom.encode())
    reply = b""
    con.settimeout(30)
    while b"\n" not in reply:
        reply += con.recv(1)
    assert json.loads(reply)["ok"], reply
    return con


def test_console_flood_is_rate_limited_and_loses_nothing(tmp_path,
                                                          guest):
    """With --console-limit 1K,2K a guest writing 12800 bytes to COM1 as
    fast as it can (a tenth of each in a test host): the first 2 KiB go at once, then the transmitter is
    busy (the guest itself counts LSR polls that found THR full, and never
    had to give up waiting) and the console carries no more than 1 KiB a
    second; every line arrives, in order, nothing is dropped; another
    guest counts and the daemon answers meanwhile."""
    require_binaries()
    require_kvm()
    # In a test host (TCG) the guest writes a few hundred bytes a second:
    # rate, burst and length shrink with the time scale, so that it still
    # outruns the limit and the test still takes seconds.
    k = max(1, int(scaled(1)))
    rate, burst, lines = CONSOLE_RATE // k, CONSOLE_BURST // k, 200 // k
    d = Daemon(str(tmp_path),
               extra_args=["--console-limit", f"{rate},{burst}"])
    d.start()
    try:
        d.create("witness", kernel="counter")
        d.create("flood", kernel="exit",
                 cmdline=f"mode=flood count={lines}", paused=True)
        con = _console_stream(d, "flood")
        d.xl("unpause", "flood")
        data, marks = _read_flood(con, scaled(300))
        con.close()
        text = data.decode("latin1")
        start = text.index("FLOOD START")
        body = text[text.index("\n", start) + 1:text.index("FLOOD DONE")]
        got = body.split("\n")[:-1]
        assert len(got) == lines, (len(got), got[-3:])
        bad = [i for i, ln in enumerate(got)
               if ln != f"F{i:08d}" + "." * (FLOOD_LINE - 10)]
        assert not bad, (len(bad), bad[:3], got[bad[0]])
        done = re.search(r"FLOOD DONE lines=(\d+) busy_polls=(\d+) "
                         r"gave_up=(\d+)", text)
        assert int(done.group(2)) > 0, done.group(0)
        assert int(done.group(3)) == 0, done.group(0)
        # After the burst no faster than the rate: a bound, not a timing
        # (the test's clock can only see the bytes later than they went).
        t0, n0 = next((t, n) for t, n in marks if n >= burst)
        t1, n1 = marks[-1]
        assert n1 - n0 <= rate * (t1 - t0 + 1) + 512, (n1 - n0, t1 - t0)
        total = d.call("console-read", domain="flood")["total"]
        assert total == len(data), (total, len(data))
        assert d.call("version")["protocol"] == 1
        mark = d.console_mark("witness")
        d.wait_console_since("witness", "COUNTER", mark=mark)
    finally:
        d.stop()
