"""Read, edit and re-write state streams (common/stream.h) from Python.

The tests use this to make streams with exactly one fault each: every
edit re-computes the checksums it touches unless told not to, so the
fault a test means is the only one the daemon can find.

    s = Stream.load(path)
    s.config()["memory"]             # DOMAIN_CONFIG as a dict
    s.set_config(memory=32)          # rewrites the record, crc fixed
    s.insert_before_end(Record(0x7777, 0, b"..."))
    s.save(other_path)

scan(path) walks a stream too big to hold in memory (a 2 GiB guest's
save) record head by record head; guest_page(path, pfn) finds one guest
page in it and decodes it (none, LZ4 and zlib batches).
"""
import json
import os
import re
import struct
import subprocess
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("XEN_BUILD", os.path.join(ROOT, "build"))


def _format():
    """The record table and layouts as this build compiled them
    (`xen-stream records`, from common/records.h and common/rec_table.c):
    the record types come from there, and the struct formats below are
    checked against it, so that this file holds no second copy."""
    exe = os.path.join(BUILD, "bin", "xen-stream")
    out = subprocess.run([exe, "records"], check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    return json.loads(out)


FORMAT = _format()
_C = FORMAT["constants"]
MAGIC = _C["magic"].encode()
BYTE_ORDER = _C["byte_order"]
HEADER_LEN = _C["header_len"]
PAGE_SIZE = _C["page_size"]
REC_F_OPTIONAL = _C["rec_f_optional"]
RAM_HOLE_START = _C["ram_hole_start"]
RAM_HIGH_START = _C["ram_high_start"]
UART_INPUT_MAX = _C["uart_input_max"]
VERSION, VERSION_MIN = _C["version"], _C["version_min"]

# Every record type as a module constant (END, DOMAIN_CONFIG, VCPU_REGS...).
TYPES = {r["name"]: r["type"] for r in FORMAT["records"]}
globals().update(TYPES)
TYPE_NAMES = {t: n for n, t in TYPES.items()}
# Record types of a part of the stream, in the record table's order.
PHASE_TYPES = {}
for _r in FORMAT["records"]:
    PHASE_TYPES.setdefault(_r["phase"], []).append(_r["type"])
VCPU_TYPES = tuple(PHASE_TYPES["vcpus"])
VM_TYPES = tuple(PHASE_TYPES["vm"])
DEVICE_TYPES = tuple(PHASE_TYPES["devices"])
# Body bytes of the fixed-size records (for vCPU records: after the head).
RECORD_SIZES = {r["type"]: r["size"] for r in FORMAT["records"]
                if r["size_rule"] != "any"}


def check_format(struct_name, fmt):
    """A struct format of this file against the C layout: same size, and
    each item at its field's offset, in declaration order."""
    c = FORMAT["structs"][struct_name]
    items = re.findall(r"\d*[a-zA-Z]", fmt[1:])
    fields = list(c["fields"].values())
    if struct.calcsize(fmt) != c["size"] or len(items) != len(fields):
        raise AssertionError(f"{struct_name}: {fmt} does not match "
                             f"{c['size']} bytes with {len(fields)} fields")
    off = 0
    for item, (c_off, c_size) in zip(items, fields):
        if off != c_off or struct.calcsize("<" + item) != c_size:
            raise AssertionError(f"{struct_name}: {fmt}: {item} at {off}, "
                                 f"C has {c_size} bytes at {c_off}")
        off += c_size
    return fmt


# struct stream_header: magic, byte_order, version, header_len, flags,
# writer_version[16], build_id[20], build_id_len, crc, reserved.
HEADER_FMT = check_format("stream_header", "<8sIIII16s20sIII")
HEADER_CRC_OFFSET = FORMAT["structs"]["stream_header"]["fields"]["crc"][0]
# type, flags, length, crc32 of the body
REC_HEAD_FMT = check_format("rec_header", "<IIII")
REC_HEAD_LEN = struct.calcsize(REC_HEAD_FMT)
# nr_pages, encoding, data_len, reserved
BATCH_HEAD_FMT = check_format("rec_page_batch", "<IIII")
BATCH_HEAD_LEN = struct.calcsize(BATCH_HEAD_FMT)
# ram_bytes, low_bytes, hole_start, page_size, reserved
LAYOUT_FMT = check_format("rec_memory_layout", "<QQQII")
VCPU_HEAD_FMT = check_format("rec_vcpu_head", "<II")     # vcpu, size
CPUID_HEAD_FMT = check_format("rec_cpuid", "<II")        # nent, reserved
# function, index, flags, eax, ebx, ecx, edx, reserved
CPUID_ENTRY_FMT = check_format("rec_cpuid_entry", "<IIIIIII12s")
CPUID_ENTRY_LEN = struct.calcsize(CPUID_ENTRY_FMT)
# ier, lcr, mcr, scr, dll, dlm, fcr, thr_ipending, in_len, reserved
UART_FMT = check_format("rec_dev_uart", "<BBBBBBBBII")
RTC_FMT = check_format("rec_dev_rtc", "<B7sq128s")
BOARD_FMT = check_format("rec_dev_board", "<II")
# pm1_sts, pm1_en, pm1_cnt, reserved, pm_tmr_ticks
ACPI_PM_FMT = check_format("rec_dev_acpi_pm", "<HHHHQ")
# slot, device_id, index, status, config_generation, isr, broken,
# reserved0, nr_queues, msix_entries, queue_select, config_msix_vector,
# device/driver_feature_select, driver_features, backend_fd, reserved1,
# backend_size, pci_config
VIRTIO_FMT = check_format("rec_dev_virtio", "<BBBBBBBBHHHHIIQiIQ256s")
# size, enabled, msix_vector, last_avail, used_idx, reserved, desc,
# driver, device
VIRTQ_FMT = check_format("rec_virtq", "<HHHHH6sQQQ")
MSIX_ENTRY_FMT = check_format("rec_msix_entry", "<IIII")
CONSOLE_HEAD_FMT = check_format("rec_console_head", "<Q")

ENC_NONE, ENC_LZ4, ENC_ZLIB = 0, 1, 2
ENC_NAMES = {ENC_NONE: "none", ENC_LZ4: "lz4", ENC_ZLIB: "zlib"}


class StreamError(Exception):
    pass


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


def pad8(n):
    return (8 - (n & 7)) & 7


# ---------------------------------------------------------------- header

class Header:
    def __init__(self, raw):
        if len(raw) < HEADER_LEN:
            raise StreamError(f"header: {len(raw)} bytes")
        (self.magic, self.byte_order, self.version, self.header_len,
         self.flags, self.writer_version, self.build_id, self.build_id_len,
         self.crc, self.reserved) = struct.unpack_from(HEADER_FMT, raw)

    def pack(self, fix_crc=True):
        raw = struct.pack(HEADER_FMT, self.magic, self.byte_order,
                          self.version, self.header_len, self.flags,
                          self.writer_version, self.build_id,
                          self.build_id_len, 0, self.reserved)
        if fix_crc:
            self.crc = crc32(raw[:HEADER_CRC_OFFSET])
        return (raw[:HEADER_CRC_OFFSET] + struct.pack("<I", self.crc) +
                raw[HEADER_CRC_OFFSET + 4:])

    def crc_ok(self):
        raw = self.pack(fix_crc=False)
        return crc32(raw[:HEADER_CRC_OFFSET]) == self.crc


# ---------------------------------------------------------------- records

class Record:
    """One record.  `crc` is None until parsed or packed; pack() fills
    it from the body unless fix_crc=False (then the stored one is kept).
    `length` is None to mean len(body)."""

    def __init__(self, type, flags=0, body=b"", crc=None, length=None,
                 offset=None):
        self.type, self.flags, self.body = type, flags, bytes(body)
        self.crc, self.length, self.offset = crc, length, offset

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, f"{self.type:#x}")

    def pack(self, fix_crc=True):
        length = len(self.body) if self.length is None else self.length
        if fix_crc or self.crc is None:
            self.crc = crc32(self.body)
        return (struct.pack(REC_HEAD_FMT, self.type, self.flags, length,
                            self.crc) +
                self.body + b"\0" * pad8(len(self.body)))

    def crc_ok(self):
        return self.crc == crc32(self.body)

    # per-vCPU records
    @property
    def vcpu(self):
        return struct.unpack_from(VCPU_HEAD_FMT, self.body)[0]

    def __repr__(self):
        return (f"Record({self.name}, flags={self.flags}, "
                f"len={len(self.body)}, offset={self.offset})")


