"""Livepatch (docs/livepatch.md): payloads built with
tools/livepatch/livepatch-build hot-fix the running daemon.

The worked example (livepatch/examples/): a daemon built with
rtc-index-oob.patch lets a guest index past the 128-byte CMOS array (the
exit guest's `mode=cmos-probe` reports `aliases=no`); the payload built
from rtc-index-oob-fix.patch fixes it while guests run (`aliases=yes`).
"""
import difflib
import importlib.machinery
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import tempfile

import pytest

from harness import (BUILD, ROOT, ApiError, Daemon, build_has, kvm_usable,
                     require_binaries, wait_counter_advances)

TOOL = os.path.join(ROOT, "tools", "livepatch", "livepatch-build")
EXAMPLES = os.path.join(ROOT, "livepatch", "examples")
PROBE_RX = r"CMOS PROBE n=\d+ idx=0x90 aliases=(yes|no) value=0x[0-9a-f]+\r?\n"

needs_lp = pytest.mark.skipif(not build_has("LIVEPATCH"),
                                reason="LIVEPATCH is not in this build's "
                                "Kconfig (test_not_supported covers it)")


def _tool_mod():
    loader = importlib.machinery.SourceFileLoader("lpbuild", TOOL)
    spec = importlib.util.spec_from_loader("lpbuild", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _copy_src(dst):
    def ignore(d, names):
        if os.path.abspath(d) == ROOT:
            return [n for n in names if n.startswith("build") or
                    n in (".git", ".pytest_cache")]
        return [n for n in names if n == "__pycache__"]
    shutil.copytree(ROOT, dst, symlinks=True, ignore=ignore)


def _make_patch(tree, rel, edit):
    """A unified diff of file `rel` of `tree` after edit(text)."""
    with open(os.path.join(tree, rel)) as f:
        old = f.read()
    new = edit(old)
    assert new != old
    return "".join(difflib.unified_diff(
        old.splitlines(True), new.splitlines(True), "a/" + rel, "b/" + rel))


def build_payload(lab, name, patch_text=None, patch=None, depends=None,
                  meta=()):
    if patch is None:
        patch = os.path.join(lab["dir"], name + ".patch")
        with open(patch, "w") as f:
            f.write(patch_text)
    out = os.path.join(lab["dir"], name + ".o")
    cmd = [TOOL, "-q", "--src", lab["tree"], "--patch", patch, "--out", out]
    if depends:
        cmd += ["--depends", depends]
    for m in meta:
        cmd += ["--meta", m]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    return out, r.stdout


@pytest.fixture(scope="module")
def lab():
    """The vulnerable tree and daemon, and the payloads built against it."""
    require_binaries()
    d = tempfile.mkdtemp(prefix="lp-lab.")
    tree = os.path.join(d, "vuln")
    _copy_src(tree)
    subprocess.run(["patch", "-p1", "--quiet", "-i",
                    os.path.join(EXAMPLES, "rtc-index-oob.patch")],
                   cwd=tree, check=True)
    r = subprocess.run(["make", "-s", f"-j{os.cpu_count() or 1}",
                        "build/bin/xen"], cwd=tree, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    L = dict(dir=d, tree=tree, xen=os.path.join(tree, "build/bin/xen"))
    L["fix"], out = build_payload(
        L, "fix", patch=os.path.join(EXAMPLES, "rtc-index-oob-fix.patch"),
        meta=["cve=XSA-RTC-OOB", "summary=mask the CMOS index"])
    L["orig_build_id"] = re.search(r"orig_build_id=(\w+)", out).group(1)
    L["fix2"], _ = build_payload(
        L, "fix2", patch=os.path.join(EXAMPLES, "rtc-index-oob-fix.patch"),
        meta=["revision=2"])
    fixtext = open(os.path.join(EXAMPLES, "rtc-index-oob-fix.patch")).read()
    veto_src = ('\n#include "livepatch/payload.h"\n'
                'static int lp_veto(void) { return -16; }\n'
                'LIVEPATCH_PREAPPLY_HOOK(lp_veto);\n')
    L["veto"], _ = build_payload(L, "veto", _make_patch(
        tree, "xen/dev/rtc.c",
        lambda t: t.replace("r->index = *val;", "r->index = *val & 0x7f;")
        + veto_src))
    assert fixtext
    L["fix_id"] = _payload_build_id(L["fix"])
    L["ver"], _ = build_payload(L, "ver", _make_patch(
        tree, "xen/commands.c",
        lambda t: t.replace('"hypervisor", XEN_VERSION,',
                            '"hypervisor", XEN_VERSION "-lp2",')),
        depends=L["fix_id"])
    L["wrongdep"], _ = build_payload(
        L, "wrongdep",
        patch=os.path.join(EXAMPLES, "rtc-index-oob-fix.patch"),
        depends="00" * 20)
    L["badexpect"] = _flip_expect(L, L["fix"])
    L["unresolved"] = _handmade(L, "unresolved", L["orig_build_id"])
    L["corrupt"] = os.path.join(d, "corrupt.o")
    with open(L["fix"], "rb") as f:
        data = f.read()
    with open(L["corrupt"], "wb") as f:
        f.write(data[:64] + b"\xff" * 64 + data[128:len(data) // 2])
    yield L
    shutil.rmtree(d, ignore_errors=True)


def _payload_build_id(path):
    e = _tool_mod().Elf(path)
    return e.build_id()


def _flip_expect(L, src):
    e = _tool_mod().Elf(src)
    sec = e.by_name[".livepatch.funcs"]
    data = bytearray(e.data)
    data[sec["off"] + 32] ^= 0xff        # expect[0]
    out = os.path.join(L["dir"], "badexpect.o")
    with open(out, "wb") as f:
        f.write(data)
    return out


def _note(desc_hex):
    desc = bytes.fromhex(desc_hex)
    b = struct.pack("<III", 4, len(desc), 3) + b"GNU\0" + desc
    return b + b"\0" * (-len(b) % 4)


def _handmade(L, name, depends):
    """A payload written by hand: replaces rtc_io with a function that
    calls a symbol nobody defines."""
    c = os.path.join(L["dir"], name + ".c")
    with open(c, "w") as f:
        f.write('#include "livepatch/payload.h"\n'
                'extern int lp_test_no_such_symbol(void);\n'
                'static int repl(void) { return lp_test_no_such_symbol(); }\n'
                'static const char nm[] = "rtc.c#rtc_io";\n'
                'struct livepatch_func lp_f '
                '__attribute__((section(".livepatch.funcs"))) = '
                '{ .name = nm, .new_addr = (void *)repl, .new_size = 8 };\n')
    tmp, out = c[:-2] + ".tmp.o", c[:-2] + ".o"
    subprocess.run(["cc", "-O2", "-c", "-I", ROOT, "-o", tmp, c], check=True)
    for sec, hexid in ((".livepatch.depends", depends),
                       (".note.gnu.build-id", "ab" * 20)):
        nf = os.path.join(L["dir"], f"{name}{sec}.bin")
        with open(nf, "wb") as f:
            f.write(_note(hexid))
        subprocess.run(["objcopy", "--add-section", f"{sec}={nf}", tmp],
                       check=True)
    shutil.move(tmp, out)
    return out


@pytest.fixture
def vd(lab, tmp_path):
    """The vulnerable daemon, a probe guest and two counter guests."""
    ok, why = kvm_usable()
    if not ok:
        pytest.skip(why)
    d = Daemon(str(tmp_path), binary=lab["xen"])
    d.start()
    d.create("probe", kernel="exit", cmdline="mode=cmos-probe")
    d.counters = [d.start_counter(f"c{i}", interval=100) for i in range(2)]
    d.readers = [d.counter_reader(f"c{i}") for i in range(2)]
    yield d
    alive = d.alive()
    for r in d.readers:
        r.close()
    d.stop()
    assert alive, d.read_file("xen.stderr")[-3000:]


def probe(d, fresh=2):
    """The probe's verdict from lines printed from now on: 'yes' (fixed:
    index 0x90 reaches CMOS byte 0x10) or 'no' (reads past the array)."""
    mark = d.console_mark("probe")
    seen = []
    while len(seen) < fresh:
        m = d.wait_console_since("probe", "(?:" + PROBE_RX + "){%d}"
                                 % (len(seen) + 1), mark, timeout=20)
        seen = re.findall(PROBE_RX, m.group(0))
    assert len(set(seen)) == 1, seen
    return seen[0]


def counters_ok(d):
    for r in d.readers:
        wait_counter_advances(r, by=2, timeout=20)
        assert r.read()["errors"] == 0


def listing(d):
    return {p["name"]: p for p in d.call("livepatch-list")["payloads"]}


def refused(d, command, code, rx, **args):
    with pytest.raises(ApiError) as ei:
        d.call(command, **args)
    assert ei.value.code == code, ei.value
    assert re.search(rx, ei.value.message), ei.value.message
    return ei.value


# ---------------------------------------------------------------- tests

@needs_lp
def test_worked_example_load_revert(vd, lab):
    """The security fix, end to end, while guests run."""
    d = vd
    assert probe(d) == "no"                         # vulnerable
    info = d.call("info")
    # The orig build of the tool IS the running daemon.
    assert info["build_id"] == lab["orig_build_id"]
    assert info["livepatches"] == []
    d.xl("livepatch", "load", "fix", lab["fix"])
    assert probe(d) == "yes"                        # fixed
    p = listing(d)["fix"]
    assert p["state"] == "applied"
    assert p["depends"] == info["build_id"]
    assert p["funcs"] == ["rtc.c#rtc_io"]
    assert p["metadata"]["cve"] == "XSA-RTC-OOB"
    assert d.call("info")["livepatches"] == ["fix"]
    assert "livepatches            : fix" in d.xl("info").out
    assert re.search(r"fix\s+applied", d.xl("livepatch", "list").out)
    counters_ok(d)
    d.xl("livepatch", "revert", "fix")
    assert probe(d) == "no"                         # the bug is back
    assert listing(d)["fix"]["state"] == "checked"
    d.xl("livepatch", "unload", "fix")
    assert listing(d) == {}
    counters_ok(d)


@needs_lp
def test_upload_apply_replace_unload(vd, lab):
    d = vd
    d.xl("livepatch", "upload", "fix", lab["fix"])
    assert listing(d)["fix"]["state"] == "checked"
    assert probe(d) == "no"                         # uploaded only
    refused(d, "livepatch-upload", 5, "already loaded", name="fix",
            path=lab["fix"])
    d.xl("livepatch", "apply", "fix")
    assert probe(d) == "yes"
    refused(d, "livepatch-unload", 6, "revert it first", name="fix")
    d.xl("livepatch", "upload", "fix2", lab["fix2"])
    d.xl("livepatch", "replace", "fix2")
    ls = listing(d)
    assert ls["fix"]["state"] == "checked"
    assert ls["fix2"]["state"] == "applied"
    assert ls["fix2"]["metadata"] == {"revision": "2"}
    assert probe(d) == "yes"
    d.xl("livepatch", "revert", "fix2")
    assert probe(d) == "no"
    for n in ("fix", "fix2"):
        d.xl("livepatch", "unload", n)
    assert listing(d) == {}
    counters_ok(d)


@needs_lp
def test_stack_two_payloads_revert_top_only(vd, lab):
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    # ver depends on fix's build-id: it goes on top of it.
    d.xl("livepatch", "load", "ver", lab["ver"])
    assert d.call("version")["hypervisor"] == "0.1.0-lp2"
    assert probe(d) == "yes"
    assert d.call("info")["livepatches"] == ["fix", "ver"]
    refused(d, "livepatch-revert", 6, r"only the top.*\(ver\)", name="fix")
    assert probe(d) == "yes"
    d.xl("livepatch", "revert", "ver")
    assert d.call("version")["hypervisor"] == "0.1.0"
    d.xl("livepatch", "revert", "fix")
    assert probe(d) == "no"
    # ver cannot go straight onto the daemon.
    refused(d, "livepatch-apply", 3, "build-id mismatch", name="ver")
    counters_ok(d)


@needs_lp
@pytest.mark.parametrize("which,command,code,rx", [
    ("wrongdep", "livepatch-load", 3, "build-id mismatch"),
    ("badexpect", "livepatch-load", 3, "rtc.c#rtc_io: expected bytes differ"),
    ("unresolved", "livepatch-load", 3,
     "unresolved symbol lp_test_no_such_symbol"),
    ("corrupt", "livepatch-load", 3, "corrupt ELF"),
    ("veto", "livepatch-load", 6, "preapply hook 0 vetoed"),
])
def test_refusals_change_nothing(vd, lab, which, command, code, rx):
    d = vd
    refused(d, command, code, rx, name=which, path=lab[which])
    assert listing(d) == {}
    assert probe(d) == "no"
    counters_ok(d)


@needs_lp
def test_veto_after_upload_keeps_it_checked(vd, lab):
    d = vd
    d.xl("livepatch", "upload", "veto", lab["veto"])
    refused(d, "livepatch-apply", 6, "vetoed", name="veto")
    assert listing(d)["veto"]["state"] == "checked"
    assert probe(d) == "no"


@needs_lp
def test_pause_timeout_changes_nothing(vd, lab):
    d = vd
    d.xl("livepatch", "upload", "fix", lab["fix"])
    refused(d, "livepatch-apply", 12, "pause timeout", name="fix",
            debug_pause_timeout_ms=0)
    assert listing(d)["fix"]["state"] == "checked"
    assert probe(d) == "no"
    counters_ok(d)
    d.xl("livepatch", "apply", "fix")                # then it works
    assert probe(d) == "yes"


@needs_lp
def test_xl_usage(vd, lab):
    r = vd.xl("livepatch", "bogus", check=False)
    assert r.returncode == 64
    r = vd.xl("livepatch", "revert", "nope", check=False)
    assert r.returncode != 0 and "no livepatch payload" in r.err


def _lp_off_build():
    for b in (BUILD, os.path.join(ROOT, "build-minimal")):
        h = os.path.join(b, "include", "generated", "autoconf.h")
        x = os.path.join(b, "bin", "xen")
        if os.path.exists(h) and os.path.exists(x) and \
                "CONFIG_LIVEPATCH 1" not in open(h).read():
            return x
    return None


def test_not_supported(tmp_path):
    xen = _lp_off_build()
    if xen is None:
        pytest.skip("no build with CONFIG_LIVEPATCH off (make variants)")
    ok, why = kvm_usable()
    if not ok:
        pytest.skip(why)
    d = Daemon(str(tmp_path), binary=xen)
    d.start()
    try:
        for cmd in ("livepatch-upload", "livepatch-apply",
                    "livepatch-revert", "livepatch-replace",
                    "livepatch-unload", "livepatch-load", "livepatch-list"):
            refused(d, cmd, 9, "CONFIG_LIVEPATCH is off", name="x",
                    path="/x")
        assert "LIVEPATCH" not in d.call("info")["features"]
    finally:
        d.stop()
