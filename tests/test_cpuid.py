"""CPUID as part of a domain's state (docs/cpuid.md), judged on what the
guest itself reports: the CPUID guest (tests/guests/cpuid.c) prints the
leaves it sees every 300 ms; they must be what the hypervisor designs
(x2APIC, TSC-deadline timer when KVM has it, the KVM leaves with
kvmclock, the topology of the domain's vCPUs) and stay the same across
save/restore, live update and migration.  A stream whose CPUID asks for a
feature this host does not offer is refused, naming it, and the running
guest is untouched; a stream without the record (an older writer) gets
this host's CPUID as a new domain does."""
import fcntl
import os
import re
import struct
import subprocess

import pytest

import streamlib as sl
from miglib import Host
from harness import (ROOT, XEN, build_has, copy_image, kvm_module,
                     require_binaries, require_kvm, stop_and_check,
                     wait_until)

ROUND_RX = re.compile(r"CPUID round=(\d+)\r?\n(.*?)CPUID END round=\1\r?\n",
                      re.S)
LEAF_RX = re.compile(r"CPUID leaf=0x([0-9a-f]{8})\.(\d+) eax=0x([0-9a-f]{8}) "
                     r"ebx=0x([0-9a-f]{8}) ecx=0x([0-9a-f]{8}) "
                     r"edx=0x([0-9a-f]{8})")
REPORTED = [(0x0, 0), (0x1, 0), (0x7, 0), (0xb, 0), (0xb, 1), (0xd, 0),
            (0xd, 1), (0x40000000, 0), (0x40000001, 0), (0x80000000, 0),
            (0x80000001, 0), (0x80000008, 0)]

KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_TSC_DEADLINE_TIMER = 72
# KVM paravirtual features the hypervisor offers (xen/cpuid.c) and those
# it takes out: MSI extended destination ids, map-GPA-range, migration
# control.
KVM_FEATURES_PROVIDED = 0x7efb | 1 << 24
KVM_FEATURES_CLEARED = 1 << 15 | 1 << 16 | 1 << 17
KVM_SIGNATURE = b"KVMKVMKVM\0\0\0"
# KVM-PVM (whose guest kernel runs on the CPU itself) answers these
# registers with what the CPU under it has rather than what
# KVM_SET_CPUID2 gave it: there the guest's view of them is checked
# against the domain's CPUID record instead (leaf: register indexes).
PVM_HOST_REGS = {(0x1, 0): (2, 3), (0x7, 0): (0, 1, 2, 3), (0xd, 1): (0,)}


# ---------------------------------------------------------------- helpers

def tsc_deadline_offered():
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(fd, KVM_CHECK_EXTENSION,
                           KVM_CAP_TSC_DEADLINE_TIMER) > 0
    finally:
        os.close(fd)


def parse_round(body):
    leaves = {}
    for m in LEAF_RX.finditer(body):
        regs = tuple(int(x, 16) for x in m.groups()[2:])
        leaves[(int(m.group(1), 16), int(m.group(2)))] = regs
    assert sorted(leaves) == sorted(REPORTED), body
    return leaves


def report(d, dom, mark=0, timeout=30):
    """The first complete round the guest printed after console position
    `mark`: {(leaf, subleaf): (eax, ebx, ecx, edx)}."""
    text = wait_until(lambda: ROUND_RX.search(d.console_since(dom, mark)),
                      timeout, f"a whole CPUID round of {dom}")
    return parse_round(text.group(2))


def record_leaves(stream):
    """The reported leaves as the stream's CPUID record has them."""
    rec = {(e["function"], e["index"]): (e["eax"], e["ebx"], e["ecx"],
                                         e["edx"]) for e in stream.cpuid()}
    return {k: rec.get(k, (0, 0, 0, 0)) for k in REPORTED}