def parse_records(data, start=HEADER_LEN):
    """Records from `start` up to and including END."""
    out = []
    off = start
    while True:
        if off + REC_HEAD_LEN > len(data):
            raise StreamError(f"offset {off}: truncated record head")
        t, fl, ln, c = struct.unpack_from(REC_HEAD_FMT, data, off)
        body_end = off + REC_HEAD_LEN + ln
        if body_end + pad8(ln) > len(data):
            raise StreamError(f"offset {off}: record {t:#x} of {ln} bytes "
                              f"runs past the end")
        out.append(Record(t, fl, data[off + REC_HEAD_LEN:body_end], c,
                          offset=off))
        off = body_end + pad8(ln)
        if t == END:
            return out, off


class Stream:
    """A whole stream held in memory: header, records, anything after
    END (`trailer`)."""

    def __init__(self, data):
        self.header = Header(data)
        if self.header.magic != MAGIC:
            raise StreamError("bad magic")
        self.records, end = parse_records(data)
        self.trailer = data[end:]

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def to_bytes(self, fix_crc=True):
        """The stream again; with fix_crc every checksum is re-computed
        (an untouched stream comes out byte for byte as it went in)."""
        out = bytearray(self.header.pack(fix_crc))
        for r in self.records:
            r.offset = len(out)
            out += r.pack(fix_crc)
        out += self.trailer
        return bytes(out)

    def save(self, path, fix_crc=True):
        data = self.to_bytes(fix_crc)
        with open(path, "wb") as f:
            f.write(data)
        return data

    # -- finding things
    def types(self):
        return [r.type for r in self.records]

    def find(self, type):
        return [r for r in self.records if r.type == type]

    def first(self, type):
        rs = self.find(type)
        if not rs:
            raise StreamError(f"no {TYPE_NAMES.get(type, hex(type))} record")
        return rs[0]

    def index(self, type):
        return self.records.index(self.first(type))

    def offsets(self):
        """Record offsets as they are in the bytes to_bytes() makes."""
        self.to_bytes(fix_crc=False)
        return [r.offset for r in self.records]

    # -- editing
    def insert_before_end(self, rec):
        self.records.insert(self.index(END), rec)

    def remove(self, type, nth=0):
        self.records.remove(self.find(type)[nth])

    def config(self):
        return json.loads(self.first(DOMAIN_CONFIG).body)

    def set_config(self, **changes):
        cfg = self.config()
        cfg.update(changes)
        self.first(DOMAIN_CONFIG).body = json.dumps(
            cfg, separators=(",", ":"), sort_keys=True).encode()

    def layout(self):
        b = self.first(MEMORY_LAYOUT).body
        ram, low, hole, page, _ = struct.unpack(LAYOUT_FMT, b)
        return {"ram_bytes": ram, "low_bytes": low, "hole_start": hole,
                "page_size": page}

    def set_layout(self, **changes):
        lay = self.layout()
        lay.update(changes)
        self.first(MEMORY_LAYOUT).body = struct.pack(
            LAYOUT_FMT, lay["ram_bytes"], lay["low_bytes"],
            lay["hole_start"], lay["page_size"], 0)

    def cpuid(self):
        """The CPUID record's entries: dicts of function, index, flags,
        eax, ebx, ecx, edx, in the record's order."""
        b = self.first(CPUID).body
        nent, _ = struct.unpack_from(CPUID_HEAD_FMT, b)
        keys = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
        head = struct.calcsize(CPUID_HEAD_FMT)
        return [dict(zip(keys, struct.unpack_from(
                    CPUID_ENTRY_FMT, b, head + i * CPUID_ENTRY_LEN)[:7]))
                for i in range(nent)]

    def set_cpuid(self, entries):
        body = struct.pack(CPUID_HEAD_FMT, len(entries), 0)
        for e in entries:
            body += struct.pack(CPUID_ENTRY_FMT, e["function"], e["index"],
                                e["flags"], e["eax"], e["ebx"], e["ecx"],
                                e["edx"], b"")
        self.first(CPUID).body = body

    # -- pages
    def batches(self):
        return self.find(PAGE_BATCH)

    def page(self, pfn):
        """The guest page `pfn` as the stream holds it (zero pages are
        elided: a pfn in no batch reads as zeros)."""
        for r in self.batches():
            b = Batch(r.body)
            if pfn in b.pfns:
                return b.page(pfn)
        return bytes(PAGE_SIZE)

    def console(self):
        """(total bytes ever written, the history) of CONSOLE_HISTORY."""
        b = self.first(CONSOLE_HISTORY).body
        head = struct.calcsize(CONSOLE_HEAD_FMT)
        return struct.unpack_from(CONSOLE_HEAD_FMT, b)[0], b[head:]


