"""kvm-unit-tests on this hypervisor (docs/kvm-unit-tests.md).

CI cannot fetch kvm-unit-tests, so what a comparison with QEMU found to
fail only here is reproduced by the project's own test guests, one test
per fix; and scripts/kvm-unit-tests.py, the runner that does the
comparison, is checked on a unittests.cfg of its own."""
import importlib.util
import os
import re

from harness import ROOT, still_fine

RUNNER = os.path.join(ROOT, "scripts", "kvm-unit-tests.py")


def load_runner():
    spec = importlib.util.spec_from_file_location("kut_runner", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bcd(v):
    return (v >> 4) * 10 + (v & 0xf)


# ------------------------------------------------------------ s3: RTC UIP

def test_rtc_update_in_progress_edge(daemon, witness):
    """kvm-unit-tests' s3 (and firmware, and OSes finding the edge of a
    second) waits for CMOS register A's UIP bit to rise and then fall; an
    RTC without it hung s3 for ever.  The guest sees both, and the
    seconds register moves by at most one across the update.  The window
    is 2.2 ms a second: a guest whose vCPU a loaded host seldom runs
    needs many seconds to sample inside it, hence the long deadline."""
    daemon.create("uip", kernel="exit", cmdline="mode=rtc-uip",
                  extra='on_poweroff = "preserve"\non_crash = "preserve"\n')
    m = daemon.wait_console("uip", r"RTC UIP rose and fell "
                            r"sec_during=0x([0-9a-f]+) "
                            r"sec_after=0x([0-9a-f]+)\r?\n", timeout=120)
    during, after = bcd(int(m.group(1), 16)), bcd(int(m.group(2), 16))
    assert 0 <= during < 60 and 0 <= after < 60, m.group(0)
    assert after in (during, (during + 1) % 60), m.group(0)
    assert "still alive" not in daemon.console("uip")
    still_fine(daemon, witness)
    daemon.xl("destroy", "uip")


# ------------------------------------------------------------ the runner

CFG = """\
# a comment
[plain]
file = plain.flat
smp = 2
extra_params = -cpu qemu64,+x2apic -m 256 -append 'a b'

[args]
file = vmexit.flat
test_args = 'vmcall'
groups = vmexit

[host_cpu]
file = plain.flat
qemu_params = -cpu max
    -machine vmport=on
check = {ok}=Y {bad}=Y

[manual]
file = plain.flat
groups = nodefault

[i386]
file = plain.flat
arch = i386
"""


def runner_cfg(tmp_path):
    ok, bad = tmp_path / "ok", tmp_path / "bad"
    ok.write_text("Y\n")
    bad.write_text("N\n")
    (tmp_path / "x86").mkdir()
    for f in ("plain.flat", "vmexit.flat"):
        (tmp_path / "x86" / f).write_bytes(b"")
    path = tmp_path / "x86" / "unittests.cfg"
    path.write_text(CFG.format(ok=ok, bad=bad))
    return str(tmp_path), dict(load_runner().parse_cfg(str(path)))


def test_runner_reads_the_cfg_and_skips_as_run_tests_does(tmp_path):
    k = load_runner()
    src, tests = runner_cfg(tmp_path)
    assert list(tests) == ["plain", "args", "host_cpu", "manual", "i386"]
    assert tests["host_cpu"]["qemu_params"] == \
        "-cpu max -machine vmport=on"
    assert k.skip_reason(tests["plain"], src) is None
    assert k.skip_reason(tests["args"], src) is None
    assert k.skip_reason(tests["host_cpu"], src) == \
        f"{tmp_path / 'bad'} not equal to Y"
    assert "nodefault" in k.skip_reason(tests["manual"], src)
    assert k.skip_reason(tests["i386"], src) == "i386 only"
    (tmp_path / "bad").write_text("Y\n")
    assert k.skip_reason(tests["host_cpu"], src) is None
    (tmp_path / "bad").unlink()                 # no such setting: skip
    assert k.skip_reason(tests["host_cpu"], src) is not None


def test_runner_domain_and_qemu_command_agree(tmp_path):
    k = load_runner()
    src, tests = runner_cfg(tmp_path)
    cfg = k.domain_config("plain", tests["plain"], src)
    assert (cfg["vcpus"], cfg["memory"], cfg["cmdline"]) == (2, 256, "a b")
    assert cfg["strict_io"] is False

    cmd = k.qemu_command("qemu", tests["plain"], src)
    assert cmd[0] == "qemu"
    assert cmd[cmd.index("-kernel") + 1] == os.path.join(src, "x86",
                                                         "plain.flat")
    assert cmd[cmd.index("-smp") + 1] == "2"
    assert cmd[cmd.index("-m") + 1] == "256"
    assert cmd.count("-cpu") == 1               # the test's own, once
    assert cmd[cmd.index("-cpu") + 1] == "qemu64,+x2apic"
    assert "pc-testdev" in cmd and "pci-testdev" in cmd
    assert "isa-debug-exit,iobase=0xf4,iosize=0x4" in cmd

    bare = k.qemu_command("qemu", tests["plain"], src, bare=True)
    assert "pc-testdev" not in bare and "pci-testdev" not in bare
    assert "isa-debug-exit,iobase=0xf4,iosize=0x4" in bare

    # test_args as run_tests.sh passes them: through the shell, unquoted.
    args = k.qemu_command("qemu", tests["args"], src)
    assert args[args.index("-append") + 1] == "vmcall"
    assert k.domain_config("args", tests["args"], src)["cmdline"] == \
        "vmcall"
    # -cpu host where the test names none, without the MSR KVM-PVM
    # refuses; a forced model replaces the test's.
    assert args[args.index("-cpu") + 1] == "host,-arch-capabilities"
    hc = k.qemu_command("qemu", tests["host_cpu"], src)
    assert hc[hc.index("-cpu") + 1] == "max,-arch-capabilities"
    assert hc[hc.index("-machine", hc.index("-cpu")) + 1] == "vmport=on"
    forced = k.qemu_command("qemu", tests["plain"], src, cpu="Skylake")
    assert forced[forced.index("-cpu") + 1] == "Skylake"


def test_runner_qemu_that_does_not_start(tmp_path):
    """QEMU refusing an option of the test exits 1 like a pass: the
    runner calls it a failure to start, naming QEMU's message."""
    k = load_runner()
    src, tests = runner_cfg(tmp_path)
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho \"qemu: Property 'vmx-mbec' not "
                    "found\" >&2\nexit 1\n")
    fake.chmod(0o755)
    res, why, _ = k.run_qemu(str(fake), tests["plain"], src, 30)
    assert res == "FAIL"
    assert why.startswith("qemu failed (1)") and "vmx-mbec" in why
    guest = tmp_path / "guest"
    guest.write_text("#!/bin/sh\necho 'SUMMARY: 1 tests'\nexit 1\n")
    guest.chmod(0o755)
    assert k.run_qemu(str(guest), tests["plain"], src, 30)[:2] == \
        ("PASS", "SUMMARY: 1 tests")


def test_runner_results_and_verdicts():
    k = load_runner()
    assert k.classify(1, "x\nSUMMARY: 3 tests\n") == \
        ("PASS", "SUMMARY: 3 tests")
    assert k.classify(77, "SUMMARY: 1 tests, 1 skipped")[0] == "SKIP"
    res, why = k.classify(3, "FAIL: y\nSUMMARY: 2 tests, 1 unexpected "
                          "failures\n")
    assert res == "FAIL" and re.search(r"exit status 3; SUMMARY", why)
    assert k.verdict("FAIL", "FAIL") == "same"
    assert k.verdict("FAIL", "PASS") == "ours only"
    assert k.verdict("FAIL", "SKIP") == "ours only"
    assert k.verdict("PASS", "FAIL") == "qemu only"
    assert k.verdict("SKIP", "PASS") == "differs"
