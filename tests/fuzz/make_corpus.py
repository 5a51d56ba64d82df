#!/usr/bin/env python3
"""Write the fuzz target's seed corpus: small, valid state streams.

A guest the daemon saves is megabytes; these are synthetic streams of the
same format (common/stream.h) with a 4 MiB guest and a handful of pages,
each well under 64 KiB, that `xen-stream verify` accepts:

  v2-mixed       1 vCPU, page batches in each encoding, every record type
  v2-2vcpu       2 vCPUs, an unknown optional record, uart input queued
  v1-plain       format version 1 (no compression), 2 vCPUs
  v2-high        3200 MiB of RAM: pages below the hole and above 4 GiB
  v2-devices     CPUID, ACPI PM, fw_cfg and virtio device records, a
                 DOMAIN_STATUS
  v2-minimal     only the records restore requires

Usage: make_corpus.py [OUTDIR]   (default: tests/fuzz/corpus/stream)

Also a small library: Stream builds a stream record by record (used by
tests/test_stream_tool.py), lz4_block() is a plain LZ4 block compressor
(there is no lz4 module in the standard library).
"""
import json
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import streamlib as sl  # noqa: E402  (the format, from `xen-stream records`)
from streamlib import (  # noqa: E402,F401
    MAGIC, BYTE_ORDER, HEADER_LEN, END, DOMAIN_CONFIG, MEMORY_LAYOUT,
    PAGE_BATCH, VCPU_REGS, VCPU_SREGS, VCPU_XSAVE, VCPU_XCRS, VCPU_MSRS,
    VCPU_LAPIC, VCPU_EVENTS, VCPU_MP_STATE, VCPU_DEBUGREGS, VM_IRQCHIP,
    VM_PIT, VM_CLOCK, DEV_UART, DEV_RTC, DEV_BOARD, CONSOLE_HISTORY,
    DOMAIN_STATUS, ENC_NONE, ENC_LZ4, ENC_ZLIB)

PAGE = sl.PAGE_SIZE
HOLE_START = sl.RAM_HOLE_START
PFN_4G = sl.RAM_HIGH_START // PAGE
F_OPTIONAL = sl.REC_F_OPTIONAL

# sizeof() of the <linux/kvm.h> structures on x86-64.
KVM_SIZES = sl.RECORD_SIZES


def pad8(n):
    return (8 - n % 8) % 8


def header(version=2, writer=b"corpus", build_id=bytes(range(20)),
           flags=0):
    h = struct.pack(sl.HEADER_FMT, MAGIC, BYTE_ORDER, version,
                    HEADER_LEN, flags, writer, build_id, len(build_id), 0,
                    0)[:sl.HEADER_CRC_OFFSET]
    return h + struct.pack("<II", zlib.crc32(h), 0)


def record(rtype, body, flags=0):
    return (struct.pack(sl.REC_HEAD_FMT, rtype, flags, len(body),
                        zlib.crc32(body))
            + body + bytes(pad8(len(body))))


def lz4_block(src):
    """A valid LZ4 block for src: greedy matches of 4+ bytes found through
    a hash of the next 4 bytes; the last 5 bytes are always literals and
    no match starts in the last 12 (the format's end-of-block rules)."""
    out = bytearray()

    def length(v):
        while v >= 255:
            out.append(255)
            v -= 255
        out.append(v)

    def sequence(lit, off=None, mlen=0):
        ml = mlen - 4 if off is not None else 0
        out.append((min(len(lit), 15) << 4) | min(ml, 15))
        if len(lit) >= 15:
            length(len(lit) - 15)
        out.extend(lit)
        if off is not None:
            out.extend(struct.pack("<H", off))
            if ml >= 15:
                length(ml - 15)

    n, i, anchor, table = len(src), 0, 0, {}
    while i < n - 12:
        key = src[i:i + 4]
        cand = table.get(key)
        table[key] = i
        if cand is None or i - cand > 0xFFFF:
            i += 1
            continue
        m = 4
        while i + m < n - 5 and src[cand + m] == src[i + m]:
            m += 1
        sequence(src[anchor:i], i - cand, m)
        i += m
        anchor = i
    sequence(src[anchor:])
    return bytes(out)


