"""Multiboot 1 as specified and as QEMU's -kernel does it
(xen/boot/multiboot.c, multiboot_mbi.c, docs/boot.md), and application
processors that wait for INIT-SIPI.  The multiboot info guest
(tests/guests/mbinfo.c) reports the registers it was entered with, the
whole multiboot information structure, what fw_cfg says, and how many
APs its INIT-SIPI-SIPI brought up; the tests compare that with the
config, and with what the same guest reports under QEMU."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from harness import (ConsoleStream, build_has, scaled, still_fine, GUESTS,
                     XEN)
import streamlib as sl

MIB = 1 << 20
PAGE = 4096
MBI_ADDR = 0x9500
MMAP_ADDR = 0x9000
EBDA = 0x9fc00
HOLE_START = 0xC0000000
KVM_MP_STATE_UNINITIALIZED = 1


@pytest.fixture(autouse=True)
def _need_multiboot(feature):
    feature("BOOT_MULTIBOOT")


def image(name):
    return os.path.join(GUESTS, name)


ELF = image("mbinfo.elf")
AOUT = image("mbaout.bin")


def elf_facts(path):
    """(entry, end of the last PT_LOAD) of an ELF32."""
    data = open(path, "rb").read()
    entry, phoff = struct.unpack_from("<II", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    end = 0
    for i in range(phnum):
        p_type, _, _, paddr, _, memsz = struct.unpack_from(
            "<IIIIII", data, phoff + i * phentsize)
        if p_type == 1:
            end = max(end, paddr + memsz)
    return entry, end


def aout_facts(path):
    """(entry, bss_end) of the a.out-kludge header at offset 0."""
    h = struct.unpack_from("<8I", open(path, "rb").read(), 0)
    assert h[0] == 0x1BADB002 and h[1] & 0x10000, h
    return h[7], h[6]


def facts(path):
    return aout_facts(path) if path.endswith(".bin") else elf_facts(path)


def parse(text):
    """The guest's report as a dict."""
    r = {"mods": [], "mmap": []}
    for line in text.splitlines():
        line = line.rstrip("\r")
        if m := re.fullmatch(r"MBINFO (regs|segs) (.*)", line):
            for kv in m.group(2).split():
                k, v = kv.split("=")
                r[k] = int(v, 16)
        elif m := re.fullmatch(r"MBINFO entries=(\d+)", line):
            r["entries"] = int(m.group(1))
        elif m := re.fullmatch(r"MBINFO mbi addr=0x(\w+) flags=0x(\w+)",
                               line):
            r["mbi"], r["flags"] = int(m.group(1), 16), int(m.group(2), 16)
        elif m := re.fullmatch(r"MBINFO mem lower=(\d+) upper=(\d+)", line):
            r["mem_lower"], r["mem_upper"] = map(int, m.groups())
        elif m := re.fullmatch(r"MBINFO boot_device=0x(\w+)", line):
            r["boot_device"] = int(m.group(1), 16)
        elif m := re.fullmatch(r"MBINFO cmdline_addr=0x(\w+)", line):
            r["cmdline_addr"] = int(m.group(1), 16)
        elif m := re.fullmatch(r"MBINFO cmdline=(.*)", line):
            r["cmdline"] = m.group(1)
        elif m := re.fullmatch(r"MBINFO mods count=(\d+) addr=0x(\w+)",
                               line):
            r["mods_count"] = int(m.group(1))
            r["mods_addr"] = int(m.group(2), 16)
        elif m := re.fullmatch(r"MBINFO mod \d+ start=0x(\w+) end=0x(\w+) "
                               r"sum=0x(\w+) string=(.*)", line):
            r["mods"].append((int(m.group(1), 16), int(m.group(2), 16),
                              int(m.group(3), 16), m.group(4)))
        elif m := re.fullmatch(r"MBINFO mmap addr=0x(\w+) length=(\d+)",
                               line):
            r["mmap_addr"] = int(m.group(1), 16)
            r["mmap_length"] = int(m.group(2))
        elif m := re.fullmatch(r"MBINFO mmap size=(\d+) 0x(\w+) 0x(\w+) "
                               r"(\d+)", line):
            r["mmap"].append((int(m.group(1)), int(m.group(2), 16),
                              int(m.group(3), 16), int(m.group(4))))
        elif m := re.fullmatch(r"MBINFO loader=(.*)", line):
            r["loader"] = m.group(1)
        elif m := re.fullmatch(r"MBINFO fwcfg nb_cpus=(\d+) "
                               r"ram_size=(\d+)", line):
            r["nb_cpus"], r["ram_size"] = map(int, m.groups())
        elif m := re.fullmatch(r"MBINFO smp bsp_apic=(\d+) before_sipi "
                               r"entries=(\d+) started=(\d+)", line):
            r["before"] = tuple(map(int, m.groups()))
        elif m := re.fullmatch(r"MBINFO smp cpus=(\d+) started=(\d+) "
                               r"entries=(\d+) apic_ids=([\d,]*)", line):
            r["smp"] = (int(m.group(1)), int(m.group(2)), int(m.group(3)),
                        m.group(4))
        elif line == "MBINFO DONE":
            r["done"] = True
    return r


