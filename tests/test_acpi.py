"""ACPI: the tables (xen/boot/acpi.c) and the fixed hardware
(xen/dev/acpi_pm.c), `xl shutdown` (the power button, -w, -F) and
`xl trigger`.  The ACPI guest (tests/guests/acpi.c) finds the RSDP by
scanning the BIOS area, reads the FADT, \\_S5 and the SCI's MADT
override, measures the PM timer over a second of the RTC, routes the SCI and
reports every SCI and NMI; on the power button it powers itself off
through SLP_TYP/SLP_EN (button=ignore: it only says so)."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from harness import BUILD, XEN, build_has, copy_image, scaled
import streamlib as sl

XEN_STREAM = os.path.join(BUILD, "bin", "xen-stream")

ON = 'on_poweroff = "preserve"\non_reboot = "preserve"\n' \
     'on_crash = "preserve"\n'
READY = r"ACPI READY button=\w+\r\n"


def start(daemon, name, button="poweroff", extra=ON, **kw):
    daemon.create(name, kernel="acpi", cmdline=f"button={button}",
                  extra=extra, **kw)
    daemon.wait_console(name, READY, timeout=60)
    return daemon.console(name)


def assert_xl_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.out, r.err)
    for w in words:
        assert w in r.err, (w, r.err)


def test_tables_and_pm_timer_as_the_guest_sees_them(daemon):
    text = start(daemon, "tables")
    # The RSDP is found by the BIOS-area scan, where the loader put it.
    assert re.search(r"ACPI rsdp=0xe0000 ", text), text
    assert ("ACPI fadt pm1_evt=600 pm1_cnt=604 pm_tmr=608 sci=9 "
            "tmr_bits=32 fixed_power_button=1\r\n") in text, text
    # \_S5 says 5; the SCI is overridden to level, active high (flags 0xd).
    assert "ACPI dsdt s5=5 madt sci_gsi=9 sci_flags=d\r\n" in text, text
    assert "ACPI sci routed gsi=9 vector=49 level high\r\n" in text, text
    # SCI_EN reads 1: the board is in ACPI mode.
    assert "ACPI events enabled pm1_en=100 pm1_cnt=1\r\n" in text, text
    m = re.search(r"ACPI pmtimer hz=(\d+) ok=(\d)", text)
    assert m and m.group(2) == "1", text
    assert daemon.domain("tables")["state"] == "running"


def test_xl_shutdown_is_an_orderly_poweroff(daemon):
    start(daemon, "button")
    daemon.xl("shutdown", "-w", "button")
    # -w returned: the domain is off, by the guest's own hand.
    d = daemon.domain("button")
    assert d["state"] == "shutdown" and d["shutdown_reason"] == "poweroff"
    text = daemon.console("button")
    assert re.search(r"ACPI sci count=\d+ pm1_sts=100\r\n"
                     r"ACPI power button pressed\r\n"
                     r"ACPI orderly poweroff slp_typ=5\r\n", text), text
    assert "FAILED" not in text, text
    log = daemon.log()
    assert "power button pressed (SCI raised)" in log, log
    assert "guest powered off (ACPI S5)" in log, log
    assert "shutdown requested by the toolstack" not in log, log


def test_plain_shutdown_leaves_a_guest_that_ignores_the_button(daemon):
    start(daemon, "deaf", button="ignore")
    daemon.xl("shutdown", "deaf")
    daemon.wait_console("deaf", r"ACPI power button pressed, ignored\r\n")
    # The guest saw the button and said no: it keeps running.
    mark = daemon.console_mark("deaf")
    daemon.xl("trigger", "deaf", "nmi")
    daemon.wait_console_since("deaf", r"ACPI nmi count=1\r\n", mark)
    assert daemon.domain("deaf")["state"] == "running"
    # -w without -F would wait for good; with -F it ends it after -t.
    r = daemon.xl("shutdown", "-F", "-t", "1", "deaf")
    assert "did not power off within 1 s: stopping it" in r.err, r.err
    d = daemon.domain("deaf")
    assert d["state"] == "shutdown" and d["shutdown_reason"] == "poweroff"
    text = daemon.console("deaf")
    assert text.count("ACPI power button pressed, ignored") == 2, text
    assert "orderly poweroff" not in text, text
    assert "shutdown requested by the toolstack" in daemon.log()


def test_shutdown_force_on_a_guest_that_complies(daemon):
    """-F on a guest that powers off: it ends by its own hand, and xl
    says nothing of stopping it."""
    start(daemon, "comply")
    r = daemon.xl("shutdown", "-F", "-t", "600", "comply")
    assert "stopping it" not in r.err, r.err
    assert daemon.domain("comply")["state"] == "shutdown"
    assert "ACPI orderly poweroff" in daemon.console("comply")


def test_trigger_nmi_reaches_each_vcpu_asked(daemon):
    start(daemon, "nmi", extra=ON + "vcpus = 2\n")
    daemon.xl("trigger", "nmi", "nmi")
    daemon.wait_console("nmi", r"ACPI nmi count=1\r\n")
    daemon.xl("trigger", "nmi", "nmi", "0")
    daemon.wait_console("nmi", r"ACPI nmi count=2\r\n")
    # vCPU 1 never leaves its reset state here (no SIPI): KVM keeps the
    # NMI pending for it, and vCPU 0 sees nothing more.
    daemon.xl("trigger", "nmi", "nmi", "1")
    daemon.xl("trigger", "nmi", "nmi", "0")
    daemon.wait_console("nmi", r"ACPI nmi count=3\r\n")
    assert "ACPI nmi count=4" not in daemon.console("nmi")
    assert "NMI to vCPU 1" in daemon.log()


def test_trigger_power_and_reset(daemon):
    start(daemon, "trig")
    daemon.xl("trigger", "trig", "power")
    d = daemon.wait_state("trig", "shutdown")
    assert d["shutdown_reason"] == "poweroff"
    assert "ACPI orderly poweroff" in daemon.console("trig")

    start(daemon, "rst", extra='on_reboot = "restart"\n')
    mark = daemon.console_mark("rst")
    daemon.xl("trigger", "rst", "reset")
    # Restarted: the guest boots again from the start.
    daemon.wait_console_since("rst", READY, mark, timeout=60)
    assert daemon.console("rst").count("ACPI READY") == 2
    assert "reset triggered by the toolstack" in daemon.log()


def test_bad_triggers_are_clear_errors(daemon):
    start(daemon, "bad", extra=ON + "vcpus = 2\n")
    r = daemon.xl("trigger", "bad", "poke", check=False)
    assert_xl_error(r, 3, "unknown trigger 'poke'", "power, reset, nmi")
    r = daemon.xl("trigger", "bad", "sleep", check=False)
    assert_xl_error(r, 9, "trigger 'sleep' is not supported")
    r = daemon.xl("trigger", "bad", "nmi", "2", check=False)
    assert_xl_error(r, 3, "no vCPU 2: the domain has 2")
    r = daemon.xl("trigger", "bad", "nmi", "x", check=False)
    assert_xl_error(r, 64, "VCPU must be a vCPU number")
    r = daemon.xl("trigger", "bad", check=False)
    assert_xl_error(r, 64, "missing TRIGGER")
    r = daemon.xl("trigger", "nosuch", "nmi", check=False)
    assert_xl_error(r, 4, "no domain 'nosuch'")
    r = daemon.xl("shutdown", "-t", "soon", "bad", check=False)
    assert_xl_error(r, 64, "--timeout wants 0 to 86400 seconds")
    # The guest saw none of it and runs on.
    mark = daemon.console_mark("bad")
    daemon.xl("trigger", "bad", "nmi")
    daemon.wait_console_since("bad", r"ACPI nmi count=1\r\n", mark)
    assert daemon.domain("bad")["state"] == "running"
    # An ended domain has no buttons.
    daemon.xl("shutdown", "-w", "bad")
    r = daemon.xl("trigger", "bad", "power", check=False)
    assert_xl_error(r, 6, "domain is shutdown already")


def test_button_pressed_before_a_save_survives_restore(daemon, tmp_path):
    start(daemon, "saved")
    daemon.xl("pause", "saved")
    daemon.xl("shutdown", "saved")          # pressed while paused
    path = str(tmp_path / "saved.xkvm")
    daemon.xl("save", "saved", path)
    s = sl.Stream.load(path)
    (rec,) = s.find(sl.DEV_ACPI_PM)
    assert rec.flags == 1                   # OPTIONAL
    sts, en, cnt, _, ticks = struct.unpack(sl.ACPI_PM_FMT, rec.body)
    assert (sts & 0x100, en, cnt) == (0x100, 0x100, 1), (sts, en, cnt)
    assert ticks > 0
    assert "ACPI power button" not in daemon_console_text(s)
    daemon.xl("restore", path)
    d = daemon.wait_state("saved", "shutdown", timeout=60)
    assert d["shutdown_reason"] == "poweroff"
    text = daemon.console("saved")
    assert "ACPI power button pressed\r\nACPI orderly poweroff" in text, text


def test_button_pressed_before_a_live_update_survives_it(daemon, tmp_path):
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    start(daemon, "lu")
    daemon.xl("pause", "lu")
    daemon.xl("shutdown", "lu")             # pressed while paused
    image = str(tmp_path / "xen")
    copy_image(XEN, image)
    daemon.xl("live-update", image, timeout=120)
    assert daemon.domain("lu")["state"] == "paused"
    assert "ACPI power button" not in daemon.console("lu")
    daemon.xl("unpause", "lu")
    d = daemon.wait_state("lu", "shutdown", timeout=60)
    assert d["shutdown_reason"] == "poweroff"
    text = daemon.console("lu")
    assert "ACPI power button pressed\r\nACPI orderly poweroff" in text, text


def test_timer_carry_raises_the_sci_with_tmr_en(daemon, tmp_path):
    """TMR_STS at the carry out of bit 31, and the SCI with TMR_EN: a
    stream edited to hold a timer 0.2 s short of the carry, TMR_EN set,
    restores into a guest that takes an SCI with TMR_STS (and the timer
    went on from the edited count)."""
    start(daemon, "carry", button="ignore")
    path = str(tmp_path / "carry.xkvm")
    daemon.xl("save", "carry", path)
    s = sl.Stream.load(path)
    rec = s.first(sl.DEV_ACPI_PM)
    sts, en, cnt, res, _ = struct.unpack(sl.ACPI_PM_FMT, rec.body)
    rec.body = struct.pack(sl.ACPI_PM_FMT, sts, en | 0x1, cnt, res,
                           (1 << 31) - 3579545 // 5)
    s.save(path)
    daemon.xl("restore", path)
    daemon.wait_console("carry", r"ACPI sci count=\d+ pm1_sts=1\r\n")
    assert "ACPI power button" not in daemon.console("carry")
    daemon.xl("save", "carry", path)
    ticks = struct.unpack(sl.ACPI_PM_FMT,
                          sl.Stream.load(path).first(sl.DEV_ACPI_PM)
                          .body)[4]
    assert (1 << 31) <= ticks < (1 << 31) + 3579545 * scaled(600), ticks


def test_restore_checks_the_record(daemon, tmp_path):
    """A DEV_ACPI_PM record with undefined bits is refused, naming it; a
    stream without one (an older writer) restores with the block reset:
    the guest's enabled button is gone, so the button does nothing."""
    start(daemon, "chk", button="ignore")
    path = str(tmp_path / "chk.xkvm")
    daemon.xl("save", "-c", "chk", path)
    s = sl.Stream.load(path)
    rec = s.first(sl.DEV_ACPI_PM)
    body = bytearray(rec.body)
    body[0] |= 0x02                         # PM1 status bit 1: undefined
    rec.body = bytes(body)
    bad = str(tmp_path / "bad.xkvm")
    s.save(bad)
    r = daemon.xl("restore", "--name", "chk2", bad, check=False)
    assert_xl_error(r, 3, "DEV_ACPI_PM: undefined bits")
    assert "chk2" not in daemon.domains()
    assert daemon.domain("chk")["state"] == "running"

    s = sl.Stream.load(path)
    s.remove(sl.DEV_ACPI_PM)
    old = str(tmp_path / "old.xkvm")
    s.save(old)
    daemon.xl("restore", "--name", "chk3", old)
    mark = daemon.console_mark("chk3")
    daemon.xl("shutdown", "chk3")
    daemon.xl("trigger", "chk3", "nmi")     # a line after the button's
    daemon.wait_console_since("chk3", r"ACPI nmi count=1\r\n", mark)
    assert "power button" not in daemon.console_since("chk3", mark)
    assert "(the guest has not enabled it)" in daemon.log()