def page_batch(pfns, pages, encoding):
    raw = b"".join(pages)
    assert len(raw) == PAGE * len(pfns)
    data = {ENC_NONE: lambda: raw, ENC_LZ4: lambda: lz4_block(raw),
            ENC_ZLIB: lambda: zlib.compress(raw, 9)}[encoding]()
    head = struct.pack(sl.BATCH_HEAD_FMT, len(pfns), encoding, len(data), 0)
    return head + struct.pack(f"<{len(pfns)}Q", *pfns) + data


def vcpu_body(vcpu, data):
    return struct.pack(sl.VCPU_HEAD_FMT, vcpu, len(data)) + data


def kvm_regs(rip, rsp, rflags=0x2, seed=0):
    gprs = [(seed * 0x9E3779B97F4A7C15 + k * 0x1000) & (2**64 - 1)
            for k in range(16)]
    gprs[6] = rsp                       # rax rbx rcx rdx rsi rdi rsp rbp r8..
    return struct.pack("<18Q", *gprs, rip, rflags)


def kvm_segment(base, limit, selector, stype, dpl=0, db=0, l=0):
    # base limit selector type present dpl db s l g avl unusable padding
    return struct.pack("<QIH10B", base, limit, selector, stype, 1, dpl, db,
                       1, l, 1, 0, 0, 0)


def kvm_sregs(long_mode=True, apic_base=0xFEE00900):
    if long_mode:
        cs = kvm_segment(0, 0xFFFFFFFF, 0x08, 11, l=1)
        ds = kvm_segment(0, 0xFFFFFFFF, 0x10, 3, db=1)
        cr = (0x80000011, 0, 0x102000, 0x20, 0, 0x500, apic_base)
    else:
        cs = kvm_segment(0xFFFF0000, 0xFFFF, 0xF000, 11)
        ds = kvm_segment(0, 0xFFFF, 0, 3)
        cr = (0x60000010, 0, 0, 0, 0, 0, apic_base)
    tr = kvm_segment(0, 0xFFFF, 0, 11)
    ldt = kvm_segment(0, 0xFFFF, 0, 2)
    segs = cs + ds * 4 + ds + tr + ldt          # cs ds es fs gs ss tr ldt
    dt = struct.pack("<QH6x", 0x108000, 0x37) + struct.pack("<QH6x", 0, 0)
    body = segs + dt + struct.pack("<7Q", *cr) + bytes(32)
    assert len(body) == KVM_SIZES[VCPU_SREGS]
    return body


def kvm_msrs(entries):
    body = struct.pack("<II", len(entries), 0)
    for index, value in entries:
        body += struct.pack("<IIQ", index, 0, value)
    return body


def kvm_lapic(apic_id):
    regs = bytearray(1024)

    def put(off, v):
        regs[off:off + 4] = struct.pack("<I", v)
    put(0x20, apic_id << 24)
    put(0x30, 0x50014)
    put(0xF0, 0x1FF)
    for off in (0x320, 0x360, 0x370):
        put(off, 0x10000)
    put(0x350, 0x700)
    return bytes(regs)


def sized(rtype, head=b""):
    """head padded with zeros to the KVM structure's size."""
    return head + bytes(KVM_SIZES[rtype] - len(head))


def pit_state():
    chans = b""
    for count, mode in ((65536, 2), (65536, 0xFF), (59659, 0)):
        chans += struct.pack("<IHBBBBBBBBBBq", count, 0, 0, 0, 0, 0, 0, 0,
                             3, mode, 0, 1, 0)
    return chans + struct.pack("<I36x", 0)


