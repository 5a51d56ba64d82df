"""The control socket (docs/control-api.md): framing, error codes, ids,
pipelining, oversized lines, many clients, slow and vanishing clients.
Every test keeps a counter guest running and checks it still counts."""
import json
import os
import resource
import socket
import stat
import threading
import time

import pytest

from harness import (Api, ApiError, ConsoleStream, guest_path, scaled,
                     unix_connect, wait_until)

LINE_MAX = 1 << 20
# xen/control.c: the bounds over all clients (docs/control-api.md).
CLIENTS_MAX = 256
IN_TOTAL_MAX = 32 << 20
PARTIAL_IDLE_S = 30


@pytest.fixture
def witness(daemon):
    w = daemon.start_counter("witness")
    yield w
    w.close()


def still_fine(daemon, witness):
    assert daemon.alive(), daemon.read_file("xen.stderr")
    assert [d["name"] for d in daemon.call("list")["domains"]][0] == \
        "witness"
    witness.assert_counting()


def raw(daemon, timeout=30):
    return unix_connect(daemon.sock, timeout)


def read_lines(sock, n):
    """Read exactly n reply lines (parsed) from a raw socket."""
    buf = b""
    out = []
    while len(out) < n:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} replies")
        buf += chunk
        while b"\n" in buf and len(out) < n:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
    assert buf == b"", f"unexpected bytes after {n} replies: {buf[:200]!r}"
    return out