def test_pm_timer_goes_on_from_its_saved_count(daemon, tmp_path):
    start(daemon, "tmr", button="ignore")
    path = str(tmp_path / "tmr.xkvm")
    daemon.xl("save", "-c", "tmr", path)
    first = struct.unpack(sl.ACPI_PM_FMT,
                          sl.Stream.load(path).find(sl.DEV_ACPI_PM)[0]
                          .body)[4]
    daemon.xl("destroy", "tmr")
    daemon.xl("restore", path)
    daemon.xl("save", "tmr", path)
    second = struct.unpack(sl.ACPI_PM_FMT,
                           sl.Stream.load(path).find(sl.DEV_ACPI_PM)[0]
                           .body)[4]
    # It counts on from the saved value, not from the host's clock (whose
    # count is far larger: the host has been up longer than the guest).
    assert first < second < first + 3579545 * scaled(600), (first, second)


def test_dump_and_verify_show_the_record(daemon, tmp_path):
    start(daemon, "dump")
    path = str(tmp_path / "dump.xkvm")
    daemon.xl("save", "-c", "dump", path)
    out = subprocess.run([XEN_STREAM, "dump", path], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(r"DEV_ACPI_PM.*\n  pm1_sts 0 pm1_en 0x100 pm1_cnt 0x1 "
                     r"pm_tmr_ticks \d+", out), out


def daemon_console_text(stream):
    return stream.console()[1].decode("latin1")


@pytest.mark.skipif(shutil.which("iasl") is None,
                    reason="iasl (acpica-tools) is not installed")
def test_tables_disassemble_with_iasl(daemon, tmp_path):
    """The tables as the guest finds them in its memory, taken from a
    saved stream, go through ACPICA's disassembler without complaint."""
    start(daemon, "iasl")
    path = str(tmp_path / "iasl.xkvm")
    daemon.xl("save", "-c", "iasl", path)
    tables = _tables_from(sl.Stream.load(path))
    assert set(tables) >= {"FACP", "DSDT", "APIC", "FACS"}, tables.keys()
    for sig, data in tables.items():
        f = tmp_path / f"{sig.lower()}.dat"
        f.write_bytes(data)
        r = subprocess.run(["iasl", "-d", str(f)], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, (sig, r.stdout, r.stderr)
        dsl = (tmp_path / f"{sig.lower()}.dsl").read_text()
        assert "Error" not in r.stdout + r.stderr, (sig, r.stdout)
        tables[sig] = dsl
    fadt = tables["FACP"]
    for line in (r"PM1A Event Block Address : 00000600",
                 r"PM1A Control Block Address : 00000604",
                 r"PM Timer Block Address : 00000608",
                 r"PM Timer Block Length : 04",
                 r"SCI Interrupt : 0009",
                 r"Control Method Power Button \(V1\) : 0",
                 r"32-bit PM Timer \(V1\) : 1"):
        assert re.search(line, fadt), (line, fadt)
    assert re.search(r'Name \(_S5, Package \(0x04\)[^\n]*\s*\{\s*0x05,\s*'
                     r'0x05,', tables["DSDT"]), tables["DSDT"]
    madt = tables["APIC"]
    assert re.search(r"Source : 09\s*\n.*Interrupt : 00000009\s*\n"
                     r".*Flags \(decoded below\) : 000D\s*\n"
                     r"\s*Polarity : 1\s*\n\s*Trigger Mode : 3", madt), madt


def _tables_from(stream):
    """{signature: bytes} of the tables the RSDP at 0xE0000 leads to, read
    from the guest memory a stream holds."""
    pages = {}

    def rd(addr, n):
        out = b""
        while len(out) < n:
            pfn, off = divmod(addr + len(out), 4096)
            if pfn not in pages:
                pages[pfn] = stream.page(pfn)
            out += pages[pfn][off:off + n - len(out)]
        return out
    rsdp = rd(0xe0000, 36)
    assert rsdp[:8] == b"RSD PTR ", rsdp
    rsdt = struct.unpack_from("<I", rsdp, 16)[0]
    n = (struct.unpack_from("<I", rd(rsdt, 8), 4)[0] - 36) // 4
    out = {}
    for i in range(n):
        addr = struct.unpack_from("<I", rd(rsdt + 36 + 4 * i, 4))[0]
        length = struct.unpack_from("<I", rd(addr, 8), 4)[0]
        data = rd(addr, length)
        out[data[:4].decode()] = data
    fadt = out["FACP"]
    facs, dsdt = struct.unpack_from("<II", fadt, 36)
    out["FACS"] = rd(facs, struct.unpack_from("<I", rd(facs, 8), 4)[0])
    out["DSDT"] = rd(dsdt, struct.unpack_from("<I", rd(dsdt, 8), 4)[0])
    return out