def checksum(data):
    return sum(data) & 0xffffffff


def modules_key(items):
    return "modules = [ " + ", ".join(f"'{i}'" for i in items) + " ]\n"


def need_fw_cfg():
    """The guest reads fw_cfg (for the CPU count) under strict_io: a
    build without the device would crash it."""
    if not build_has("DEV_FW_CFG"):
        pytest.skip("DEV_FW_CFG is not in this build's Kconfig")


def run(daemon, name, kernel, vcpus=1, memory=64, cmdline="a b=c",
        extra=""):
    need_fw_cfg()
    daemon.create(name, kernel=kernel, memory=memory, cmdline=cmdline,
                  extra=f"vcpus = {vcpus}\non_poweroff = \"preserve\"\n"
                        + extra)
    daemon.wait_console(name, r"MBINFO DONE\r\n", timeout=60)
    text = daemon.console(name)
    return parse(text), text


def expected_mmap(memory):
    low = min(memory * MIB, HOLE_START)
    m = [(20, 0, EBDA, 1), (20, EBDA, 0x100000 - EBDA, 2),
         (20, 0x100000, low - 0x100000, 1)]
    if memory * MIB > low:
        m.append((20, 1 << 32, memory * MIB - low, 1))
    return m


def overlaps(a, alen, b, blen):
    return a < b + blen and b < a + alen


