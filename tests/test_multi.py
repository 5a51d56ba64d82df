"""Several domains in one daemon: five counter guests each with their own
console and RAM; one destroyed, the others carry on; several vCPUs; the
domain limit."""
import re

import pytest

from harness import (CounterWatch, assert_counter_frozen, build_config_int,
                     wait_counter_advances)


def test_five_counters_then_destroy_one(daemon):
    names = [f"c{i}" for i in range(5)]
    # Each guest gets its own working set size, which it prints on boot,
    # so each console can be matched to its own guest.
    for i, n in enumerate(names):
        daemon.create(n, cmdline=f"interval=200 ws={i + 1}M")
    watches = {n: CounterWatch(daemon, n) for n in names}
    ids = {n: daemon.domid(n) for n in names}
    assert len(set(ids.values())) == 5
    for i, n in enumerate(names):
        text = daemon.console(n)
        banners = re.findall(r"counter guest: ws_pages=(\d+) ", text)
        assert banners == [str((i + 1) * 256)], (n, text[:300])
        assert text.count("COUNTER READY") == 1
    for n in names:
        st = watches[n].assert_counting(lines=2)
        counters = [s["counter"] for s in st]
        assert counters == sorted(counters), (n, counters)
    # Each status block is its own guest's: the working set sizes differ.
    for i, n in enumerate(names):
        assert watches[n].reader.read()["ws_pages"] == (i + 1) * 256

    daemon.xl("destroy", "c2")
    assert "c2" not in daemon.domains()
    rows = daemon.xl("list").out
    assert not re.search(r"^c2\s", rows, re.M)
    assert daemon.xl("console", "--dump", "c2", check=False).returncode == 4
    for n in names:
        if n != "c2":
            watches[n].assert_counting(lines=2)
    assert set(daemon.domains()) == set(names) - {"c2"}
    for w in watches.values():
        w.close()


def test_two_vcpus(daemon):
    w = daemon.start_counter("smp", extra="vcpus = 2\n")
    d = daemon.domain("smp")
    assert d["vcpus"] == 2
    assert "2 vCPU(s)" in daemon.log()
    w.assert_counting(lines=2)
    # Pausing parks both vCPU threads (one is waiting for a SIPI that
    # never comes); unpausing lets the BSP count again.
    daemon.xl("pause", "smp")
    frozen = assert_counter_frozen(w.reader, settle=0.4)
    daemon.xl("unpause", "smp")
    wait_counter_advances(w.reader, by=1000, start=frozen)
    w.assert_counting()
    daemon.xl("reboot", "smp")
    daemon.wait_console("smp", r"(?s)COUNTER READY.*COUNTER READY")
    w.close()
    CounterWatch(daemon, "smp").assert_counting()
    daemon.xl("destroy", "smp")
    assert daemon.domains() == {}


def test_max_vcpus(daemon):
    max_vcpus = build_config_int("MAX_VCPUS", 16)
    w = daemon.start_counter("big", extra=f"vcpus = {max_vcpus}\n")
    assert daemon.domain("big")["vcpus"] == max_vcpus
    w.assert_counting()
    w.close()
    # One more: xl refuses it as the daemon would, naming FILE:LINE.
    cfg = daemon.write_cfg(daemon.cfg_text(
        "toobig", extra=f"vcpus = {max_vcpus + 1}\n"))
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 65, r.err
    line = 1 + open(cfg).read().splitlines().index(
        f"vcpus = {max_vcpus + 1}")
    assert f"{cfg}:{line}: vcpus: must be an integer between 1 and " \
           f"{max_vcpus}" in r.err
    # The daemon's own check, for clients other than xl.
    config = {"name": "toobig", "kernel": "/k", "vcpus": max_vcpus + 1}
    a = daemon.api()
    try:
        r = a.request("create", config=config)
    finally:
        a.close()
    assert r["error"]["code"] == 3, r
    assert r["error"]["message"] == f"config.vcpus: must be an integer " \
        f"between 1 and {max_vcpus}", r
    assert set(daemon.domains()) == {"big"}


def test_domain_limit(daemon):
    """CONFIG_MAX_DOMAINS domains at once, then no-resources (7)."""
    limit = build_config_int("MAX_DOMAINS", 64)
    if limit > 64:
        pytest.skip(f"MAX_DOMAINS={limit} is too many for a quick test")
    w = daemon.start_counter("w0")
    for i in range(1, limit):
        daemon.create(f"p{i}", paused=True)
    assert len(daemon.domains()) == limit
    cfg = daemon.write_cfg(daemon.cfg_text("over", kernel="exit",
                                           cmdline="mode=echo"))
    r = daemon.xl("create", cfg, check=False)
    assert r.returncode == 7, r.err
    assert f"too many domains (at most {limit})" in r.err
    w.assert_counting()
    daemon.xl("destroy", "p1")
    daemon.xl("create", cfg)
    daemon.wait_console("over", r"ECHO READY")
    assert len(daemon.domains()) == limit
    w.close()


def test_ids_are_not_reused(daemon):
    seen = []
    for i in range(3):
        daemon.create("again", kernel="exit", cmdline="mode=echo")
        seen.append(daemon.domid("again"))
        daemon.xl("destroy", "again")
    assert seen == sorted(set(seen)), seen
