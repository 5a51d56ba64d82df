"""xen-stream dump/verify (tools/stream/) and the stream fuzz target's
seeds and regressions (tests/fuzz/; the fuzz runs are tests/test_fuzz.py).

Real streams come from a daemon saving a 2-vCPU counter guest in every
encoding and both format versions; the broken ones are those streams with
exactly one fault each, and the test computes the offset verify must name.
Synthetic streams (tests/fuzz/make_corpus.py) cover the faults a daemon
never writes.
"""
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib

import pytest

from harness import BUILD, ROOT, Daemon, require_kvm, require_binaries
import streamlib as sl

sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import make_corpus as mc  # noqa: E402

TOOL = os.path.join(BUILD, "bin", "xen-stream")
FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz")
CORPUS = os.path.join(FUZZ_DIR, "corpus", "stream")
REGRESSIONS = os.path.join(FUZZ_DIR, "regressions", "stream")

NAMES = sl.TYPE_NAMES
ENCODINGS = ("none", "lz4", "zlib")
SANITIZER_RX = re.compile(r"^==\d+==ERROR: \w+Sanitizer|"
                          r"^SUMMARY: \w+Sanitizer|: runtime error: ", re.M)


# ------------------------------------------------------------ helpers

class Rec:
    def __init__(self, offset, rtype, flags, length, crc, body):
        self.offset, self.type, self.flags = offset, rtype, flags
        self.length, self.crc, self.body = length, crc, body

    def to_bytes(self):
        return mc.record(self.type, self.body, self.flags)

    def vcpu(self):
        return struct.unpack_from("<I", self.body)[0]


def parse(data):
    """The records of a sound stream, END included."""
    recs, pos = [], mc.HEADER_LEN
    while True:
        rtype, flags, length, crc = struct.unpack_from("<IIII", data, pos)
        body = data[pos + 16:pos + 16 + length]
        recs.append(Rec(pos, rtype, flags, length, crc, body))
        pos += 16 + length + mc.pad8(length)
        if rtype == mc.END:
            assert pos == len(data)
            return recs


def rebuild(data, recs):
    return data[:mc.HEADER_LEN] + b"".join(r.to_bytes() for r in recs)


def batch_info(rec):
    nr, enc, data_len, _ = struct.unpack_from("<IIII", rec.body)
    pfns = struct.unpack_from(f"<{nr}Q", rec.body, 16)
    return nr, enc, data_len, pfns


def run_tool(*args, stdin=None):
    r = subprocess.run([TOOL] + [str(a) for a in args], input=stdin,
                       capture_output=True, timeout=120)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    assert r.returncode >= 0, f"xen-stream died of signal {-r.returncode}"
    assert not SANITIZER_RX.search(r.err), r.err
    return r


def chex(v):
    """printf's %#x: 0 has no 0x."""
    return f"{v:#x}" if v else "0"


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def expect_broken(path, offset, reason):
    """verify exits 1 naming offset and reason; dump says it too."""
    r = run_tool("verify", path)
    assert r.returncode == 1, (r.returncode, r.out, r.err)
    line = r.out.strip()
    prefix = f"{path}: offset {offset}: "
    assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
    assert re.search(reason, line[len(prefix):]), (reason, line)
    d = run_tool("dump", path)
    assert d.returncode == 1, d.out[-2000:]
    assert f"offset {offset}: " in d.out, d.out[-2000:]
    return line


@pytest.fixture(scope="module", autouse=True)
def tool_built():
    if not os.path.exists(TOOL):
        pytest.fail(f"{TOOL} is missing: run `make`", pytrace=False)


