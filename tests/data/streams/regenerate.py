#!/usr/bin/python3
"""Regenerate a checked-in old-format stream that
tests/test_save.py::test_checked_in_stream_restores restores:

    make all && /usr/bin/python3 tests/data/streams/regenerate.py
        counter-v1.xkvm: format version 1 (no compression)
    XEN_BUILD=OLD/build /usr/bin/python3 tests/data/streams/regenerate.py \\
        --version 2
        counter-v2.xkvm: format version 2, LZ4-compressed batches

It starts a private daemon from $XEN_BUILD (default build/), boots a
16 MiB counter guest with ws=1M from a copy of the counter kernel in a
temporary directory, waits for COUNTER READY and three status lines with
errors=0, saves it with `xl save --format-version N` (and, for version 2,
`--compress lz4`), checks the result and removes the temporary directory
-- so the kernel path recorded in the stream no longer exists, as for a
stream carried to another host.  README.md beside this file says which
build wrote each stream.
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))    # tests/

import streamlib as sl                                          # noqa: E402
from harness import (STATUS_GPA, STATUS_MAGIC, CounterWatch,    # noqa: E402
                     Daemon, guest_path, require_binaries,
                     status_from_bytes, stop_and_check)

CMDLINE = "ws=1M rate=1000 interval=200 verify=300"

# Per format version: the xl save options after --format-version N, and the
# page encodings its batches may use.  The v2 stream is compressed so that
# it carries what version 2 adds (LZ4 batches); a batch that LZ4 would not
# shrink is written unencoded, so ENC_NONE may appear beside it.
VERSIONS = {
    1: {"save": [], "encodings": {sl.ENC_NONE}, "required": sl.ENC_NONE},
    2: {"save": ["--compress", "lz4"],
        "encodings": {sl.ENC_NONE, sl.ENC_LZ4}, "required": sl.ENC_LZ4},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", type=int, choices=sorted(VERSIONS),
                    default=1, help="format version to write (default 1)")
    args = ap.parse_args()
    v = VERSIONS[args.version]
    name = f"counter-v{args.version}"
    out = os.path.join(HERE, f"{name}.xkvm")

    require_binaries()
    tmp = tempfile.mkdtemp(prefix="xkvm-regen-")
    d = None
    try:
        kernel = os.path.join(tmp, "kernel", "counter.elf")
        os.makedirs(os.path.dirname(kernel))
        shutil.copy(guest_path("counter"), kernel)
        root = os.path.join(tmp, "daemon")
        os.makedirs(root)
        d = Daemon(root)
        d.start()
        d.create(name, kernel=kernel, memory=16, cmdline=CMDLINE)
        w = CounterWatch(d, name)
        for s in d.wait_status_lines(name, 3):
            assert s["errors"] == 0, s
        w.close()
        saved = os.path.join(tmp, "out.xkvm")
        r = d.xl("save", "--format-version", str(args.version), *v["save"],
                 name, saved)
        print(r.out.strip())
        problems = stop_and_check(d)
        d = None
        if problems:
            sys.exit(f"regenerate: the daemon: {problems}")

        s = sl.Stream.load(saved)
        assert s.header.version == args.version, s.header.version
        encodings = {sl.Batch(b.body).encoding for b in s.batches()}
        assert v["required"] in encodings and encodings <= v["encodings"], \
            encodings
        st = status_from_bytes(s.page(STATUS_GPA // sl.PAGE_SIZE))
        assert st["magic"] == STATUS_MAGIC and st["errors"] == 0, st
        shutil.copy(saved, out)
        os.chmod(out, 0o644)
        print(f"wrote {out}: {os.path.getsize(out)} bytes, version "
              f"{s.header.version}, encodings "
              f"{sorted(sl.ENC_NAMES[e] for e in encodings)}, counter "
              f"{st['counter']}, kernel {s.config()['kernel']} (removed)")
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