def check_report(r, text, kernel, cmdline, mods, vcpus, memory):
    """Everything the guest saw against the config: `mods` is a list of
    (string, data) in module order."""
    entry, image_end = facts(kernel)
    assert r.get("done"), text
    # Defined by the specification.
    assert r["eax"] == 0x2BADB002, text
    assert r["ebx"] == r["mbi"] == MBI_ADDR, text
    assert r["cr0"] & 0x80000001 == 0x1, text
    # Left undefined by it: QEMU's values (docs/boot.md).
    upper = (min(memory * MIB, HOLE_START) - 0x100000) >> 10
    assert (r["ecx"], r["edx"], r["esi"], r["edi"], r["ebp"], r["esp"]) == \
        (entry, (upper & 0xffff0000) | 0x511, 0, 0x1000, 0, 0x6f08), text
    assert (r["cs"], r["ds"], r["es"], r["fs"], r["gs"], r["ss"]) == \
        (0x08, 0x10, 0x10, 0x10, 0x10, 0x10), text
    assert (r["cr0"], r["gdt_limit"], r["idt_base"], r["idt_limit"]) == \
        (0x11, 0x27, 0, 0x3ff), text
    assert r["entries"] == 1, text

    assert r["flags"] == 0x24f, text      # mem bootdev cmdline mods mmap name
    assert (r["mem_lower"], r["mem_upper"]) == (EBDA >> 10, upper), text
    assert r["boot_device"] == 0x8000ffff, text
    assert r["cmdline"] == f"{kernel} {cmdline}", text
    assert r["loader"] == "xen-kvm", text
    assert (r["mmap_addr"], r["mmap_length"]) == \
        (MMAP_ADDR, 24 * len(expected_mmap(memory))), text
    assert r["mmap"] == expected_mmap(memory), text

    # Modules: in order, each with its string, page-aligned, in RAM,
    # overlapping nothing: not the image, not page 0, not each other, not
    # the MBI, its map, the module list or the strings.
    assert r["mods_count"] == len(mods) == len(r["mods"]), text
    taken = [(0, PAGE), (0x100000, image_end - 0x100000),
             (MMAP_ADDR, 0x600), (r["mods_addr"], 16 * len(mods)),
             (r["cmdline_addr"], len(r["cmdline"]) + 1)]
    assert r["mods_addr"] >= image_end, text
    for (start, end, csum, string), (want_string, data) in \
            zip(r["mods"], mods):
        assert string == want_string, text
        assert end - start == len(data) and csum == checksum(data), text
        assert start % PAGE == 0 and end <= min(memory * MIB, HOLE_START)
        for a, n in taken:
            assert not overlaps(start, max(len(data), 1), a, n), \
                (hex(start), hex(a), text)
        taken.append((start, max(len(data), 1)))

    assert (r["nb_cpus"], r["ram_size"]) == (vcpus, memory * MIB), text
    check_smp(r, text, vcpus)


def check_smp(r, text, vcpus):
    """The APs ran nothing before the SIPI, and every one came up."""
    assert r["before"] == (0, 1, 0), text
    ids = ",".join(str(i) for i in range(1, vcpus))
    assert r["smp"] == (vcpus, vcpus - 1, 1, ids), text


def module_files(tmp_path):
    rd = os.urandom(30000)
    m1 = os.urandom(PAGE * 2 + 5)
    (tmp_path / "rd.img").write_bytes(rd)
    (tmp_path / "m1.bin").write_bytes(m1)
    (tmp_path / "empty").write_bytes(b"")
    return [(str(tmp_path / "rd.img"), rd),
            (f"{tmp_path}/m1.bin one two=2", m1),
            (str(tmp_path / "empty"), b"")]


@pytest.mark.parametrize("kernel", [ELF, AOUT], ids=["elf", "aout"])
def test_report_matches_config(daemon, witness, tmp_path, kernel):
    mods = module_files(tmp_path)
    extra = (f'ramdisk = "{mods[0][0]}"\n' +
             modules_key([m[0] for m in mods[1:]]))
    r, text = run(daemon, "mb", kernel, vcpus=2, memory=64, extra=extra)
    check_report(r, text, kernel, "a b=c", mods, 2, 64)
    if build_has("DEV_DEBUG_EXIT"):
        assert daemon.wait_state("mb", "shutdown")["exit_code"] == 1
    still_fine(daemon, witness)


def test_four_vcpus_come_up_through_init_sipi(daemon):
    """4 vCPUs: the APs wait (KVM_MP_STATE_UNINITIALIZED) until the
    guest's INIT-SIPI-SIPI, run its real-mode trampoline, and nothing
    else: only the BSP entered the kernel's entry point."""
    r, text = run(daemon, "smp4", ELF, vcpus=4, memory=32)
    assert (r["nb_cpus"], r["entries"]) == (4, 1), text
    check_smp(r, text, 4)


def ap_mp_states(path, vcpus):
    s = sl.Stream.load(path)
    states = {}
    for rec in s.find(sl.VCPU_MP_STATE):
        vcpu, _, state = struct.unpack_from("<III", rec.body)
        states[vcpu] = state
    assert sorted(states) == list(range(vcpus)), states
    return states