# ------------------------------------------------------------ real streams

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{(version, encoding): path} of one 2-vCPU counter guest's saves."""
    require_binaries()
    require_kvm()
    root = str(tmp_path_factory.mktemp("stream-daemon"))
    d = Daemon(root)
    d.start()
    out = {}
    try:
        d.create("c", memory=32, cmdline="ws=2M interval=200",
                 extra="vcpus = 2\n")
        time.sleep(0.5)                 # let it dirty some pages
        for version, enc in ((2, "none"), (2, "lz4"), (2, "zlib"),
                             (1, "none")):
            path = os.path.join(root, f"v{version}-{enc}.xkvm")
            d.call("save", domain="c", path=path, checkpoint=True,
                   compress=enc, format_version=version)
            out[(version, enc)] = path
    finally:
        d.stop()
    err = d.read_file("xen.stderr")
    assert not SANITIZER_RX.search(err), err[-4000:]
    assert d.proc.returncode == 0, err[-3000:]
    return out


REAL = [(2, "none"), (2, "lz4"), (2, "zlib"), (1, "none")]


def real_id(p):
    return f"v{p[0]}-{p[1]}"


@pytest.mark.parametrize("key", REAL, ids=real_id)
def test_verify_real_stream(saved, key):
    path = saved[key]
    data = open(path, "rb").read()
    recs = parse(data)
    pages = sum(batch_info(r)[0] for r in recs if r.type == mc.PAGE_BATCH)
    r = run_tool("verify", path)
    assert r.returncode == 0, r.out + r.err
    assert r.out == (f"OK: {len(recs)} records, {pages} pages in "
                     f"{sum(x.type == mc.PAGE_BATCH for x in recs)} batches, "
                     f"2 vCPUs, format version {key[0]}, {len(data)} bytes\n")


@pytest.mark.parametrize("key", REAL, ids=real_id)
def test_dump_real_stream(saved, key):
    path = saved[key]
    data = open(path, "rb").read()
    recs = parse(data)
    r = run_tool("dump", path)
    assert r.returncode == 0, r.out[-3000:] + r.err
    out = r.out
    assert f"format version {key[0]}," in out
    assert "byte order: 0x01020304" in out
    # every record, with its offset and type name, and nothing else
    for rec in recs:
        assert re.search(rf"^@{rec.offset}\s+{NAMES[rec.type]}\s+type "
                         rf"0x{rec.type:02x} ", out, re.M), \
            (rec.offset, NAMES[rec.type])
    assert len(re.findall(r"^@\d+ ", out, re.M)) == len(recs)
    assert {rec.type for rec in recs} >= {
        mc.DOMAIN_CONFIG, mc.MEMORY_LAYOUT, mc.PAGE_BATCH, mc.VCPU_REGS,
        mc.VCPU_SREGS, mc.VCPU_MSRS, mc.VCPU_LAPIC, mc.VM_IRQCHIP,
        mc.DEV_UART, mc.DEV_RTC, mc.DEV_BOARD, mc.CONSOLE_HISTORY, mc.END}
    # the config JSON as stored, and the vCPU count
    cfg = json.loads(recs[0].body)
    m = re.search(r"^  config: (.*)$", out, re.M)
    assert m and json.loads(m.group(1)) == cfg
    assert cfg["vcpus"] == 2
    assert "  name c, memory 32 MiB, vcpus 2\n" in out
    assert "  vcpus 2, memory 32 MiB\n" in out
    # vCPU records of both vCPUs, decoded
    for v in (0, 1):
        regs = next(x for x in recs if x.type == mc.VCPU_REGS and
                    x.vcpu() == v)
        rip, rflags = struct.unpack_from("<QQ", regs.body, 8 + 16 * 8)
        assert f"  vcpu {v}, size 144\n" in out
        assert f"rip {rip:#x} " in out and f"rflags {rflags:#x}\n" in out
    assert "  ram_bytes 33554432 (32 MiB), low_bytes 0x2000000, " \
           "hole_start 0xc0000000, page_size 4096\n" in out
    assert re.search(r"^  cr0 0x[0-9a-f]+ cr2 ", out, re.M)
    assert re.search(r"^  nmsrs [1-9]\d*\n {4}0x", out, re.M)
    assert re.search(r"^  mp_state \d \(\w+\)$", out, re.M)
    assert "  chip_id 2 (IOAPIC)\n" in out
    assert re.search(r"^  clock \d+ ns", out, re.M)
    assert re.search(r"^  queued input \d+ bytes", out, re.M)
    assert re.search(r"^  total \d+ bytes written, holds the last \d+$", out,
                     re.M)
    # summary: counts per type, pages, bytes per encoding
    assert f"  records {len(recs)}\n" in out
    for t in {rec.type for rec in recs}:
        n = sum(rec.type == t for rec in recs)
        assert re.search(rf"^    {NAMES[t]}\s+{n}$", out, re.M), NAMES[t]
    enc_bytes, enc_batches, pages = [0, 0, 0], [0, 0, 0], 0
    for rec in recs:
        if rec.type == mc.PAGE_BATCH:
            nr, enc, data_len, _ = batch_info(rec)
            enc_bytes[enc] += data_len
            enc_batches[enc] += 1
            pages += nr
    assert f"  pages {pages} in {sum(enc_batches)} batches\n" in out
    assert ("  encoded bytes: " + ", ".join(
        f"{n} {enc_bytes[i]} ({enc_batches[i]} batches)"
        for i, n in enumerate(ENCODINGS)) + "\n") in out
    if key == (2, "lz4") or key == (2, "zlib"):
        assert enc_batches[ENCODINGS.index(key[1])] > 0
    else:
        assert enc_batches[1] == enc_batches[2] == 0
    assert "  problems 0\n" in out