class Batch:
    """A PAGE_BATCH body: head, pfn list, data."""

    def __init__(self, body):
        (self.nr_pages, self.encoding, self.data_len,
         self.reserved) = struct.unpack_from(BATCH_HEAD_FMT, body)
        head = BATCH_HEAD_LEN + 8 * self.nr_pages
        self.pfns = list(struct.unpack_from(f"<{self.nr_pages}Q", body,
                                            BATCH_HEAD_LEN))
        self.data_offset = head
        self.data = body[head:]
        self._raw = None

    def raw(self):
        if self._raw is None:
            self._raw = decode_pages(self.encoding, self.data,
                                     self.nr_pages * PAGE_SIZE)
        return self._raw

    def page(self, pfn):
        i = self.pfns.index(pfn)
        return self.raw()[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]


def decode_pages(encoding, data, raw_len):
    if encoding == ENC_NONE:
        out = data
    elif encoding == ENC_ZLIB:
        out = zlib.decompress(data)
    elif encoding == ENC_LZ4:
        out = lz4_block_decompress(data, raw_len)
    else:
        raise StreamError(f"unknown page encoding {encoding}")
    if len(out) != raw_len:
        raise StreamError(f"batch decodes to {len(out)} bytes, not "
                          f"{raw_len}")
    return out


