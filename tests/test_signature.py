"""Signed live-update images and livepatch payloads (docs/live-update.md,
"Signed images"; docs/livepatch.md, "Signed payloads").

A daemon started with --trusted-keys DIR runs an image or loads a payload
only with a detached Ed25519 signature (FILE.sig, made by
build/bin/xen-sign) by a key in DIR.  Judged on what the guests report
(counter guests keep counting, their status blocks read from outside show
no error) and on what the daemon did: a refusal is error 14 naming the key
id, made before anything pauses (no handover, no livepatch switch in the
log) and before any payload code runs (the payload's load hook logs a line
when it runs).

The payload is built with tools/livepatch/livepatch-build --sign from this
tree (its orig build is the daemon the payload tests run, as in
test_livepatch.py); it changes what `version` reports and has a load hook.
"""
import difflib
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import (BUILD, ROOT, XEN, ApiError, CounterWatchProc, Daemon,
                     build_has, copy_image, require_binaries, require_kvm)

XEN_SIGN = os.path.join(BUILD, "bin", "xen-sign")
LP_BUILD = os.path.join(ROOT, "tools", "livepatch", "livepatch-build")
MINIMAL_XEN = os.path.join(ROOT, "build-minimal", "bin", "xen")
ESIG = 14                       # bad-signature (docs/control-api.md)
HOOK_LINE = "sigtest: load hook ran"
# What pausing the guests leaves in the log: a live update's handover, a
# livepatch's switch (livepatch/patching.c), a payload loaded at all.
PAUSED_RX = re.compile(r"live update: handing|livepatch \S+: (applied|"
                       r"reverted|uploaded)|" + HOOK_LINE)

needs_sig = pytest.mark.skipif(not build_has("SIGNATURE"),
                               reason="SIGNATURE is not in this build's "
                               "Kconfig (test_not_built covers it)")