def test_dump_pages_lists_every_pfn(saved):
    path = saved[(2, "lz4")]
    recs = parse(open(path, "rb").read())
    want = [p for rec in recs if rec.type == mc.PAGE_BATCH
            for p in batch_info(rec)[3]]
    out = run_tool("dump", path, "--pages").out
    got, in_list = [], False
    for line in out.splitlines():
        if line.startswith("  pfns "):
            in_list = True
        elif in_list and line.startswith("    "):
            got += [int(tok, 16) for tok in line.split()]
        else:
            in_list = False
    assert got == want
    for rec in recs:
        if rec.type == mc.PAGE_BATCH:
            pfns = batch_info(rec)[3]
            assert f"  pfns {chex(pfns[0])} .. {chex(pfns[-1])}\n" in out


# ------------------------------------------------------------ broken streams

@pytest.fixture
def lz4(saved):
    data = open(saved[(2, "lz4")], "rb").read()
    return data, parse(data)


def test_truncated(lz4, tmp_path):
    data, recs = lz4
    batch = [r for r in recs if r.type == mc.PAGE_BATCH][1]
    p = write(tmp_path, "cut.xkvm", data[:batch.offset + 100])
    expect_broken(p, batch.offset,
                  rf"^truncated: record PAGE_BATCH \(0x3\) says "
                  rf"{batch.length} bytes, the stream ends first$")
    p = write(tmp_path, "noend.xkvm", data[:recs[-1].offset])
    expect_broken(p, recs[-1].offset,
                  "^truncated: stream ends without an END record$")
    p = write(tmp_path, "header.xkvm", data[:50])
    expect_broken(p, 0, "^truncated: no complete 72-byte header$")
    p = write(tmp_path, "empty.xkvm", b"")
    expect_broken(p, 0, "^truncated")


def test_flipped_bit_in_page_batch(lz4, tmp_path):
    data, recs = lz4
    batch = [r for r in recs if r.type == mc.PAGE_BATCH][-1]
    nr = batch_info(batch)[0]
    bad = bytearray(data)
    bad[batch.offset + 16 + 16 + 8 * nr + 1000] ^= 0x10
    p = write(tmp_path, "flip.xkvm", bytes(bad))
    expect_broken(p, batch.offset,
                  r"^checksum mismatch in record PAGE_BATCH \(0x3\)$")


def test_bad_magic(lz4, tmp_path):
    data, _ = lz4
    p = write(tmp_path, "magic.xkvm", b"XKVMSTRX" + data[8:])
    expect_broken(p, 0, "^bad magic: not a state stream$")


def test_header_checksum(lz4, tmp_path):
    data, _ = lz4
    bad = bytearray(data)
    bad[30] ^= 1                        # inside writer_version
    p = write(tmp_path, "hcrc.xkvm", bytes(bad))
    expect_broken(p, 64, "^header checksum mismatch$")


