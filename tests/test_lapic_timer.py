"""The local APIC timer in TSC-deadline mode (Linux's clockevent on KVM)
across save/restore and migration, judged by the timer guest
(tests/guests/timer.c), which arms IA32_TSC_DEADLINE, waits for its
interrupt and prints "TIMER n=N" every 200 ms.

KVM drops a TSC deadline written while the LAPIC timer is not in
TSC-deadline mode, and VCPU_MSRS loads before VCPU_LAPIC: unless the
deadline is set again after the LAPIC (and after the TSC moved), the
armed timer is lost and the guest waits for ever.  A Debian guest then
lost every timer after a migration (its shell stopped answering)."""
import fcntl
import os
import re
import time

import pytest

from miglib import Host
from harness import build_has, require_binaries, require_kvm, \
    stop_and_check

KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_TSC_DEADLINE_TIMER = 72
TIMER_RX = re.compile(r"TIMER n=(\d+)")


def need_tsc_deadline():
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        ok = fcntl.ioctl(fd, KVM_CHECK_EXTENSION,
                         KVM_CAP_TSC_DEADLINE_TIMER) > 0
    finally:
        os.close(fd)
    if not ok:
        pytest.skip("this KVM offers no TSC-deadline timer")


def last_tick(d, dom, mark=0, timeout=30):
    """The guest's latest "TIMER n=N" after `mark`, waiting for one."""
    d.wait_console_since(dom, TIMER_RX.pattern, mark, timeout=timeout)
    return int(TIMER_RX.findall(d.console_since(dom, mark))[-1])


def ticks_go_on(d, dom, what, timeout=30):
    """Three more ticks arrive after `what` (about 0.6 s of guest time)."""
    mark = d.console_mark(dom)
    want = last_tick(d, dom, mark, timeout) + 3
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [int(n) for n in TIMER_RX.findall(d.console_since(dom, mark))]
        if max(got) >= want:
            return
        time.sleep(0.1)
    raise AssertionError(f"the guest's TSC-deadline timer stopped after "
                         f"{what}: ticks {got[-5:]}, wanted {want}")


def start(d, name="t"):
    d.create(name, kernel="timer", memory=16)
    d.wait_console(name, r"TIMER ready lvtt=0x4[0-9a-f]{4}", timeout=30)
    last_tick(d, name)


def test_timer_guest_ticks(daemon):
    need_tsc_deadline()
    start(daemon)
    ticks_go_on(daemon, "t", "boot")


def test_save_restore_keeps_the_armed_deadline(daemon, tmp_path):
    need_tsc_deadline()
    start(daemon)
    path = str(tmp_path / "t.xkvm")
    daemon.xl("save", "t", path)
    daemon.xl("restore", path)
    ticks_go_on(daemon, "t", "xl save and xl restore")
    # and again, restored from the same file under another name
    daemon.xl("restore", "--name", "t2", path)
    ticks_go_on(daemon, "t2", "a second xl restore")


def test_migration_keeps_the_armed_deadline(tmp_path):
    """Migration moves the TSC on past the deadline: it must fire at once
    on the destination, there and back."""
    if not build_has("MIGRATION"):
        pytest.skip("MIGRATION is not in this build's Kconfig")
    require_binaries()
    require_kvm()
    need_tsc_deadline()
    hosts = []
    try:
        for n in ("a", "b"):
            hosts.append(Host(str(tmp_path / n)))
        (a, a_addr), (b, b_addr) = ((h.d, h.addr) for h in hosts)
        start(a)
        for i in range(3):
            a.xl("migrate", "--insecure", "t", b_addr, timeout=120)
            assert "t" not in a.domains()
            ticks_go_on(b, "t", f"migration {2 * i + 1}")
            b.xl("migrate", "--insecure", "t", a_addr, timeout=120)
            ticks_go_on(a, "t", f"migration {2 * i + 2}")
    finally:
        problems = [stop_and_check(h.d) for h in hosts]
    assert not any(problems), problems