def pattern_page(seed, kind):
    """Pages of different compressibility."""
    if kind == "text":
        line = f"page {seed:#x}: the quick brown fox jumps over it. ".encode()
        return (line * (PAGE // len(line) + 1))[:PAGE]
    if kind == "sparse":
        p = bytearray(PAGE)
        for k in range(0, PAGE, 512):
            p[k:k + 8] = struct.pack("<Q", seed * 0x1000 + k)
        return bytes(p)
    x, out = seed * 2654435761 + 1, bytearray()   # "random": lz4 gains nothing
    for _ in range(PAGE // 4):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += struct.pack("<I", x)
    return bytes(out)


class Stream:
    """A stream built record by record; bytes() gives the file."""

    def __init__(self, version=2, name="fuzz", memory=4, vcpus=1,
                 kernel="/boot/fuzz.elf", cmdline="ws=64K"):
        self.version, self.memory, self.vcpus = version, memory, vcpus
        self.data = bytearray(header(version))
        self.offsets = []           # (offset, type) of each record
        cfg = {"cmdline": cmdline, "kernel": kernel, "memory": memory,
               "name": name, "on_crash": "destroy",
               "on_poweroff": "destroy", "on_reboot": "restart",
               "ramdisk": None, "vcpus": vcpus}
        self.add(DOMAIN_CONFIG, json.dumps(cfg, separators=(",", ":"),
                                           sort_keys=True).encode())
        ram = memory << 20
        low = min(ram, HOLE_START)
        self.add(MEMORY_LAYOUT, struct.pack(sl.LAYOUT_FMT, ram, low,
                                            HOLE_START, PAGE, 0))

    def add(self, rtype, body, flags=0):
        self.offsets.append((len(self.data), rtype))
        self.data += record(rtype, body, flags)

    def pages(self, pfns, kind="text", encoding=ENC_NONE):
        pages = [pattern_page(p, kind) for p in pfns]
        self.add(PAGE_BATCH, page_batch(pfns, pages, encoding))

    def vcpu(self, v, full=True):
        self.add(VCPU_REGS, vcpu_body(v, kvm_regs(0x101000 + v, 0x113000,
                                                    seed=v + 1)))
        self.add(VCPU_SREGS, vcpu_body(v, kvm_sregs(long_mode=v == 0,
                                                      apic_base=0xFEE00800 |
                                                      (0x100 if v == 0
                                                       else 0))))
        if not full:
            return
        self.add(VCPU_XSAVE, vcpu_body(v, sized(VCPU_XSAVE,
                                                 bytes(24) +
                                                 struct.pack("<I", 0x1F80))))
        self.add(VCPU_XCRS, vcpu_body(v, sized(VCPU_XCRS, struct.pack(
            "<II", 1, 0) + struct.pack("<IIQ", 0, 0, 1))))
        self.add(VCPU_MSRS, vcpu_body(v, kvm_msrs(
            [(0x10, 0x4680DCA87C0 + v), (0x174, 0), (0xC0000080, 0x500),
             (0x1A0, 1), (0x4B564D05, 1)])))
        self.add(VCPU_LAPIC, vcpu_body(v, kvm_lapic(v)))
        self.add(VCPU_MP_STATE, vcpu_body(v, struct.pack("<I",
                                                         0 if v == 0 else 1)))
        self.add(VCPU_EVENTS, vcpu_body(v, sized(VCPU_EVENTS)))
        self.add(VCPU_DEBUGREGS, vcpu_body(v, sized(
            VCPU_DEBUGREGS, struct.pack("<6Q", 0, 0, 0, 0, 0xFFFF0FF0,
                                        0x400))))

    def vm(self):
        for chip in (0, 1, 2):
            head = struct.pack("<II", chip, 0)
            if chip == 2:
                head += struct.pack("<QIII", 0xFEC00000, 0, 0, 0)
            self.add(VM_IRQCHIP, sized(VM_IRQCHIP, head))
        self.add(VM_PIT, pit_state())
        self.add(VM_CLOCK, sized(VM_CLOCK, struct.pack("<QI", 1223757113,
                                                       0xE)))

    def devices(self, uart_input=b""):
        self.add(DEV_BOARD, struct.pack(sl.BOARD_FMT, 0x80000000, 0))
        self.add(DEV_UART, struct.pack(sl.UART_FMT, 0, 3, 0, 0, 12, 0, 0, 1,
                                       len(uart_input), 0) + uart_input)
        cmos = bytearray(128)
        cmos[10:14] = bytes((0x26, 0x02, 0, 0x80))
        self.add(DEV_RTC, struct.pack(sl.RTC_FMT, 0x0B, bytes(7), -3600,
                                      bytes(cmos)))

    def console(self, text, total=None):
        total = len(text) if total is None else total
        self.add(CONSOLE_HISTORY, struct.pack("<Q", total) + text,
                 F_OPTIONAL)

    def end(self):
        self.add(END, b"")
        return bytes(self.data)


def corpus():
    """name -> stream bytes."""
    out = {}

    s = Stream(version=2, name="mixed", vcpus=1)
    s.pages([0, 1, 0x20], "text", ENC_NONE)
    s.pages([0x100, 0x101, 0x102, 0x103], "text", ENC_LZ4)
    s.pages([0x200, 0x201], "sparse", ENC_ZLIB)
    s.pages([0x3FF], "random", ENC_NONE)
    s.vcpu(0)
    s.vm()
    s.devices()
    s.console(b"counter guest: round 1\r\ncounter guest: round 2\r\n",
              total=4242)
    out["v2-mixed"] = s.end()

    s = Stream(version=2, name="two", vcpus=2, cmdline="ws=2M interval=200")
    s.pages([0x10, 0x11], "sparse", ENC_LZ4)
    s.pages([0x300], "text", ENC_ZLIB)
    s.vcpu(0)
    s.vcpu(1)
    s.add(0x7F, b"a record from the future", F_OPTIONAL)
    s.vm()
    s.devices(uart_input=b"typed\n")
    s.console(b"hello\n")
    out["v2-2vcpu"] = s.end()

    s = Stream(version=1, name="plain", vcpus=2)
    s.pages([0, 0x1FF], "sparse", ENC_NONE)
    s.pages([0x3FE], "text", ENC_NONE)
    s.vcpu(0)
    s.vcpu(1)
    s.vm()
    s.devices()
    s.console(b"")
    out["v1-plain"] = s.end()

    s = Stream(version=2, name="high", memory=3200, vcpus=1)
    s.pages([0, HOLE_START // PAGE - 1], "sparse", ENC_LZ4)
    s.pages([PFN_4G, PFN_4G + (3200 << 20) // PAGE - HOLE_START // PAGE - 1],
            "text", ENC_ZLIB)
    s.vcpu(0, full=False)
    s.devices()
    out["v2-high"] = s.end()

    s = Stream(version=2, name="devices", vcpus=1)
    cpuid = [(0, 0, 0, (0xD, 0x68747541, 0x444D4163, 0x69746E65)),
             (1, 0, 0, (0x00A20F12, 0x00000800, 0x80000000, 0x078BFBFF)),
             (7, 0, 1, (0, 0x219C91A9, 0, 0))]
    s.add(sl.TYPES["CPUID"], struct.pack(sl.CPUID_HEAD_FMT, len(cpuid), 0) +
          b"".join(struct.pack(sl.CPUID_ENTRY_FMT, fn, idx, fl, *regs,
                               bytes(12))
                   for fn, idx, fl, regs in cpuid), F_OPTIONAL)
    s.vcpu(0, full=False)
    s.add(sl.TYPES["VCPU_TSC"], vcpu_body(0, struct.pack(
        "<QQQII", 0x4680DCA87C0, 1764770000 * 10**9, 0xFFFFFF0000000000,
        2445000, 0)), F_OPTIONAL)
    s.devices()
    s.add(sl.TYPES["DEV_ACPI_PM"], struct.pack(sl.ACPI_PM_FMT, 0x100, 0x100,
                                               1, 0, 123456789), F_OPTIONAL)
    s.add(sl.TYPES["DEV_FW_CFG"], struct.pack("<HHIII", 0x19, 0, 8, 0, 0),
          F_OPTIONAL)
    for slot, dev in ((3, 4), (4, 2)):
        s.add(sl.TYPES["DEV_VIRTIO"], struct.pack(
            sl.VIRTIO_FMT, slot, dev, 0, 0x0F, 1, 0, 0, 0, 0, 0, 0, 0xFFFF,
            0, 0, 1 << 32, -1, 0, 0, bytes(256)), F_OPTIONAL)
    s.add(sl.TYPES["DOMAIN_STATUS"], b'{"state":"running"}', F_OPTIONAL)
    s.console(b"devices\n")
    out["v2-devices"] = s.end()

    s = Stream(version=2, name="minimal", vcpus=1)
    s.vcpu(0, full=False)
    s.devices()
    out["v2-minimal"] = s.end()
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "corpus", "stream")
    os.makedirs(outdir, exist_ok=True)
    for name, data in corpus().items():
        assert len(data) < 64 * 1024, (name, len(data))
        path = os.path.join(outdir, name + ".xkvm")
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(data)} bytes")


if __name__ == "__main__":
    main()
