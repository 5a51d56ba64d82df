"""The kernel loaders (xen/boot/): the boot reporter guest
(tests/guests/reporter.c) is built as a multiboot1 ELF (mbreport.elf), a
PVH ELF (pvh.elf) and a Linux bzImage (bzimage); each prints on COM1 what
the loader handed over (protocol, command line, memory map, initrd and its
checksum, the protocol's magic) and leaves through the debug-exit port.
The tests compare that report with what the hypervisor must pass for the
config, and check that broken images, ramdisks and command lines are
refused by `xl create` with error 8 (bad-kernel), a message naming the
problem, no domain left behind, while a counter guest in the same daemon
keeps counting.  See tests/guests/README.md for the report's lines."""
import os
import random
import re
import shutil
import struct
import subprocess
import time

import pytest

from harness import GUESTS, ApiError, build_has, ram_memfds, still_fine

MIB = 1 << 20
HOLE_START = 0xC0000000         # RAM above this moves to 4 GiB
MEM_4G = 1 << 32
EBDA = 0x9FC00
E820_RAM, E820_RESERVED = 1, 2

# protocol -> (Kconfig feature, file in $XEN_BUILD/guests, name in the
# hypervisor's "supported:" list)
PROTOCOLS = {
    "multiboot": ("BOOT_MULTIBOOT", "mbreport.elf", "multiboot1 ELF"),
    "pvh": ("BOOT_PVH", "pvh.elf", "PVH ELF"),
    "linux": ("BOOT_LINUX", "bzimage", "Linux bzImage"),
}
# Where the loaders put the boot information (xen/boot/boot.h).
INFO_ADDR = {"multiboot": 0x9500, "pvh": 0x6000, "linux": 0x7000}


def want_cmdline(proto, line):
    """What the guest prints: a multiboot kernel gets "<kernel> <line>",
    as QEMU passes it (docs/boot.md)."""
    if proto == "multiboot":
        line = f"{image_path(proto)} {line}"
    return guest_escaped(line)

# Spaces, quotes, punctuation, a tab and a non-ASCII letter.  The reporter
# prints bytes < 0x20, >= 0x7f and the backslash as \xNN.
CMDLINE = ("console=ttyS0,115200 root=/dev/vda1 ro quiet 'single quoted' "
           "\"double quoted\" a,b;c:d|e&f<g>h?i*j#k %20 $HOME ~user "
           "x=y=z -- \\back\\slash\ttab caf\u00e9 [brackets] {braces} !@^")

BZ_SETUP_SECTS = 0x1f1
BZ_SYSSIZE = 0x1f4
BZ_BOOT_FLAG = 0x1fe
BZ_JUMP = 0x200
BZ_VERSION = 0x206
BZ_INITRD_ADDR_MAX = 0x22c
BZ_XLOADFLAGS = 0x236
BZ_CMDLINE_SIZE = 0x238
BZ_INIT_SIZE = 0x260
BZ_HEADER_END = 0x26c           # protocol 2.15


def image_path(proto):
    return os.path.join(GUESTS, PROTOCOLS[proto][1])


def read_image(proto):
    with open(image_path(proto), "rb") as f:
        return f.read()


def need(feature, proto):
    feature(PROTOCOLS[proto][0])
    if not os.path.exists(image_path(proto)):
        raise RuntimeError(f"{image_path(proto)} is missing: run `make`")


# ------------------------------------------------------------ images

def bz_get(data, off, fmt):
    return struct.unpack_from(fmt, data, off)[0]


def bz_patched(data, *edits):
    """The bzImage with (offset, struct format, value) edits applied."""
    b = bytearray(data)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    return bytes(b)


def bz_payload_offset(data):
    return (bz_get(data, BZ_SETUP_SECTS, "<B") or 4) * 512 + 512


def elf_phdrs(data):
    """(p_type, p_offset, p_paddr, p_filesz, p_memsz, phdr file offset)
    of every program header of an ELF32 or ELF64 file."""
    assert data[:4] == b"\x7fELF"
    out = []
    if data[4] == 2:
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        for i in range(phnum):
            o = phoff + i * phentsize
            t, _, off, _, paddr, fsz, msz = struct.unpack_from("<IIQQQQQ",
                                                               data, o)
            out.append((t, off, paddr, fsz, msz, o))
    else:
        phoff, = struct.unpack_from("<I", data, 0x1c)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x2a)
        for i in range(phnum):
            o = phoff + i * phentsize
            t, off, _, paddr, fsz, msz = struct.unpack_from("<IIIIII",
                                                            data, o)
            out.append((t, off, paddr, fsz, msz, o))
    return out


