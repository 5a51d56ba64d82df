"""Who may talk to the daemon, and the audit trail of what they did
(docs/control-api.md, "Access and audit trail"): every state-changing
request is logged with the peer's uid and pid (SO_PEERCRED), queries are
not; --socket-group GROUP lets a management group in, and no one else."""
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from harness import (XEN, ApiError, Daemon, build_has, copy_image,
                     guest_path, require_binaries, require_kvm, wait_until)

AUDIT_RX = re.compile(r"audit: uid=(\d+) pid=(\d+) cmd=(\S+)(.*) "
                      r"result=(\S+)$")


def audit_lines(d):
    """(uid, pid, cmd, fields, result) of each audit line in xen.log."""
    out = []
    for ln in d.log().splitlines():
        m = AUDIT_RX.search(ln)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3),
                        m.group(4).strip(), m.group(5)))
    return out


def test_state_changing_requests_are_audited_queries_are_not(daemon,
                                                             tmp_path):
    d = daemon
    me = (os.getuid(), os.getpid())
    d.call("version")
    d.call("info")
    d.call("list")
    d.call("dmesg")
    assert audit_lines(d) == [], "queries must not be audited"

    r = d.call("create", config={"name": "aud", "memory": 32,
                                 "kernel": guest_path("counter")},
               paused=True)
    dom = r["id"]
    d.call("console-read", domain=dom)
    d.call("unpause", domain=dom)
    d.call("pause", domain=dom)
    path = str(tmp_path / "aud.sav")
    d.call("save", domain=dom, path=path)
    r = d.call("restore", path=path, name="aud2", paused=True)
    dom2 = r["id"]
    with pytest.raises(ApiError):
        d.call("destroy", domain=9999)
    d.call("destroy", domain="aud2")
    d.call("list")
    d.call("dmesg", clear=True)

    got = [(u, p, c, f, res) for u, p, c, f, res in audit_lines(d)]
    want = [
        (*me, "create", f"dom={dom}", "ok"),
        (*me, "unpause", f"dom={dom}", "ok"),
        (*me, "pause", f"dom={dom}", "ok"),
        (*me, "save", f"dom={dom} path={path}", "ok"),
        (*me, "restore", f'dom={dom2} name=aud2 path={path}', "ok"),
        (*me, "destroy", "dom=9999", "no-such-domain"),
        (*me, "destroy", 'dom=aud2', "ok"),
        (*me, "dmesg", "", "ok"),
    ]
    assert got == want, "\n".join(map(str, got))

    # From xl: the uid, and xl's own pid.
    d.xl("list")
    r = d.xl("destroy", "9998", check=False)
    assert r.returncode == 4, r.err
    last = audit_lines(d)[-1]
    assert last[0] == os.getuid() and last[1] != os.getpid() and \
        last[2:] == ("destroy", "dom=9998", "no-such-domain"), last


def test_a_name_cannot_forge_audit_fields(daemon):
    """A domain name with a space, a quote or a newline is quoted: the
    line still reads as the fields the daemon wrote."""
    d = daemon
    with pytest.raises(ApiError):
        d.call("destroy", domain='x result=ok\n(XEN) audit: uid=0 "')
    lines = [ln for ln in d.log().splitlines() if "audit:" in ln]
    assert len(lines) == 1, lines
    m = AUDIT_RX.search(lines[0])
    assert m and m.group(5) == "no-such-domain", lines
    assert m.group(4).strip() == \
        'dom="x result=ok\\n(XEN) audit: uid=0 \\""', lines


def test_live_update_is_audited_by_the_image_that_answers(daemon,
                                                         tmp_path):
    """xl live-update IMAGE: the load is audited by the old image, the
    exec by the new one (the old one does not come back from it), both
    with xl's uid and pid."""
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    d = daemon
    img = str(tmp_path / "img" / "xen")
    os.makedirs(os.path.dirname(img))
    copy_image(XEN, img)
    r = d.xl("live-update", img, timeout=120)
    assert r.returncode == 0, r.err
    a = [x for x in audit_lines(d) if x[2].startswith("live-update")]
    assert [(x[2], x[4]) for x in a] == \
        [("live-update-load", "ok"), ("live-update-exec", "ok")], a
    assert a[0][:2] == a[1][:2] and a[0][0] == os.getuid() and \
        a[0][1] != os.getpid(), a
    assert a[0][3] == f"image={img}" and a[1][3] == "", a


# ------------------------------------------------------------ socket group

