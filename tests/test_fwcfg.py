"""QEMU's fw_cfg interface (xen/dev/fw_cfg_io.c): the fw_cfg guest
(tests/guests/fwcfg.c) reads it through the data register and through
DMA and prints what it found; the tests compare that with the config
(vCPUs, memory, the files and strings of its fw_cfg key).  Files that
cannot be read are refused by xl (FILE:LINE) and by the daemon (naming
where the item was written); the selector and offset survive a save and
restore in the middle of a read."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from harness import (ApiError, ConsoleStream, build_has, guest_path, scaled,
                     still_fine)
import streamlib as sl

MIB = 1 << 20
KEY_FIRST = 0x20


@pytest.fixture(autouse=True)
def _need_fw_cfg(feature):
    feature("DEV_FW_CFG")


def escaped(data):
    """What the guest prints of a file's first 48 bytes."""
    out = ""
    for b in data[:48]:
        out += chr(b) if 0x20 <= b < 0x7f and b != 0x5c else f"\\x{b:02x}"
    return out


def fw_cfg_key(items):
    body = ", ".join(f"'{i}'" for i in items)
    return f"fw_cfg = [ {body} ]\n"


def run_guest(daemon, name, items, vcpus=3, memory=48, cmdline=""):
    extra = (f"vcpus = {vcpus}\non_poweroff = \"preserve\"\n"
             f"on_crash = \"preserve\"\n" + fw_cfg_key(items))
    daemon.create(name, kernel="fwcfg", memory=memory, cmdline=cmdline,
                  extra=extra)
    daemon.wait_console(name, r"FWCFG DONE\r\n")
    return daemon.console(name)


def files_of(text):
    return {m.group("name"): m.groupdict() for m in re.finditer(
        r"FWCFG file key=(?P<key>0x[0-9a-f]+) size=(?P<size>\d+) "
        r"name=(?P<name>\S+) io_sum=(?P<io>0x[0-9a-f]{8}) "
        r"dma_sum=(?P<dma>\S+) head=(?P<head>[^\r\n]*)\r\n", text)}


def byte_sum(data):
    return f"0x{sum(data) & 0xffffffff:08x}"


def test_guest_reads_fw_cfg(daemon, witness, tmp_path):
    hello = b"hello from xl.cfg\n"
    blob = bytes(range(256)) * 40 + b"tail"       # > one DMA chunk
    (tmp_path / "hello.txt").write_bytes(hello)
    (tmp_path / "blob.bin").write_bytes(blob)
    text = run_guest(daemon, "fw", [
        f"name=opt/test/hello,file={tmp_path}/hello.txt",
        f"opt/test/blob,file={tmp_path}/blob.bin",
        "name=opt/test/a-string,string=first,,by name"], vcpus=3,
        memory=48)
    ram = 48 * MIB
    assert (f"FWCFG io signature=QEMU id=0x3 nb_cpus=3 max_cpus=3 "
            f"ram_size={ram} dma_register=QEMU CFG\r\n") in text, text
    assert (f"FWCFG dma signature=QEMU id=0x3 nb_cpus=3 "
            f"ram_size={ram}\r\n") in text, text
    assert "FWCFG dma skip=MU write_control=0x1\r\n" in text, text
    assert "FWCFG files=3\r\n" in text and "FWCFG dir dma=same" in text
    files = files_of(text)
    # Keys in the order of the names, as QEMU gives them.
    want = {"opt/test/a-string": b"first,by name", "opt/test/blob": blob,
            "opt/test/hello": hello}
    assert sorted(files) == sorted(want), text
    for i, name in enumerate(sorted(want)):
        f, data = files[name], want[name]
        assert int(f["key"], 16) == KEY_FIRST + i, f
        assert int(f["size"]) == len(data), f
        assert f["io"] == f["dma"] == byte_sum(data), f
        assert f["head"] == escaped(data), f
    if build_has("DEV_DEBUG_EXIT"):
        assert daemon.wait_state("fw", "shutdown")["exit_code"] == 1
    still_fine(daemon, witness)


def test_no_files_and_one_vcpu(daemon):
    text = run_guest(daemon, "fw1", [], vcpus=1, memory=32)
    assert (f"FWCFG io signature=QEMU id=0x3 nb_cpus=1 max_cpus=1 "
            f"ram_size={32 * MIB} ") in text, text
    assert "FWCFG files=0\r\n" in text, text