def _header_with(data, offset, value):
    bad = bytearray(data)
    struct.pack_into("<I", bad, offset, value)
    struct.pack_into("<I", bad, 64, zlib.crc32(bytes(bad[:64])))
    return bytes(bad)


@pytest.mark.parametrize("field,offset,value,reason", [
    ("version", 12, 99, r"^format version 99; this build reads \d to \d$"),
    ("version", 12, 0, r"^format version 0; this build reads \d to \d$"),
    ("build_id_len", 60, 21, "^build-id length 21$"),
    ("header_len", 16, 80, "^header length 80, expected 72$"),
])
def test_bad_header_field(lz4, tmp_path, field, offset, value, reason):
    data, _ = lz4
    p = write(tmp_path, f"{field}.xkvm", _header_with(data, offset, value))
    expect_broken(p, offset, reason)


def test_unknown_mandatory_record(lz4, tmp_path):
    data, recs = lz4
    end = recs[-1]
    new = Rec(0, 0x99, 0, 5, 0, b"hello")
    p = write(tmp_path, "unknown.xkvm",
              rebuild(data, recs[:-1] + [new, end]))
    expect_broken(p, end.offset, "^unknown mandatory record type 0x99$")
    # the same record OPTIONAL is skipped
    new.flags = mc.F_OPTIONAL
    p = write(tmp_path, "optional.xkvm",
              rebuild(data, recs[:-1] + [new, end]))
    assert run_tool("verify", p).returncode == 0
    out = run_tool("dump", p).out
    assert re.search(rf"^@{end.offset}\s+unknown optional type 0x99, "
                     r"skipped \(flags 0x1, length 5\)$", out, re.M)


def test_length_past_the_end(lz4, tmp_path):
    data, recs = lz4
    last = recs[-2]                     # CONSOLE_HISTORY, before END
    assert last.type == mc.CONSOLE_HISTORY
    bad = bytearray(data)
    struct.pack_into("<I", bad, last.offset + 8, last.length + 4096)
    p = write(tmp_path, "long.xkvm", bytes(bad))
    expect_broken(p, last.offset,
                  rf"^truncated: record CONSOLE_HISTORY \(0x40\) says "
                  rf"{last.length + 4096} bytes, the stream ends first$")
    struct.pack_into("<I", bad, last.offset + 8, (64 << 20) + 1)
    p = write(tmp_path, "huge.xkvm", bytes(bad))
    expect_broken(p, last.offset, "length 67108865 exceeds 67108864$")


@pytest.mark.parametrize("pfn", [8192 + 7, 0xC0000, 0x100000])
def test_pfn_outside_ram(lz4, tmp_path, pfn):
    data, recs = lz4
    batch = next(r for r in recs if r.type == mc.PAGE_BATCH)
    body = bytearray(batch.body)
    struct.pack_into("<Q", body, 16, pfn)       # pfn[0]
    batch.body = bytes(body)
    p = write(tmp_path, "pfn.xkvm", rebuild(data, recs))
    expect_broken(p, batch.offset,
                  rf"^PAGE_BATCH page 0: pfn {pfn:#x} is outside the "
                  rf"32 MiB of RAM$")


def test_missing_vcpu_sregs(lz4, tmp_path):
    data, recs = lz4
    keep = [r for r in recs
            if not (r.type == mc.VCPU_SREGS and r.vcpu() == 1)]
    assert len(keep) == len(recs) - 1
    out = rebuild(data, keep)
    end = parse(out)[-1].offset
    assert end == recs[-1].offset - 16 - 320
    p = write(tmp_path, "nosregs.xkvm", out)
    expect_broken(p, end,
                  "^stream ends without VCPU_SREGS for vCPU 1 of 2$")


def test_data_after_end(lz4, tmp_path):
    data, _ = lz4
    p = write(tmp_path, "tail.xkvm", data + b"\0" * 8)
    expect_broken(p, len(data), "^data after the END record$")