def lz4_block_decompress(src, max_out):
    """The LZ4 block format (what LZ4_compress_default writes)."""
    out = bytearray()
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        out += src[i:i + lit]
        i += lit
        if i >= n:
            break                       # the last sequence has no match
        off = src[i] | (src[i + 1] << 8)
        i += 2
        mlen = token & 15
        if mlen == 15:
            while True:
                b = src[i]
                i += 1
                mlen += b
                if b != 255:
                    break
        mlen += 4
        if off == 0 or off > len(out):
            raise StreamError("LZ4: bad match offset")
        start = len(out) - off
        if off >= mlen:
            out += out[start:start + mlen]
        else:                           # overlapping: repeats the last off
            out += (bytes(out[start:]) * (mlen // off + 1))[:mlen]
        if len(out) > max_out:
            raise StreamError("LZ4: output too large")
    return bytes(out)


# ---------------------------------------------------------------- big files

def read_header(path):
    with open(path, "rb") as f:
        return Header(f.read(HEADER_LEN))


def scan(path):
    """(offset, type, flags, length, crc) of every record up to END,
    reading only the record heads (bodies are skipped)."""
    out = []
    with open(path, "rb") as f:
        f.seek(HEADER_LEN)
        while True:
            off = f.tell()
            head = f.read(REC_HEAD_LEN)
            if len(head) < REC_HEAD_LEN:
                raise StreamError(f"offset {off}: truncated record head")
            t, fl, ln, c = struct.unpack(REC_HEAD_FMT, head)
            out.append((off, t, fl, ln, c))
            if t == END:
                return out
            f.seek(ln + pad8(ln), 1)


def guest_page(path, pfn):
    """Guest page `pfn` from a stream file of any size (zeros when the
    stream elided it), checking the batch's crc on the way."""
    with open(path, "rb") as f:
        for off, t, fl, ln, c in scan(path):
            if t != PAGE_BATCH:
                continue
            f.seek(off + REC_HEAD_LEN)
            head = f.read(BATCH_HEAD_LEN)
            nr = struct.unpack_from("<I", head)[0]
            pfns = struct.unpack(f"<{nr}Q", f.read(8 * nr))
            if pfn not in pfns:
                continue
            f.seek(off + REC_HEAD_LEN)
            body = f.read(ln)
            if crc32(body) != c:
                raise StreamError(f"offset {off}: batch crc mismatch")
            return Batch(body).page(pfn)
    return bytes(PAGE_SIZE)


def scan_batches(path):
    """(offset, nr_pages, encoding, data_len) of every PAGE_BATCH of a
    stream file of any size, reading only the batch heads."""
    out = []
    with open(path, "rb") as f:
        for off, t, fl, ln, c in scan(path):
            if t != PAGE_BATCH:
                continue
            f.seek(off + REC_HEAD_LEN)
            nr, enc, dlen, _ = struct.unpack(BATCH_HEAD_FMT,
                                             f.read(BATCH_HEAD_LEN))
            out.append((off, nr, enc, dlen))
    return out