def read_until_closed(sock, timeout=30):
    """Everything until EOF (a reset after the data counts as EOF); fails
    if the daemon keeps the connection open for `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError(f"the daemon did not close the connection"
                                 f" in {timeout}s; it sent {len(data)} "
                                 f"bytes: {data[:300]!r}") from None
        if not chunk:
            return data
        data += chunk


def assert_error(reply, code, name):
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["name"] == name, reply
    assert isinstance(reply["error"]["message"], str)
    assert reply["error"]["message"], reply
    assert "result" not in reply
    return reply["error"]["message"]


# ------------------------------------------------------------ basics

def test_socket_mode_is_0600(daemon):
    st = os.stat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


GARBAGE = [
    ("text", b"hello daemon\n"),
    ("binary", bytes(range(1, 10)) + b"\xff\xfe\x80\x00\x7f garbage\n"),
    ("array", b'[{"command": "list"}]\n'),
    ("string", b'"list"\n'),
    ("number", b"42\n"),
    ("empty-object", b"{}\n"),
    ("command-not-string", b'{"command": 5}\n'),
    ("command-null", b'{"command": null, "id": 3}\n'),
    ("truncated-json", b'{"command": "list"\n'),
    ("invalid-utf8", b'{"command": "li\xffst"}\n'),
    # The parser's message quotes these bytes: the reply must still be
    # JSON with an error object (tests/fuzz/regressions/control/).
    ("raw-bytes-in-message", b'{"comma\\\xdc\x80K\xf2U\x00\x00nd":7}\n'),
    ("duplicate-keys", b'{"command": "list", "command": "version"}\n'),
]


@pytest.mark.parametrize("line", [g[1] for g in GARBAGE],
                         ids=[g[0] for g in GARBAGE])
def test_garbage_gets_error_1_and_the_connection_lives(daemon, witness,
                                                       line):
    a = daemon.api()
    a.send_line(line)
    r = a.read_reply()
    assert_error(r, 1, "bad-request")
    assert r["version"] == 1
    # The same connection still answers, several times.
    for i in range(3):
        assert a.call("list")["domains"][0]["name"] == "witness"
    a.send_line(line)
    assert_error(a.read_reply(), 1, "bad-request")
    assert a.call("version")["protocol"] == 1
    a.close()
    still_fine(daemon, witness)


def test_empty_lines_are_skipped(daemon):
    a = daemon.api()
    a.send_line(b"\n\n\n")
    assert a.call("version")["protocol"] == 1
    a.close()


def test_unknown_command_gets_2(daemon):
    a = daemon.api()
    a.send_line(b'{"command": "frobnicate-the-domain", "id": "u"}\n')
    r = a.read_reply()
    msg = assert_error(r, 2, "unknown-command")
    assert "frobnicate-the-domain" in msg
    assert r["id"] == "u"
    assert a.call("list") == {"domains": []}
    a.close()


def test_newer_version_gets_10(daemon):
    a = daemon.api()
    a.send_line(b'{"version": 99, "id": 5, "command": "list"}\n')
    r = a.read_reply()
    msg = assert_error(r, 10, "version-unsupported")
    assert "99" in msg
    assert r["id"] == 5
    # An unknown command in a newer version is still refused as 10.
    a.send_line(b'{"version": 2, "command": "future-command"}\n')
    assert_error(a.read_reply(), 10, "version-unsupported")
    # Version 1, explicit or implied, works on the same connection.
    a.send_line(b'{"version": 1, "command": "version"}\n')
    r = a.read_reply()
    assert r["ok"] and r["result"]["protocol_max"] == 1
    a.send_line(b'{"command": "version"}\n')
    assert a.read_reply()["ok"]
    a.close()


def test_unknown_fields_are_ignored(daemon, witness):
    a = daemon.api()
    a.send_line(json.dumps({
        "version": 1, "id": 1, "command": "list", "trace": True,
        "priority": "high", "args": {"filter": "x", "limit": 3}}) + "\n")
    r = a.read_reply()
    assert r["ok"], r
    assert [d["name"] for d in r["result"]["domains"]] == ["witness"]
    # In a command's args and in the domain config as well.
    a.send_line(json.dumps({
        "id": 2, "command": "create", "shiny": [1],
        "args": {"paused": True, "dry": "no",
                 "config": {"name": "extra", "memory": 32,
                            "kernel": guest_path("exit"),
                            "cmdline": "mode=echo", "gpu": "yes",
                            "numa": {"nodes": 2}}}}) + "\n")
    r = a.read_reply()
    assert r["ok"], r
    assert r["result"]["name"] == "extra"
    a.send_line(json.dumps({"id": 3, "command": "unpause",
                            "args": {"domain": "extra", "force": 1}}) +
                "\n")
    assert a.read_reply()["ok"]
    daemon.wait_console("extra", r"ECHO READY")
    a.close()
    still_fine(daemon, witness)


@pytest.mark.parametrize("rid", [7, "seven", [1, "two", None],
                                 {"nested": {"id": 1}}, None, 1.5, True,
                                 -3, 2 ** 40, ""])
def test_id_is_echoed(daemon, rid):
    a = daemon.api()
    for command in ("version", "no-such-command"):
        a.send_line(json.dumps({"id": rid, "command": command}) + "\n")
        r = a.read_reply()
        assert r["id"] == rid, r
        assert r["ok"] is (command == "version")
    a.send_line(json.dumps({"id": rid, "command": "destroy",
                            "args": {"domain": "ghost"}}) + "\n")
    r = a.read_reply()
    assert_error(r, 4, "no-such-domain")
    assert r["id"] == rid
    a.close()


def test_missing_id_answers_null(daemon):
    a = daemon.api()
    a.send_line(b'{"command": "version"}\n')
    r = a.read_reply()
    assert "id" in r and r["id"] is None
    a.close()


def test_bad_arguments_get_3(daemon):
    a = daemon.api()
    for req in ({"command": "list", "args": [1, 2]},
                {"command": "destroy", "args": {}},
                {"command": "destroy", "args": {"domain": [1]}},
                {"command": "create", "args": {}},
                {"command": "create", "args": {"config": {"name": "x"}}},
                {"command": "create", "args": {"config": {
                    "name": "x", "kernel": "relative/path"}}},
                {"command": "create", "args": {"config": {
                    "name": "x", "kernel": "/k", "memory": "lots"}}}):
        a.send_line(json.dumps(req) + "\n")
        assert_error(a.read_reply(), 3, "invalid-argument")
    assert a.call("list") == {"domains": []}
    a.close()


def test_domain_by_id_as_number_or_string(daemon, witness):
    domid = daemon.domid("witness")
    for dom in (domid, str(domid), "witness"):
        r = daemon.call("console-read", domain=dom)
        assert "COUNTER READY" in r["data"]
    with pytest.raises(ApiError) as e:
        daemon.call("console-read", domain=domid + 100)
    assert e.value.code == 4


# ------------------------------------------------------------ framing

def test_pipelined_requests_are_answered_in_order(daemon, witness):
    s = raw(daemon)
    reqs = []
    for i in range(50):
        cmd = ("version", "list", "info", "nope", "console-read")[i % 5]
        req = {"id": i, "command": cmd}
        if cmd == "console-read":
            req["args"] = {"domain": "witness"}
        reqs.append(json.dumps(req))
    reqs.insert(25, "not json at all")
    s.sendall(("\n".join(reqs) + "\n").encode())
    replies = read_lines(s, len(reqs))
    ids = [r["id"] for r in replies]
    assert ids == list(range(25)) + [None] + list(range(25, 50))
    for r in replies:
        if r["id"] is None:
            assert_error(r, 1, "bad-request")
        elif r["id"] % 5 == 3:
            assert_error(r, 2, "unknown-command")
        else:
            assert r["ok"], r
    assert "domains" in replies[1]["result"]
    assert "COUNTER READY" in replies[4]["result"]["data"]
    s.close()
    still_fine(daemon, witness)


def test_request_split_into_single_bytes(daemon):
    s = raw(daemon)
    line = b'{"id": "slow", "command": "version"}\n'
    for i in range(len(line)):
        s.sendall(line[i:i + 1])
        if i % 8 == 0:
            time.sleep(0.005)
    r = read_lines(s, 1)[0]
    assert r["id"] == "slow" and r["ok"]
    s.close()


def test_crlf_and_blanks_around_requests(daemon):
    s = raw(daemon)
    s.sendall(b'  {"id": 1, "command": "version"}  \r\n'
              b'\t{"id": 2, "command": "list"}\n')
    r = read_lines(s, 2)
    assert [x["id"] for x in r] == [1, 2] and all(x["ok"] for x in r)
    s.close()


def test_large_request_under_the_limit_is_served(daemon):
    s = raw(daemon)
    pad = "x" * (LINE_MAX - 4096)
    s.sendall(json.dumps({"id": "big", "command": "version",
                          "pad": pad}).encode() + b"\n")
    r = read_lines(s, 1)[0]
    assert r["ok"] and r["id"] == "big"
    s.sendall(b'{"id": 2, "command": "list"}\n')
    assert read_lines(s, 1)[0]["ok"]
    s.close()


def _send_ignoring_close(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_oversized_line_is_refused_and_the_connection_closed(daemon,
                                                             witness):
    s = raw(daemon)
    t = threading.Thread(target=_send_ignoring_close,
                         args=(s, b"x" * (2 * LINE_MAX)), daemon=True)
    t.start()
    data = read_until_closed(s)
    t.join(30)
    lines = data.split(b"\n")
    assert len(lines) == 2 and lines[1] == b"", data[:500]
    r = json.loads(lines[0])
    msg = assert_error(r, 1, "bad-request")
    assert "too long" in msg
    s.close()
    # Everyone else is served.
    assert daemon.call("version")["protocol"] == 1
    still_fine(daemon, witness)


def test_line_just_over_the_limit_is_refused(daemon, witness):
    """A valid request of 1 MiB + 100 bytes: over the documented limit,
    so refused with an error and the connection closed, even when its
    end arrives together with its newline."""
    s = raw(daemon)
    line = json.dumps({"id": "over", "command": "version",
                       "pad": "x" * LINE_MAX}).encode() + b"\n"
    assert LINE_MAX < len(line) < LINE_MAX + 200
    head = LINE_MAX - 100
    s.sendall(line[:head])
    time.sleep(0.5)            # let the daemon take in the first part
    _send_ignoring_close(s, line[head:])
    r = read_lines(s, 1)[0]
    assert r["ok"] is False, \
        f"a {len(line)}-byte request line was served: {r}"
    assert "too long" in r["error"]["message"]
    assert read_until_closed(s, timeout=10) == b""
    still_fine(daemon, witness)


# ------------------------------------------------------------ many clients

def test_twenty_concurrent_clients(daemon, witness):
    errors = []
    n_clients, n_requests = 20, 25

    def client(i):
        try:
            a = Api(daemon.sock)
            for j in range(n_requests):
                kind = (i + j) % 4
                if kind == 0:
                    assert a.call("version")["protocol"] == 1
                elif kind == 1:
                    names = [d["name"] for d in a.call("list")["domains"]]
                    assert "witness" in names
                elif kind == 2:
                    assert a.call("info")["pid"] == daemon.proc.pid
                else:
                    data = a.call("console-read", domain="witness")["data"]
                    assert "COUNTER READY" in data
            if i % 5 == 0:    # a few create and destroy domains too
                name = f"t{i}"
                a.call("create", paused=True, config={
                    "name": name, "memory": 32,
                    "kernel": guest_path("exit"), "cmdline": "mode=echo"})
                a.call("unpause", domain=name)
                a.call("destroy", domain=name)
            a.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,))
               for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients hung"
    assert errors == []
    assert set(daemon.domains()) == {"witness"}
    still_fine(daemon, witness)


def test_many_idle_connections(daemon, witness):
    socks = [raw(daemon) for _ in range(100)]
    assert daemon.call("version")["protocol"] == 1
    for s in socks[::2]:
        s.close()
    s = socks[1]
    s.sendall(b'{"id": 1, "command": "list"}\n')
    assert read_lines(s, 1)[0]["ok"]
    for s in socks[1::2]:
        s.close()
    still_fine(daemon, witness)


def test_stalled_and_non_reading_clients_block_no_one(daemon, witness):
    # A guest that prints as fast as it can.
    daemon.create("chatty", cmdline="interval=1")
    daemon.wait_status_lines("chatty", 5)
    # A: half a request line, then nothing.
    stalled = raw(daemon)
    stalled.sendall(b'{"id": "late", "comm')
    # B: attached to chatty's console, never reads; a tiny receive
    # buffer so its socket is full quickly.
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    b.connect(daemon.sock)
    b.sendall(b'{"command": "console", "args": {"domain": "chatty"}}\n')
    # C: keeps being served while the guest keeps printing.
    c = daemon.api()
    start = daemon.console_mark("chatty")
    for _ in range(30):
        names = [d["name"] for d in c.call("list")["domains"]]
        assert names == ["witness", "chatty"]
        time.sleep(0.05)
    # The chatty guest printed a lot meanwhile (B holds it all up in
    # the daemon, not the guest).
    daemon.wait_console_since("chatty", r"(COUNTER counter=.*\n){20}",
                              start)
    # A finishes its line and is answered.
    stalled.sendall(b'and": "version"}\n')
    r = read_lines(stalled, 1)[0]
    assert r["id"] == "late" and r["ok"]
    # B finally reads: its stream starts with the reply, then the
    # console from the start of the history.
    b.settimeout(10)
    got = b""
    while b"\n" not in got:
        got += b.recv(4096)
    assert json.loads(got.split(b"\n", 1)[0])["ok"]
    b.close()
    stalled.close()
    c.close()
    daemon.xl("destroy", "chatty")
    still_fine(daemon, witness)


def test_clients_that_vanish_mid_request(daemon, witness):
    # Half a request, then gone.
    s = raw(daemon)
    s.sendall(b'{"id": 1, "command": "li')
    s.close()
    # A whole request, gone before the answer.
    for _ in range(20):
        s = raw(daemon)
        s.sendall(b'{"command": "console-read", "args": '
                  b'{"domain": "witness"}}\n' * 5)
        s.close()
    # A console client, gone.
    con = ConsoleStream(daemon.sock, "witness")
    con.wait(r"COUNTER READY")
    con.close()
    # A reset instead of a close (SO_LINGER 0).
    s = raw(daemon)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.sendall(b'{"command": "info"}\n{"command": "lis')
    s.close()
    assert daemon.call("version")["protocol"] == 1
    still_fine(daemon, witness)


def daemon_sockets(daemon):
    """How many sockets the daemon has open (listener and clients)."""
    n = 0
    fd_dir = f"/proc/{daemon.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def test_half_closed_client_gets_every_reply(daemon, witness):
    """A client may send its requests, shut down its sending side (as
    `socat` and `nc -N` do at the end of their input) and then read: each
    request is still answered, in order."""
    idle = daemon_sockets(daemon)
    s = raw(daemon)
    n = 2000
    s.sendall(b"".join(b'{"id": %d, "command": "info"}\n' % i
                       for i in range(n)))
    s.shutdown(socket.SHUT_WR)
    # Far more reply bytes than a socket buffer holds are now waiting in
    # the daemon.  Give it time to see the end of our input: it either
    # keeps the connection until we have read everything, or drops it.
    deadline = time.monotonic() + 3
    while daemon_sockets(daemon) > idle and time.monotonic() < deadline:
        time.sleep(0.05)
    data = read_until_closed(s)
    lines = data.split(b"\n")
    assert len(lines) - 1 == n and lines[-1] == b"", \
        f"{len(lines) - 1} of {n} replies before the daemon hung up " \
        f"({len(lines[-1])} bytes of a cut reply after them)"
    replies = [json.loads(x) for x in lines[:-1]]
    assert [r["id"] for r in replies] == list(range(n))
    assert all(r["ok"] for r in replies)
    still_fine(daemon, witness)


# ------------------------------------------------------------ limits

def _proc_status(daemon, key):
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _asan(daemon):
    with open(f"/proc/{daemon.proc.pid}/maps") as f:
        return "libasan" in f.read()


def _cpu_s(daemon):
    with open(f"/proc/{daemon.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ask_version(s, timeout=10):
    """Send `version` and read one line: the reply, or the error the
    daemon sent when it refused the connection (then it hangs up).
    `timeout` is a hang guard."""
    s.settimeout(scaled(timeout))
    try:
        s.sendall(b'{"id": "v", "command": "version"}\n')
    except (BrokenPipeError, ConnectionResetError):
        pass                    # refused and closed: its line is queued
    buf = b""
    try:
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        return None
    return json.loads(buf.split(b"\n", 1)[0]) if b"\n" in buf else None


def _served_now(daemon):
    s = raw(daemon)
    try:
        r = _ask_version(s)
        return r is not None and r["ok"]
    finally:
        s.close()


def test_connections_beyond_the_limit_get_an_error(daemon):
    """At most CLIENTS_MAX connections at once: the next one is told so
    (no-resources, 7) and closed; once one goes, a new one is served."""
    held, refused = [], []
    try:
        for _ in range(CLIENTS_MAX + 4):
            s = raw(daemon)
            r = _ask_version(s)
            assert r is not None, "a connection got no answer"
            if r["ok"]:
                assert not refused, "served after one was refused"
                held.append(s)
            else:
                assert r["error"]["code"] == 7, r
                assert "too many connections" in r["error"]["message"], r
                assert r["id"] is None
                assert read_until_closed(s, 10) == b""
                refused.append(s)
        assert CLIENTS_MAX - 2 <= len(held) <= CLIENTS_MAX, len(held)
        assert len(refused) == CLIENTS_MAX + 4 - len(held)
        held.pop().close()
        wait_until(lambda: _served_now(daemon), 20,
                   "a connection served again")
    finally:
        for s in held + refused:
            s.close()
    wait_until(lambda: _served_now(daemon), 20, "the daemon serving")


def test_buffered_input_is_bounded_over_all_clients(daemon):
    """Many clients each holding an almost full request line: what the
    daemon buffers stays within IN_TOTAL_MAX (plus a small buffer per
    client); those beyond get no-resources (7) and are closed, the others
    finish their line and are answered."""
    n = 96
    head = b'{"id": "big", "command": "version", "pad": "'
    line = head + b"x" * (LINE_MAX - len(head) - 64)
    anon0 = _proc_status(daemon, "RssAnon")
    socks = []
    try:
        for _ in range(n):
            s = raw(daemon)
            socks.append(s)
            try:
                s.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                pass            # refused before it sent everything
        assert daemon.call("version")["protocol"] == 1
        grown = (_proc_status(daemon, "RssAnon") - anon0) << 10
        # (ASan keeps what is freed in quarantine: no bound on its RSS.)
        assert grown < IN_TOTAL_MAX + (16 << 20) or _asan(daemon), \
            f"the daemon grew by {grown >> 20} MiB for {n} partial lines"
        held = refused = 0
        for s in socks:
            try:
                s.sendall(b'"}\n')
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.settimeout(scaled(30))
            r = _ask_line(s)
            if r["ok"]:
                assert r["id"] == "big", r
                held += 1
            else:
                assert r["error"]["code"] == 7, r
                assert "unfinished request input" in \
                    r["error"]["message"], r
                refused += 1
        assert refused and held, (held, refused)
        assert held * LINE_MAX <= IN_TOTAL_MAX, held
    finally:
        for s in socks:
            s.close()
    assert daemon.call("version")["protocol"] == 1


def _ask_line(s):
    buf = b""
    while b"\n" not in buf:
        try:
            chunk = s.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    assert b"\n" in buf, f"no reply line: {buf[:200]!r}"
    return json.loads(buf.split(b"\n", 1)[0])


def test_unfinished_line_left_idle_is_dropped(daemon):
    """A client that sends half a request line and then nothing is told
    so (bad-request, 1) and closed after PARTIAL_IDLE_S seconds; a client
    that sent nothing stays connected."""
    quiet = raw(daemon)
    s = raw(daemon)
    s.sendall(b'{"id": 1, "command": "li')
    data = read_until_closed(s, scaled(PARTIAL_IDLE_S + 60))
    r = json.loads(data.split(b"\n", 1)[0])
    assert_error(r, 1, "bad-request")
    assert "unfinished" in r["error"]["message"], r
    assert _ask_version(quiet)["ok"]
    quiet.close()
    s.close()


def test_out_of_file_descriptors_is_logged_once_and_recovers(daemon):
    """With its RLIMIT_NOFILE reached the daemon neither spins nor leaves
    clients waiting: it says so once in its log, tells each connection it
    cannot serve (no-resources, 7), and serves again once fds are free."""
    pid = daemon.proc.pid
    spare = 6
    nfds = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + spare,
                                                    nfds + spare))
    socks, served, refused = [], 0, 0
    try:
        for _ in range(spare + 6):
            s = raw(daemon)
            socks.append(s)
            r = _ask_version(s)
            assert r is not None, "a connection was left waiting"
            if r["ok"]:
                served += 1
            else:
                assert r["error"]["code"] == 7, r
                assert "file descriptors" in r["error"]["message"], r
                refused += 1
        # One fd either way: what the daemon holds at the count can differ
        # by one from what it holds when the limit bites.
        assert served and refused >= 5 and served + refused == spare + 6, \
            (served, refused)
        cpu0 = _cpu_s(daemon)
        time.sleep(2)
        assert _cpu_s(daemon) - cpu0 < 1.0, "the daemon spins"
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: _served_now(daemon), 20, "the daemon serving again")
    log = daemon.log()
    assert log.count("cannot accept connections") == 1, log
    assert "accepting connections again" in log, log


# ------------------------------------------------------------ console

def test_console_input_sent_with_the_request(daemon):
    """Bytes after the `console` request line, in the same send, are
    already console input."""
    daemon.create("echo", kernel="exit", cmdline="mode=echo")
    daemon.wait_console("echo", r"ECHO READY")
    s = raw(daemon)
    s.sendall(b'{"id": 9, "command": "console", "args": {"domain": '
              b'"echo", "history": false}}\nsame send\r')
    data = b""
    while b"ECHO LINE: same send" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    first, rest = data.split(b"\n", 1)
    assert json.loads(first) == {"version": 1, "id": 9, "ok": True,
                                 "result": {}}
    assert b"ECHO READY" not in rest       # history: false
    s.sendall(b"later\r")
    while b"ECHO LINE: later" not in data:
        chunk = s.recv(4096)
        assert chunk
        data += chunk
    daemon.xl("destroy", "echo")
    assert read_until_closed(s, 10) is not None
    s.close()


def test_console_of_unknown_domain_keeps_the_connection(daemon):
    a = daemon.api()
    a.send_line(b'{"command": "console", "args": {"domain": "ghost"}}\n')
    assert_error(a.read_reply(), 4, "no-such-domain")
    assert a.call("version")["protocol"] == 1
    a.close()


def test_json_integer_domain_is_always_the_id(daemon):
    """`domain` as a JSON integer is a domain id (docs/control-api.md),
    even when some other domain's name is those digits."""
    daemon.create("2", kernel="exit", cmdline="mode=echo")      # id 1
    daemon.create("b", kernel="exit", cmdline="mode=echo")      # id 2
    ids = {n: d["id"] for n, d in daemon.domains().items()}
    assert ids == {"2": 1, "b": 2}
    daemon.wait_console("b", r"ECHO READY")
    assert "ECHO READY" in daemon.call("console-read", domain=2)["data"]
    daemon.call("pause", domain=2)
    states = {n: d["state"] for n, d in daemon.domains().items()}
    assert states == {"2": "running", "b": "paused"}, \
        f"pause of domain id 2 paused {states}"
    daemon.call("destroy", domain=2)
    assert set(daemon.domains()) == {"2"}, \
        f"destroy of domain id 2 left {sorted(daemon.domains())}"


def test_arguments_of_the_wrong_type_get_3(daemon):
    """docs: error 3 is an argument "missing, of the wrong type or out of
    range" -- a boolean given as a string is not silently read as false
    (a client asking for a paused domain must not get a running one)."""
    a = daemon.api()
    config = {"name": "typed", "memory": 32, "kernel": guest_path("exit"),
              "cmdline": "mode=echo"}
    a.send_line(json.dumps({"id": 1, "command": "create",
                            "args": {"config": config,
                                     "paused": "yes"}}) + "\n")
    r = a.read_reply()
    domains = {d["name"]: d["state"] for d in a.call("list")["domains"]}
    assert not r["ok"], f"create with paused='yes' answered {r}; " \
                        f"domains now {domains}"
    assert_error(r, 3, "invalid-argument")
    assert domains == {}
    a.send_line(json.dumps({"id": 2, "command": "dmesg",
                            "args": {"clear": "yes"}}) + "\n")
    assert_error(a.read_reply(), 3, "invalid-argument")
    a.close()