def test_layout_must_match_config(lz4, tmp_path):
    data, recs = lz4
    layout = recs[1]
    layout.body = struct.pack("<QQQII", 64 << 20, 64 << 20, 0xC0000000,
                              4096, 0)
    p = write(tmp_path, "layout.xkvm", rebuild(data, recs))
    expect_broken(p, layout.offset, "^MEMORY_LAYOUT: 67108864 bytes of RAM, "
                                    "the config has 32 MiB$")


def test_corrupt_config(lz4, tmp_path):
    data, recs = lz4
    recs[0].body = recs[0].body.replace(b'"vcpus":2', b'"vcpus":"x"')
    p = write(tmp_path, "cfg.xkvm", rebuild(data, recs))
    expect_broken(p, mc.HEADER_LEN, r"^DOMAIN_CONFIG: config\.vcpus: ")
    recs[0].body = b"{not json"
    p = write(tmp_path, "cfg2.xkvm", rebuild(data, recs))
    expect_broken(p, mc.HEADER_LEN, "^DOMAIN_CONFIG is not JSON: ")


def test_vcpu_record_out_of_order(lz4, tmp_path):
    data, recs = lz4
    i = next(k for k, r in enumerate(recs) if r.type == mc.VCPU_LAPIC)
    recs[i], recs[i - 1] = recs[i - 1], recs[i]     # LAPIC before MSRS
    out = rebuild(data, recs)
    p = write(tmp_path, "order.xkvm", out)
    expect_broken(p, parse(out)[i].offset,
                  r"^VCPU_MSRS of vCPU 0 out of order")


def test_duplicate_device_record(lz4, tmp_path):
    # restore counts device records, not device types: a second DEV_UART
    # would stand in for a missing DEV_RTC there.
    data, recs = lz4
    uart = next(r for r in recs if r.type == mc.DEV_UART)
    recs = [r for r in recs if r.type != mc.DEV_RTC]
    i = recs.index(uart)
    recs.insert(i + 1, Rec(0, uart.type, 0, uart.length, 0, uart.body))
    out = rebuild(data, recs)
    p = write(tmp_path, "uart2.xkvm", out)
    expect_broken(p, parse(out)[i + 1].offset, "^a second DEV_UART record$")


# ------------------------------------------------------------ synthetic

def synthetic(**kw):
    s = mc.Stream(**kw)
    s.pages([1, 2], "text", mc.ENC_LZ4 if s.version > 1 else mc.ENC_NONE)
    s.vcpu(0)
    s.vm()
    s.devices()
    return s


