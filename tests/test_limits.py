"""Bounded everything (docs/control-api.md and README.md, "Limits"): a
guest crashing in a loop, clients that hold a connection and do nothing,
a guest flooding the daemon's log."""
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
