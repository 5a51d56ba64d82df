"""Livepatch (docs/livepatch.md): payloads built with
tools/livepatch/livepatch-build hot-fix the running daemon.

The worked example (livepatch/examples/): a daemon built with
rtc-index-oob.patch lets a guest index past the 128-byte CMOS array (the
exit guest's `mode=cmos-probe` reports `aliases=no`); the payload built
from rtc-index-oob-fix.patch fixes it while guests run (`aliases=yes`).
"""
import difflib
import glob
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

import pytest

from harness import (BUILD, ROOT, XEN, ApiError, Daemon, build_has,
                     require_kvm,
                     copy_image, request_and_probe, require_binaries,
                     unblock_fifo, wait_counter_advances, wait_until)

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


def _patch_and_build(tree, example):
    """Apply livepatch/examples/EXAMPLE to TREE and build its daemon."""
    subprocess.run(["patch", "-p1", "--quiet", "-i",
                    os.path.join(EXAMPLES, example)], cwd=tree, check=True)
    r = subprocess.run(["make", "-s", f"-j{os.cpu_count() or 1}",
                        "build/bin/xen"], cwd=tree, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


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


# ------------------------------------------------ built once, kept
# The vulnerable tree, its payloads and images take minutes to build (tens
# of minutes in a test host): they are kept under $XEN_BUILD/test-cache/,
# keyed by the source tree they come from, and built where the suite runs
# first (natively, before the test hosts: tests/testhost/suite.py).
CACHE = os.path.join(BUILD, "test-cache")


def _tree_key():
    """A hash of every file _copy_src copies, paths and contents."""
    h = hashlib.sha256()
    for top, dirs, files in os.walk(ROOT):
        if os.path.abspath(top) == ROOT:
            dirs[:] = [n for n in dirs if not n.startswith("build") and
                       n not in (".git", ".pytest_cache")]
        dirs[:] = sorted(n for n in dirs if n != "__pycache__")
        for n in sorted(files):
            path = os.path.join(top, n)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            h.update(os.path.relpath(path, ROOT).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def cached(name, build):
    """The products of build(dir) (a dict), made once per source tree in
    test-cache/NAME-KEY.  Built in a directory of its own and renamed into
    place when complete: two test hosts that both miss the cache (the
    tree changed after the native pass) each build their own, the first
    rename wins, and neither sees the other's half-built tree."""
    key = f"{name}-{_tree_key()}"
    d = os.path.join(CACHE, key)
    if not os.path.exists(os.path.join(d, "products.json")):
        os.makedirs(CACHE, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=key + ".", dir=CACHE)
        products = build(tmp)
        with open(os.path.join(tmp, "products.json"), "w") as f:
            json.dump({"root": tmp, "products": products}, f)
        try:
            os.rename(tmp, d)
        except OSError:             # another run put it there first
            shutil.rmtree(tmp, ignore_errors=True)
        for old in glob.glob(os.path.join(CACHE, f"{name}-*")):
            if old != d and not old.startswith(d + "."):
                shutil.rmtree(old, ignore_errors=True)
    with open(os.path.join(d, "products.json")) as f:
        kept = json.load(f)
    # The paths were made under the build directory, now d.
    root = kept["root"]

    def moved(v):
        if not isinstance(v, str) or not (v == root or
                                          v.startswith(root + "/")):
            return v
        return d + v[len(root):]
    return {k: moved(v) for k, v in kept["products"].items()}


@pytest.fixture(scope="module")
def lab():
    """The vulnerable tree and daemon, and the payloads built against it."""
    require_binaries()
    return cached("lp-lab", _build_lab)


def _build_lab(d):
    tree = os.path.join(d, "vuln")
    _copy_src(tree)
    _patch_and_build(tree, "rtc-index-oob.patch")
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
    return L


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
    require_kvm()
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
    out = d.xl("livepatch", "load", "fix", lab["fix"]).out
    # every running vCPU was parked for the switch (probe + 2 counters)
    assert re.search(r"livepatch fix: load done; guests paused [\d.]+ ms "
                     r"\(3 vCPUs parked in [\d.]+ ms\)", out), out
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
@pytest.mark.parametrize("which,code,rx", [
    ("badexpect", 3, "rtc.c#rtc_io: expected bytes differ"),
    ("veto", 6, "preapply hook 0 vetoed"),
])
def test_failed_replace_keeps_the_old_stack(vd, lab, which, code, rx):
    """replace checks the new payload completely (expected bytes against
    the unpatched code, then its preapply hooks) before reverting
    anything."""
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    d.xl("livepatch", "upload", which, lab[which])
    refused(d, "livepatch-replace", code, rx, name=which)
    ls = listing(d)
    assert ls["fix"]["state"] == "applied"
    assert ls[which]["state"] == "checked"
    assert d.call("info")["livepatches"] == ["fix"]
    assert probe(d) == "yes"
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


@needs_lp
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_upload_of_what_is_no_file_is_refused_at_once(daemon, tmp_path,
                                                      kind):
    """A FIFO as the payload would block the daemon in open() until
    someone writes to it: refused without reading, while the daemon
    answers another client."""
    path = str(tmp_path / "fifo") if kind == "fifo" else "/dev/zero"
    if kind == "fifo":
        os.mkfifo(path)
    reply, answered = request_and_probe(
        daemon, "livepatch-upload", {"name": "p", "path": path},
        unblock=lambda: unblock_fifo(path))
    assert answered, f"the daemon served no other client during the " \
        f"upload of {path}"
    assert not reply["ok"] and reply["error"]["code"] == 3, reply
    assert reply["error"]["message"] == f"{path}: not a regular file", reply
    r = daemon.xl("livepatch", "upload", "p", path, check=False, timeout=30)
    assert r.returncode == 3 and "not a regular file" in r.err, r.err
    assert daemon.call("livepatch-list")["payloads"] == []


def _data_offset(elf, name):
    """Where the loader puts section `name` among the payload's data (the
    sections that are allocated and not code, in order, each aligned as
    it asks; livepatch/payload_load.c before it aligned its own)."""
    off = 0
    for sec in elf.secs[1:]:
        if not sec["flags"] & 2 or sec["flags"] & 4:    # SHF_ALLOC, EXEC
            continue
        al = sec["align"] or 1
        off = (off + al - 1) // al * al
        if sec["name"] == name:
            return off
        off += sec["size"]
    raise KeyError(name)


# What each misaligned payload holds besides its notes: the section read
# as an array of structs, and what makes the payload a whole one.
_MISALIGNED_BODY = {
    ".livepatch.funcs":
        'static int repl(void) { return 0; }\n'
        'static const char nm[] = "rtc.c#rtc_io";\n'
        'struct livepatch_func lp_f '
        '__attribute__((section(".livepatch.funcs"))) = '
        '{ .name = nm, .new_addr = (void *)repl, .new_size = 3 };\n',
    ".livepatch.params":
        'LIVEPATCH_PARAM_INT(lim, 3, 0, 10, LIVEPATCH_PARAM_WRITABLE, '
        '"x");\n'
        'static int repl(void) { return (int)lim; }\n'
        'static const char nm[] = "rtc.c#rtc_io";\n'
        'struct livepatch_func lp_f '
        '__attribute__((section(".livepatch.funcs"))) = '
        '{ .name = nm, .new_addr = (void *)repl, .new_size = 3 };\n',
    ".livepatch.ranges":
        'static const char nm[] = "rtc.c#rtc_io";\n'
        'struct livepatch_range lp_r '
        '__attribute__((section(".livepatch.ranges"))) = '
        '{ .name = nm, .offset = 0, .len = 1, .expect = { EXPECT }, '
        '.new_bytes = { EXPECT } };\n',
}


def _rtc_io_first_byte():
    """The first byte of the running daemon's rtc_io (what a range there
    must expect)."""
    dm = _tool_mod().Daemon(XEN)
    return dm.elf.read_vaddr(dm.lookup("rtc.c#rtc_io")["value"], 1)[0]


def _misaligned_payload(tmp_path, depends, section=".livepatch.funcs"):
    """A payload whose `section` (read by the loader as an array of
    structs) asks for alignment 1 and follows sections that end off an
    8-byte boundary: laid out as asked, its structs would be read
    misaligned."""
    def pushed(lines):              # a section, then back to the last one
        return [lines[0].replace(".section", ".pushsection", 1)] + \
            lines[1:] + [".popsection"]
    note = _tool_mod().note
    for pad in range(1, 8):
        asm = "\n".join(pushed(['.section .data.lp_pad,"aw",@progbits',
                                ".fill %d, 1, 1" % pad]) +
                        pushed(note(".livepatch.depends", depends)) +
                        pushed(note(".note.gnu.build-id", "cd" * 20)))
        c = str(tmp_path / "misaligned.c")
        with open(c, "w") as f:
            f.write('#include "livepatch/payload.h"\n'
                    f'__asm__({json.dumps(asm)});\n'
                    + _MISALIGNED_BODY[section].replace(
                        "EXPECT", str(_rtc_io_first_byte())))
        out = str(tmp_path / "misaligned.o")
        subprocess.run(["cc", "-O2", "-fno-toplevel-reorder", "-c", "-I",
                        ROOT, "-o", out, c], check=True)
        subprocess.run(["objcopy", "--set-section-alignment",
                        f"{section}=1", out], check=True)
        elf = _tool_mod().Elf(out)
        assert elf.by_name[section]["align"] == 1
        if _data_offset(elf, section) % 8:
            return out
    raise AssertionError(f"the test payload's {section} would be aligned "
                         f"anyway")


@needs_lp
@pytest.mark.parametrize("section", sorted(_MISALIGNED_BODY))
def test_payload_with_a_misaligned_struct_section(daemon, tmp_path,
                                                  section):
    """The loader reads .livepatch.funcs, .livepatch.params and
    .livepatch.ranges as arrays of structs: a payload asking for
    alignment 1 must not make it read them misaligned (UBSan aborts a
    sanitizer build there: run this on build-asan too); it is uploaded
    and checked like any other."""
    bid = daemon.call("version")["build_id"]
    path = _misaligned_payload(tmp_path, bid, section)
    daemon.call("livepatch-upload", name="mis", path=path)
    p = {x["name"]: x for x in daemon.call("livepatch-list")["payloads"]}
    assert p["mis"]["state"] == "checked", p
    daemon.call("livepatch-unload", name="mis")
    assert daemon.call("livepatch-list")["payloads"] == []


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
    require_kvm()
    d = Daemon(str(tmp_path), binary=xen)
    d.start()
    try:
        for cmd in ("livepatch-upload", "livepatch-apply",
                    "livepatch-revert", "livepatch-replace",
                    "livepatch-unload", "livepatch-load", "livepatch-list",
                    "livepatch-set"):
            refused(d, cmd, 9, "CONFIG_LIVEPATCH is off", name="x",
                    path="/x")
        assert "LIVEPATCH" not in d.call("info")["features"]
    finally:
        d.stop()


# ------------------------------------------- hooks, actions, shadow vars

AUDIT_SRC = r'''
#include "livepatch/payload.h"
#include "log.h"

#define RTC_AUDIT_SHADOW 0x52544341u

/* How many out-of-range index writes this RTC saw: a shadow variable. */
static void rtc_audit(struct vcpu *vcpu, struct rtc *r, unsigned v)
{
	unsigned *n = livepatch_shadow_get(r, RTC_AUDIT_SHADOW);

	if (!n)
		n = livepatch_shadow_alloc(r, RTC_AUDIT_SHADOW, sizeof(*n));
	if (n)
		log_warn("d%u: CMOS index %#x out of range, masked "
			 "(rtc audit: %u so far)", vcpu->dom->id, v, ++*n);
}

static void rtc_audit_parked(const char *what)
{
	unsigned parked = 0, vcpus = 0, i;
	struct domain *d;

	for (d = domain_first(); d; d = d->next) {
		parked += d->nr_parked;
		for (i = 0; i < d->nr_vcpus; i++)
			vcpus += d->vcpus[i].thread_started;
	}
	log_info("rtc audit: %s action ran with %u of %u vCPUs parked",
		 what, parked, vcpus);
}

static int rtc_audit_apply(void)
{
	int r = livepatch_default_action();

	rtc_audit_parked("apply");
	return r;
}

static int rtc_audit_revert(void)
{
	int r = livepatch_default_action();

	rtc_audit_parked("revert");
	return r;
}

static int rtc_audit_note(const char *hook)
{
	log_info("rtc audit: %s hook", hook);
	return 0;
}

static int rtc_audit_load(void) { return rtc_audit_note("load"); }
static int rtc_audit_preapply(void) { return rtc_audit_note("preapply"); }
static int rtc_audit_postapply(void) { return rtc_audit_note("postapply"); }
static int rtc_audit_prerevert(void) { return rtc_audit_note("prerevert"); }
static int rtc_audit_postrevert(void) { return rtc_audit_note("postrevert"); }

static int rtc_audit_unload(void)
{
	struct domain *d;

	for (d = domain_first(); d; d = d->next)
		livepatch_shadow_free(device_state(d, &rtc_device),
				      RTC_AUDIT_SHADOW);
	return rtc_audit_note("unload");
}

LIVEPATCH_LOAD_HOOK(rtc_audit_load);
LIVEPATCH_PREAPPLY_HOOK(rtc_audit_preapply);
LIVEPATCH_APPLY_ACTION(rtc_audit_apply);
LIVEPATCH_POSTAPPLY_HOOK(rtc_audit_postapply);
LIVEPATCH_PREREVERT_HOOK(rtc_audit_prerevert);
LIVEPATCH_REVERT_ACTION(rtc_audit_revert);
LIVEPATCH_POSTREVERT_HOOK(rtc_audit_postrevert);
LIVEPATCH_UNLOAD_HOOK(rtc_audit_unload);
'''

BAD_ACTION_SRC = r'''
#include "livepatch/payload.h"

static int bad_apply(void)
{
	livepatch_default_action();	/* the jumps go in, then it fails */
	return -5;
}
LIVEPATCH_APPLY_ACTION(bad_apply);
'''


def _audit_edit(text):
    """The fix, plus an audit of every out-of-range index write."""
    old = "\t\tif (is_write)\n\t\t\tr->index = *val;"
    assert old in text
    text = text.replace(old, "\t\tif (is_write) {\n"
                        "\t\t\tif (*val & 0x80)\n"
                        "\t\t\t\trtc_audit(vcpu, r, *val);\n"
                        "\t\t\tr->index = *val & 0x7f;\n"
                        "\t\t}")
    proto = ("static void rtc_audit(struct vcpu *vcpu, struct rtc *r, "
             "unsigned v);\n\n")
    text = text.replace("static int rtc_io(", proto + "static int rtc_io(",
                        1)
    return text + AUDIT_SRC


@pytest.fixture(scope="module")
def hooked(lab):
    """Payloads with hooks, action hooks and a shadow variable."""
    def build(d):
        L = dict(lab, dir=d)
        fix = lambda t: t.replace("r->index = *val;",
                                  "r->index = *val & 0x7f;")
        audit, _ = build_payload(L, "audit", _make_patch(
            lab["tree"], "xen/dev/rtc.c", _audit_edit))
        bad, _ = build_payload(L, "badaction", _make_patch(
            lab["tree"], "xen/dev/rtc.c", lambda t: fix(t) + BAD_ACTION_SRC))
        return {"audit": audit, "badaction": bad}
    return cached("lp-hooked", build)


def _vcpus(d):
    return sum(x["vcpus"] for x in d.call("list")["domains"]
               if x["state"] == "running")


def _in_order(log, lines):
    pos = 0
    for ln in lines:
        i = log.find(ln, pos)
        assert i >= 0, f"{ln!r} missing (in order) from:\n{log[-3000:]}"
        pos = i + len(ln)


def _audit_counts(d, dom_id):
    return [int(n) for n in re.findall(
        rf"d{dom_id}: CMOS index 0x90 out of range, masked "
        r"\(rtc audit: (\d+) so far\)", d.log())]


@needs_lp
def test_hooks_action_hooks_and_shadow_variable(vd, lab, hooked):
    d = vd
    n = _vcpus(d)
    probe_id = d.domid("probe")
    d.xl("livepatch", "load", "audit", hooked["audit"])
    assert probe(d) == "yes"
    _in_order(d.log(), [
        "rtc audit: load hook", "rtc audit: preapply hook",
        f"rtc audit: apply action ran with {n} of {n} vCPUs parked",
        "livepatch audit: applied", "rtc audit: postapply hook"])
    # The per-RTC shadow counter goes 1, 2, 3... across probe rounds.
    wait_until(lambda: len(_audit_counts(d, probe_id)) >= 3, 20,
               "three audited index writes")
    counts = _audit_counts(d, probe_id)
    assert counts == list(range(1, len(counts) + 1)), counts
    d.xl("livepatch", "revert", "audit")
    assert probe(d) == "no"
    _in_order(d.log(), [
        "rtc audit: prerevert hook",
        f"rtc audit: revert action ran with {n} of {n} vCPUs parked",
        "livepatch audit: reverted", "rtc audit: postrevert hook"])
    d.xl("livepatch", "unload", "audit")
    assert "rtc audit: unload hook" in d.log()
    # Unload freed the shadow variable: a new load counts from 1 again.
    mark = len(_audit_counts(d, probe_id))
    d.xl("livepatch", "load", "audit", hooked["audit"])
    wait_until(lambda: len(_audit_counts(d, probe_id)) > mark, 20,
               "an audited index write after the reload")
    assert _audit_counts(d, probe_id)[mark] == 1
    counters_ok(d)


@needs_lp
def test_failing_action_hook_changes_nothing(vd, lab, hooked):
    d = vd
    refused(d, "livepatch-load", 6,
            r"badaction: apply action hook failed \(returned -5\)",
            name="badaction", path=hooked["badaction"])
    assert listing(d) == {}
    assert probe(d) == "no"                 # its jumps were taken out
    d.xl("livepatch", "load", "fix", lab["fix"])
    assert probe(d) == "yes"                # and the code is intact
    counters_ok(d)


# ------------------------------------------------- build tool refusals

def _tool_refuses(lab, name, *edits):
    """Run the build tool on a patch of (file, edit) pairs; it must refuse
    and write nothing.  Returns its stderr."""
    patch = os.path.join(lab["dir"], name + ".patch")
    with open(patch, "w") as f:
        for rel, edit in edits:
            f.write(_make_patch(lab["tree"], rel, edit))
    out = os.path.join(lab["dir"], name + ".o")
    r = subprocess.run([TOOL, "-q", "--src", lab["tree"], "--patch", patch,
                        "--out", out], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode != 0, r.stdout
    assert not os.path.exists(out)
    return r.stderr


def test_build_tool_refuses_changed_data(lab):
    err = _tool_refuses(lab, "data", ("xen/domain.c", lambda t: t.replace(
        "static unsigned next_domid = 1;",
        "static unsigned next_domid = 7;")))
    assert re.search(r"refused: \S*xen/domain\.o: initialized data changed: "
                     r"next_domid", err), err


def test_build_tool_refuses_too_small_function(lab):
    err = _tool_refuses(lab, "small", ("xen/vcpu.c", lambda t: t.replace(
        "static void kick_handler(int sig)\n{\n\t(void)sig;\n}",
        "static void kick_handler(int sig)\n{\n\t(void)sig;\n"
        "\t__atomic_thread_fence(__ATOMIC_SEQ_CST);\n}")))
    assert re.search(r"refused: \S*xen/vcpu\.o: changed function kick_handler "
                     r"is 1 bytes, too small for a 5-byte jump", err), err


def test_build_tool_refuses_function_inlined_away(lab):
    """A global function the patched build inlines into its (changed)
    callers and no longer emits: callers the patch did not change would
    keep calling the old copy."""
    err = _tool_refuses(
        lab, "inlined",
        ("xen/control.h", lambda t: t.replace(
            "const char *ctl_error_name(int code);\n", "")),
        ("xen/control.c", lambda t: t.replace(
            "const char *ctl_error_name(int code)\n{\n"
            "\tif (code < 0 || code > CTL_ESIG)",
            "static const char *ctl_error_name(int code)\n{\n"
            "\tif (code < 0 || code > CTL_ESIG || !error_names[code])")))
    assert re.search(r"refused: \S*xen/control\.o: ctl_error_name is no longer "
                     r"emitted by the patched build", err), err


# ------------------------------------------------ across a live update

def _lu(d, image, **args):
    """live-update-load + exec over the API; the result object."""
    d.call("live-update-load", image=image)
    return d.call("live-update-exec", **args)


@pytest.fixture(scope="module")
def lu_images(lab):
    """A copy of the vulnerable image (same build), and an image built from
    the vulnerable tree with the fix applied (the fix compiled in)."""
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")

    def build(d):
        same = os.path.join(d, "same-xen")
        copy_image(lab["xen"], same)
        tree = os.path.join(d, "fixed")
        shutil.copytree(lab["tree"], tree, symlinks=True)
        _patch_and_build(tree, "rtc-index-oob-fix.patch")
        fixed = os.path.join(d, "fixed-xen")
        copy_image(os.path.join(tree, "build/bin/xen"), fixed)
        return {"same": same, "fixed": fixed}
    return cached("lp-lu-images", build)


def _probe_lines_since(d, mark):
    return re.findall(PROBE_RX, d.console_since("probe", mark))


@needs_lp
def test_live_update_to_fixed_image_drops_the_patch(vd, lab, lu_images):
    """The new image has the fix compiled in: the payload, built for the
    old image, no longer applies; it is dropped and the result says so."""
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    assert probe(d) == "yes"
    res = _lu(d, lu_images["fixed"])
    assert res["result"] == "ok", res
    lp = res["livepatches"]
    assert lp["reapplied"] == []
    assert [x["name"] for x in lp["dropped"]] == ["fix"]
    assert lp["dropped"][0]["build_id"] == lab["fix_id"]
    assert re.search(r"build-id mismatch: fix depends on "
                     + lab["orig_build_id"], lp["dropped"][0]["reason"]), lp
    assert probe(d) == "yes"                # fixed by the image itself
    assert listing(d) == {}
    assert d.call("info")["livepatches"] == []
    st = d.call("live-update-status")["last"]
    assert st["livepatches"] == lp
    out = d.xl("live-update", "status").out
    assert re.search(r"livepatch_dropped\s*:\s*fix: .*build-id mismatch",
                     out), out
    counters_ok(d)


@needs_lp
def test_live_update_to_same_build_keeps_the_stack(vd, lab, lu_images):
    """Same build: the stack is loaded and applied again before the
    guests resume; the probe never sees the bug."""
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    d.xl("livepatch", "load", "ver", lab["ver"])
    assert probe(d) == "yes"
    mark = d.console_mark("probe")
    res = _lu(d, lu_images["same"])
    assert res["result"] == "ok", res
    assert res["livepatches"] == {"reapplied": ["fix", "ver"],
                                  "dropped": []}
    assert probe(d) == "yes"
    assert set(_probe_lines_since(d, mark)) == {"yes"}
    assert d.call("info")["livepatches"] == ["fix", "ver"]
    assert d.call("version")["hypervisor"] == "0.1.0-lp2"
    # The new process saved its own bytes: revert works there.
    d.xl("livepatch", "revert", "ver")
    d.xl("livepatch", "revert", "fix")
    assert probe(d) == "no"
    counters_ok(d)


@needs_lp
def test_rolled_back_update_keeps_the_patch(vd, lab, lu_images):
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    mark = d.console_mark("probe")
    d.call("live-update-load", image=lu_images["fixed"])
    with pytest.raises(ApiError) as ei:
        d.call("live-update-exec", fail_phase="restore")
    assert ei.value.code == 13, ei.value
    st = d.call("live-update-status")["last"]
    assert st["result"] == "rolled-back", st
    # Build-ahead: the old image never stopped; its patch stayed applied.
    assert st["livepatches"] == {"kept": ["fix"], "reapplied": [],
                                 "dropped": []}, st
    assert re.search(r"livepatch_kept +: fix\n",
                     d.xl("live-update", "status").out)
    assert probe(d) == "yes"
    assert set(_probe_lines_since(d, mark)) == {"yes"}
    assert listing(d)["fix"]["state"] == "applied"
    counters_ok(d)


@needs_lp
def test_live_update_with_payload_file_gone(vd, lab, lu_images, tmp_path):
    d = vd
    path = str(tmp_path / "fix-copy.o")
    shutil.copy(lab["fix"], path)
    d.xl("livepatch", "load", "fix", path)
    d.xl("livepatch", "load", "ver", lab["ver"])
    os.unlink(path)
    res = _lu(d, lu_images["same"])
    lp = res["livepatches"]
    assert lp["reapplied"] == []
    assert [x["name"] for x in lp["dropped"]] == ["fix", "ver"]
    assert re.search(r"cannot load it again: .*fix-copy\.o",
                     lp["dropped"][0]["reason"]), lp
    assert "applied on fix, which was dropped" in lp["dropped"][1]["reason"]
    assert "livepatch fix dropped" in d.log()
    assert probe(d) == "no"
    counters_ok(d)


# ------------------------------------------------------ save / restore

@needs_lp
def test_save_restore_runs_on_the_restoring_daemons_code(vd, lab, tmp_path):
    """A livepatch changes daemon code, not guest state: the stream carries
    no livepatch record, and a restored guest runs on the code of the
    daemon that restores it, patched or not."""
    d = vd
    d.xl("livepatch", "load", "fix", lab["fix"])
    assert probe(d) == "yes"
    path = str(tmp_path / "probe.xkvm")
    d.xl("save", "-c", "probe", path)
    dump = subprocess.run([os.path.join(BUILD, "bin", "xen-stream"), "dump",
                           path], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "livepatch" not in dump.stdout.lower()
    d2 = Daemon(str(tmp_path / "d2"), binary=lab["xen"])   # unpatched
    os.makedirs(d2.root)
    d2.start()
    try:
        d2.xl("restore", path)
        assert probe(d2) == "no"
        d.xl("destroy", "probe")
        d.xl("restore", path)
        assert probe(d) == "yes"
    finally:
        d2.stop()
    counters_ok(d)


# --------------------------------------------- parameters and code ranges
# docs/livepatch.md, "Parameters" and "Ranges".  The payloads are built
# against the vulnerable tree, like the worked example:
#   pfix     the fix with parameters (examples/rtc-index-oob-fix-param
#            .patch): cmos_limit, log_nmi_bit, log_tag; a function patch
#   rfix     the fix as a range: LIVEPATCH_RANGES(rtc_io), so a jump to
#            payload code that masks the index and jumps back
#   mem      on top of pfix (depends on its build-id): `info` reports the
#            host's memory in KiB, a change the tool makes in place
#   ioaudit  a range in ioport_find, which every guest's port I/O goes
#            through: counts the lookups, reports them on revert

RFIX_EDIT = ("r->index = *val;", "r->index = *val & 0x7f;")
MEM_EDIT = ("(json_int_t)pages * psz >> 20,", "(json_int_t)pages * psz >> 10,")
IOAUDIT_SRC = r'''
static int lp_ioport_report(void)
{
	log_info("ioport audit: %lu lookups found a device",
		 __atomic_exchange_n(&lp_ioport_hits, 0, __ATOMIC_RELAXED));
	return 0;
}
LIVEPATCH_POSTREVERT_HOOK(lp_ioport_report);
LIVEPATCH_RANGES(ioport_find);
'''


def _ioaudit_edit(text):
    old = ("\t\tif (port >= r->base && port < r->base + r->len)\n"
           "\t\t\treturn r;")
    assert old in text
    text = text.replace(old, (
        "\t\tif (port >= r->base && port < r->base + r->len) {\n"
        "\t\t\t__atomic_add_fetch(&lp_ioport_hits, 1, __ATOMIC_RELAXED);\n"
        "\t\t\treturn r;\n\t\t}"))
    text = text.replace('#include "log.h"\n', '#include "livepatch/payload.h"'
                        '\n#include "log.h"\n\nstatic unsigned long '
                        'lp_ioport_hits;\n', 1)
    return text + IOAUDIT_SRC


def _edit(old, new, tail=""):
    def edit(t):
        assert old in t, old
        return t.replace(old, new) + tail
    return edit


def _form_lines(out):
    """What livepatch-build says it did with each changed function."""
    return [ln for ln in out.splitlines()
            if ln.startswith("livepatch-build: ") and ": " in ln[17:]]


@pytest.fixture(scope="module")
def ranged(lab):
    """The parameter and range payloads, and what the tool said."""
    def build(d):
        L = dict(lab, dir=d)
        P = {}
        P["pfix"], out = build_payload(L, "pfix", patch=os.path.join(
            EXAMPLES, "rtc-index-oob-fix-param.patch"))
        P["pfix_form"] = _form_lines(out)
        P["pfix_id"] = _payload_build_id(P["pfix"])
        P["rfix"], out = build_payload(L, "rfix", _make_patch(
            lab["tree"], "xen/dev/rtc.c",
            _edit(*RFIX_EDIT, '\n#include "livepatch/payload.h"\n'
                  "LIVEPATCH_RANGES(rtc_io);\n")))
        P["rfix_form"] = _form_lines(out)
        P["mem"], out = build_payload(L, "mem", _make_patch(
            lab["tree"], "xen/commands.c", _edit(*MEM_EDIT)),
            depends=P["pfix_id"])
        P["mem_form"] = _form_lines(out)
        P["ioaudit"], out = build_payload(L, "ioaudit", _make_patch(
            lab["tree"], "xen/ioport.c", _ioaudit_edit))
        P["ioaudit_form"] = _form_lines(out)
        P["rfix_bad"] = _flip_range_expect(d, P["rfix"])
        return P
    return cached("lp-ranged", build)


def _flip_range_expect(d, src):
    e = _tool_mod().Elf(src)
    sec = e.by_name[".livepatch.ranges"]
    data = bytearray(e.data)
    data[sec["off"] + 32 + 1] ^= 0xff        # expect[1] of range 0
    out = os.path.join(d, "rfix_bad.o")
    with open(out, "wb") as f:
        f.write(data)
    return out


def probe_values(d, fresh=2):
    """The probe's (verdict, value) from lines printed from now on."""
    rx = r"CMOS PROBE n=\d+ idx=0x90 aliases=(yes|no) value=(0x[0-9a-f]+)"
    mark = d.console_mark("probe")
    m = d.wait_console_since("probe", "(?:" + PROBE_RX + "){%d}" % fresh,
                             mark, timeout=20)
    seen = re.findall(rx, m.group(0))
    assert len(set(seen)) == 1, seen
    return seen[0]


def _host_mib(d):
    """info's host memory: in MiB, or in KiB while `mem` is applied."""
    return d.call("info")["host"]["memory_mib"]


def _param(d, payload, name):
    return {p["name"]: p for p in listing(d)[payload]["params"]}[name]


def test_build_tool_says_how_it_patches(ranged):
    """Whole function when the size changes, a jump range when the patch
    asks for ranges, in place when size and layout allow it."""
    assert ranged["pfix_form"] == [
        "livepatch-build: rtc.c#rtc_io: the whole function (not as a "
        "range: its size changed)"], ranged["pfix_form"]
    assert len(ranged["rfix_form"]) == 1, ranged["rfix_form"]
    assert re.fullmatch(r"livepatch-build: rtc\.c#rtc_io: range \+0x[0-9a-f]+"
                        r", [5-9] bytes, a jump to \d instruction\(s\) of "
                        r"payload code \(LIVEPATCH_RANGES\)",
                        ranged["rfix_form"][0]), ranged["rfix_form"]
    assert re.fullmatch(r"livepatch-build: commands\.c#cmd_info: range "
                        r"\+0x[0-9a-f]+, \d+ bytes, in place \(size and "
                        r"layout unchanged\)", "\n".join(ranged["mem_form"])), \
        ranged["mem_form"]
    assert re.fullmatch(r"livepatch-build: ioport_find: range \+0x[0-9a-f]+, "
                        r"\d+ bytes, a jump .*", "\n".join(
                            ranged["ioaudit_form"])), ranged["ioaudit_form"]


def test_build_tool_refuses_ranges_it_cannot_make(lab):
    err = _tool_refuses(lab, "norange", ("xen/dev/rtc.c", _edit(
        *RFIX_EDIT, '\n#include "livepatch/payload.h"\n'
        "LIVEPATCH_RANGES(rtc_init);\n")))
    assert re.search(r"LIVEPATCH_RANGES\(rtc_init\): rtc_init is not a "
                     r"changed function", err), err


@needs_lp
def test_parameters_worked_example(vd, ranged):
    """The fix with its bound as a parameter: loaded with several values,
    changed while applied, bad values refused with nothing changed."""
    d = vd
    n = _vcpus(d)
    pfix = ranged["pfix"]
    for params, rx in (
            ({"cmos_limit": "129"}, r"cmos_limit: 129 is out of bounds "
                                    r"\[14, 128\]"),
            ({"cmos_limit": "13"}, r"13 is out of bounds"),
            ({"cmos_limit": "0x1g"}, r"cmos_limit is an integer: '0x1g'"),
            ({"log_nmi_bit": "maybe"}, r"log_nmi_bit is a bool"),
            ({"log_tag": "x" * 16}, r"log_tag: 16 bytes, at most 15"),
            ({"nosuch": "1"}, r"no parameter 'nosuch' \(it has: .*"
                              r"cmos_limit")):
        refused(d, "livepatch-load", 3, rx, name="pfix", path=pfix,
                params=params)
        assert listing(d) == {}
    assert probe(d) == "no"
    # Several values at load: bytes from 16 up read 0xff; from 17, 0x10
    # (where index 0x90 lands) is below the limit again.
    d.xl("livepatch", "load", "pfix", pfix, "cmos_limit=16",
         "log_tag=lp-test")
    assert probe_values(d) == ("no", "0xff")
    p = _param(d, "pfix", "cmos_limit")
    assert (p["value"], p["default"], p["min"], p["max"], p["type"],
            p["writable"], p["parked"]) == (16, 128, 14, 128, "int", True,
                                            False)
    out = d.xl("livepatch", "list").out
    assert re.search(r"param cmos_limit = 16 \(int 14\.\.128, default 128, "
                     r"writable\): CMOS bytes", out), out
    assert 'param log_tag = "lp-test" (string of at most 15 bytes' in out
    d.xl("livepatch", "revert", "pfix")
    d.xl("livepatch", "unload", "pfix")
    d.xl("livepatch", "load", "pfix", pfix, "cmos_limit=17")
    assert probe(d) == "yes"
    assert _param(d, "pfix", "log_tag")["value"] == "rtc-fix"   # default
    # Changed while applied: without parking, then with.
    r = d.call("livepatch-set", name="pfix", params={"cmos_limit": 16})
    assert r["parked"] is False and "pause_ms" not in r, r
    assert probe_values(d) == ("no", "0xff")
    out = d.xl("livepatch", "set", "pfix", "cmos_limit=128").out
    assert "livepatch pfix: set done\n" == out, out
    assert probe(d) == "yes"
    mark = len(d.log())
    r = d.call("livepatch-set", name="pfix", params={"log_nmi_bit": True})
    assert r["parked"] is True and r["vcpus"] == n, r
    d.wait_log(rf"rtc-fix: d{d.domid('probe')} CMOS index 0x90: bit 7 "
               r"masked", start=mark)
    # Refused, changing nothing: not writable; one bad value among good.
    refused(d, "livepatch-set", 3, r"log_tag is not writable",
            name="pfix", params={"log_tag": "other"})
    refused(d, "livepatch-set", 3, r"cmos_limit: 200 is out of bounds",
            name="pfix", params={"log_nmi_bit": "off", "cmos_limit": "200"})
    refused(d, "livepatch-set", 3, r"no parameter 'bogus'", name="pfix",
            params={"cmos_limit": "16", "bogus": "1"})
    vals = {p["name"]: p["value"] for p in listing(d)["pfix"]["params"]}
    assert vals == {"cmos_limit": 128, "log_nmi_bit": True,
                    "log_tag": "rtc-fix"}, vals
    assert probe(d) == "yes"
    d.xl("livepatch", "revert", "pfix")
    assert probe(d) == "no"
    counters_ok(d)


@needs_lp
def test_range_worked_example(vd, ranged):
    """The fix as a range inside rtc_io: a jump to payload code and back."""
    d = vd
    assert probe(d) == "no"
    out = d.xl("livepatch", "load", "rfix", ranged["rfix"]).out
    assert "load done; guests paused" in out, out
    assert probe(d) == "yes"
    p = listing(d)["rfix"]
    assert p["funcs"] == []
    assert len(p["ranges"]) == 1 and p["ranges"][0]["jump"] is True, p
    assert p["ranges"][0]["function"] == "rtc.c#rtc_io"
    assert re.search(r"range rtc\.c#rtc_io\+0x[0-9a-f]+, \d bytes \(a jump "
                     r"to the payload's code\)",
                     d.xl("livepatch", "list").out)
    counters_ok(d)
    d.xl("livepatch", "revert", "rfix")
    assert probe(d) == "no"
    d.xl("livepatch", "unload", "rfix")
    counters_ok(d)


@needs_lp
def test_range_expected_bytes_differ(vd, ranged):
    d = vd
    refused(d, "livepatch-load", 3,
            r"rtc\.c#rtc_io\+0x[0-9a-f]+: expected bytes differ",
            name="rfix_bad", path=ranged["rfix_bad"])
    assert listing(d) == {}
    assert probe(d) == "no"
    counters_ok(d)


@needs_lp
def test_range_in_a_hot_function_100_times(vd, ranged):
    """A range in ioport_find, which every port I/O of every guest goes
    through, applied and reverted 100 times while the guests run."""
    d = vd
    d.xl("livepatch", "upload", "ioaudit", ranged["ioaudit"])
    mark = len(d.log())
    for _ in range(100):
        d.call("livepatch-apply", name="ioaudit")
        d.call("livepatch-revert", name="ioaudit")
    counts = [int(x) for x in re.findall(
        r"ioport audit: (\d+) lookups found a device", d.log()[mark:])]
    assert len(counts) == 100, counts
    assert sum(counts) > 0, counts        # the payload code ran
    d.xl("livepatch", "unload", "ioaudit")
    counters_ok(d)
    assert probe(d) == "no"               # the probe's I/O still works


@needs_lp
def test_range_stacked_on_function_patch_and_replaced(vd, ranged):
    d = vd
    mib = _host_mib(d)
    d.xl("livepatch", "load", "pfix", ranged["pfix"])       # a function
    d.xl("livepatch", "load", "mem", ranged["mem"])         # a range on it
    assert _host_mib(d) >> 10 == mib
    assert d.call("info")["livepatches"] == ["pfix", "mem"]
    p = listing(d)["mem"]
    assert p["ranges"][0]["jump"] is False and p["funcs"] == [], p
    assert p["depends"] == ranged["pfix_id"]
    refused(d, "livepatch-revert", 6, r"only the top.*\(mem\)", name="pfix")
    d.xl("livepatch", "revert", "mem")
    assert _host_mib(d) == mib
    d.xl("livepatch", "apply", "mem")
    assert _host_mib(d) >> 10 == mib
    assert probe(d) == "yes"
    # Replace the stack with the fix as a range; then with the function.
    d.xl("livepatch", "upload", "rfix", ranged["rfix"])
    d.xl("livepatch", "replace", "rfix")
    assert d.call("info")["livepatches"] == ["rfix"]
    assert _host_mib(d) == mib
    assert probe(d) == "yes"
    d.xl("livepatch", "replace", "pfix")
    assert d.call("info")["livepatches"] == ["pfix"]
    assert probe(d) == "yes"
    d.xl("livepatch", "revert", "pfix")
    assert probe(d) == "no"
    ls = listing(d)
    assert {n: p["state"] for n, p in ls.items()} == {
        "pfix": "checked", "mem": "checked", "rfix": "checked"}
    counters_ok(d)


@needs_lp
def test_parameters_and_ranges_across_live_update(vd, ranged, lu_images):
    """Same build: the stack comes back, with the parameters' values."""
    d = vd
    mib = _host_mib(d)
    d.xl("livepatch", "load", "pfix", ranged["pfix"], "cmos_limit=16",
         "log_tag=carried")
    d.xl("livepatch", "set", "pfix", "cmos_limit=17", "log_nmi_bit=1")
    d.xl("livepatch", "load", "mem", ranged["mem"])
    res = _lu(d, lu_images["same"])
    assert res["result"] == "ok", res
    assert res["livepatches"] == {"reapplied": ["pfix", "mem"],
                                  "dropped": []}
    vals = {p["name"]: p["value"] for p in listing(d)["pfix"]["params"]}
    assert vals == {"cmos_limit": 17, "log_nmi_bit": True,
                    "log_tag": "carried"}, vals
    assert _host_mib(d) >> 10 == mib
    assert probe(d) == "yes"
    mark = len(d.log())
    d.wait_log(r"carried: d\d+ CMOS index 0x90: bit 7 masked", start=mark)
    counters_ok(d)


# A payload written by hand: one range, its bytes unchanged (a no-op), so
# what is tested is only where the threads are.

def _handmade_range(L, name, ref, off, n, extra=""):
    mod = _tool_mod()
    dm = mod.Daemon(L["xen"])
    s = dm.lookup(ref)
    old = dm.elf.read_vaddr(s["value"] + off, n)
    arr = ",".join(str(x) for x in old)
    notes = ""
    for sec, hexid in ((".livepatch.depends", dm.build_id),
                       (".note.gnu.build-id", hashlib.sha1(
                           (name + ref).encode()).hexdigest())):
        desc = ",".join(str(x) for x in bytes.fromhex(hexid))
        notes += ('__asm__(".pushsection %s,\\"a\\",@note\\n.balign 4\\n'
                  '.long 4, %d, 3\\n.asciz \\"GNU\\"\\n.byte %s\\n'
                  '.balign 4\\n.popsection");\n'
                  % (sec, len(hexid) // 2, desc))
    c = os.path.join(L["dir"], name + ".c")
    with open(c, "w") as f:
        f.write('#include "livepatch/payload.h"\n'
                f'static const char nm[] = "{ref}";\n'
                'struct livepatch_range lp_r '
                '__attribute__((section(".livepatch.ranges"))) = '
                f'{{ .name = nm, .offset = {off}, .len = {n}, '
                f'.expect = {{{arr}}}, .new_bytes = {{{arr}}} }};\n'
                + extra + notes)
    out = c[:-2] + ".o"
    subprocess.run(["cc", "-O2", "-c", "-I", ROOT, "-o", out, c],
                   check=True)
    return out


def _vcpu_park_call(xen):
    """(function, offset) of the vCPU thread's call to pthread_cond_wait,
    where a parked vCPU thread waits: its return address follows it."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", xen],
                         capture_output=True, text=True, check=True).stdout
    fn = None
    for ln in out.splitlines():
        m = re.match(r"^([0-9a-f]+) <([^>]+)>:$", ln)
        if m:
            fn, base = m.group(2), int(m.group(1), 16)
        elif fn == "vcpu_thread" and "<pthread_cond_wait@plt>" in ln:
            return "vcpu.c#vcpu_thread", int(ln.split(":")[0], 16) - base
    raise AssertionError("no call to pthread_cond_wait in vcpu_thread")


@pytest.fixture(scope="module")
def handmade(lab):
    def build(d):
        L = dict(lab, dir=d)
        ref, off = _vcpu_park_call(lab["xen"])
        return {
            # call pthread_cond_wait + the next byte: a return address
            # of every parked vCPU thread lies strictly inside
            "hazard": _handmade_range(L, "hazard", ref, off, 6),
            "noop": _handmade_range(L, "noop", "rtc.c#rtc_io", 0, 8),
            "baddefault": _handmade_range(
                L, "baddefault", "rtc.c#rtc_io", 0, 8,
                'LIVEPATCH_PARAM_INT(lim, 500, 0, 10, 0, "x");\n'),
            "badstring": _handmade_range(
                L, "badstring", "rtc.c#rtc_io", 0, 8,
                'LIVEPATCH_PARAM_STRING(tag, "a", 7, '
                'LIVEPATCH_PARAM_WRITABLE, "x");\n'),
        }
    return cached("lp-handmade", build)


@needs_lp
def test_range_refused_while_a_thread_is_inside(vd, handmade):
    """A range holding the return address of every parked vCPU thread (in
    the vCPU loop, after the call that parks it) is refused after a few
    tries; a range no thread is in is written."""
    d = vd
    refused(d, "livepatch-load", 12,
            r"thread \d+ \(d\d+v0\) has a return address inside "
            r"vcpu\.c#vcpu_thread\+0x[0-9a-f]+ \(at \+0x5\) \(5 tries\); "
            r"nothing was patched", name="hazard", path=handmade["hazard"])
    assert listing(d) == {}
    d.xl("livepatch", "load", "noop", handmade["noop"])
    d.xl("livepatch", "revert", "noop")
    d.xl("livepatch", "unload", "noop")
    counters_ok(d)
    assert probe(d) == "no"


@needs_lp
@pytest.mark.parametrize("which,rx", [
    ("baddefault", r"parameter lim: default out of bounds"),
    ("badstring", r"parameter tag: a writable string must be "
                  r"LIVEPATCH_PARAM_PARKED"),
])
def test_bad_parameter_declarations_refused(vd, handmade, which, rx):
    d = vd
    refused(d, "livepatch-upload", 3, rx, name=which, path=handmade[which])
    assert listing(d) == {}
    counters_ok(d)


@needs_lp
def test_xl_parameter_usage(vd, ranged):
    r = vd.xl("livepatch", "set", "pfix", check=False)
    assert r.returncode == 64 and "set needs NAME K=V" in r.err, r.err
    r = vd.xl("livepatch", "load", "pfix", ranged["pfix"], "cmos_limit",
              check=False)
    assert r.returncode == 64 and "given as NAME=VALUE" in r.err, r.err
    assert listing(vd) == {}
