"""Debian's stock kernel (bzImage and PVH, 1 and 2 vCPUs) boots under the
hypervisor inside the shared host VM: its init runs a workload, the guest
sees the configured memory (e820, MemTotal), CPUs and today's date, its
console is interactive, and poweroff/reboot end the domain as configured.

Each class boots one guest and checks it from several sides; the guest's
init (guest-init.sh) prints "SYSTEST:" lines the tests read.
"""
import datetime
import re
import time

import pytest

from harness import build_has
from syshost import BAD_CONSOLE, GUEST_CMDLINE, boot_guest, record_boot
import sysworkloads as wl

pytestmark = pytest.mark.system
MIB = 1 << 20
FW_CFG_ITEM = "name=opt/org.test/greeting,string=hello-from-xl.cfg"


def check_memory(g, memory_mib):
    """e820 as the loaders build it (xen/boot/boot.c boot_e820) and a
    MemTotal that is the configured size less what the kernel keeps."""
    e820 = g.e820()
    usable = [(a, b) for a, b, kind in e820 if kind == "usable"]
    assert usable == [(0, 0x9fbff), (0x100000, memory_mib * MIB - 1)], \
        f"e820 of {g.name} with memory={memory_mib}: {e820}"
    assert (0x9fc00, 0xfffff, "reserved") in e820, e820
    total_kb = int(g.facts()["memtotal_kb"])
    assert (memory_mib - 96) * 1024 <= total_kb <= memory_mib * 1024, \
        f"MemTotal {total_kb} kB for memory={memory_mib} MiB"


def check_cpus(g, vcpus):
    f = g.facts()
    assert f["nproc"] == str(vcpus), f
    assert f["online"] == ("0" if vcpus == 1 else f"0-{vcpus - 1}"), f


def check_clock(g, host):
    """The guest's system clock and its RTC (read through /dev/rtc0 and
    sysfs) say today, as the host VM and this machine do (a day boundary
    between the readings is tolerated)."""
    f = g.facts()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    host_day = datetime.date.fromisoformat(host.sh("date -u +%Y-%m-%d")
                                           .strip())
    for key in ("date", "rtc_date"):
        day = datetime.date.fromisoformat(f[key])
        assert min(abs((day - today).days),
                   abs((day - host_day).days)) <= 1, \
            f"guest {key} {day}, today {today}, host VM {host_day}: {f}"
    assert re.search(r"\d\d:\d\d:\d\d_\d{4}", f["rtc"]), \
        f"hwclock -r failed in the guest: {f['rtc']}"


def check_clean(g):
    """No WARNING:/BUG:/Oops/Call Trace on the console, nor in the
    guest's dmesg (which holds what loglevel=5 kept off the console)."""
    g.check_clean()
    bad = re.findall(r"SYSTEST: dmesg-bad .*", g.console())
    assert not bad, f"guest {g.name} dmesg: {bad}"


def check_workload(g, start=0):
    text = g.console()[start:]
    assert re.search(r"SYSTEST: init pid=1 ", text), text[-3000:]
    assert len(re.findall(r"SYSTEST: uptime \d+\.\d+ \d+\.\d+", text)) >= 3
    assert "SYSTEST: workload files_ok=3/3" in text, text[-3000:]


