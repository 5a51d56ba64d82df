"""--mem-path DIR: guest RAM in files of a tmpfs the operator chose (a
tmpfs mounted with huge=always gives guests huge pages), checked on what
the counter guest reports through save, restore and live update; and the
directories the daemon must refuse."""
import json
import os
import shutil
import subprocess

import pytest

from harness import (XEN, CounterWatch, CounterWatchProc, Daemon, build_has,
                     ram_fds,
                     require_binaries, require_kvm, run_xen, scaled,
                     wait_until)

CMDLINE = "ws=32M rate=5000 interval=200 verify=300"


def _ram_links(d):
    return {domid: os.readlink(p) for domid, p in ram_fds(d.proc.pid).items()}


def _assert_ram_in(d, name, directory):
    domid = d.domid(name)
    link = _ram_links(d).get(domid)
    assert link and link.startswith(f"{directory}/dom{domid}-ram."), \
        (name, domid, _ram_links(d))
    assert link.endswith(" (deleted)"), link


def _shmem_huge_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("ShmemHugePages:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def shm_dir():
    """A directory of its own on /dev/shm (a tmpfs everywhere)."""
    path = f"/dev/shm/xen-test-mem-{os.getpid()}"
    os.makedirs(path, mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def huge_dir(tmp_path):
    """A tmpfs mounted with huge=always (needs root, as mounting does)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = str(tmp_path / "huge")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "huge=always,size=1G",
                    "tmpfs", path], check=True)
    yield path
    subprocess.run(["umount", "-l", path], check=False)


def _counter(d, name, memory=64):
    d.create(name, kernel="counter", memory=memory, cmdline=CMDLINE)
    w = CounterWatch(d, name, scaled(30))
    w.assert_counting(lines=2)
    return w


def _save_restore(d, name, path):
    """xl save then xl restore; the guest carries on from where it was,
    verifying its working set without an error."""
    w = CounterWatch(d, name, scaled(30))
    before = w.reader.read()
    w.close()
    d.xl("save", name, path, timeout=scaled(60))
    assert name not in d.domains()
    d.xl("restore", path, timeout=scaled(60))
    w = CounterWatch(d, name, scaled(30))
    block = w.reader.read()
    assert block["counter"] >= before["counter"], (before, block)
    goal = block["verifications"] + 1
    wait_until(lambda: w.reader.read()["verifications"] >= goal,
               scaled(30), f"{name}: a verification after restore")
    w.assert_counting(lines=1)
    assert w.reader.read()["errors"] == 0
    return w


def test_guest_ram_lives_in_mem_path(tmp_path, shm_dir):
    """Every guest's RAM is an unlinked file of DIR (the directory stays
    empty), `xl info` names it, and a guest saved and restored comes back
    into DIR and carries on without a verification error."""
    require_binaries()
    require_kvm()
    d = Daemon(str(tmp_path), extra_args=["--mem-path", shm_dir])
    d.start()
    try:
        assert d.call("info")["mem_path"] == shm_dir
        assert f"mem_path               : {shm_dir}" in d.xl("info").out
        w = _counter(d, "a")
        w.close()
        _assert_ram_in(d, "a", shm_dir)
        assert os.listdir(shm_dir) == []
        w = _save_restore(d, "a", str(tmp_path / "a.xkvm"))
        _assert_ram_in(d, "a", shm_dir)
        assert os.listdir(shm_dir) == []
        w.close()
        d.xl("destroy", "a")
        assert _ram_links(d) == {}
    finally:
        d.stop()


def test_huge_page_tmpfs_backs_a_restored_guest(tmp_path, huge_dir):
    """On a tmpfs mounted with huge=always, a restored guest's RAM is
    stored in huge pages (the kernel's ShmemHugePages grows by its
    working set) and the guest verifies it without an error."""
    require_binaries()
    require_kvm()
    d = Daemon(str(tmp_path), extra_args=["--mem-path", huge_dir])
    d.start()
    try:
        _counter(d, "h", memory=128).close()
        path = str(tmp_path / "h.xkvm")
        d.xl("save", "h", path, timeout=scaled(60))
        base = _shmem_huge_kib()
        d.xl("restore", path, timeout=scaled(60))
        _assert_ram_in(d, "h", huge_dir)
        grown = _shmem_huge_kib() - base
        # 32 MiB of working set, in 2 MiB pages (a few pages of the
        # guest's own beside it).
        assert grown >= 32 * 1024, f"ShmemHugePages grew {grown} KiB"
        print(f"ShmemHugePages grew {grown} KiB")
        w = CounterWatch(d, "h", scaled(30))
        goal = w.reader.read()["verifications"] + 1
        wait_until(lambda: w.reader.read()["verifications"] >= goal,
                   scaled(30), "a verification after restore")
        assert w.reader.read()["errors"] == 0
        w.assert_counting(lines=1)
        w.close()
    finally:
        d.stop()


def test_live_update_keeps_mem_path(tmp_path, shm_dir):
    """The new image of a live update is given --mem-path too: the
    guest's RAM stays where it was, and a guest created after the update
    gets its RAM in DIR."""
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    require_binaries()
    require_kvm()
    d = Daemon(str(tmp_path), extra_args=["--mem-path", shm_dir])
    d.start()
    try:
        w = _counter(d, "before")
        w.close()
        image = str(tmp_path / "new-xen")
        shutil.copy(XEN, image)
        # counter-watch finds the guest's RAM in DIR and follows it.
        cw = CounterWatchProc(d.proc.pid)
        try:
            assert cw.watching == 1
            r = d.xl("live-update", image, "--json", timeout=scaled(120))
            assert json.loads(r.out)["result"] == "ok", r.out
        finally:
            report = cw.stop()
        (g,) = report.values()
        assert g["errors"] == 0 and g["last"] > g["first"], g
        assert d.call("info")["mem_path"] == shm_dir
        _assert_ram_in(d, "before", shm_dir)
        w = CounterWatch(d, "before", scaled(30))
        w.assert_counting(lines=2)
        assert w.reader.read()["errors"] == 0
        w.close()
        _counter(d, "after").close()
        _assert_ram_in(d, "after", shm_dir)
        assert os.listdir(shm_dir) == []
    finally:
        d.stop()


def _not_tmpfs_dir(tmp_path):
    """A directory of the build tree's file system, or the test's own,
    whichever is not a tmpfs."""
    for cand in (os.path.dirname(XEN), str(tmp_path)):
        if os.statvfs(cand) and not _is_tmpfs(cand):
            return cand
    raise AssertionError("no directory off tmpfs to refuse")


def _is_tmpfs(path):
    r = subprocess.run(["stat", "-f", "-c", "%T", path], text=True,
                       capture_output=True, check=True)
    return r.stdout.strip() == "tmpfs"


@pytest.mark.parametrize("kind", ["missing", "not-tmpfs", "a-file"])
def test_refused_mem_path_exits_64_with_the_reason(tmp_path, kind):
    require_binaries()
    if kind == "missing":
        bad, why = str(tmp_path / "nowhere"), "No such file or directory"
    elif kind == "not-tmpfs":
        bad, why = _not_tmpfs_dir(tmp_path), "is not on a tmpfs"
    else:
        bad = f"/dev/shm/xen-test-file-{os.getpid()}"
        open(bad, "w").close()
        why = "cannot create a file in"
    try:
        state = tmp_path / "state"
        r = run_xen("--socket", str(tmp_path / "s.sock"), "--state-dir",
                    str(state), "--mem-path", bad)
    finally:
        if kind == "a-file":
            os.unlink(bad)
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert "xen: --mem-path: " in r.stderr and why in r.stderr, r.stderr
    assert not state.exists()
