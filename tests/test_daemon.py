"""The daemon's command line: usage errors, a second daemon on a busy
socket, daemonizing (pid file, default log), signals, and what happens
to running domains when the daemon stops."""
import json
import os
import signal
import socket
import stat
import subprocess

import pytest

from harness import (XEN, XL, Daemon, StatusReader, guest_path, require_kvm,
                     require_binaries, run_xen, wait_until, xl_env)


@pytest.fixture
def kvm():
    require_binaries()
    require_kvm()


def pid_alive(pid):
    """Running (a zombie nobody reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def xl(sock, *args, check=True):
    r = subprocess.run([XL] + list(args), env=xl_env(sock),
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"xl {args}: {r.returncode} {r.stderr}"
    return r


def write_cfg(path, name, **kw):
    cmdline = kw.get("cmdline", "interval=200")
    kernel = guest_path(kw.get("kernel", "counter"))
    with open(path, "w") as f:
        f.write(f'name = "{name}"\nmemory = 32\nkernel = "{kernel}"\n'
                f'cmdline = "{cmdline}"\n')
    return path


# ------------------------------------------------------------ usage

@pytest.mark.parametrize("args", [
    [],
    ["--state-dir", "/tmp/never-made"],
    ["--socket", "/tmp/never-made.sock"],
    ["--socket", "/tmp/x.sock", "--state-dir", "/tmp/y", "extra"],
    ["--bogus"],
    ["--socket"],
    ["--socket", "/tmp/x.sock", "--state-dir", "/tmp/y",
     "--client-idle-timeout", "soon"],
    ["--socket", "/tmp/x.sock", "--state-dir", "/tmp/y",
     "--console-limit", "fast"],
    ["--socket", "/tmp/x.sock", "--state-dir", "/tmp/y",
     "--console-limit", "1K,0"],
    ["--socket", "/tmp/x.sock", "--state-dir", "/tmp/y",
     "--console-limit", "1K,2X"],
])
def test_usage_errors_exit_64(tmp_path, args):
    require_binaries()
    args = [a.replace("/tmp/", str(tmp_path) + "/") for a in args]
    r = run_xen(*args)
    assert r.returncode == 64, (args, r.returncode, r.stderr)
    assert "usage: xen --socket PATH --state-dir DIR" in r.stderr
    if "--console-limit" in args:
        assert ": want RATE[,BURST] in bytes" in r.stderr
    assert r.stdout == ""
    # Nothing was created.
    assert os.listdir(tmp_path) == []


def test_help_and_version():
    require_binaries()
    r = run_xen("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: xen --socket PATH")
    for opt in ("--socket", "--state-dir", "--foreground", "--log"):
        assert opt in r.stdout
    r = run_xen("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("xen 0.")


# ------------------------------------------------------------ startup

def test_second_daemon_on_the_same_socket_refuses(daemon, tmp_path):
    w = daemon.start_counter("keep")
    for fg in (["--foreground"], []):
        other = tmp_path / ("fg" if fg else "bg")
        r = run_xen("--socket", daemon.sock, "--state-dir", str(other),
                    "--log", str(other) + ".log", *fg)
        assert r.returncode == 1, r
        assert f"{daemon.sock}: another daemon is listening" in r.stderr
        assert "another daemon is listening" in \
            open(str(other) + ".log").read()
        assert not os.path.exists(other / "xen.pid")
    # The first one is untouched and still serving.
    assert stat.S_ISSOCK(os.stat(daemon.sock).st_mode)
    assert daemon.alive()
    assert set(daemon.domains()) == {"keep"}
    w.assert_counting()
    w.close()


def test_stale_socket_is_replaced(kvm, tmp_path):
    d = Daemon(str(tmp_path))
    d.start()
    d.proc.kill()                     # no chance to clean up
    d.proc.wait()
    assert os.path.exists(d.sock)
    d2 = Daemon(str(tmp_path))
    d2.start()
    try:
        assert d2.call("version")["protocol"] == 1
    finally:
        d2.stop()


def test_a_file_at_the_socket_path_is_not_deleted(kvm, tmp_path):
    """Only a stale *socket* is replaced: a regular file named by a
    mistyped --socket is left alone and the daemon refuses to start."""
    path = tmp_path / "precious"
    path.write_text("precious data\n")
    r = run_xen("--socket", str(path), "--state-dir", str(tmp_path / "st"),
                "--log", str(tmp_path / "log"), "--foreground", timeout=3)
    survived = path.exists() and not stat.S_ISSOCK(os.lstat(path).st_mode)
    assert survived and path.read_text() == "precious data\n", \
        f"the daemon replaced the regular file {path} with its socket"
    assert r.returncode == 1 and r.stderr.startswith("xen: "), r


def test_socket_is_0600_whatever_the_umask(kvm, tmp_path):
    d = Daemon(str(tmp_path))
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
    finally:
        d.stop()


def test_log_and_pid_file_modes_whatever_the_umask(kvm, tmp_path):
    """Under umask 000 the log and the pid file are not made world
    writable: 0600, as the daemon asks, whatever the umask."""
    d = Daemon(str(tmp_path))
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(d.log_path).st_mode) == 0o600
        pid = os.path.join(d.state, "xen.pid")
        assert stat.S_IMODE(os.stat(pid).st_mode) == 0o600
    finally:
        d.stop()
    # Daemonized, the default log is in the state directory.
    sock, state = str(tmp_path / "s2.sock"), tmp_path / "state2"
    old = os.umask(0)
    try:
        r = run_xen("--socket", sock, "--state-dir", str(state))
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    pid = int(open(state / "xen.pid").read())
    try:
        assert stat.S_IMODE(os.stat(state / "xen.log").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state / "xen.pid").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), 20, "daemon exit")


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o702])
def test_state_dir_writable_by_others_is_refused(kvm, tmp_path, mode):
    """A state directory others can write to (where they could plant
    xen.pid or xen.log links) is refused, and left as it is: it may be
    shared (/tmp), so the daemon does not chmod it."""
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, mode)
    sock = str(tmp_path / "s.sock")
    r = run_xen("--socket", sock, "--state-dir", str(state), "--log",
                str(tmp_path / "x.log"), "--foreground", timeout=10)
    assert r.returncode == 1, r
    assert r.stderr.startswith(f"xen: {state}: ") and \
        "writable by no one else" in r.stderr and \
        f"mode {mode:04o}" in r.stderr, r.stderr
    assert stat.S_IMODE(os.stat(state).st_mode) == mode
    assert os.listdir(state) == [] and not os.path.exists(sock)


def test_existing_private_state_dir_is_used(kvm, tmp_path):
    """A state directory that is there already, ours and writable by no
    one else (0755 included) is used as it is."""
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    d = Daemon(str(tmp_path))
    d.start()
    try:
        assert d.call("version")["protocol"] == 1
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o755
    finally:
        d.stop()


@pytest.mark.parametrize("problem", ["long-socket", "socket-dir-missing",
                                     "log-dir-missing",
                                     "state-dir-is-a-file"])
def test_startup_failures_exit_1_with_a_message(kvm, tmp_path, problem):
    sock = str(tmp_path / "s.sock")
    state = str(tmp_path / "state")
    log = str(tmp_path / "x.log")
    want = None
    if problem == "long-socket":
        sock = str(tmp_path / ("s" * 120))
        want = "socket path too long"
    elif problem == "socket-dir-missing":
        sock = str(tmp_path / "nodir" / "s.sock")
        want = "No such file or directory"
    elif problem == "log-dir-missing":
        log = str(tmp_path / "nodir" / "x.log")
        want = f"cannot open log {log}"
    else:
        (tmp_path / "afile").write_text("")
        state = str(tmp_path / "afile" / "state")
        want = "Not a directory"
    r = run_xen("--socket", sock, "--state-dir", state, "--log", log,
                "--foreground")
    assert r.returncode == 1, r
    assert r.stderr.startswith("xen: ") and want in r.stderr, r.stderr
    assert not os.path.exists(sock)


def test_foreground_without_log_logs_to_stderr(kvm, tmp_path):
    sock = str(tmp_path / "s.sock")
    p = subprocess.Popen([XEN, "--socket", sock, "--state-dir",
                          str(tmp_path / "st"), "--foreground"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: os.path.exists(sock) or p.poll() is not None,
                   20, "socket")
        write_cfg(tmp_path / "g.cfg", "fg", kernel="exit",
                  cmdline="mode=echo")
        xl(sock, "create", str(tmp_path / "g.cfg"))
        assert int(open(tmp_path / "st" / "xen.pid").read()) == p.pid
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert f"serving on {sock}, pid {p.pid}" in err
    assert "created 'fg'" in err
    assert "shutting down: destroying 1 domain(s)" in err
    assert not os.path.exists(tmp_path / "st" / "xen.log")


# ------------------------------------------------------------ daemonize

def test_daemonizes_with_pid_file_and_default_log(kvm, tmp_path):
    sock = str(tmp_path / "s.sock")
    state = tmp_path / "state"
    r = run_xen("--socket", sock, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    pid = int(open(state / "xen.pid").read())
    try:
        assert pid_alive(pid)
        assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(XEN)
        assert os.getsid(pid) == pid          # its own session
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        log = state / "xen.log"
        assert f"serving on {sock}, pid {pid}" in log.read_text()
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        info = xl(sock, "info").stdout
        assert f"daemon_pid             : {pid}" in info

        # It runs guests like a foreground daemon.
        xl(sock, "create", write_cfg(tmp_path / "a.cfg", "ga"))
        xl(sock, "create", write_cfg(tmp_path / "b.cfg", "gb"))
        lst = xl(sock, "list").stdout
        assert "ga" in lst and "gb" in lst
        domid = json.loads(xl(sock, "list", "--json", "ga").stdout)[0]["id"]
        reader = wait_until(lambda: _reader(pid, domid), 20, "memfd")
        first = wait_until(reader.counter, 20, "status block")
        wait_until(lambda: (reader.counter() or 0) > first, 20,
                   "counter moving")
        reader.close()

        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), 20, "daemon exit")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not os.path.exists(sock), "socket left behind"
    text = (state / "xen.log").read_text()
    assert "shutting down: destroying 2 domain(s)" in text
    assert "destroying 'ga'" in text and "destroying 'gb'" in text
    r = xl(sock, "list", check=False)
    assert r.returncode == 69


def _reader(pid, domid):
    try:
        return StatusReader(pid, domid)
    except FileNotFoundError:
        return None


def test_daemonized_start_failure_is_reported(kvm, tmp_path):
    """Without --foreground a failure after the fork still reaches the
    caller: exit status and message."""
    sock = str(tmp_path / "nodir" / "s.sock")
    r = run_xen("--socket", sock, "--state-dir", str(tmp_path / "st"))
    assert r.returncode == 1, r
    assert "No such file or directory" in r.stderr
    assert "startup failed" in (tmp_path / "st" / "xen.log").read_text()


# ------------------------------------------------------------ stopping

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_and_destroys_domains(daemon, sig):
    w1 = daemon.start_counter("one")
    daemon.create("two", kernel="exit", cmdline="mode=echo", paused=True)
    con = daemon.xl_popen("console", "one")
    con.wait_output(r"COUNTER READY")
    ids = {n: daemon.domid(n) for n in ("one", "two")}
    w1.close()
    daemon.stopped_by_test = True
    daemon.proc.send_signal(sig)
    assert daemon.proc.wait(timeout=20) == 0, daemon.read_file("xen.stderr")
    assert not os.path.exists(daemon.sock)
    log = daemon.log()
    assert "shutting down: destroying 2 domain(s)" in log
    for n, i in ids.items():
        assert f"d{i}: destroying '{n}'" in log
    # An attached console sees the end of its domain.
    assert con.wait_exit(20) == 0, con.err
    # No guest RAM is left anywhere: the daemon is gone with it.
    assert not pid_alive(daemon.proc.pid)


def test_stop_with_clients_connected(daemon):
    daemon.start_counter("c").close()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(daemon.sock)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(daemon.sock)
    half.sendall(b'{"command": "li')
    daemon.stopped_by_test = True
    daemon.proc.terminate()
    assert daemon.proc.wait(timeout=20) == 0
    for s in (idle, half):
        s.settimeout(10)
        try:                            # closed by the daemon: EOF, or
            assert s.recv(100) == b""   # a reset as `half` left unread
        except ConnectionResetError:    # bytes behind
            pass
        s.close()
    assert not os.path.exists(daemon.sock)


def test_restart_after_stop(kvm, tmp_path):
    """Stopped cleanly, a daemon starts again on the same socket and
    state dir and hands out fresh domains."""
    d = Daemon(str(tmp_path))
    d.start()
    d.create("x", kernel="exit", cmdline="mode=echo")
    d.stop()
    assert d.proc.returncode == 0
    d2 = Daemon(str(tmp_path))
    d2.start()
    try:
        assert d2.domains() == {}
        d2.create("x", kernel="exit", cmdline="mode=echo")
        d2.wait_console("x", r"ECHO READY")
        assert d2.domid("x") == 1
    finally:
        d2.stop()