NAME = f"xh15{os.getpid() % 100000}"


def _run(*argv):
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def accounts():
    """A group, a user in it and a user outside it; removed after."""
    if os.geteuid() != 0:
        pytest.skip("creating a group and users needs root")
    g, inside, outside = NAME + "g", NAME + "i", NAME + "o"
    made = []
    if not os.access("/etc/group", os.W_OK):
        # A read-only root (the QEMU test host shares this machine's / so):
        # Debian's own accounts, nobody in nogroup and daemon outside it.
        grp.getgrnam("nogroup")
        yield "nogroup", pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
        return
    try:
        _run("groupadd", g)
        made.append(("groupdel", g))
        for u, extra in ((inside, ["-G", g]), (outside, [])):
            _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
                 *extra, u)
            made.insert(0, ("userdel", u))
        yield g, pwd.getpwnam(inside), pwd.getpwnam(outside)
    finally:
        for cmd in made:
            subprocess.run(cmd, capture_output=True)


CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.errno}))
    sys.exit(0)
s.sendall(b'{"id": 1, "command": "destroy", "args": {"domain": 777}}\n')
print(s.makefile().readline().strip())
"""


def _as_user(pw, sock):
    r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}",
                        f"--regid={pw.pw_gid}", "--init-groups",
                        sys.executable, "-c", CLIENT, sock],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_socket_group_lets_its_members_in_and_no_one_else(accounts):
    require_binaries()
    require_kvm()
    group, inside, outside = accounts
    # A directory others may pass through (pytest's tmp_path is 0700).
    root = tempfile.mkdtemp(prefix="h15sock")
    os.chmod(root, 0o711)
    d = Daemon(root, extra_args=["--socket-group", group])
    try:
        d.start()
        st = os.stat(d.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        assert st.st_gid == grp.getgrnam(group).gr_gid

        r = _as_user(inside, d.sock)
        assert r.get("error", {}).get("name") == "no-such-domain", r
        r = _as_user(outside, d.sock)
        assert r == {"connect": 13}, r          # EACCES
        wait_until(lambda: any(a[0] == inside.pw_uid
                               for a in audit_lines(d)), what="audit")
        a = [x for x in audit_lines(d) if x[0] == inside.pw_uid]
        assert len(a) == 1 and a[0][2:] == \
            ("destroy", "dom=777", "no-such-domain"), a
        assert not [x for x in audit_lines(d) if x[0] == outside.pw_uid]
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


HOLDER = r"""
import json, socket, sys
held, refused = [], []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    try:
        s.sendall(b'{"id": 1, "command": "version"}\n')
    except OSError:
        pass                    # refused and closed: the line is there
    r = json.loads(s.makefile().readline())
    if r["ok"]:
        held.append(s)
    else:
        refused.append(r["error"]["message"])
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
sys.stdin.readline()
"""

CLIENTS_MAX, CLIENTS_RESERVED = 256, 16     # xen/control.c


def test_group_members_cannot_take_the_last_connections(accounts):
    """A member of the socket group gets at most 256 - 16 connections;
    root still gets one while it holds them."""
    require_binaries()
    require_kvm()
    group, inside, _ = accounts
    root = tempfile.mkdtemp(prefix="h15sock")
    os.chmod(root, 0o711)
    d = Daemon(root, extra_args=["--socket-group", group])
    p = None
    try:
        d.start()
        p = subprocess.Popen(["setpriv", f"--reuid={inside.pw_uid}",
                              f"--regid={inside.pw_gid}", "--init-groups",
                              sys.executable, "-c", HOLDER, d.sock,
                              str(CLIENTS_MAX)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        r = json.loads(p.stdout.readline())
        assert r["held"] == CLIENTS_MAX - CLIENTS_RESERVED, r
        assert len(r["refused"]) == CLIENTS_RESERVED, r
        assert set(r["refused"]) == {
            "too many connections to the daemon (the last 16 of 256 are "
            "kept for root)"}, r
        assert d.call("list")["domains"] == []
    finally:
        if p:
            p.stdin.close()
            p.wait(timeout=60)
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_unknown_socket_group_is_refused(tmp_path):
    require_binaries()
    require_kvm()
    d = Daemon(str(tmp_path), extra_args=["--socket-group",
                                          "no-such-group-h15"])
    with pytest.raises(RuntimeError, match="daemon exited with 1"):
        d.start()
    assert "--socket-group no-such-group-h15: no such group" in \
        d.read_file("xen.stderr")
    assert not os.path.exists(d.sock)
