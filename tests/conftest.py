"""pytest harness: daemons in temporary directories, guests, consoles.

Every test that needs KVM asks for the `daemon` fixture, which skips with
a clear reason where /dev/kvm is missing.  When a test fails, the daemon's
log and every guest console are copied to $XEN_BUILD/test-logs/<test>/ and
the log's tail is printed in the report.
"""
import os
import shutil

import pytest

from harness import (BUILD, Daemon, build_has, guest_path, kvm_usable,
                     require_binaries)

LOG_ROOT = os.path.join(BUILD, "test-logs")


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: needs a usable /dev/kvm")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call", "teardown"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


def _keep_logs(request, d):
    dest = os.path.join(LOG_ROOT, request.node.name.replace("/", "_"))
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest, exist_ok=True)
    d.save_consoles(dest)
    if os.path.exists(d.log_path):
        shutil.copy(d.log_path, dest)
        with open(d.log_path, errors="replace") as f:
            tail = f.read()[-6000:]
        print(f"\n--- daemon log (kept in {dest}) ---\n{tail}")


@pytest.fixture
def daemon(request, tmp_path):
    """A running daemon in its own directory; stopped after the test."""
    require_binaries()
    ok, why = kvm_usable()
    if not ok:
        pytest.skip(why)
    d = Daemon(str(tmp_path))
    d.start()
    yield d
    if _failed(request):
        _keep_logs(request, d)
    d.stop()


@pytest.fixture
def feature():
    """feature('BOOT_LINUX') skips the test when the build left it out."""
    def need(name):
        if not build_has(name):
            pytest.skip(f"{name} is not in this build's Kconfig")
    return need


@pytest.fixture
def guest():
    return guest_path
