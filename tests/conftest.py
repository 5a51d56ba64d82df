"""pytest harness: daemons in temporary directories, guests, consoles.

Every test that needs KVM asks for the `daemon` fixture, which skips with
a clear reason where /dev/kvm is missing.  When a test fails, the daemon's
log and every guest console are copied to $XEN_BUILD/test-logs/<test>/ and
the log's tail is printed in the report.
"""
import os
import re
import shutil

import pytest

from harness import (BUILD, DEFERRED, Daemon, build_has, guest_path,
                     require_binaries, require_kvm)

LOG_ROOT = os.path.join(BUILD, "test-logs")


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: needs a usable /dev/kvm")


# ------------------------------------------- where the tests run
# tests/testhost/suite.py runs the suite here first with XEN_KVM_DEFER=FILE:
# every test that needs KVM skips (harness.require_kvm) and is listed in
# FILE; then test hosts run only those (XEN_TEST_ONLY=FILE), each every Nth
# of them (XEN_TEST_SHARD=I/N).

def pytest_collection_modifyitems(config, items):
    only = os.environ.get("XEN_TEST_ONLY")
    shard = os.environ.get("XEN_TEST_SHARD")
    keep = list(items)
    if only:
        with open(only) as f:
            wanted = set(f.read().splitlines())
        keep = [i for i in keep if i.nodeid in wanted]
    if shard:
        k, n = (int(x) for x in shard.split("/"))
        keep = keep[k - 1::n]
    if len(keep) != len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(
            items=[i for i in items if id(i) not in kept])
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    defer = os.environ.get("XEN_KVM_DEFER")
    if defer and rep.skipped and isinstance(rep.longrepr, tuple) and \
            rep.longrepr[2].endswith(DEFERRED):
        with open(defer, "a") as f:
            f.write(item.nodeid + "\n")


def _failed(request):
    for when in ("setup", "call", "teardown"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


def _log_dir(request):
    return os.path.join(LOG_ROOT, request.node.name.replace("/", "_"))


def _keep_logs(request, d):
    dest = _log_dir(request)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest, exist_ok=True)
    if d.alive():
        d.save_consoles(dest)
    _keep_stderr(request, d)
    if os.path.exists(d.log_path):
        shutil.copy(d.log_path, dest)
        with open(d.log_path, errors="replace") as f:
            tail = f.read()[-6000:]
        print(f"\n--- daemon log (kept in {dest}) ---\n{tail}")


def _keep_stderr(request, d):
    stderr = os.path.join(d.root, "xen.stderr")
    if os.path.exists(stderr):
        os.makedirs(_log_dir(request), exist_ok=True)
        shutil.copy(stderr, _log_dir(request))


# What ASan, LSan and UBSan print when they find something.
SANITIZER_RX = re.compile(r"^==\d+==ERROR: \w+Sanitizer|"
                          r"^SUMMARY: \w+Sanitizer|: runtime error: ",
                          re.M)


def sanitizer_report(d):
    """The sanitizer report in the daemon's stderr, or None."""
    text = d.read_file("xen.stderr")
    m = SANITIZER_RX.search(text)
    return text[max(m.start() - 200, 0):][:6000] if m else None


@pytest.fixture
def daemon(request, tmp_path):
    """A running daemon in its own directory; stopped after the test."""
    require_binaries()
    require_kvm()
    d = Daemon(str(tmp_path))
    d.start()
    yield d
    died = not d.alive()        # before stop(): did it die during the test?
    failed = _failed(request)
    if failed:
        _keep_logs(request, d)  # the consoles need a live daemon
    d.stop()
    # The daemon must stay clean: a sanitizer report (ASan builds also
    # check for leaks at exit), a crash or an unclean exit fails the test.
    # A test that stops the daemon itself sets `stopped_by_test` and
    # checks the exit status itself.
    report = sanitizer_report(d)
    if report:
        if not failed:
            _keep_logs(request, d)
        _keep_stderr(request, d)
        pytest.fail(f"the daemon's sanitizer report (xen.stderr):\n{report}",
                    pytrace=False)
    if getattr(d, "stopped_by_test", False):
        return
    if died:
        pytest.fail(f"the daemon died during the test "
                    f"({d.proc.returncode}):\n"
                    f"{d.read_file('xen.stderr')[-3000:]}", pytrace=False)
    if d.proc.returncode != 0:
        pytest.fail(f"the daemon exited {d.proc.returncode} on SIGTERM:\n"
                    f"{d.read_file('xen.stderr')[-3000:]}", pytrace=False)


@pytest.fixture
def witness(daemon):
    """A counter guest that must keep counting through every test
    (harness.still_fine checks it)."""
    w = daemon.start_counter("witness")
    w.assert_counting()
    yield w
    w.close()


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