def test_synthetic_faults(tmp_path):
    s = synthetic()
    good = s.end()
    assert run_tool("verify", write(tmp_path, "good.xkvm", good)) \
        .returncode == 0

    # a compressed batch in a version-1 stream
    s = mc.Stream(version=1)
    off = len(s.data)
    s.pages([1], "text", mc.ENC_ZLIB)
    s.vcpu(0)
    s.devices()
    expect_broken(write(tmp_path, "v1zlib.xkvm", s.end()), off,
                  "^compressed PAGE_BATCH in a version-1 stream$")

    # header flags, which the header checksum covers
    bad = bytearray(good)
    struct.pack_into("<I", bad, 20, 4)
    struct.pack_into("<I", bad, 64, zlib.crc32(bytes(bad[:64])))
    expect_broken(write(tmp_path, "hflags.xkvm", bytes(bad)), 20,
                  "^header flags 0x4, none are defined$")

    # the header's reserved field, which the checksum does not cover
    bad = bytearray(good)
    bad[68] = 0x55
    expect_broken(write(tmp_path, "hres.xkvm", bytes(bad)), 68,
                  "^header reserved field 0x55, must be 0$")

    # non-zero padding (the checksum covers the body only)
    recs = parse(good)
    cfg = recs[0]
    assert cfg.length % 8
    bad = bytearray(good)
    bad[cfg.offset + 16 + cfg.length] = 0xAA
    expect_broken(write(tmp_path, "pad.xkvm", bytes(bad)), cfg.offset,
                  r"^record DOMAIN_CONFIG \(0x1\) has non-zero padding$")

    # pages after the vCPU records; a mandatory DOMAIN_STATUS
    for rtype, body, reason in (
            (mc.PAGE_BATCH, mc.page_batch([3], [bytes(4096)], 0),
             "^PAGE_BATCH record after the device records$"),
            (mc.DOMAIN_STATUS, b"{}",
             "^mandatory DOMAIN_STATUS record .* restore does not apply$")):
        s = synthetic()
        off = len(s.data)
        s.add(rtype, body)
        expect_broken(write(tmp_path, "late.xkvm", s.end()), off, reason)

    # a vCPU the config does not have; a wrong KVM structure size
    s = mc.Stream()
    off = len(s.data)
    s.add(mc.VCPU_REGS, mc.vcpu_body(1, mc.kvm_regs(0, 0)))
    expect_broken(write(tmp_path, "vcpu1.xkvm", s.end()), off,
                  "^VCPU_REGS for vCPU 1, the config has 1 vCPUs$")
    s = mc.Stream()
    off = len(s.data)
    s.add(mc.VCPU_REGS, mc.vcpu_body(0, bytes(140)))
    expect_broken(write(tmp_path, "regs.xkvm", s.end()), off,
                  "^VCPU_REGS of 140 bytes, struct is 144$")

    # a missing device, a missing DOMAIN_CONFIG
    s = mc.Stream()
    s.vcpu(0)
    s.add(mc.DEV_BOARD, struct.pack("<II", 0, 0))
    data = s.end()
    expect_broken(write(tmp_path, "nodev.xkvm", data), parse(data)[-1].offset,
                  "^stream ends without a DEV_UART record$")
    expect_broken(write(tmp_path, "onlyend.xkvm",
                        mc.header() + mc.record(mc.END, b"")),
                  mc.HEADER_LEN,
                  "^stream ends without a DOMAIN_CONFIG record$")


def test_usage_and_unreadable(tmp_path):
    assert run_tool().returncode == 2
    assert run_tool("verify").returncode == 2
    assert run_tool("frobnicate", "x").returncode == 2
    assert run_tool("verify", "a", "b").returncode == 2
    assert run_tool("verify", "--pages", "a").returncode == 2
    assert run_tool("dump", "--bogus", "a").returncode == 2
    r = run_tool("--help")
    assert r.returncode == 0 and "usage:" in r.out
    r = run_tool("verify", str(tmp_path / "missing.xkvm"))
    assert r.returncode == 66 and "No such file" in r.err
    assert run_tool("dump", str(tmp_path)).returncode == 66
    good = mc.corpus()["v2-minimal"]
    r = run_tool("verify", "-", stdin=good)
    assert r.returncode == 0 and r.out.startswith("OK: 8 records")


# ------------------------------------------------------------ corpus, fuzz

def test_corpus_is_current_and_valid():
    """The checked-in seeds are what make_corpus.py writes, each small and
    accepted by verify."""
    want = mc.corpus()
    have = sorted(os.listdir(CORPUS))
    assert have == sorted(n + ".xkvm" for n in want)
    for name, data in want.items():
        path = os.path.join(CORPUS, name + ".xkvm")
        assert open(path, "rb").read() == data, \
            f"{path} is stale: run tests/fuzz/make_corpus.py"
        assert len(data) < 64 * 1024
        r = run_tool("verify", path)
        assert r.returncode == 0, r.out
        d = run_tool("dump", "--pages", path)
        assert d.returncode == 0 and "  problems 0\n" in d.out


def test_regressions_do_not_crash_the_tool():
    files = sorted(os.listdir(REGRESSIONS))
    assert files, "tests/fuzz/regressions/stream/ is empty"
    for f in files:
        path = os.path.join(REGRESSIONS, f)
        for cmd in (["verify"], ["dump", "--pages"]):
            r = run_tool(*cmd, path)
            assert r.returncode in (0, 1), (f, cmd, r.returncode, r.err)
