#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets other than stream (whose
seeds make_corpus.py writes) into tests/fuzz/corpus/<target>/:

  control   request lines: every core command, good and bad arguments,
            a create with a full config, a console switch, broken JSON
  xlcfg     configs using every key and list syntax, with overrides
            after a NUL byte, and a JSON config
  migrecv   a source's side of a migration: hello, a stream seed of
            corpus/stream/ (make_corpus.py), GO; and refused hellos
  payload   livepatch payloads built from payload_seed.c (cc, objcopy)
  stage     small images built from stage_seed.c (cc, -nostdlib)

Usage: make_seeds.py [TARGET...]   (default: all of them)

The payload and stage seeds are ELF objects the compiler writes, so they
are checked in as built here and only rewritten when asked for by name;
tests/test_fuzz.py checks that the text seeds are current.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

FULL_CFG = {
    "name": "gamma", "memory": 64, "vcpus": 2, "kernel": "/boot/k.elf",
    "ramdisk": "/boot/initrd", "cmdline": "console=ttyS0 quiet",
    "on_poweroff": "destroy", "on_reboot": "rename-restart",
    "on_crash": "preserve", "strict_io": True,
    "fw_cfg": [{"name": "opt/org.test/x", "string": "hello"}],
    "disk": [{"target": "/var/lib/d.img", "format": "raw", "vdev": "xvda",
              "access": "rw", "cache": "writeback", "serial": "xvda"},
             {"target": "/var/lib/e.img", "format": "raw", "vdev": "xvdb",
              "access": "ro"}],
    "vif": [{"model": "virtio-net", "vhost": False,
             "mac": "00:16:3e:01:02:03", "bridge": "xenbr0",
             "vifname": "vif1"}, {"model": "virtio-net"}],
    "rng": True,
}


def req(command, args=None, rid=1, version=1):
    r = {"version": version, "id": rid, "command": command}
    if args is not None:
        r["args"] = args
    return json.dumps(r, separators=(",", ":"))


def control():
    lines = lambda *ls: ("\n".join(ls) + "\n").encode()  # noqa: E731
    out = {
        "version": lines(req("version")),
        "info-list": lines(req("info"), req("list", rid="two")),
        "create-full": lines(req("create", {"config": FULL_CFG,
                                            "paused": True}),
                             req("list")),
        "create-minimal": lines(req("create", {"config": {
            "name": "m", "kernel": "/k"}})),
        "lifecycle": lines(req("pause", {"domain": "alpha"}),
                           req("unpause", {"domain": 2}),
                           req("shutdown", {"domain": "beta"}),
                           req("reboot", {"domain": 1}),
                           req("destroy", {"domain": "alpha"}),
                           req("list")),
        "console": lines(req("console-read", {"domain": "alpha"}),
                         req("console", {"domain": 2, "history": False}))
        + b"typed input\r\n",
        "dmesg": lines(req("dmesg", {"clear": True}), req("dmesg")),
        "bad": lines("{", "[]", '{"command":7}',
                     '{"version":99,"command":"list"}',
                     '{"version":0,"command":"list"}',
                     '{"command":"list","args":[]}',
                     '{"command":"nope"}',
                     '{"command":"list","command":"info"}',
                     req("pause", {"domain": "zeta"}),
                     req("pause", {"domain": -1}),
                     req("create", {"config": {"name": "x"}}),
                     req("dmesg", {"clear": "yes"}),
                     req("save", {"domain": 1, "path": "/x"})),
        "unfinished": b'{"command":"list"}\n{"command":"ver',
    }
    return out


XLCFG_FULL = """# a guest using every key
name = "gamma"
memory = 64 ; vcpus = 2
kernel = "/boot/k.elf"
ramdisk = 'initrd.img'
cmdline = [ "console=ttyS0", # a comment
            "quiet", ]
on_poweroff = "destroy"
on_reboot = "rename-restart"
on_crash = "preserve"
strict_io = 1
rng = 1
disk = [ "format=raw,vdev=xvda,access=rw,target=/var/lib/d.img",
         "/var/lib/e.img,raw,xvdb,ro" ]
vif = [ "mac=00:16:3e:01:02:03,bridge=xenbr0,vifname=vif1", "type=vif" ]
fw_cfg = [ "name=opt/org.test/x,string=hello\\n\\t\\"q\\"" ]
"""