def designed_view(guest, record):
    """What the guest saw, with the registers KVM-PVM answers from the
    host CPU taken from the record (only on KVM-PVM)."""
    if kvm_module() != "kvm_pvm":
        return guest
    view = dict(guest)
    for key, regs in PVM_HOST_REGS.items():
        view[key] = tuple(record[key][r] if r in regs else guest[key][r]
                          for r in range(4))
    return view


def start(d, name, vcpus=1):
    d.create(name, kernel="cpuid", memory=16, extra=f"vcpus = {vcpus}\n")
    return report(d, name)


def bit(v, n):
    return (v >> n) & 1


def assert_designed(leaves, vcpus):
    """The bits xen/cpuid.c sets and clears, as the guest sees them on
    vCPU 0 (APIC id 0)."""
    _, ebx, ecx, edx = leaves[(0x1, 0)]
    assert bit(ecx, 31), "leaf 1 ECX: no hypervisor bit"
    assert bit(ecx, 21), "leaf 1 ECX: no x2APIC"
    assert bit(ecx, 24) == int(tsc_deadline_offered()), \
        "leaf 1 ECX: TSC-deadline timer unlike KVM_CAP_TSC_DEADLINE_TIMER"
    assert not bit(ecx, 27), "leaf 1 ECX: OSXSAVE with CR4.OSXSAVE clear"
    assert ebx >> 24 == 0, "leaf 1 EBX: APIC id of vCPU 0"
    assert (ebx >> 16) & 0xff == vcpus, "leaf 1 EBX: logical processors"
    assert bit(edx, 28) == int(vcpus > 1), "leaf 1 EDX: HTT"
    _, ebx7, ecx7, _ = leaves[(0x7, 0)]
    assert not bit(ebx7, 2) and not bit(ebx7, 25) and not bit(ecx7, 30), \
        "leaf 7: SGX or processor trace offered"
    if leaves[(0x0, 0)][0] >= 0xb:
        eax0, ebx0, ecx0, edx0 = leaves[(0xb, 0)]
        eax1, ebx1, ecx1, edx1 = leaves[(0xb, 1)]
        assert (ebx0, (ecx0 >> 8) & 0xff, edx0) == (1, 1, 0), "leaf 0xb.0"
        assert (ebx1, (ecx1 >> 8) & 0xff, edx1) == (vcpus, 2, 0), \
            "leaf 0xb.1"
        assert eax1 == (vcpus - 1).bit_length(), "leaf 0xb.1 id shift"
    eax, ebx, ecx, edx = leaves[(0x40000000, 0)]
    assert struct.pack("<III", ebx, ecx, edx) == KVM_SIGNATURE, \
        "leaf 0x40000000: not KVM's leaves (Hyper-V?)"
    assert eax == 0x40000001, "leaf 0x40000000: highest KVM leaf"
    eax, _, _, edx = leaves[(0x40000001, 0)]
    assert bit(eax, 3) and bit(eax, 24), "kvmclock (2, stable) not offered"
    assert eax & ~KVM_FEATURES_PROVIDED == 0 and \
        not eax & KVM_FEATURES_CLEARED, f"KVM features {eax:#x}"
    assert edx == 0, "leaf 0x40000001 EDX: hints"
    assert leaves[(0x80000008, 0)][2] & 0xff == vcpus - 1, \
        "leaf 0x80000008 ECX: cores"


PV_SCHED_YIELD = 13