class TestBzImageOneVcpu:
    """bzImage through the 64-bit entry, 1 vCPU, an interactive shell,
    then `poweroff -f` typed on the console with on_poweroff=destroy."""
    MEMORY = 224

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        g = boot_guest(system_host, "bz1", "bzimage", vcpus=1,
                       memory=self.MEMORY, action="shell",
                       extra=f"fw_cfg = [ '{FW_CFG_ITEM}' ]\n"
                       if build_has("DEV_FW_CFG") else "")
        yield g
        g.destroy()

    def test_init_runs_workload(self, guest):
        check_workload(guest)

    def test_memory(self, guest):
        check_memory(guest, self.MEMORY)

    def test_fw_cfg_in_sysfs(self, guest):
        """Linux's qemu_fw_cfg driver (a module in Debian's kernel, which
        the guest's init loads) finds fw_cfg through the DSDT's QEMU0002
        device and shows the config's item under /sys/firmware."""
        text = guest.console()
        if not build_has("DEV_FW_CFG"):
            pytest.skip("this build has no fw_cfg (CONFIG_DEV_FW_CFG)")
        if "SYSTEST: fw_cfg no-module" in text:
            pytest.skip("this kernel has no qemu_fw_cfg module")
        assert re.search(r"SYSTEST: fw_cfg rev=3 files=1\n", text), \
            text[-3000:]
        assert "SYSTEST: fw_cfg file key=32 size=17 " \
            "name=opt/org.test/greeting raw=hello-from-xl.cfg " \
            "by_name=hello-from-xl.cfg\n" in text, text[-3000:]

    def test_one_cpu(self, guest):
        check_cpus(guest, 1)

    def test_clock(self, guest, system_host):
        check_clock(guest, system_host)

    def test_interactive_console(self, guest, system_host):
        """Keystrokes typed into `xl console` reach the guest's shell and
        its answer comes back: the command line's arithmetic and the
        kernel release are only in the output, not in the echo."""
        guest.wait(r"guest# ")
        mark = len(guest.console())
        guest.type("echo sys$((40 + 2))test $(uname -r) "
                   "$(grep -c ^processor /proc/cpuinfo)\n")
        m = guest.wait(r"sys42test (\S+) (\d+)", start=mark, timeout=180)
        assert m.group(1) == system_host.release, m.group(0)
        assert m.group(2) == "1", m.group(0)
        mark = len(guest.console())
        guest.type("cat /proc/uptime; echo done-$((6 * 7))\n")
        guest.wait(r"\d+\.\d+ \d+\.\d+\s+done-42", start=mark, timeout=180)

    def test_survives_live_update(self, guest, system_host):
        """The hypervisor is live-updated under the running Linux guest:
        afterwards its shell still answers on the same `xl console`
        session, and its clock and uptime went on."""
        guest.wait(r"guest# ")
        out = system_host.sh("xl live-update $(command -v xen) && "
                             "xl live-update status", timeout=180)
        assert re.search(r"result\s+: ok", out), out
        mark = len(guest.console())
        guest.type("echo after-update-$((6 * 7)) $(cut -d' ' -f1 "
                   "/proc/uptime)\n")
        m = guest.wait(r"after-update-42 (\d+)\.\d+", start=mark,
                       timeout=180)
        assert int(m.group(1)) > 0, m.group(0)

    def test_survives_save_restore(self, guest, system_host):
        """`xl save` + `xl restore -p`: files written in the guest's tmpfs
        before are intact and its shell answers on a new `xl console -n`
        session appending to the same file (the harness's path for the
        virtio disk tests, run here on a guest without devices)."""
        guest.wait(r"guest# ")
        files = wl.DiskWorkload(guest, n=8, directory="/tmp/data")
        files.write()
        path = "/tmp/guests/bz1.state"
        guest.save(path)
        guest.restore(path)
        system_host.run(f"rm -f {path}", check=False)
        files.verify("after xl save and xl restore")
        guest.do("echo after-restore-$((6 * 7))", r"after-restore-42")

    def test_no_kernel_warnings(self, guest):
        check_clean(guest)

    def test_poweroff_destroys_domain(self, guest, system_host):
        guest.wait(r"guest# ")
        guest.type("poweroff -f\n")
        guest.wait_gone(timeout=180)
        log = system_host.daemon_log()
        assert re.search(r"guest powered off \(ACPI S5\)", log), log[-2000:]
        assert re.search(r"poweroff -> destroy", log), log[-2000:]
        check_clean(guest)


class TestBzImageTwoVcpusMpTableReboot:
    """bzImage with 2 vCPUs and acpi=off, so that Linux finds the CPUs and
    the IOAPIC in the MP table (the APs come up through INIT and SIPI);
    then `reboot -f` (through the keyboard controller, there being no
    ACPI reset register) with on_reboot=restart boots it again."""
    MEMORY = 256

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        g = boot_guest(system_host, "bz2", "bzimage", vcpus=2,
                       memory=self.MEMORY, on_reboot="restart",
                       cmdline=f"{GUEST_CMDLINE} systest=reboot acpi=off")
        yield g
        g.destroy()

    def test_two_cpus_from_mp_table(self, guest):
        check_cpus(guest, 2)
        check_workload(guest)
        text = guest.console()
        assert re.search(r"SYSTEST: smp .*found SMP MP-table", text), text
        assert re.search(r"SYSTEST: smp .*Allowing 2 CPUs", text), text
        assert "MADT" not in text, text

    def test_memory(self, guest):
        check_memory(guest, self.MEMORY)

    def test_reboot_restarts_domain(self, guest, system_host):
        first = guest.wait(r"SYSTEST: ready action=reboot\n")
        t0 = time.monotonic()
        again = guest.wait(r"SYSTEST: init pid=1 ", start=first.end())
        guest.wait(r"SYSTEST: ready action=reboot\n", start=again.start())
        record_boot("bzimage, 2 vCPU(s), after reboot -f: first init ready "
                    "to second (bz2)", time.monotonic() - t0)
        guest.destroy()     # it would reboot forever
        log = system_host.daemon_log()
        assert re.search(r"guest reset through the keyboard controller "
                         r"\(reboot\)", log), log[-2000:]
        assert re.search(r"reboot -> restart", log), log[-2000:]
        assert re.search(r"d\d+: restarted", log), log[-2000:]
        # The second boot found both CPUs and ran the workload too.
        facts = guest.facts(start=again.start())
        assert facts["nproc"] == "2", facts
        check_workload(guest, again.start())

    def test_no_kernel_warnings(self, guest):
        check_clean(guest)