def test_bad_files_are_config_errors(daemon, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(16 * MIB + 1)
    for item, why in (
            (f"name=opt/x,file={tmp_path}/missing",
             f"fw_cfg: cannot read {tmp_path}/missing: No such file or "
             f"directory"),
            (f"name=opt/x,file={big}",
             f"fw_cfg: {big} is larger than 16777216 bytes"),
            ("name=opt/x", "fw_cfg: item 1: opt/x: needs either file= or "
                           "string="),
            ("name=opt/" + "x" * 52 + ",string=y",
             "fw_cfg: item 1: name must be 1-55 printable ASCII")):
        cfg = daemon.write_cfg(daemon.cfg_text("bad", kernel="fwcfg",
                                               extra=fw_cfg_key([item])))
        r = daemon.xl("create", cfg, check=False)
        assert r.returncode == 65, r.err
        assert f"xl: {cfg}:6: {why}" in r.err, r.err
    assert daemon.domains() == {}


def test_daemon_reads_files_when_it_builds_the_domain(daemon, tmp_path):
    """A file xl checked but the daemon cannot read (gone since, or never
    there for a client of the API): the create fails with
    invalid-argument, the message naming where the item was written."""
    cfg = {"name": "gone", "kernel": guest_path("fwcfg"), "memory": 32,
           "fw_cfg": [{"name": "opt/x", "file": f"{tmp_path}/gone",
                       "origin": "/etc/xen/gone.cfg:7"}]}
    with pytest.raises(ApiError) as e:
        daemon.call("create", config=cfg)
    assert e.value.name == "invalid-argument", e.value
    assert (f"device fw-cfg: /etc/xen/gone.cfg:7: fw_cfg: opt/x: cannot "
            f"read {tmp_path}/gone: No such file or directory"
            ) in e.value.message, e.value.message
    daemon.wait_log(r"/etc/xen/gone.cfg:7: fw_cfg: opt/x: cannot read")
    assert daemon.domains() == {}


def test_read_survives_save_and_restore(daemon, tmp_path):
    """The guest reads 100 bytes of a file through the data register,
    waits; the domain is saved and restored; the rest of the read goes
    on from byte 100 of the same item (the DEV_FW_CFG record)."""
    data = bytes((i * 7 + 3) & 0xff for i in range(300))
    (tmp_path / "f.bin").write_bytes(data)
    items = [f"name=opt/test/split,file={tmp_path}/f.bin",
             "name=opt/test/z,string=after"]
    extra = ('on_poweroff = "preserve"\n' + fw_cfg_key(items))
    daemon.create("sp", kernel="fwcfg", cmdline="split=100", extra=extra)
    daemon.wait_console("sp", r"FWCFG split at=100 WAITING\r\n")
    path = str(tmp_path / "sp.xkvm")
    daemon.xl("save", "sp", path)
    s = sl.Stream.load(path)
    recs = s.find(sl.DEV_FW_CFG)
    assert len(recs) == 1 and recs[0].flags == sl.REC_F_OPTIONAL
    selector, _, offset, dma_high, _ = struct.unpack("<HHIII",
                                                     recs[0].body)
    assert (selector, offset, dma_high) == (KEY_FIRST, 100, 0)
    # The items are made from the config again: the file must be there.
    os.rename(tmp_path / "f.bin", tmp_path / "away.bin")
    r = daemon.xl("restore", path, check=False)
    assert r.returncode == 3, r.err
    assert f"cannot read {tmp_path}/f.bin" in r.err, r.err
    os.rename(tmp_path / "away.bin", tmp_path / "f.bin")
    daemon.xl("restore", path)
    con = ConsoleStream(daemon.sock, "sp")
    con.send(b"g")
    con.wait(rf"FWCFG split size=300 sum={byte_sum(data)} "
             rf"head={re.escape(escaped(data))}\r\n")
    con.close()
    daemon.wait_console("sp", r"FWCFG DONE")


def test_stream_without_the_record_restores(daemon, tmp_path):
    """A stream from a build without fw_cfg has no DEV_FW_CFG: the
    device starts as reset.  And a reader skips the record if it lacks
    the device (the record is optional)."""
    daemon.create("old", kernel="counter", cmdline="interval=200")
    daemon.wait_console("old", r"COUNTER READY")
    path = str(tmp_path / "old.xkvm")
    daemon.xl("save", "old", path)
    s = sl.Stream.load(path)
    s.remove(sl.DEV_FW_CFG)
    s.save(path)
    daemon.xl("restore", path)
    daemon.wait_status_lines("old", 2)
    assert daemon.domain("old")["state"] == "running"


def qemu_report(tmp_path, items, vcpus, memory):
    """The fw_cfg guest's report under QEMU (TCG), with the same items
    given as -fw_cfg options."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        pytest.skip("qemu-system-x86_64 is not installed")
    args = [qemu, "-accel", "tcg", "-m", str(memory), "-smp", str(vcpus),
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", guest_path("fwcfg")]
    for item in items:
        args += ["-fw_cfg", item]
    r = subprocess.run(args, capture_output=True, timeout=scaled(120))
    return r.stdout.decode(errors="replace")


def test_same_report_as_under_qemu(daemon, tmp_path):
    """The guest reports the same under QEMU: the fixed items, the DMA
    register, the DMA skip and refused write, and the opt/ files (QEMU
    has files of its own besides, so their keys differ)."""
    (tmp_path / "hello.txt").write_bytes(b"hello\x00from xl.cfg\n")
    items = [f"name=opt/test/hello,file={tmp_path}/hello.txt",
             "name=opt/test/a-string,string=first,,by name"]
    ours = run_guest(daemon, "fwq", items, vcpus=2, memory=64)
    theirs = qemu_report(tmp_path, items, vcpus=2, memory=64)
    assert "FWCFG DONE" in theirs, theirs
    for prefix in ("FWCFG io ", "FWCFG dma signature", "FWCFG dma skip",
                   "FWCFG dir dma"):
        line = re.search(rf"^{prefix}.*$", ours, re.M).group(0)
        assert line in theirs, (line, theirs)
    mine, qemus = files_of(ours), files_of(theirs)
    for name in ("opt/test/hello", "opt/test/a-string"):
        for k in ("size", "io", "dma", "head"):
            assert mine[name][k] == qemus[name][k], (name, k, ours, theirs)