def restore_trimmed(d, name, tmp_path, vcpus=2):
    """Start the guest, save it, and restore it from a stream whose CPUID
    lacks one KVM feature it had (PV sched yield, leaf 0x40000001 EAX bit
    13): a domain that got its CPUID from anywhere but the stream shows
    the bit.  Returns what the guest saw before and what it sees now."""
    before = start(d, name, vcpus)
    assert bit(before[(0x40000001, 0)][0], PV_SCHED_YIELD)
    path = str(tmp_path / f"{name}-trimmed.xkvm")
    s = save(d, name, path)
    entries = s.cpuid()
    for e in entries:
        if (e["function"], e["index"]) == (0x40000001, 0):
            e["eax"] &= ~(1 << PV_SCHED_YIELD)
    s.set_cpuid(entries)
    s.save(path)
    restore(d, path)
    trimmed = report(d, name, d.console_mark(name))
    want = dict(before)
    eax, ebx, ecx, edx = before[(0x40000001, 0)]
    want[(0x40000001, 0)] = (eax & ~(1 << PV_SCHED_YIELD), ebx, ecx, edx)
    assert trimmed == want
    return trimmed


def save(d, dom, path, *opts):
    d.xl("save", *opts, dom, path)
    return sl.Stream.load(path)


def restore(d, path, *opts, check=True):
    return d.xl("restore", *opts, path, check=check)


def stream_tool(*args):
    exe = os.path.join(sl.BUILD, "bin", "xen-stream")
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout



# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("vcpus", [1, 3])
def test_guest_sees_the_designed_cpuid(daemon, tmp_path, vcpus):
    leaves = start(daemon, "c", vcpus)
    record = record_leaves(save(daemon, "c", str(tmp_path / "c.xkvm"),
                                "-c"))
    assert_designed(record, vcpus)
    assert_designed(designed_view(leaves, record), vcpus)
    # the same in every round: nothing host-side moves under the guest
    mark = daemon.console_mark("c")
    assert report(daemon, "c", mark) == leaves


def test_save_restore_keeps_cpuid(daemon, tmp_path):
    before = start(daemon, "c", 2)
    path = str(tmp_path / "c.xkvm")
    s = save(daemon, "c", path)
    assert s.types()[:3] == [sl.DOMAIN_CONFIG, sl.MEMORY_LAYOUT, sl.CPUID]
    assert s.first(sl.CPUID).flags == sl.REC_F_OPTIONAL
    rec = {(e["function"], e["index"]): e for e in s.cpuid()}
    assert rec[(0x40000001, 0)]["eax"] == before[(0x40000001, 0)][0]
    assert rec[(0x1, 0)]["ebx"] >> 24 == 0      # the APIC ids are not saved

    dump = stream_tool("dump", path)
    assert re.search(r"CPUID\s+type 0x04 flags 0x1 \(optional\)", dump), dump
    assert f"  {len(rec)} entries\n" in dump
    assert re.search(r"leaf 0x40000001\.0 eax 0x%08x " %
                     before[(0x40000001, 0)][0], dump), dump

    restore(daemon, path)
    assert report(daemon, "c", daemon.console_mark("c")) == before


def test_stream_asking_for_a_missing_feature_is_refused(daemon, tmp_path):
    """Leaf 0x40000001 EAX bit 16 (the map-GPA-range hypercall) is never
    offered: a stream that asks for it is refused before anything runs,
    and the guest it was saved from keeps running."""
    before = start(daemon, "c")
    good = str(tmp_path / "good.xkvm")
    s = save(daemon, "c", good, "-c")
    entries = s.cpuid()
    for e in entries:
        if (e["function"], e["index"]) == (0x40000001, 0):
            e["eax"] |= 1 << 16
    s.set_cpuid(entries)
    bad = str(tmp_path / "bad.xkvm")
    s.set_config(name="c2")
    s.save(bad)
    r = restore(daemon, bad, check=False)
    assert r.returncode != 0
    assert ("CPUID leaf 0x40000001 subleaf 0 EAX bit 16: the stream's "
            "CPUID has it and this host does not offer it" in r.err), r.err
    assert "c2" not in daemon.domains()
    assert daemon.domains()["c"]["state"] == "running"
    assert report(daemon, "c", daemon.console_mark("c")) == before
    # the same stream with the bit this host has restores
    s.set_cpuid(sl.Stream.load(good).cpuid())
    s.save(bad)
    restore(daemon, bad)
    assert report(daemon, "c2", daemon.console_mark("c2")) == before