class TestPvhTwoVcpus:
    """The ELF vmlinux through XEN_ELFNOTE_PHYS32_ENTRY, 2 vCPUs; its
    init's `poweroff -f` with on_poweroff=preserve leaves the domain in
    state shutdown."""
    MEMORY = 192

    @pytest.fixture(scope="class")
    def guest(self, system_host, system_images):
        if system_images["pvh_entry"] is None:
            pytest.skip("Debian's vmlinux has no XEN_ELFNOTE_PHYS32_ENTRY")
        g = boot_guest(system_host, "pvh2", "pvh", vcpus=2,
                       memory=self.MEMORY, action="poweroff",
                       on_poweroff="preserve")
        yield g
        g.destroy()

    def test_poweroff_preserved(self, guest):
        d = guest.wait_state("shutdown", timeout=180)
        assert d["shutdown_reason"] == "poweroff", d
        assert "reboot: Power down" in guest.console(), guest.console()

    def test_workload_and_cpus_from_madt(self, guest):
        check_workload(guest)
        check_cpus(guest, 2)
        text = guest.console()
        assert re.search(r"SYSTEST: smp .*Using ACPI \(MADT\) for SMP "
                         r"configuration", text), text

    def test_memory(self, guest):
        check_memory(guest, self.MEMORY)

    def test_clock(self, guest, system_host):
        check_clock(guest, system_host)

    def test_no_kernel_warnings(self, guest):
        check_clean(guest)


class TestAcpiPowerButton:
    """`xl shutdown` presses the ACPI power button: Linux's button driver
    reports it, busybox's acpid (started by the guest's init) runs the
    guest's own orderly poweroff, which ends in ACPI S5; `xl shutdown -w`
    returns once the domain is off."""
    MEMORY = 192

    @pytest.fixture(scope="class")
    def guest(self, system_host):
        protocol = "bzimage" if "BOOT_LINUX" in _features() else "pvh"
        g = boot_guest(system_host, "acpi", protocol, memory=self.MEMORY,
                       on_poweroff="preserve")
        yield g
        g.destroy()

    def test_button_is_an_input_device(self, guest):
        text = guest.console()
        m = re.search(r"SYSTEST: acpid started inputs=(\S*) events=(\d+)",
                      text)
        assert m, text[-3000:]
        assert "Power_Button" in m.group(1).split(","), m.group(0)
        assert int(m.group(2)) >= 1, m.group(0)

    def test_xl_shutdown_powers_off_in_order(self, guest, system_host):
        t0 = time.monotonic()
        system_host.run(f"xl shutdown -w {guest.name}", timeout=300)
        record_boot("xl shutdown -w of a Debian guest: button to domain "
                    "off", time.monotonic() - t0)
        d = guest.record()
        assert d["state"] == "shutdown", d
        assert d["shutdown_reason"] == "poweroff", d
        text = guest.console()
        i = text.find("SYSTEST: acpid power button")
        assert i >= 0, text[-3000:]
        assert re.search(r"SYSTEST: orderly poweroff remount-ro=\w+\n",
                         text[i:]), text[-3000:]
        assert "reboot: Power down" in text[i:], text[-3000:]
        log = system_host.daemon_log()
        assert "power button pressed (SCI raised)" in log, log[-3000:]
        assert "guest powered off (ACPI S5)" in log, log[-3000:]


def test_failure_reports_guest_console(system_host):
    """The harness itself: a guest broken on purpose (its initramfs init
    does not exist, so the kernel panics and panic=-1 reboots it) makes
    the wait fail, and the failure carries the guest's console."""
    protocol = "pvh" if "BOOT_PVH" in _features() else "bzimage"
    g = boot_guest(system_host, "broken", protocol, memory=128,
                   cmdline=f"{GUEST_CMDLINE} panic=-1 rdinit=/nonexistent",
                   wait=False, on_reboot="preserve")
    try:
        with pytest.raises(AssertionError) as failure:
            g.wait(r"SYSTEST: init")
        record_boot(f"{protocol}, 1 vCPU(s), 128 MiB, broken on purpose: "
                    "domain created to the panic reported",
                    time.monotonic() - g.started)
        text = str(failure.value)
        print(f"the harness reported:\n{text}")
        assert f"--- console of guest {g.name}" in text, text
        assert "Kernel panic - not syncing" in text, text
        assert BAD_CONSOLE.search(text), text
        d = g.wait_state("shutdown", timeout=180)
        assert d["shutdown_reason"] == "reboot", d
    finally:
        g.destroy()


def _features():
    from harness import build_features
    return build_features()