def test_waiting_aps_keep_waiting_across_save_restore_and_update(
        daemon, tmp_path):
    """APs still waiting for their SIPI are saved as such
    (VCPU_MP_STATE), restored waiting and handed over waiting by a live
    update: none runs before the guest sends INIT-SIPI-SIPI, then all
    do."""
    need_fw_cfg()
    daemon.create("wait", kernel=ELF, memory=32, cmdline="wait=1",
                  extra='vcpus = 4\non_poweroff = "preserve"\n')
    daemon.wait_console("wait", r"MBINFO smp WAITING\r\n", timeout=60)
    path = str(tmp_path / "wait.xkvm")
    daemon.xl("save", "wait", path)
    states = ap_mp_states(path, 4)
    assert all(states[v] == KVM_MP_STATE_UNINITIALIZED
               for v in (1, 2, 3)), states
    daemon.xl("restore", path)
    if build_has("LIVE_UPDATE"):
        daemon.xl("live-update", XEN, timeout=120)
    con = ConsoleStream(daemon.sock, "wait")
    con.send(b"g")
    con.close()
    daemon.wait_console("wait", r"MBINFO DONE\r\n", timeout=60)
    r = parse(daemon.console("wait"))
    check_smp(r, daemon.console("wait"), 4)


def test_modules_reach_the_guest_in_order(daemon, tmp_path):
    """Without a ramdisk the `modules` are modules 0.. in config order;
    a relative path is taken from the config file's directory."""
    a, b = os.urandom(777), os.urandom(PAGE)
    (tmp_path / "a.bin").write_bytes(a)
    (tmp_path / "b.bin").write_bytes(b)
    extra = modules_key(["a.bin", f"{tmp_path}/b.bin  x\ty  z"])
    r, text = run(daemon, "mods", ELF, memory=32, extra=extra)
    assert r["mods"][0][3] == f"{tmp_path}/a.bin", text
    assert r["mods"][1][3] == f"{tmp_path}/b.bin x\\x09y  z", text
    assert [m[1] - m[0] for m in r["mods"]] == [len(a), len(b)], text
    assert [m[2] for m in r["mods"]] == [checksum(a), checksum(b)], text


def test_bad_modules_are_config_errors(daemon, witness, tmp_path):
    """A missing file and a directory are xl's FILE:LINE errors; a
    module that does not fit in RAM is the daemon's error naming it; the
    running guests keep running."""
    (tmp_path / "big.bin").write_bytes(b"\x01" * (20 * MIB))
    (tmp_path / "dir").mkdir()
    for item, why in (
            (f"{tmp_path}/missing x",
             f"modules[0]: cannot read {tmp_path}/missing: No such file "
             f"or directory"),
            (f"{tmp_path}/dir", f"modules[0]: {tmp_path}/dir is not a "
                                f"regular file"),
            ("", "modules[0]: '' does not start with a path")):
        cfg = daemon.write_cfg(daemon.cfg_text(
            "bad", kernel=ELF, extra=modules_key([item])))
        r = daemon.xl("create", cfg, check=False)
        assert r.returncode == 65, r.err
        assert f"xl: {cfg}:6: {why}" in r.err, r.err
    cfg = daemon.write_cfg(daemon.cfg_text(
        "bad", kernel=ELF, memory=16,
        extra=modules_key([f"{tmp_path}/big.bin"])))
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 8, r.err
    assert f"{tmp_path}/big.bin: {20 * MIB} bytes do not fit in guest RAM" \
        in r.err, r.err
    assert set(daemon.domains()) == {"witness"}
    still_fine(daemon, witness)