PT_LOAD, PT_NOTE = 1, 4


def image_end(proto, data):
    """First byte above the kernel image as loaded (bss included)."""
    if proto == "linux":
        return 0x100000 + bz_get(data, BZ_INIT_SIZE, "<I")
    return max(p + m for t, _, p, _, m, _ in elf_phdrs(data) if t == PT_LOAD)


def write_file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


# ------------------------------------------------------------ expectations

def expected_e820(memory_mib):
    """The map the hypervisor documents (xen/boot/boot.c boot_e820):
    RAM below the EBDA, the EBDA..1 MiB hole reserved, RAM from 1 MiB to
    min(memory, 3 GiB), the rest of the RAM from 4 GiB."""
    size = memory_mib * MIB
    low = min(size, HOLE_START)
    m = [(0, EBDA, E820_RAM), (EBDA, 0x100000 - EBDA, E820_RESERVED)]
    if low > 0x100000:
        m.append((0x100000, low - 0x100000, E820_RAM))
    if size > low:
        m.append((MEM_4G, size - low, E820_RAM))
    return m


def guest_escaped(s):
    """s as the reporter prints it."""
    return "".join(chr(b) if 0x20 <= b < 0x7f and b != 0x5c else
                   f"\\x{b:02x}" for b in s.encode())


def cfg_string(s):
    """s as a double-quoted xl.cfg string."""
    return '"' + (s.replace("\\", "\\\\").replace('"', '\\"')
                  .replace("\t", "\\t").replace("\n", "\\n")) + '"'


def checksum(data):
    return sum(data) & 0xFFFFFFFF


# ------------------------------------------------------------ report

def parse_report(text):
    """The BOOT lines of a console as a dict."""
    r = {"e820": [], "lines": [], "extra": {}}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.startswith("BOOT "):
            continue
        r["lines"].append(line)
        if m := re.fullmatch(r"BOOT protocol=(\S+)", line):
            r["protocol"] = m.group(1)
        elif m := re.fullmatch(r"BOOT info_addr=0x([0-9a-f]+)", line):
            r["info_addr"] = int(m.group(1), 16)
        elif line.startswith("BOOT cmdline="):
            r["cmdline"] = line[len("BOOT cmdline="):]
        elif line == "BOOT cmdline none":
            r["cmdline"] = None
        elif m := re.fullmatch(r"BOOT e820_entries=(\d+)", line):
            r["e820_entries"] = int(m.group(1))
        elif m := re.fullmatch(r"BOOT e820 0x([0-9a-f]+) 0x([0-9a-f]+) "
                               r"(\d+)", line):
            r["e820"].append((int(m.group(1), 16), int(m.group(2), 16),
                              int(m.group(3))))
        elif m := re.fullmatch(r"BOOT ram_total_kib=(\d+)", line):
            r["ram_total_kib"] = int(m.group(1))
        elif m := re.fullmatch(r"BOOT initrd addr=0x([0-9a-f]+) "
                               r"size=(\d+) sum=0x([0-9a-f]{8})", line):
            r["initrd"] = (int(m.group(1), 16), int(m.group(2)),
                           int(m.group(3), 16))
        elif line == "BOOT initrd none":
            r["initrd"] = None
        elif m := re.fullmatch(r"BOOT magic (ok|bad)", line):
            r["magic"] = m.group(1)
        elif line == "BOOT DONE":
            r["done"] = True
        elif m := re.fullmatch(r"BOOT (multiboot|pvh|linux) (.*)", line):
            for kv in m.group(2).split():
                k, _, v = kv.partition("=")
                r["extra"][k] = int(v, 0) if re.fullmatch(
                    r"0x[0-9a-f]+|\d+", v) else v
    return r


