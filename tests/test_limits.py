"""Bounded everything (docs/control-api.md and README.md, "Limits"): a
guest crashing in a loop, clients that hold a connection and do nothing,
a guest flooding the daemon's log."""
import re

from harness import wait_until

CRASH_RESTART_MAX = 5           # xen/crash_restart.h
CRASH_RESTART_WINDOW_S = 60
CRASH_RESTART_DELAY_MS = 250


def test_crash_loop_is_restarted_with_backoff_then_given_up(daemon,
                                                           witness):
    """A guest that crashes at once, with on_crash = "restart": restarted
    at once the first time, then after 250, 500, 1000, 2000 ms; its 6th
    crash within 60 s is not restarted and it is kept crashed.  Every
    boot is the guest's own (it prints BAD PORT NOW, then crashes); the
    other guest keeps counting."""
    d = daemon
    d.create("crashy", kernel="exit", cmdline="mode=badport",
             extra='on_crash = "restart"\n')
    wait_until(lambda: "not restarted again" in d.log(), timeout=120,
               what="the restarts given up")
    log = d.log()
    dom = d.domid("crashy")
    waits = re.findall(rf"d{dom}: crash (\d+) within "
                       rf"{CRASH_RESTART_WINDOW_S} s: restart in (\d+) ms",
                       log)
    assert [(int(n), int(ms)) for n, ms in waits] == \
        [(n, CRASH_RESTART_DELAY_MS << (n - 2))
         for n in range(2, CRASH_RESTART_MAX + 1)], waits
    assert log.count(f"d{dom}: restarted") == CRASH_RESTART_MAX, log
    assert re.search(rf"d{dom}: crashed {CRASH_RESTART_MAX + 1} times "
                     rf"within {CRASH_RESTART_WINDOW_S} s: not restarted "
                     rf"again", log), log
    assert d.domains()["crashy"]["state"] == "crashed"
    assert d.console(dom).count("BAD PORT NOW") >= 1
    witness.assert_counting()
    d.call("destroy", domain="crashy")
    assert "crashy" not in d.domains()


def test_destroy_while_a_restart_waits(daemon):
    """A domain whose restart is put off can be destroyed meanwhile; the
    timer then finds nothing to restart."""
    d = daemon
    d.create("crashy", kernel="exit", cmdline="mode=badport",
             extra='on_crash = "restart"\n')
    dom = d.domid("crashy")
    wait_until(lambda: f"d{dom}: crash 5 within" in d.log(), timeout=60,
               what="a restart put off")
    d.call("destroy", domain=dom)
    assert "crashy" not in d.domains()
    d.create("after", kernel="counter")
    d.wait_console("after", "COUNTER READY")
    assert f"d{dom}: restarted" not in d.log().split(
        f"d{dom}: crash 5 within")[1]
