"""xl.cfg errors through `xl create` (exit 65, `FILE:LINE: reason`, no
domain created, running guests untouched), command-line overrides and
relative kernel paths, checked on what the guest itself reports; the
disk, vif and rng keys as the daemon keeps them (no device reads them
yet), with the MACs it picks."""
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import (XL, ApiError, CounterWatch, build_config_int,
                     guest_path, xl_env)

# The daemon's vCPU bound, which xl checks too (common/domcfg.h).
MAX_VCPUS = build_config_int("MAX_VCPUS", 64)


def body(name="bad", kernel=None, extra_before="", extra_after=""):
    """A valid config with lines inserted before and after."""
    k = kernel or guest_path("exit")
    return (f"{extra_before}"
            f'name = "{name}"\n'
            f"memory = 32\n"
            f'kernel = "{k}"\n'
            f'cmdline = "mode=echo"\n'
            f"{extra_after}")


# (id, config text, line of the error, reason regex)
ERRORS = [
    ("unknown-key", body(extra_after="# a comment\nfrobnicate = 1\n"),
     6, r"unknown key 'frobnicate'"),
    ("bad-integer", "# memory below\n" + body().replace(
        "memory = 32", "memory = 12abc"),
     3, r"memory: invalid number '12abc'"),
    ("bad-hex", body().replace("memory = 32", "memory = 0x"),
     2, r"memory: invalid number '0x'"),
    ("memory-zero", body().replace("memory = 32", "memory = 0"),
     2, r"memory: must be an integer between 1 and 65536"),
    ("memory-too-big", body().replace("memory = 32", "memory = 65537"),
     2, r"memory: must be an integer between 1 and 65536"),
    ("memory-negative", body().replace("memory = 32", "memory = -32"),
     2, r"memory: must be an integer between 1 and 65536"),
    ("memory-string", body().replace("memory = 32", 'memory = "32"'),
     2, r"memory: must be an integer between 1 and 65536"),
    ("vcpus-zero", body(extra_after="vcpus = 0\n"),
     5, rf"vcpus: must be an integer between 1 and {MAX_VCPUS}"),
    # xl used to allow 64 and leave the daemon to refuse without a line.
    ("vcpus-over-the-build-limit",
     body(extra_after=f"# the daemon's limit\nvcpus = {MAX_VCPUS + 1}\n"),
     6, rf"vcpus: must be an integer between 1 and {MAX_VCPUS}"),
    ("duplicate-key", body(extra_after='\n\nname = "again"\n'),
     7, r"duplicate key 'name' \(first set on line 1\)"),
    ("unterminated-string", body().replace('cmdline = "mode=echo"',
                                           'cmdline = "mode=echo'),
     4, r"cmdline: unterminated string"),
    ("missing-name", "\n".join(body().splitlines()[1:]) + "\n",
     3, r"missing required key 'name'"),
    ("missing-kernel", body().replace(f'kernel = "{guest_path("exit")}"\n',
                                      "") + "\n# end\n",
     5, r"missing required key 'kernel'"),
    ("on-crash-coredump", body(extra_after='on_crash = "coredump-destroy"\n'),
     5, r"on_crash: 'coredump-destroy' is not supported by this hypervisor"),
    ("on-reboot-bad", body(extra_after='on_reboot = "explode"\n'),
     5, r"on_reboot: must be one of destroy, restart, preserve, "
        r"rename-restart"),
    ("garbage-line", body(extra_after="this is not a setting\n"),
     5, r"syntax error: expected 'key = value'"),
    ("junk-after-value", body().replace("memory = 32", "memory = 32 64"),
     2, r"memory: unexpected '64' after the value"),
    ("bad-name", body().replace('name = "bad"', 'name = "has space"'),
     1, r"name: must be 1-63 characters of \[A-Za-z0-9_.-\]"),
    ("kernel-not-a-string", body().replace(
        f'kernel = "{guest_path("exit")}"', "kernel = 5"),
     3, r"kernel: must be a string"),
    ("unterminated-list", body().replace('cmdline = "mode=echo"',
                                         'cmdline = [ "mode=echo",\n'),
     4, r"cmdline: unterminated list"),
    ("list-not-for-memory", body().replace("memory = 32", "memory = [1]"),
     2, r"memory: must be an integer between 1 and 65536"),
    # disk, vif, rng: an item's reason names it, at the key's line.
    ("disk-qcow2", body(extra_after="disk = [ '/srv/a.qcow2,qcow2,xvda' ]\n"),
     5, r"disk\[0\]: unsupported disk format 'qcow2' \(only raw\)"),
    ("disk-duplicate-vdev",
     body(extra_after="\ndisk = [ '/srv/a.raw,raw,xvda,rw',\n"
                      "         'format=raw, vdev=xvda, target=/srv/b' ]\n"),
     6, r"disk\[1\]: duplicate vdev 'xvda' \(also disk\[0\]\)"),
    ("disk-cdrom", body(extra_after="disk = [ '/srv/x.iso,,hdc,cdrom' ]\n"),
     5, r"disk\[0\]: CD-ROM devices \(devtype=cdrom\) are not supported"),
    ("disk-no-vdev", body(extra_after="disk = [ 'target=/srv/a.raw' ]\n"),
     5, r"disk\[0\]: vdev= is required"),
    ("vif-multicast-mac",
     body(extra_after="vif = [ 'bridge=br0',\n"
                      "        'mac=01:00:5e:00:00:01' ]\n"),
     5, r"vif\[1\]: mac 01:00:5e:00:00:01 is a multicast address"),
    ("vif-model", body(extra_after="vif = [ 'model=e1000' ]\n"),
     5, r"vif\[0\]: unsupported vif model 'e1000' \(only virtio-net\)"),
    ("vif-script", body(extra_after="vif = [ 'script=vif-bridge' ]\n"),
     5, r"vif\[0\]: script= is not supported \(no hotplug scripts: "
        r"bridge= names the bridge to join\)"),
    ("rng-two", body(extra_after="rng = 2\n"), 5, r"rng: must be 0 or 1"),
]


