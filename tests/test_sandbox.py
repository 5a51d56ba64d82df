"""The sandbox (docs/sandbox.md): every thread of the daemon under a
seccomp filter for its role, capabilities dropped.  The test aid
`sandbox-probe` makes a vCPU or device thread try a call its role does
not allow; the call must be refused with EPERM and logged with the
thread's role, and the guests (two domains) must keep counting.  A live
update's new image installs its filters again."""
import json
import os
import re
import shutil

import pytest

from harness import ApiError, CounterWatch, Daemon, XEN, build_has

pytestmark = pytest.mark.skipif(not build_has("SANDBOX"),
                                reason="SANDBOX is not in this build's "
                                       "Kconfig")

EPERM = 1


def task_status(pid):
    """{tid: (comm, {field: value})} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                st = dict(line.split(":\t", 1) for line in
                          f.read().splitlines() if ":\t" in line)
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue            # it ended meanwhile
        out[int(tid)] = (comm, {k: v.strip() for k, v in st.items()})
    return out


def assert_all_filtered(pid, min_filters=1):
    """Every thread in seccomp filter mode with NO_NEW_PRIVS; vCPU
    threads have no capability at all."""
    tasks = task_status(pid)
    assert tasks
    for tid, (comm, st) in tasks.items():
        assert st["Seccomp"] == "2", (tid, comm, st["Seccomp"])
        assert int(st["Seccomp_filters"]) >= min_filters, (tid, comm, st)
        assert st["NoNewPrivs"] == "1", (tid, comm)
        if re.fullmatch(r"d\d+v\d+", comm):
            assert int(st["CapEff"], 16) == 0, (tid, comm, st["CapEff"])
    return tasks


def probe(d, role, call, domain=None):
    args = {"role": role, "call": call}
    if domain is not None:
        args["domain"] = domain
    return d.call("sandbox-probe", **args)


def refusal_logged(d, call, role, dom):
    rx = (rf"sandbox: refused {call} \(syscall \d+\) on a {role} thread "
          rf"\(d{dom}[v ]")
    return re.search(rx, d.log())


def two_counters(d):
    watches = [d.start_counter(n) for n in ("a", "b")]
    for w in watches:
        w.assert_counting()
    return watches


def test_info_shows_the_sandbox(daemon):
    info = daemon.call("info")
    assert "SANDBOX" in info["features"]
    sb = info["sandbox"]
    assert sb["mode"] == "seccomp"
    assert sb["threads"]["main"] == 1
    # Only CAP_NET_ADMIN (taps) is kept, and only if we had it.
    assert set(sb["capabilities"]) <= {"cap_net_admin"}, sb
    out = daemon.xl("info").out
    assert re.search(r"^sandbox\s+: seccomp$", out, re.M), out
    st = task_status(daemon.proc.pid)[daemon.proc.pid][1]
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1"
    assert int(st["CapBnd"], 16) & ~(1 << 12) == 0, st["CapBnd"]


def test_vcpu_and_device_threads_refused_guests_keep_counting(daemon):
    d = daemon
    a, b = two_counters(d)
    ida, idb = d.domid("a"), d.domid("b")
    assert_all_filtered(d.proc.pid)
    threads = d.call("info")["sandbox"]["threads"]
    assert threads["vcpu"] == 2 and threads["device"] >= 2, threads

    r = probe(d, "vcpu", "socket", "a")
    assert r["refused"] and r["errno"] == EPERM, r
    assert r["thread"] == f"d{ida}v0", r
    r = probe(d, "vcpu", "execve", "b")
    assert r["refused"] and r["errno"] == EPERM, r
    r = probe(d, "device", "socket", "b")
    assert r["refused"] and r["errno"] == EPERM, r
    assert r["thread"].startswith(f"d{idb} virtio-"), r
    r = probe(d, "device", "execve", "a")
    assert r["refused"] and r["errno"] == EPERM, r

    assert refusal_logged(d, "socket", "vcpu", ida), d.log()[-2000:]
    assert refusal_logged(d, "execve", "vcpu", idb), d.log()[-2000:]
    assert refusal_logged(d, "socket", "device", idb), d.log()[-2000:]
    assert refusal_logged(d, "execve", "device", ida), d.log()[-2000:]
    # Logged once per role and call; every refusal counted.
    before = d.call("info")["sandbox"]["refused"]
    probe(d, "vcpu", "socket", "b")
    assert d.call("info")["sandbox"]["refused"] == before + 1
    assert len(re.findall(r"refused socket \(syscall \d+\) on a vcpu",
                          d.log())) == 1
    # xl dmesg has it too.
    assert "refused socket" in d.xl("dmesg").out

    # The main thread may open sockets (migration, the control API) but
    # not ptrace.
    assert not probe(d, "main", "socket")["refused"]
    assert probe(d, "main", "ptrace")["refused"]

    for w in (a, b):
        w.assert_counting(lines=2)
    assert set(d.domains()) == {"a", "b"}
    for w in (a, b):
        w.close()


def test_bad_probe_requests(daemon):
    w = daemon.start_counter("c")
    for args, code in (({"role": "bogus", "call": "socket"}, 3),
                       ({"role": "vcpu", "call": "reboot"}, 3),
                       ({"role": "vcpu", "call": "socket",
                         "domain": "nosuch"}, 4),
                       ({"role": "migration", "call": "socket"}, 4)):
        with pytest.raises(ApiError) as e:
            daemon.call("sandbox-probe", **args)
        assert e.value.code == code, (args, e.value)
    w.assert_counting()
    w.close()


def test_no_sandbox_turns_it_off(tmp_path, daemon):
    d = Daemon(str(tmp_path / "nosb"), extra_args=["--no-sandbox"])
    os.makedirs(d.root)
    d.start()
    try:
        w = d.start_counter("free")
        sb = d.call("info")["sandbox"]
        assert sb["mode"] == "off", sb
        assert re.search(r"^sandbox\s+: off$", d.xl("info").out, re.M)
        for tid, (comm, st) in task_status(d.proc.pid).items():
            assert st["Seccomp"] == "0", (tid, comm)
        with pytest.raises(ApiError) as e:
            probe(d, "vcpu", "socket", "free")
        assert e.value.code == 6 and "--no-sandbox" in e.value.message
        assert "sandbox: OFF (--no-sandbox)" in d.log()
        w.assert_counting()
        w.close()
    finally:
        d.stop()


def test_live_update_installs_the_filters_again(tmp_path, daemon):
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    d = daemon
    image = str(tmp_path / "new-xen")
    shutil.copy(XEN, image)
    a, b = two_counters(d)
    pid = d.proc.pid
    before = assert_all_filtered(pid)
    # Twice: filters survive execve and would stack up with every update
    # (the kernel refuses past 32768 instructions per thread); an image
    # whose main-thread program is the one it inherited keeps that one.
    for n in (1, 2):
        shutil.copy(XEN, image)
        r = d.xl("live-update", image, "--json")
        assert json.loads(r.out)["result"] == "ok", r.out
        # Build-ahead: the daemon moved to the new image's process.
        assert d.proc.pid != pid
        pid = d.proc.pid
        assert d.call("info")["pid"] == pid
        after = assert_all_filtered(pid)
        assert int(after[pid][1]["Seccomp_filters"]) == 1, (n, after[pid])
        # A vCPU thread: the main filter (inherited) and its own.
        vcpus = {t for t, (c, _) in after.items()
                 if re.fullmatch(r"d\d+v0", c)}
        assert len(vcpus) == 2 and not vcpus & set(before), (before, after)
        for t in vcpus:
            assert int(after[t][1]["Seccomp_filters"]) == 2, after[t]
        before = after
    assert d.log().count("not stacked again") == 2
    assert d.call("info")["sandbox"]["threads"]["vcpu"] == 2
    r = probe(d, "vcpu", "socket", "b")
    assert r["refused"] and r["errno"] == EPERM, r
    assert refusal_logged(d, "socket", "vcpu", d.domid("b"))
    r = probe(d, "device", "execve", "a")
    assert r["refused"] and r["errno"] == EPERM, r
    for w in (a, b):
        w.assert_counting(lines=2)
        w.close()
    # Still a sandbox after the update: the same answer from xl info.
    assert d.call("info")["sandbox"]["mode"] == "seccomp"