def boot_report(daemon, name, kernel, memory=48, cmdline=None,
                ramdisk=None):
    """Create the reporter guest, wait for BOOT DONE; returns the parsed
    report (the domain is preserved when it powers off, then destroyed
    here)."""
    cfg = (f'name = "{name}"\nmemory = {memory}\nkernel = "{kernel}"\n'
           'on_poweroff = "preserve"\non_crash = "preserve"\n'
           'strict_io = 1\n')
    if cmdline is not None:
        cfg += f"cmdline = {cfg_string(cmdline)}\n"
    if ramdisk is not None:
        cfg += f'ramdisk = "{ramdisk}"\n'
    daemon.xl("create", daemon.write_cfg(cfg, name + ".cfg"))
    daemon.wait_console(name, r"BOOT DONE\r\n")
    if build_has("DEV_DEBUG_EXIT"):
        d = daemon.wait_state(name, "shutdown")
        assert d["exit_code"] == 1, d           # outb(0xf4, 0)
    text = daemon.console(name)
    daemon.xl("destroy", name)
    daemon.wait_domain_gone(name)
    return parse_report(text), text


def check_e820(rep, memory, text):
    want = expected_e820(memory)
    assert rep["e820"] == want, text
    assert rep["e820_entries"] == len(want), text
    assert rep["ram_total_kib"] == sum(s for _, s, t in want
                                       if t == E820_RAM) >> 10, text


def in_ram(rep, addr, size):
    return any(t == E820_RAM and a <= addr and addr + size <= a + s
               for a, s, t in rep["e820"])


# ------------------------------------------------------------ helpers

def assert_refused(daemon, witness, name, kernel, needles, memory=48,
                   cmdline=None, ramdisk=None, code=8):
    """`xl create` fails with `code`, its message holds every needle, no
    domain (and no guest RAM) is left behind, the witness counts on."""
    cfg = f'name = "{name}"\nmemory = {memory}\nkernel = "{kernel}"\n'
    if cmdline is not None:
        cfg += f"cmdline = {cfg_string(cmdline)}\n"
    if ramdisk is not None:
        cfg += f'ramdisk = "{ramdisk}"\n'
    log_start = len(daemon.log())
    r = daemon.xl("create", daemon.write_cfg(cfg, name + ".cfg"),
                  check=False)
    if r.returncode == 0:
        try:
            text = daemon.console(name)
        except ApiError as e:           # it crashed and was destroyed
            text = f"({e})"
        daemon.xl("destroy", name, check=False)
        pytest.fail(f"xl create accepted {kernel} (should fail with "
                    f"{code}: {needles}); guest console:\n{text[-2000:]}")
    assert r.returncode == code, (r.returncode, r.err)
    msg = r.err
    # The temporary directory is named after the test: keep its name out
    # of the words looked for.
    clean = msg.replace(daemon.root, "<tmp>")
    for n in needles:
        n = n.replace(daemon.root, "<tmp>")
        assert n in clean, f"{n!r} not in the error: {clean!r}"
    assert name not in daemon.domains()
    if code == 8:
        m = daemon.wait_log(rf"d(\d+): create '{name}' failed: ",
                            start=log_start)
        domid = int(m.group(1))
        assert domid not in ram_memfds(daemon), \
            f"the RAM of the failed d{domid} is still open"
    still_fine(daemon, witness)
    return msg


# ------------------------------------------------------------ reports