def test_modules_for_a_pvh_kernel_are_refused(daemon, feature, tmp_path):
    feature("BOOT_PVH")
    (tmp_path / "m").write_bytes(b"m")
    cfg = daemon.write_cfg(daemon.cfg_text(
        "pm", kernel=image("pvh.elf"), extra=modules_key([f"{tmp_path}/m"])))
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 8, r.err
    assert "a PVH kernel takes no modules" in r.err, r.err


# ------------------------------------------------------------ QEMU

QEMU = shutil.which("qemu-system-x86_64")


def qemu_report(kernel, vcpus, memory, append, initrd):
    args = [QEMU, "-accel", "tcg", "-m", str(memory), "-smp", str(vcpus),
            "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", kernel, "-append", append, "-initrd", initrd]
    r = subprocess.run(args, capture_output=True, timeout=scaled(120))
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, text, r.stderr[-2000:])
    return parse(text), text


@pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 is not installed")
@pytest.mark.parametrize("kernel", [ELF, AOUT], ids=["elf", "aout"])
def test_same_report_as_under_qemu(daemon, tmp_path, kernel):
    """The same guest under QEMU's -kernel (modules as -initrd items):
    the same registers, MBI fields, module strings and contents, fw_cfg
    and SMP report.  The memory map differs (SeaBIOS reserves more), and
    so do mem_upper (hence the high half of EDX in general; not at
    128 MiB), the loader's name and where the module list lies."""
    mods = module_files(tmp_path)
    ours, text = run(daemon, "q", kernel, vcpus=4, memory=128,
                     extra=f'ramdisk = "{mods[0][0]}"\n' +
                     modules_key([m[0] for m in mods[1:]]))
    theirs, qtext = qemu_report(kernel, 4, 128, "a b=c",
                                ",".join(m[0] for m in mods))
    for k in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp",
              "cs", "ds", "es", "fs", "gs", "ss", "cr0", "gdt_limit",
              "idt_base", "idt_limit", "entries", "mbi", "flags",
              "mem_lower", "boot_device", "cmdline", "mods_count",
              "mmap_addr", "nb_cpus", "ram_size", "before", "smp"):
        assert ours[k] == theirs[k], (k, text, qtext)
    assert [(e - s, c, st) for s, e, c, st in ours["mods"]] == \
        [(e - s, c, st) for s, e, c, st in theirs["mods"]], (text, qtext)
    assert theirs["loader"] == "qemu"


def low_elf(addr):
    """An ELF32 multiboot kernel of one segment at `addr` (below 1 MiB,
    as kvm-unit-tests' realmode test): it checks the MBI's flags at EBX
    and leaves through the debug-exit port with EBX >> 8 (0xee if the
    flags are wrong)."""
    code = bytes.fromhex("813b4f020000" "7507" "89d8" "c1e808" "e6f4"
                         "b0ee" "e6f4" "f4")
    hdr = struct.pack("<III", 0x1BADB002, 0, -0x1BADB002 & 0xffffffff)
    body = hdr + code
    entry = addr + len(hdr)
    eh = struct.pack("<4sBBBB8xHHIIIIIHHHHHH", b"\x7fELF", 1, 1, 1, 0, 2,
                     3, 1, entry, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    ph = struct.pack("<8I", 1, 0x1000, addr, addr, len(body), len(body),
                     5, 0x1000)
    return (eh + ph).ljust(0x1000, b"\0") + body


def test_kernel_below_1mib_over_the_mbi_place(daemon, feature, tmp_path):
    """A kernel where QEMU puts the MBI (0x9000) is loaded there; its
    MBI moves after it (QEMU would overwrite it with the kernel)."""
    feature("DEV_DEBUG_EXIT")
    path = tmp_path / "low.elf"
    path.write_bytes(low_elf(0x9000))
    daemon.create("low", kernel=str(path),
                  extra='on_poweroff = "preserve"\n')
    d = daemon.wait_state("low", "shutdown")
    # Image [0x9000, 0x9021): map at 0xa000, MBI at 0xa500.
    assert d["exit_code"] == (0xa5 << 1) | 1, d
