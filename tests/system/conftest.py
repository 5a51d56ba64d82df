"""The system tier: Debian's stock kernel as a guest of our hypervisor.

One QEMU "host" VM (TCG with emulated AMD SVM: /dev/kvm on these machines
cannot run a guest kernel at CPL0 at speed, see ../shared/DESIGN.md) is
booted per session and shared by every test; the daemon and xl run inside
it.  See tests/system/README.md.

When a test fails, the daemon's log, every guest console, the host's dmesg
and console are copied to $XEN_BUILD/test-logs/system/<test>/, and the
daemon log's tail is added to the report; the guest's console is in the
failure message itself.  Every boot's duration is printed at the end of the run.
"""
import os
import shutil
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from harness import BUILD, XEN, XL, build_has, guest_path  # noqa: E402
import sysimages  # noqa: E402
import syshost  # noqa: E402
from syshost import HostError, HostVM  # noqa: E402

WORK = os.path.join(BUILD, "system")
# The static programs of the workloads (tests/system/system.mk).
PROGS = sysimages.workload_progs(BUILD)
LOG_ROOT = os.path.join(BUILD, "test-logs", "system")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "system: boots Debian's kernel under the hypervisor "
        "inside a QEMU host VM (slow; tests/system)")


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if syshost.BOOTS:
        tr.write_sep("-", "system tier: boot times")
        for what, secs in syshost.BOOTS:
            tr.write_line(f"{secs:7.1f} s  {what}")
    if syshost.MEASURES:
        tr.write_sep("-", "system tier: measurements")
        for what, value in syshost.MEASURES:
            tr.write_line(f"{what}: {value}")


_collected = set()     # failures whose logs are kept already


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure in this tier (a test, or a guest fixture failing for
    every test of its class): keep every log of the host VM and add the
    daemon log's tail to the report."""
    outcome = yield
    rep = outcome.get_result()
    host = syshost.CURRENT_HOST
    if not rep.failed or rep.when == "teardown" or host is None or \
            not host.alive() or call.excinfo is None or \
            not str(item.fspath).startswith(HERE):
        return
    key = id(call.excinfo.value)
    if key in _collected:
        return
    _collected.add(key)
    dest = os.path.join(LOG_ROOT, item.name.replace("/", "_"))
    shutil.rmtree(dest, ignore_errors=True)
    log = host.collect_logs(dest)
    rep.sections.append((
        "daemon log in the host VM",
        f"(kept with every guest console, the host's dmesg and console in "
        f"{dest})\n{log[-5000:]}"))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def system_images():
    """Build the host and guest images; skip the tier when the build
    boots no Linux or the tools are missing (scripts/setup.sh installs
    them)."""
    if not (build_has("BOOT_LINUX") or build_has("BOOT_PVH")):
        pytest.skip("this build has neither BOOT_LINUX nor BOOT_PVH")
    missing = sysimages.tools_missing()
    if missing:
        pytest.skip("system tier needs " + ", ".join(missing) +
                    ": run scripts/setup.sh")
    for b in [XEN, XL] + PROGS:
        if not os.path.exists(b):
            raise RuntimeError(f"{b} is missing: run `make` first")
    t0 = time.monotonic()
    images = sysimages.build_images(WORK, [XEN, XL], guest_path("exit"),
                                    PROGS)
    print(f"system images built in {time.monotonic() - t0:.1f} s")
    return images


@pytest.fixture(scope="session")
def system_host(system_images):
    """The shared host VM, booted once per session."""
    host = HostVM(WORK, system_images["vmlinuz"],
                  system_images["host_initrd"])
    try:
        secs = host.start()
    except HostError:
        host.stop()
        raise
    syshost.record_boot(f"host VM (QEMU TCG, -cpu {host.cpu}, Debian "
                        f"{host.release}, kvm-amd loaded, daemon up)", secs)
    syshost.CURRENT_HOST = host
    yield host
    syshost.CURRENT_HOST = None
    host.stop()