def create_fails(daemon, text, line, reason, name="bad.cfg"):
    path = daemon.write_cfg(text, name)
    r = daemon.xl("create", path, check=False)
    assert r.returncode == 65, \
        f"xl exited {r.returncode}: {r.err}{r.out}\nconfig:\n{text}"
    want = rf"^xl: {re.escape(path)}:{line}: {reason}$"
    assert re.search(want, r.err, re.M), \
        f"{want!r} not in {r.err!r}\nconfig:\n{text}"
    return r


@pytest.mark.parametrize("text,line,reason", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_config_error(daemon, text, line, reason):
    create_fails(daemon, text, line, reason)
    assert daemon.domains() == {}, "a domain was created"
    # xl stopped before the daemon: nothing reached it.
    assert "created" not in daemon.log()


def test_config_errors_leave_a_running_guest_counting(daemon):
    w = daemon.start_counter("witness")
    w.assert_counting()
    before = daemon.call("list")["domains"]
    for _, text, line, reason in ERRORS:
        create_fails(daemon, text.replace('"bad"', '"witness"'), line,
                     reason.replace("bad", "witness"))
    after = daemon.call("list")["domains"]
    assert [d["id"] for d in after] == [d["id"] for d in before]
    assert after[0]["state"] == "running"
    w.assert_counting(lines=2)
    w.close()


def test_empty_config(daemon):
    create_fails(daemon, "", 0, r"missing required key 'name'")
    create_fails(daemon, "# only a comment\n\n", 2,
                 r"missing required key 'name'")
    assert daemon.domains() == {}


def test_syntax_variants_reach_the_guest(daemon):
    """Comments, ';' separators, single quotes, escapes and a cmdline
    list: the guest prints the command line it received."""
    text = (f"name = 'syn' ; memory = 0x20   # hex, a comment\n"
            f"kernel = '{guest_path('exit')}'\n"
            f'cmdline = [ "mode=cpuinfo",  # list items are joined\n'
            f"            'tag=a\\'b', \"x=\\\"y\\\"\",\n"
            f"          ]\n"
            f'on_poweroff = "preserve"; on_crash = "preserve"\n')
    path = daemon.write_cfg(text, "syn.cfg")
    daemon.xl("create", path)
    d = daemon.domain("syn")
    assert d["memory_mib"] == 32
    assert d["cmdline"] == "mode=cpuinfo tag=a'b x=\"y\""
    m = daemon.wait_console("syn", r"CPUINFO mem_upper_kib=(\d+) "
                                   r"cmdline=([^\r\n]*)\r\n")
    # A multiboot kernel gets its file name first, as under QEMU.
    assert m.group(2) == f"{guest_path('exit')} mode=cpuinfo tag=a'b x=\"y\""
    # 32 MiB of RAM: the guest sees 31 MiB above the first one.
    assert int(m.group(1)) == 31 * 1024


# ---------------------------------------------------------------- overrides

def test_override_memory(daemon):
    path = daemon.write_cfg(daemon.cfg_text("ov", kernel="exit",
                                            cmdline="mode=cpuinfo",
                                            extra='on_poweroff="preserve"\n'
                                                  'on_crash="preserve"\n'),
                            "ov.cfg")
    daemon.xl("create", path, "memory=64")
    d = daemon.domain("ov")
    assert d["memory_mib"] == 64
    m = daemon.wait_console("ov", r"CPUINFO mem_upper_kib=(\d+) ")
    assert int(m.group(1)) == 63 * 1024


def test_override_name_cmdline_and_later_wins(daemon):
    path = daemon.write_cfg(daemon.cfg_text("base", cmdline="interval=200"),
                            "base.cfg")
    daemon.xl("create", path)
    # Bare text is a string; a later override of the same key wins; the
    # file's value is replaced.
    daemon.xl("create", path, "name=copy1", "name=copy2",
              'cmdline="interval=200 ws=1M"', "memory=40")
    assert set(daemon.domains()) == {"base", "copy2"}
    d = daemon.domain("copy2")
    assert d["memory_mib"] == 40
    assert d["cmdline"] == "interval=200 ws=1M"
    daemon.wait_console("copy2", r"ws_pages=256 ")
    daemon.wait_console("base", r"ws_pages=1024 ")
    CounterWatch(daemon, "copy2").assert_counting()


def test_override_supplies_a_missing_key(daemon):
    path = daemon.write_cfg(f'kernel = "{guest_path("exit")}"\n'
                            f'cmdline = "mode=echo"\nmemory = 32\n',
                            "noname.cfg")
    r = daemon.xl("create", path, check=False)
    assert r.returncode == 65
    daemon.xl("create", path, "name=fromcli")
    daemon.wait_console("fromcli", r"ECHO READY")


@pytest.mark.parametrize("override,reason", [
    ("memory=abc", r"<command line>: memory: must be an integer between "
                   r"1 and 65536"),
    ("memory=0", r"<command line>: memory: must be an integer between "
                 r"1 and 65536"),
    (f"vcpus={MAX_VCPUS + 1}", r"<command line>: vcpus: must be an "
                               rf"integer between 1 and {MAX_VCPUS}"),
    ("frob=1", r"<command line>: unknown key 'frob'"),
    ("justtext", r"<command line>: expected KEY=VALUE, got 'justtext'"),
    ("on_crash=coredump-restart", r"<command line>: on_crash: "
                                  r"'coredump-restart' is not supported"),
    ("name=bad/name", r"<command line>: name: must be 1-63 characters"),
])
def test_bad_override_exits_65(daemon, override, reason):
    path = daemon.write_cfg(daemon.cfg_text("ok", kernel="exit",
                                            cmdline="mode=echo"), "ok.cfg")
    r = daemon.xl("create", path, override, check=False)
    assert r.returncode == 65, r.err
    assert re.search(rf"^xl: {reason}", r.err, re.M), r.err
    assert daemon.domains() == {}


# ---------------------------------------------------------------- paths

def test_relative_kernel_path_is_resolved_against_the_config(daemon,
                                                             tmp_path):
    cfgdir = tmp_path / "cfgs"
    (cfgdir / "kernels").mkdir(parents=True)
    shutil.copy(guest_path("counter"), cfgdir / "kernels" / "k.elf")
    (cfgdir / "rel.cfg").write_text(
        'name = "rel"\nmemory = 32\nkernel = "./kernels/k.elf"\n'
        'cmdline = "interval=200"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = xl_env(daemon.sock)
    want = str(cfgdir / "kernels" / "k.elf")

    # Dry run: the config as JSON, path made absolute; nothing created.
    for cfg_arg, cwd in (("../cfgs/rel.cfg", elsewhere),
                         ("cfgs/rel.cfg", tmp_path),
                         (str(cfgdir / "rel.cfg"), "/")):
        r = subprocess.run([XL, "create", "-n", cfg_arg], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        cfg = json.loads(r.stdout)
        assert os.path.normpath(cfg["kernel"]) == want, cfg
    assert daemon.domains() == {}

    r = subprocess.run([XL, "create", "../cfgs/rel.cfg"], cwd=elsewhere,
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert os.path.normpath(daemon.domain("rel")["kernel"]) == want
    CounterWatch(daemon, "rel").assert_counting()


def test_relative_kernel_override_is_resolved_against_cwd(daemon, tmp_path):
    (tmp_path / "k").mkdir()
    shutil.copy(guest_path("exit"), tmp_path / "k" / "exit.elf")
    cfgdir = tmp_path / "c"
    cfgdir.mkdir()
    (cfgdir / "o.cfg").write_text(
        f'name = "ovk"\nmemory = 32\nkernel = "{guest_path("counter")}"\n'
        f'cmdline = "mode=echo"\n')
    r = subprocess.run([XL, "create", "c/o.cfg", "kernel=k/exit.elf"],
                       cwd=tmp_path, env=xl_env(daemon.sock),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert daemon.domain("ovk")["kernel"] == str(tmp_path / "k" /
                                                 "exit.elf")
    daemon.wait_console("ovk", r"ECHO READY")


def test_relative_kernel_that_does_not_exist(daemon, tmp_path):
    (tmp_path / "r.cfg").write_text(
        'name = "nok"\nkernel = "missing.elf"\n')
    r = subprocess.run([XL, "create", str(tmp_path / "r.cfg")],
                       env=xl_env(daemon.sock), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 8, r.stderr
    assert str(tmp_path / "missing.elf") in r.stderr
    assert daemon.domains() == {}


# ---------------------------------------------------------------- devices

MAC_RX = r"00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}"


def o_direct_works(path):
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
        return True
    except OSError:
        return False


def test_disk_vif_rng_reach_the_daemon(daemon, tmp_path, feature):
    """The keys as the domain's config: a relative target made absolute
    from the config's directory, a MAC picked in Xen's OUI by the daemon
    for a vif without one (xl sends none) and kept by save and restore."""
    feature("DEV_VIRTIO")
    cfgdir = tmp_path / "cfgs"
    (cfgdir / "images").mkdir(parents=True)
    (cfgdir / "images" / "root.raw").write_bytes(bytes(1 << 20))
    data = tmp_path / "data,1.raw"
    data.write_bytes(bytes(1 << 20))
    path = cfgdir / "dev.cfg"
    text = (daemon.cfg_text("dev", cmdline="interval=200") +
            "disk = [ 'images/root.raw,raw,xvda,rw',\n"
            "         'vdev=xvdb, access=ro, cache=none, serial=DATA-1, "
            f"target={data}' ]\n"
            "vif = [ '', 'mac=00:16:3E:12:34:56,vifname=xtweb0' ]\n"
            "rng = 0\n")
    cache = "none"
    if not o_direct_works(data):
        # tmpfs (a test host's /tmp): refused, saying why.
        path.write_text(text)
        r = daemon.xl("create", str(path), check=False)
        assert "disk xvdb: cache=none: the file system of" in r.err, r.err
        text = text.replace("cache=none", "cache=writeback")
        cache = "writeback"
    path.write_text(text)
    r = subprocess.run([XL, "create", "-n", str(path)],
                       env=xl_env(daemon.sock), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "mac" not in json.loads(r.stdout)["vif"][0]
    daemon.xl("create", str(path))
    CounterWatch(daemon, "dev").assert_counting()

    d = daemon.domain("dev")
    assert [(x["target"], x["vdev"], x["access"], x["cache"], x["serial"])
            for x in d["disk"]] == [
        (str(cfgdir / "images" / "root.raw"), "xvda", "rw", "writeback",
         "xvda"),
        (str(data), "xvdb", "ro", cache, "DATA-1")]
    assert d["disk"][0]["origin"] == f"{path}:6"
    vifs = d["vif"]
    assert re.fullmatch(MAC_RX, vifs[0]["mac"]), vifs
    assert vifs[1]["mac"] == "00:16:3e:12:34:56"
    assert vifs[1]["vifname"] == "xtweb0" and not vifs[1]["vhost"]
    assert d["rng"] is False
    # The taps exist, under the default name and the given one.
    assert os.path.exists(f"/sys/class/net/vif{d['id']}.0")
    assert os.path.exists("/sys/class/net/xtweb0")

    saved = str(tmp_path / "dev.xkvm")
    daemon.xl("save", "dev", saved)
    daemon.xl("restore", saved)
    back = daemon.domain("dev")
    assert back["vif"] == vifs and back["disk"] == d["disk"]
    CounterWatch(daemon, "dev").assert_counting()


def test_daemon_refuses_what_xl_would(daemon):
    """The JSON path obeys the same rules, naming the item: a relative
    target (xl would have made it absolute), a bad MAC."""
    base = {"name": "j", "kernel": guest_path("counter"), "memory": 32}
    for extra, msg in (
            ({"disk": ["d.raw,,xvda"]}, "config.disk[0]: target must be "
             "an absolute path of at most 4095 bytes"),
            ({"disk": [{"target": "/a", "vdev": "xvda"},
                       {"target": "/b", "vdev": "hda"}]},
             "config.disk[1]: vdev 'hda' is the same disk as disk[0]'s "
             "'xvda'"),
            ({"vif": [{}, {"mac": "ff:ff:ff:ff:ff:ff"}]},
             "config.vif[1]: mac ff:ff:ff:ff:ff:ff is a multicast "
             "address"),
            ({"rng": "yes"}, "config.rng: must be 0 or 1")):
        with pytest.raises(ApiError) as e:
            daemon.call("create", config=dict(base, **extra))
        assert (e.value.code, e.value.message) == (3, msg)
    assert daemon.domains() == {}