@pytest.mark.parametrize("memory", [48, 4100])
@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_report(daemon, witness, feature, tmp_path, proto, memory):
    """Protocol, exact command line, the memory map (with the RAM above
    4 GiB in the 4100 MiB case), the initrd's place, size and checksum, and
    the protocol's magic, as the guest sees them."""
    need(feature, proto)
    img = read_image(proto)
    rd = random.Random(f"{proto}-{memory}").randbytes(300000 + 4097)
    rd_path = write_file(tmp_path, "initrd.bin", rd)
    rep, text = boot_report(daemon, f"b-{proto}", image_path(proto), memory,
                            CMDLINE, rd_path)

    assert rep.get("protocol") == proto, text
    assert rep.get("done"), text
    assert rep.get("magic") == "ok", text
    assert rep.get("cmdline") == want_cmdline(proto, CMDLINE), text
    assert rep.get("info_addr") == INFO_ADDR[proto], text
    check_e820(rep, memory, text)
    if memory > 4096:
        assert (MEM_4G, (memory << 20) - HOLE_START, E820_RAM) in rep["e820"]

    assert rep.get("initrd"), text
    addr, size, csum = rep["initrd"]
    assert size == len(rd), text
    assert csum == checksum(rd), text
    # Where it may lie: in RAM, above the image, below what the protocol
    # allows.
    assert in_ram(rep, addr, size), (hex(addr), text)
    assert addr >= image_end(proto, img), (hex(addr), text)
    assert addr + size <= HOLE_START
    if proto == "multiboot":            # header flag 0: page-aligned modules
        assert addr % 4096 == 0, hex(addr)
    if proto == "linux":
        assert addr + size - 1 <= bz_get(img, BZ_INITRD_ADDR_MAX, "<I")

    x = rep["extra"]
    if proto == "multiboot":
        assert x["mem_lower_kib"] == EBDA >> 10
        assert x["mem_upper_kib"] == (min(memory * MIB, HOLE_START)
                                      - 0x100000) >> 10
        assert x["flags"] & 0x4d == 0x4d, text      # mem, cmdline, mods, mmap
        assert x["mods"] == 1
    elif proto == "pvh":
        assert x["version"] >= 1, text              # has the memory map
        assert x["nr_modules"] == 1
    else:
        # The setup header is copied into the zero page...
        for field, off, fmt in (("version", BZ_VERSION, "<H"),
                                ("setup_sects", BZ_SETUP_SECTS, "<B"),
                                ("syssize", BZ_SYSSIZE, "<I"),
                                ("cmdline_size", BZ_CMDLINE_SIZE, "<I"),
                                ("init_size", BZ_INIT_SIZE, "<I"),
                                ("initrd_addr_max", BZ_INITRD_ADDR_MAX,
                                 "<I")):
            assert x[field] == bz_get(img, off, fmt), (field, text)
        # ...and the loader's fields are filled in.
        assert x["type_of_loader"] != 0, text
        assert x["loadflags"] & 0x01, text          # LOADED_HIGH kept
        if x["loadflags"] & 0x80:                   # CAN_USE_HEAP
            assert x["heap_end_ptr"] != 0, text
        # 64-bit entry: CS = __BOOT_CS, DS = SS = __BOOT_DS (boot.rst).
        assert (x["entry"], x["cs"], x["ds"], x["ss"]) == \
            (64, 0x10, 0x18, 0x18), text


@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_report_without_ramdisk_and_cmdline(daemon, feature, proto):
    need(feature, proto)
    rep, text = boot_report(daemon, f"n-{proto}", image_path(proto), 16)
    assert rep.get("protocol") == proto and rep.get("done"), text
    assert rep["magic"] == "ok", text
    assert rep["cmdline"] == want_cmdline(proto, ""), text
    assert rep["initrd"] is None, text
    check_e820(rep, 16, text)
    if proto == "pvh":
        assert rep["extra"]["nr_modules"] == 0
    if proto == "multiboot":                # QEMU sets the flag for 0 too
        assert rep["extra"]["mods"] == 0


def test_all_protocols_agree(daemon, feature, tmp_path):
    """The three protocols describe the same domain the same way."""
    for proto in PROTOCOLS:
        need(feature, proto)
    rd = os.urandom(12345)
    rd_path = write_file(tmp_path, "rd", rd)
    reps = {p: boot_report(daemon, f"a-{p}", image_path(p), 100,
                           "same for all three", rd_path)[0]
            for p in PROTOCOLS}
    reps["multiboot"]["cmdline"] = reps["multiboot"]["cmdline"].replace(
        image_path("multiboot") + " ", "", 1)
    for key in ("cmdline", "e820", "ram_total_kib", "magic"):
        vals = {p: r.get(key) for p, r in reps.items()}
        assert len({repr(v) for v in vals.values()}) == 1, (key, vals)
    for p, r in reps.items():
        assert r["initrd"][1:] == (len(rd), checksum(rd)), (p, r["initrd"])