def sign_tool(*args, check=True):
    r = subprocess.run([XEN_SIGN] + list(args), capture_output=True,
                       text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Three key pairs: k1 and k2 trusted by the daemons below, k3 not."""
    require_binaries()
    if not os.path.exists(XEN_SIGN):
        pytest.skip(f"{XEN_SIGN} is missing: run `make all`")
    root = str(tmp_path_factory.mktemp("sigkeys"))
    ids = {}
    for k in ("k1", "k2", "k3"):
        out = sign_tool("keygen", os.path.join(root, k)).stdout
        ids[k] = re.search(r"key id ([0-9a-f]{16})", out).group(1)
    return {"root": root, "ids": ids,
            "key": lambda k: os.path.join(root, k + ".key"),
            "pem": lambda k: os.path.join(root, k + ".pem")}


def trusted_dir(path, keys, names):
    os.makedirs(path, exist_ok=True)
    for k in names:
        shutil.copy(keys["pem"](k), os.path.join(path, k + ".pem"))
    return path


def sign(keys, k, path, sig=None):
    args = ["sign", "--key", keys["key"](k), path]
    if sig:
        args[3:3] = ["--sig", sig]
    sign_tool(*args)
    return sig or path + ".sig"


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def start_daemon(root, binary=XEN, keydir=None):
    require_kvm()
    os.makedirs(root, exist_ok=True)
    d = Daemon(str(root), binary=binary,
               extra_args=["--trusted-keys", keydir] if keydir else [])
    d.start()
    return d


def new_log(d, mark):
    return d.log()[mark:]


def assert_refused(d, command, args, key_id, rx, code=ESIG):
    with pytest.raises(ApiError) as ei:
        d.call(command, **args)
    e = ei.value
    assert e.code == code, e
    assert key_id in e.message, e.message
    assert re.search(rx, e.message), e.message
    return e


# ------------------------------------------------------------ the tool

@needs_sig
def test_xen_sign_keygen_sign_verify(keys, tmp_path):
    """Key ids are SHA-256 of the raw public key (what OpenSSL itself
    exports), a signature file is 96 bytes, verify says which key signed
    and refuses a changed file, a changed signature and an unknown key,
    naming the key id."""
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in",
                          keys["pem"]("k1"), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    import hashlib
    assert hashlib.sha256(der[-32:]).hexdigest()[:16] == keys["ids"]["k1"]
    assert sign_tool("id", keys["pem"]("k1")).stdout.strip() == \
        keys["ids"]["k1"]
    assert os.stat(keys["key"]("k1")).st_mode & 0o077 == 0
    f = str(tmp_path / "img")
    copy_image(XEN, f)
    sig = sign(keys, "k1", f)
    assert os.path.getsize(sig) == 96
    with open(sig, "rb") as s:
        assert s.read(8) == b"XKVMSIG\0"
    td = trusted_dir(str(tmp_path / "trusted"), keys, ["k1", "k2"])
    r = sign_tool("verify", "--keys", td, f)
    assert f"good signature as a live-update image by key " \
        f"{keys['ids']['k1']} (k1.pem)" in r.stdout, r.stdout
    sign_tool("verify", "--pubkey", keys["pem"]("k1"), f)
    # the purpose is part of what is signed
    r = sign_tool("verify", "--keys", td, "--purpose", "livepatch", f,
                  check=False)
    assert r.returncode == 1 and "not as a livepatch payload" in r.stderr
    bad = str(tmp_path / "bad")
    shutil.copy(f, bad)
    flip(bad, 4096)
    r = sign_tool("verify", "--keys", td, "--sig", sig, bad, check=False)
    assert r.returncode == 1 and f"bad signature by key " \
        f"{keys['ids']['k1']}" in r.stderr, r.stderr
    badsig = str(tmp_path / "bad.sig")
    shutil.copy(sig, badsig)
    flip(badsig, 40)
    r = sign_tool("verify", "--keys", td, "--sig", badsig, f, check=False)
    assert r.returncode == 1 and keys["ids"]["k1"] in r.stderr, r.stderr
    sign(keys, "k3", f)
    r = sign_tool("verify", "--keys", td, f, check=False)
    assert r.returncode == 1 and f"signed by key {keys['ids']['k3']}, " \
        f"which is not a trusted key" in r.stderr, r.stderr
    r = sign_tool("sign", "--key", keys["key"]("k1"), keys["pem"]("k1"),
                  check=False)
    assert r.returncode == 1 and "--purpose" in r.stderr
    assert sign_tool("frobnicate", f, check=False).returncode == 2


@needs_sig
@pytest.mark.parametrize("case", ["missing", "relative", "not-a-key",
                                  "group-writable"])
def test_unusable_keys_directory_stops_the_start(keys, tmp_path, case):
    """The keys are read before the daemon serves: a directory it cannot
    trust is a start that fails, saying why (no /dev/kvm needed: it stops
    before KVM is opened)."""
    td = str(tmp_path / "trusted")
    if case != "missing":
        trusted_dir(td, keys, ["k1"])
    if case == "not-a-key":
        with open(os.path.join(td, "junk.pem"), "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\nAAAA\n"
                    "-----END PUBLIC KEY-----\n")
    if case == "group-writable":
        os.chmod(td, 0o775)
    arg = "trusted" if case == "relative" else td
    r = subprocess.run([XEN, "--socket", str(tmp_path / "s"), "--state-dir",
                        str(tmp_path / "st"), "--foreground",
                        "--trusted-keys", arg], capture_output=True,
                       text=True, timeout=60)
    want = {"missing": (1, "No such file or directory"),
            "relative": (64, "an absolute directory is needed"),
            "not-a-key": (1, "junk.pem: not a PEM Ed25519 public key"),
            "group-writable": (1, "writable by no one else")}[case]
    assert (r.returncode, want[1] in r.stderr) == (want[0], True), r.stderr
    assert not os.path.exists(tmp_path / "s")


# ------------------------------------------------------------ live update

@pytest.fixture
def image(keys, tmp_path):
    """A copy of this build's daemon, signed by k1."""
    path = str(tmp_path / "img" / "xen")
    os.makedirs(os.path.dirname(path))
    copy_image(XEN, path)
    sign(keys, "k1", path)
    return path


@pytest.fixture
def sd(request, keys, tmp_path):
    """A daemon trusting k1 and k2, with two counter guests."""
    td = trusted_dir(str(tmp_path / "trusted"), keys, ["k1", "k2"])
    d = start_daemon(tmp_path / "d", keydir=td)
    d.keydir = td
    d.cws = [d.start_counter(n, interval=100) for n in ("c1", "c2")]
    yield d
    alive = d.alive()
    for cw in d.cws:
        cw.close()
    d.stop()
    assert alive, d.read_file("xen.stderr")[-3000:]


def counting(d, lines=2):
    for cw in d.cws:
        cw.assert_counting(lines)


@needs_sig
def test_enforcement_is_shown(sd, keys):
    d = sd
    info = d.call("info")
    assert "SIGNATURE" in info["features"]
    sig = info["signatures"]
    assert sig["enforcement"] is True and sig["dir"] == d.keydir
    assert sorted(k["id"] for k in sig["keys"]) == \
        sorted([keys["ids"]["k1"], keys["ids"]["k2"]])
    assert re.search(r"^signature_enforcement\s*: on \(2 keys\)$",
                     d.xl("info").out, re.M), d.xl("info").out
    assert re.search(r"signature enforcement: on, 2 trusted keys from "
                     + re.escape(d.keydir), d.log())


@needs_sig
def test_signed_image_updates_with_guests_counting(sd, image, keys):
    """A signed image is staged (the log names the key) and takes over;
    the guests count on; the new image read the same keys again."""
    d = sd
    counting(d, 1)
    pid = d.proc.pid
    r = d.xl("live-update", image, "--json")
    res = json.loads(r.out)
    assert res["result"] == "ok", res
    assert re.search(rf"live-update image {re.escape(image)}: good "
                     rf"signature by key {keys['ids']['k1']} \(k1.pem\)",
                     d.log())
    counting(d, 3)
    # Built ahead: the same daemon in a new process.
    assert d.proc.pid != pid and d.alive()
    sig = d.call("info")["signatures"]
    assert sig["enforcement"] is True and len(sig["keys"]) == 2
    # the new image enforces too: an unsigned image is refused now
    bare = image + "-unsigned"
    copy_image(XEN, bare)
    assert_refused(d, "live-update-load", {"image": bare},
                   keys["ids"]["k1"], r"no signature: .*\.sig: No such file")


IMAGE_REFUSALS = {
    # what is changed, the key id the message names, what it says
    "flipped-image": ("k1", r"bad signature by key \w+ \(k1\.pem\): the "
                            r"file or its signature was changed"),
    "flipped-signature": ("k1", r"bad signature by key \w+ \(k1\.pem\)"),
    "wrong-key": ("k3", r"signed by key \w+, which is not a trusted key"),
    "missing-sig": ("k1", r"no signature: .*\.sig: No such file or "
                          r"directory \(signature enforcement is on; "
                          r"trusted keys: "),
    "image-as-payload": ("k1", r"key \w+ signed it as a livepatch payload, "
                               r"not as a live-update image"),
}


@needs_sig
@pytest.mark.parametrize("case", list(IMAGE_REFUSALS))
def test_refused_image_pauses_nothing(sd, image, keys, case):
    """Each refused at load, before anything pauses: error 14 naming the
    key id (from xl too), nothing staged, no handover in the log, the
    guests' counters read from outside advance throughout with no
    error."""
    d = sd
    k, rx = IMAGE_REFUSALS[case]
    if case == "flipped-image":
        flip(image, os.path.getsize(image) // 2)
    elif case == "flipped-signature":
        flip(image + ".sig", 32 + 10)
    elif case == "wrong-key":
        sign(keys, "k3", image)
    elif case == "missing-sig":
        os.unlink(image + ".sig")
    elif case == "image-as-payload":
        sign_tool("sign", "--key", keys["key"]("k1"), "--purpose",
                  "livepatch", image)
    counting(d, 1)
    mark = len(d.log())
    w = CounterWatchProc(d.proc.pid, interval_us=200)
    try:
        e = assert_refused(d, "live-update-load", {"image": image},
                           keys["ids"][k], rx)
        x = d.xl("live-update", image, check=False)
        counting(d, 1)          # the guests run on inside the window
    finally:
        report = w.stop()
    print(f"\n{case}: {e.message}; counter-watch max stall "
          f"{ {g: r['max_stall_ms'] for g, r in report.items()} } ms")
    assert x.returncode == ESIG and keys["ids"][k] in x.err, x.err
    assert image in e.message
    assert d.call("live-update-status") == {"staged": None, "last": None}
    log = new_log(d, mark)
    assert not PAUSED_RX.search(log), log
    assert "signature: live-update image refused" in log
    assert len(report) == 2 and all(
        r["errors"] == 0 and r["last"] > r["first"]
        for r in report.values()), report
    counting(d, 2)


@needs_sig
def test_explicit_signature_path(sd, image, keys, tmp_path):
    """--sig names the signature file; without it IMAGE.sig is used."""
    d = sd
    elsewhere = str(tmp_path / "elsewhere.sig")
    os.rename(image + ".sig", elsewhere)
    r = d.xl("live-update", "load", image, check=False)
    assert r.returncode == ESIG, r.err
    d.xl("live-update", "load", "--sig", elsewhere, image)
    assert d.call("live-update-status")["staged"]["image"] == image
    d.call("live-update-unload")
    r = d.xl("live-update", "load", "--sig", "rel.sig", image, check=False)
    assert r.returncode == ESIG, r.err      # xl made it absolute: missing
    api = d.api()
    try:
        reply = api.request("live-update-load", image=image,
                            signature="rel.sig")
    finally:
        api.close()
    assert reply["error"]["code"] == 3, reply


@needs_sig
def test_removed_key_is_refused_after_the_next_update(sd, image, keys,
                                                      tmp_path):
    """Keys are read at start, and again by a live update's new image:
    after k2.pem leaves the directory and an update, an image signed by
    k2 is refused as signed by an unknown key, and the guests count on."""
    d = sd
    other = str(tmp_path / "img2")
    copy_image(XEN, other)
    sign(keys, "k2", other)
    d.call("live-update-load", image=other)         # k2 trusted now
    d.call("live-update-unload")
    os.unlink(os.path.join(d.keydir, "k2.pem"))
    res = d.call("live-update-load", image=image)    # by k1
    res = json.loads(d.xl("live-update", "exec", "--json").out)
    assert res["result"] == "ok", res
    counting(d, 2)
    sig = d.call("info")["signatures"]
    assert [k["id"] for k in sig["keys"]] == [keys["ids"]["k1"]], sig
    assert re.search(r"^signature_enforcement\s*: on \(1 key\)$",
                     d.xl("info").out, re.M)
    mark = len(d.log())
    assert_refused(d, "live-update-load", {"image": other},
                   keys["ids"]["k2"], r"not a trusted key \(trusted: "
                   + keys["ids"]["k1"] + r"\)")
    assert not PAUSED_RX.search(new_log(d, mark))
    counting(d, 2)


@needs_sig
def test_update_to_an_image_without_signatures_is_refused(sd, keys,
                                                          tmp_path):
    """An image built without CONFIG_SIGNATURE would end enforcement: even
    signed, it is refused at load (error 8)."""
    if not os.path.exists(MINIMAL_XEN):
        pytest.skip("build-minimal/bin/xen is missing: run `make "
                    "variants`")
    d = sd
    path = str(tmp_path / "minimal-xen")
    copy_image(MINIMAL_XEN, path)
    sign(keys, "k1", path)
    mark = len(d.log())
    e = assert_refused(d, "live-update-load", {"image": path}, "",
                       r"does not check signatures .*CONFIG_SIGNATURE.*"
                       r"would end signature enforcement", code=8)
    assert path in e.message
    assert re.search(rf"good signature by key {keys['ids']['k1']}",
                     new_log(d, mark))
    assert d.call("live-update-status")["staged"] is None
    counting(d, 1)


def test_without_trusted_keys_unsigned_works(tmp_path):
    """No --trusted-keys: nothing is verified, loudly."""
    require_binaries()
    if not build_has("LIVE_UPDATE"):
        pytest.skip("LIVE_UPDATE is not in this build's Kconfig")
    d = start_daemon(tmp_path / "d")
    try:
        assert re.search(r"warning: signature enforcement: OFF", d.log())
        assert re.search(r"^signature_enforcement\s*: off", d.xl("info").out,
                         re.M)
        assert d.call("info")["signatures"]["enforcement"] is False
        cw = d.start_counter("c1", interval=100)
        img = str(tmp_path / "unsigned-xen")
        copy_image(XEN, img)
        res = json.loads(d.xl("live-update", img, "--json").out)
        assert res["result"] == "ok", res
        cw.assert_counting(2)
        assert re.search(r"signature enforcement: OFF", d.log()
                         .split("taking over from a live update")[1])
        cw.close()
    finally:
        d.stop()


def test_not_built(tmp_path):
    """A build without CONFIG_SIGNATURE refuses --trusted-keys and says
    enforcement is off (not built)."""
    xen = XEN if not build_has("SIGNATURE") else MINIMAL_XEN
    if not os.path.exists(xen):
        pytest.skip("no build without CONFIG_SIGNATURE (make variants)")
    r = subprocess.run([xen, "--socket", str(tmp_path / "s"), "--state-dir",
                        str(tmp_path / "st"), "--foreground",
                        "--trusted-keys", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "signature verification is not built " \
        "in (CONFIG_SIGNATURE is off)" in r.stderr, r.stderr
    d = start_daemon(tmp_path / "d", binary=xen)
    try:
        info = d.call("info")
        assert "SIGNATURE" not in info["features"]
        assert info["signatures"] == {"enforcement": False,
                                      "supported": False}
        out = subprocess.run([os.path.join(os.path.dirname(xen), "xl"),
                              "--socket", d.sock, "info"],
                             capture_output=True, text=True).stdout
        assert re.search(r"^signature_enforcement\s*: off \(not built\)",
                         out, re.M), out
        assert "signature enforcement: OFF: this build has no signature " \
            "support" in d.log()
    finally:
        d.stop()


# ------------------------------------------------------------ livepatch

VER_SRC = ('\n#include "livepatch/payload.h"\n'
           'static int sigtest_load(void)\n'
           '{\n\tlog_info("' + HOOK_LINE + '");\n\treturn 0;\n}\n'
           'LIVEPATCH_LOAD_HOOK(sigtest_load);\n')


@pytest.fixture(scope="module")
def payload(keys, tmp_path_factory):
    """A payload from this tree, signed by k1 with livepatch-build --sign:
    `version` then says 0.1.0-signed, and its load hook logs HOOK_LINE.
    The daemon to load it into is the tool's orig build (the running
    daemon a payload is built for)."""
    if not build_has("LIVEPATCH"):
        pytest.skip("LIVEPATCH is not in this build's Kconfig")
    d = str(tmp_path_factory.mktemp("sigpayload"))
    rel = "xen/commands.c"
    old = open(os.path.join(ROOT, rel)).read()
    new = old.replace('"hypervisor", XEN_VERSION,',
                      '"hypervisor", XEN_VERSION "-signed",') + VER_SRC
    assert new != old and '#include "log.h"' in old
    patch = os.path.join(d, "ver.patch")
    with open(patch, "w") as f:
        f.write("".join(difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), "a/" + rel,
            "b/" + rel)))
    out = os.path.join(d, "ver.o")
    work = os.path.join(d, "work")
    r = subprocess.run([LP_BUILD, "--src", ROOT, "--patch", patch, "--out",
                        out, "--workdir", work, "--sign", keys["key"]("k1")],
                       capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, XEN_SIGN=XEN_SIGN))
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"signed as a livepatch payload by key {keys['ids']['k1']}" \
        in r.stdout, r.stdout
    assert os.path.getsize(out + ".sig") == 96
    return {"path": out, "xen": os.path.join(work, "orig", "build", "bin",
                                             "xen")}


@pytest.fixture
def lpd(keys, payload, tmp_path):
    td = trusted_dir(str(tmp_path / "trusted"), keys, ["k1", "k2"])
    d = start_daemon(tmp_path / "d", binary=payload["xen"], keydir=td)
    d.cws = [d.start_counter(n, interval=100) for n in ("c1", "c2")]
    yield d
    alive = d.alive()
    for cw in d.cws:
        cw.close()
    d.stop()
    assert alive, d.read_file("xen.stderr")[-3000:]


PAYLOAD_REFUSALS = {
    "flipped-payload": ("k1", r"bad signature by key \w+ \(k1\.pem\)"),
    "flipped-signature": ("k1", r"bad signature by key \w+ \(k1\.pem\)"),
    "wrong-key": ("k3", r"signed by key \w+, which is not a trusted key"),
    "missing-sig": ("k1", r"no signature: .*ver\.o\.sig: No such file"),
    "payload-as-image": ("k1", r"key \w+ signed it as a live-update image, "
                               r"not as a livepatch payload"),
}


@needs_sig
@pytest.mark.parametrize("case", list(PAYLOAD_REFUSALS))
def test_refused_payload_runs_nothing(lpd, payload, keys, tmp_path, case):
    """Refused at upload and at load with error 14 naming the key id:
    its load hook never ran, nothing was paused or patched, `version` is
    unchanged, the guests count on."""
    d = lpd
    k, rx = PAYLOAD_REFUSALS[case]
    path = str(tmp_path / "ver.o")
    shutil.copy(payload["path"], path)
    shutil.copy(payload["path"] + ".sig", path + ".sig")
    if case == "flipped-payload":
        flip(path, os.path.getsize(path) // 2)
    elif case == "flipped-signature":
        flip(path + ".sig", 32 + 63)
    elif case == "wrong-key":
        sign(keys, "k3", path)
    elif case == "missing-sig":
        os.unlink(path + ".sig")
    elif case == "payload-as-image":
        sign_tool("sign", "--key", keys["key"]("k1"), "--purpose", "image",
                  path)
    version = d.call("version")["hypervisor"]
    counting(d, 1)
    mark = len(d.log())
    for cmd in ("livepatch-upload", "livepatch-load"):
        assert_refused(d, cmd, {"name": "ver", "path": path},
                       keys["ids"][k], rx)
    x = d.xl("livepatch", "load", "ver", path, check=False)
    assert x.returncode == ESIG and keys["ids"][k] in x.err, x.err
    log = new_log(d, mark)
    assert HOOK_LINE not in log, "payload code ran"
    assert not PAUSED_RX.search(log), log
    assert d.call("livepatch-list")["payloads"] == []
    assert d.call("version")["hypervisor"] == version
    counting(d, 2)


@needs_sig
def test_signed_payload_applies_and_survives_an_update(lpd, payload, keys,
                                                       tmp_path):
    """The signed payload loads (its hook runs after the check) and
    applies while the guests count; its signature, given with --sig from
    elsewhere, is checked again when a live update's new image loads it
    once more."""
    d = lpd
    path = str(tmp_path / "ver.o")
    sig = str(tmp_path / "sigs" / "ver.sig")
    os.makedirs(os.path.dirname(sig))
    shutil.copy(payload["path"], path)
    shutil.copy(payload["path"] + ".sig", sig)
    version = d.call("version")["hypervisor"]
    mark = len(d.log())
    out = d.xl("livepatch", "load", "--sig", sig, "ver", path).out
    assert re.search(r"livepatch ver: load done; guests paused", out), out
    log = new_log(d, mark)
    good = log.index(f"good signature by key {keys['ids']['k1']}")
    assert good < log.index(HOOK_LINE), log
    assert d.call("version")["hypervisor"] == version + "-signed"
    counting(d, 2)
    # across a live update to the same build (signed), checked again
    img = str(tmp_path / "img")
    copy_image(payload["xen"], img)
    sign(keys, "k1", img)
    mark = len(d.log())
    res = json.loads(d.xl("live-update", img, "--json").out)
    assert res["result"] == "ok", res
    assert res["livepatches"]["reapplied"] == ["ver"], res
    after = new_log(d, mark).split("taking over from a live update")[1]
    assert re.search(rf"livepatch payload {re.escape(path)}: good "
                     rf"signature by key {keys['ids']['k1']}", after), after
    assert d.call("version")["hypervisor"] == version + "-signed"
    counting(d, 2)
    # its signature gone, the next update drops it, saying why
    os.unlink(sig)
    copy_image(payload["xen"], img)
    sign(keys, "k1", img)
    res = json.loads(d.xl("live-update", img, "--json").out)
    assert res["result"] == "ok", res
    assert res["livepatches"]["reapplied"] == [], res
    (dropped,) = res["livepatches"]["dropped"]
    assert dropped["name"] == "ver" and "no signature" in \
        dropped["reason"], dropped
    assert d.call("version")["hypervisor"] == version
    counting(d, 2)