def xlcfg():
    return {
        "full": XLCFG_FULL.encode(),
        "minimal": b'name="a"\nkernel="/k"\n',
        "overrides": b'name="a"\nkernel="/k"\nmemory=0x40\n\0'
                     b'memory=256\0vcpus=4\0name=web1\0cmdline="x y"\0',
        "bad": b'name="a"\nkernel="k"\nmemory=-1\nvcpus=99\n'
               b'disk=["xvda"]\nunknown_key=1\n',
        "json": json.dumps(FULL_CFG).encode(),
    }


def migrecv():
    hello = b"XKVM-MIGRATE 1 min=1 max=2 paused=0 name=incoming\n"
    streams = {}
    for name in ("v2-minimal", "v2-mixed", "v1-plain", "v2-2vcpu"):
        with open(os.path.join(HERE, "corpus", "stream", name + ".xkvm"),
                  "rb") as f:
            streams[name] = f.read()
    return {
        "v2-minimal": hello + streams["v2-minimal"] + b"GO\n",
        "v2-mixed-paused": hello.replace(b"paused=0", b"paused=1")
        + streams["v2-mixed"] + b"GO\n",
        "v1-plain": hello.replace(b"max=2", b"max=1")
        + streams["v1-plain"] + b"GO\n",
        "no-go": hello + streams["v2-2vcpu"] + b"STOP\n",
        "bad-hello": b"XKVM-MIGRATE 2 min=5 max=9 paused=0 name=a b\n",
        # The id a source names its migration by, and a later query.
        "with-id": hello.replace(b"\n", b" id=" + b"ab" * 16 + b"\n")
        + streams["v2-minimal"] + b"GO\n",
        "query": b"XKVM-QUERY 1 id=" + b"ab" * 16 + b"\n",
    }


def build_payloads(outdir):
    src = os.path.join(HERE, "payload_seed.c")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("FUNCS", "RANGES", "HOOKS"):
            obj = os.path.join(tmp, variant + ".o")
            subprocess.run(["cc", "-O2", "-g0", "-c", f"-DSEED_{variant}",
                            "-I", ROOT, "-o", obj, src], check=True)
            subprocess.run(["objcopy", "--strip-debug",
                            "--remove-section=.comment",
                            "--remove-section=.note.GNU-stack", obj],
                           check=True)
            with open(obj, "rb") as f:
                out[variant.lower()] = f.read()
    return out


def build_images(outdir):
    src = os.path.join(HERE, "stage_seed.c")
    out = {}
    variants = {
        "static": ["-static", "-fno-pic", "-no-pie"],
        "pie": ["-static-pie", "-fPIE"],
        "no-liveupdate": ["-static", "-fno-pic", "-no-pie",
                          "-DSEED_READ_MAX=0"],
        "too-new": ["-static", "-fno-pic", "-no-pie", "-DSEED_READ_MIN=9",
                    "-DSEED_READ_MAX=9"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in variants.items():
            exe = os.path.join(tmp, name)
            subprocess.run(["cc", "-Os", "-g0", "-nostdlib",
                            "-Wl,--build-id=sha1", "-Wl,-n", "-s",
                            "-o", exe, src] + flags, check=True)
            with open(exe, "rb") as f:
                out[name] = f.read()
    return out


TEXT = {"control": control, "xlcfg": xlcfg, "migrecv": migrecv}
BUILT = {"payload": build_payloads, "stage": build_images}


def write(target, seeds):
    outdir = os.path.join(HERE, "corpus", target)
    os.makedirs(outdir, exist_ok=True)
    for name, data in seeds.items():
        assert len(data) < 64 * 1024, (target, name, len(data))
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        print(f"{target}/{name}: {len(data)} bytes")


def main():
    targets = sys.argv[1:] or list(TEXT) + list(BUILT)
    for t in targets:
        gen = TEXT.get(t) or BUILT.get(t)
        if not gen:
            sys.exit(f"make_seeds.py: no target {t}")
        write(t, gen() if t in TEXT else gen(HERE))


if __name__ == "__main__":
    main()