def test_stream_without_cpuid_gets_this_hosts(daemon, tmp_path):
    """An older writer's stream has no CPUID record: the domain gets the
    CPUID a new domain of this host gets."""
    before = start(daemon, "c", 2)
    path = str(tmp_path / "c.xkvm")
    s = save(daemon, "c", path)
    record = s.cpuid()
    s.remove(sl.CPUID)
    s.save(path)
    stream_tool("verify", path)
    restore(daemon, path)
    after = report(daemon, "c", daemon.console_mark("c"))
    assert after == before
    again = save(daemon, "c", str(tmp_path / "again.xkvm"), "-c")
    assert again.cpuid() == record
    assert_designed(designed_view(after, record_leaves(again)), 2)


def test_old_streams_still_restore(daemon, tmp_path):
    streams = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "data", "streams")
    for i, name in enumerate(sorted(os.listdir(streams))):
        if not name.endswith(".xkvm"):
            continue
        path = os.path.join(streams, name)
        assert sl.CPUID not in sl.Stream.load(path).types()
        restore(daemon, path, "-p", "--name", f"old{i}")
        assert daemon.domains()[f"old{i}"]["state"] == "paused"


def test_restore_gives_the_streams_cpuid(daemon, tmp_path):
    trimmed = restore_trimmed(daemon, "c", tmp_path)
    # and it stays the domain's: saved again, restored again
    path = str(tmp_path / "again.xkvm")
    s = save(daemon, "c", path)
    assert not bit(record_leaves(s)[(0x40000001, 0)][0], PV_SCHED_YIELD)
    restore(daemon, path)
    assert report(daemon, "c", daemon.console_mark("c")) == trimmed


def test_live_update_keeps_cpuid(daemon, tmp_path):
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    trimmed = restore_trimmed(daemon, "c", tmp_path)
    image = str(tmp_path / "xen")
    copy_image(XEN, image)
    for _ in range(2):
        r = daemon.xl("live-update", image, "--json", timeout=120)
        assert re.search(r'"result":\s*"ok"', r.out), r.out
        assert report(daemon, "c", daemon.console_mark("c")) == trimmed


def test_live_update_across_format_versions_keeps_cpuid(daemon, tmp_path):
    """To the build one stream format ahead (build-next, `make variants`)
    and back: both write and read the CPUID record."""
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    nxt = os.path.join(ROOT, "build-next", "bin", "xen")
    if not os.path.exists(nxt):
        pytest.skip(f"{nxt} is missing: run `make variants`")
    trimmed = restore_trimmed(daemon, "c", tmp_path)
    for src, name in ((nxt, "next"), (XEN, "this")):
        image = str(tmp_path / name)
        copy_image(src, image)
        r = daemon.xl("live-update", image, "--json", timeout=120)
        assert re.search(r'"result":\s*"ok"', r.out), r.out
        assert report(daemon, "c", daemon.console_mark("c")) == trimmed


def test_migration_keeps_cpuid(tmp_path):
    if not build_has("MIGRATION"):
        pytest.skip("MIGRATION is not in this build's Kconfig")
    require_binaries()
    require_kvm()
    hosts = []
    try:
        for n in ("a", "b"):
            hosts.append(Host(str(tmp_path / n)))
        (a, a_addr), (b, b_addr) = ((h.d, h.addr) for h in hosts)
        trimmed = restore_trimmed(a, "c", tmp_path)
        a.xl("migrate", "--insecure", "c", b_addr, timeout=120)
        assert "c" not in a.domains()
        assert report(b, "c", b.console_mark("c")) == trimmed
        b.xl("migrate", "--insecure", "c", a_addr, timeout=120)
        assert report(a, "c", a.console_mark("c")) == trimmed
    finally:
        problems = [stop_and_check(h.d) for h in hosts]
    assert not any(problems), problems
