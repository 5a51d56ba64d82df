"""Guest exits under kvm-amd, with the project's own exit-test guest
(tests/guests/exit.c) booted in the host VM next to the Debian guests."""
import re

import pytest

from harness import build_features
from syshost import Guest


def test_triple_fault_says_registers_are_init_state(system_host,
                                                     system_images):
    """kvm-amd re-initializes a vCPU when it intercepts a shutdown, so the
    registers the daemon logs for a triple fault are the INIT state.  The
    log must say so (the system tier once chased a phantom "INIT to the
    BSP" for want of it), and the domain must still end as a crash."""
    if "BOOT_MULTIBOOT" not in build_features() or \
            not system_images["exit_guest"]:
        pytest.skip("this build has no multiboot loader or exit guest")
    g = Guest(system_host, "tf", system_images["exit_guest"], None,
              "mode=triplefault", memory=32)
    g.start()
    try:
        g.wait(r"TRIPLE FAULT NOW")
        d = g.wait_state("crashed", timeout=60)
        assert d["shutdown_reason"] == "crash", d
        log = system_host.daemon_log()
        note = re.search(r"d(\d+)v0: kvm-amd re-initializes a vCPU at a "
                         r"triple fault: the registers below are its INIT "
                         r"state", log)
        assert note, log[-3000:]
        dom = note.group(1)
        # The dump that follows is the INIT state: the reset vector.
        assert re.search(rf"d{dom}v0: triple fault: rip=000000000000fff0",
                         log[note.end():]), log[-3000:]
    finally:
        g.destroy()