def test_linux_cmdline_of_exactly_cmdline_size(daemon, feature):
    """boot.rst: cmdline_size is "the maximum size of the command line
    without the terminating zero ... the command line can contain at most
    cmdline_size characters", so a line of exactly cmdline_size characters
    must boot and arrive whole."""
    need(feature, "linux")
    size = bz_get(read_image("linux"), BZ_CMDLINE_SIZE, "<I")
    line = ("x" * 9 + " ") * (size // 10) + "y" * (size % 10)
    assert len(line) == size
    rep, text = boot_report(daemon, "cl", image_path("linux"), 32, line)
    assert rep["cmdline"] == line, text


@pytest.mark.parametrize("proto", ["multiboot", "pvh"])
def test_longest_cmdline(daemon, feature, proto):
    """The longest command line a config may hold (4095 bytes) arrives
    whole."""
    need(feature, proto)
    line = "".join(chr(0x21 + i % 94) for i in range(4095))
    rep, text = boot_report(daemon, "ll", image_path(proto), 32, line)
    assert rep["cmdline"] == want_cmdline(proto, line), text[:500]


def test_linux_initrd_addr_max_is_honoured(daemon, feature, tmp_path):
    """A kernel that takes its initrd only below 32 MiB gets it there,
    whole, although the domain has more RAM."""
    need(feature, "linux")
    limit = 32 * MIB - 1
    bz = bz_patched(read_image("linux"), (BZ_INITRD_ADDR_MAX, "<I", limit))
    rd = os.urandom(2 * MIB + 123)
    rep, text = boot_report(daemon, "im", write_file(tmp_path, "bz", bz),
                            256, "", write_file(tmp_path, "rd", rd))
    addr, size, csum = rep["initrd"]
    assert (size, csum) == (len(rd), checksum(rd)), text
    assert addr + size - 1 <= limit, hex(addr)
    assert addr >= image_end("linux", bz)
    assert rep["extra"]["initrd_addr_max"] == limit


# ------------------------------------------------------------ refusals

def bz_truncated_cases():
    return {
        # the file ends with the setup header
        "after-header": lambda bz: bz[:BZ_HEADER_END],
        # the whole setup area, no payload
        "after-setup": lambda bz: bz[:bz_payload_offset(bz)],
        # half of the payload (syssize says how long it is)
        "mid-payload": lambda bz: bz[:bz_payload_offset(bz) +
                                     (len(bz) - bz_payload_offset(bz)) // 2],
    }


@pytest.mark.parametrize("cut", list(bz_truncated_cases()))
def test_refuse_truncated_bzimage(daemon, witness, feature, tmp_path, cut):
    need(feature, "linux")
    bz = bz_truncated_cases()[cut](read_image("linux"))
    assert_refused(daemon, witness, "tr", write_file(tmp_path, "bz", bz),
                   ["truncated bzImage"])


def test_refuse_bzimage_bad_boot_flag(daemon, witness, feature, tmp_path):
    need(feature, "linux")
    bz = bz_patched(read_image("linux"), (BZ_BOOT_FLAG, "<H", 0x55AB))
    assert_refused(daemon, witness, "bf", write_file(tmp_path, "bz", bz),
                   ["0xAA55"])


def test_refuse_bzimage_protocol_2_11(daemon, witness, feature, tmp_path):
    """2.11 has no xloadflags, so no 64-bit entry to use."""
    need(feature, "linux")
    bz = bz_patched(read_image("linux"), (BZ_VERSION, "<H", 0x020b),
                    (BZ_XLOADFLAGS, "<H", 0))
    assert_refused(daemon, witness, "v11", write_file(tmp_path, "bz", bz),
                   ["2.11", "64-bit entry"])


def test_refuse_bzimage_without_xlf_kernel_64(daemon, witness, feature,
                                              tmp_path):
    need(feature, "linux")
    bz = bz_patched(read_image("linux"), (BZ_XLOADFLAGS, "<H", 0))
    assert_refused(daemon, witness, "x64", write_file(tmp_path, "bz", bz),
                   ["2.15", "64-bit entry"])


def test_refuse_cmdline_longer_than_cmdline_size(daemon, witness, feature):
    need(feature, "linux")
    size = bz_get(read_image("linux"), BZ_CMDLINE_SIZE, "<I")
    assert_refused(daemon, witness, "cl", image_path("linux"),
                   ["command line", str(size)], cmdline="z" * (size + 1))


def test_refuse_bzimage_init_size_beyond_ram(daemon, witness, feature,
                                             tmp_path):
    """init_size (the memory the kernel needs from its load address) does
    not fit: refused, naming how much RAM it needs."""
    need(feature, "linux")
    bz = bz_patched(read_image("linux"), (BZ_INIT_SIZE, "<I", 64 * MIB))
    assert_refused(daemon, witness, "is", write_file(tmp_path, "bz", bz),
                   ["MiB of RAM"], memory=48)


def test_bzimage_init_size_message_names_the_minimum(daemon, witness,
                                                     feature, tmp_path):
    """The RAM the refusal message asks for is enough, and no more: with
    init_size = 64 MiB the kernel ends at 65 MiB, so 65 MiB boots."""
    need(feature, "linux")
    bz = bz_patched(read_image("linux"), (BZ_INIT_SIZE, "<I", 64 * MIB))
    path = write_file(tmp_path, "bz", bz)
    msg = assert_refused(daemon, witness, "is", path, ["MiB of RAM"],
                         memory=48)
    needed = int(re.search(r"needs (\d+) MiB of RAM", msg).group(1))
    rep, text = boot_report(daemon, "is65", path, 65)
    assert rep.get("done"), text
    assert needed == 65, msg


def test_refuse_elf_neither_multiboot_nor_pvh(daemon, witness, tmp_path):
    """pvh.elf with its Xen note turned into another note type: an x86
    ELF no loader of the hypervisor takes; the message lists what this
    build boots."""
    if not os.path.exists(image_path("pvh")):
        raise RuntimeError(f"{image_path('pvh')} is missing: run `make`")
    data = bytearray(read_image("pvh"))
    notes = [off for t, off, _, _, _, _ in elf_phdrs(bytes(data))
             if t == PT_NOTE]
    assert notes
    for off in notes:
        assert struct.unpack_from("<I", data, off + 8)[0] == 18
        struct.pack_into("<I", data, off + 8, 0x99)
    msg = assert_refused(daemon, witness, "ne",
                         write_file(tmp_path, "plain.elf", bytes(data)),
                         ["not a kernel this build boots"])
    for feat, _, what in PROTOCOLS.values():
        assert (what in msg) == build_has(feat), (what, msg)


def pvh_with_first_load_at(paddr):
    data = bytearray(read_image("pvh"))
    loads = [o for t, _, _, _, _, o in elf_phdrs(bytes(data)) if t == PT_LOAD]
    struct.pack_into("<Q", data, loads[0] + 24, paddr)       # p_paddr
    return bytes(data)


@pytest.mark.parametrize("where", [0x80000000, 0x2fff000, 0x80000])
def test_refuse_pvh_segment_outside_ram(daemon, witness, feature, tmp_path,
                                        where):
    """A PT_LOAD beyond the 48 MiB of RAM, straddling its end, or below
    1 MiB (where the loaders keep their own structures)."""
    need(feature, "pvh")
    path = write_file(tmp_path, "pvh.elf", pvh_with_first_load_at(where))
    assert_refused(daemon, witness, "so", path,
                   ["segment", hex(where), "outside guest RAM"])


def test_refuse_pvh_in_too_little_ram(daemon, witness, feature):
    need(feature, "pvh")
    assert_refused(daemon, witness, "tiny", image_path("pvh"),
                   ["outside guest RAM"], memory=1)


@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_refuse_missing_ramdisk(daemon, witness, feature, tmp_path, proto):
    """A ramdisk path that does not exist: xl passes paths on unread, so
    the daemon refuses it (8), naming the file."""
    need(feature, proto)
    missing = str(tmp_path / "no-such-initrd.img")
    assert_refused(daemon, witness, "nr", image_path(proto),
                   [missing, "No such file or directory"], ramdisk=missing)


def test_refuse_ramdisk_directory(daemon, witness, feature, tmp_path):
    need(feature, "pvh")
    assert_refused(daemon, witness, "rdd", image_path("pvh"),
                   [str(tmp_path), "not a regular file"],
                   ramdisk=str(tmp_path))


@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_refuse_ramdisk_larger_than_ram(daemon, witness, feature, tmp_path,
                                        proto):
    need(feature, proto)
    rd = write_file(tmp_path, "big.img", b"\x01" * (24 * MIB))
    assert_refused(daemon, witness, "rdb", image_path(proto),
                   [rd, "do not fit"], memory=16, ramdisk=rd)


def test_refuse_missing_kernel(daemon, witness, tmp_path):
    missing = str(tmp_path / "no-such-kernel")
    assert_refused(daemon, witness, "nk", missing,
                   [missing, "No such file or directory"])


def test_missing_config_file_is_xls_own_error(daemon, tmp_path):
    """For contrast: a config file xl cannot read is xl's exit 66; the
    kernel and ramdisk are only read by the daemon (8)."""
    r = daemon.xl("create", str(tmp_path / "nothing.cfg"), check=False)
    assert r.returncode == 66, (r.returncode, r.err)


def mb_with_flags(flags):
    """mbreport.elf with its multiboot header asking for `flags`."""
    data = bytearray(read_image("multiboot"))
    for off in range(0, min(len(data), 8192) - 11, 4):
        magic, fl, ck = struct.unpack_from("<III", data, off)
        if magic == 0x1BADB002 and (magic + fl + ck) & 0xFFFFFFFF == 0:
            struct.pack_into("<II", data, off + 4, flags,
                             -(magic + flags) & 0xFFFFFFFF)
            return bytes(data)
    raise AssertionError("mbreport.elf has no multiboot header")


@pytest.mark.parametrize("bit", [2, 15])
def test_refuse_multiboot_requirement_not_met(daemon, witness, feature,
                                              tmp_path, bit):
    """Multiboot 0.6.96, 3.1.2: "Bits 0-15 indicate requirements; if the
    boot loader sees any of these bits set but doesn't understand the flag
    or can't fulfill the requirements it indicates for some reason, it must
    notify the user and fail to load the OS image."  Bit 2 asks for the
    video mode table (this hypervisor has no video), bit 15 is undefined."""
    need(feature, "multiboot")
    path = write_file(tmp_path, "mb.elf", mb_with_flags(0x3 | 1 << bit))
    assert_refused(daemon, witness, "mbf", path, ["multiboot"])


# ------------------------------------------------------------ builds
# `make test-config CONFIG_SUBSET=minimal` runs this file against a build
# with only BOOT_MULTIBOOT.

@pytest.mark.parametrize("proto", list(PROTOCOLS))
def test_format_not_in_this_build(daemon, witness, proto):
    feat = PROTOCOLS[proto][0]
    if build_has(feat):
        pytest.skip(f"{feat} is in this build")
    if not os.path.exists(image_path(proto)):
        raise RuntimeError(f"{image_path(proto)} is missing: run `make`")
    msg = assert_refused(daemon, witness, "nf", image_path(proto),
                         ["not a kernel this build boots", "supported:"])
    supported = msg.split("supported:", 1)[1]
    for f, _, what in PROTOCOLS.values():
        assert (what in supported) == build_has(f), (what, msg)
    assert PROTOCOLS[proto][2] not in supported


# ------------------------------------------------------------ QEMU
# The reporter itself, checked against an independent loader: QEMU's
# -kernel boots multiboot1 and PVH ELFs.  It enters a bzImage through its
# real-mode setup code, which the reporter does not implement.

QEMU = shutil.which("qemu-system-x86_64")


def qemu_argv(kernel, append, initrd=None):
    argv = [QEMU, "-accel", "tcg", "-m", "64", "-display", "none",
            "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", kernel, "-append", append]
    if initrd:
        argv += ["-initrd", initrd]
    return argv


@pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 is not installed")
@pytest.mark.parametrize("proto", ["multiboot", "pvh"])
def test_reporter_under_qemu(tmp_path, proto):
    rd = os.urandom(54321)
    rd_path = write_file(tmp_path, "rd", rd)
    r = subprocess.run(qemu_argv(image_path(proto), "a b=c 'd e'", rd_path),
                       capture_output=True, timeout=60)
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, text, r.stderr[-2000:])
    rep = parse_report(text)
    assert rep.get("protocol") == proto and rep.get("done"), text
    assert rep["magic"] == "ok", text
    # QEMU's multiboot loader puts the kernel's file name first.
    assert rep["cmdline"].endswith("a b=c 'd e'"), text
    assert rep["initrd"][1:] == (len(rd), checksum(rd)), text
    assert rep["e820_entries"] == len(rep["e820"]) > 0, text
    assert rep["ram_total_kib"] > 60 * 1024, text


@pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 is not installed")
def test_bzimage_under_qemu_reaches_its_real_mode_code():
    p = subprocess.Popen(qemu_argv(image_path("linux"), "x"),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        os.set_blocking(p.stdout.fileno(), False)
        out = b""
        deadline = time.monotonic() + 30
        while b"halting" not in out and time.monotonic() < deadline:
            out += p.stdout.read() or b""
            time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
    assert b"BOOT linux: real-mode entry (setup code) is not supported" \
        in out, out
