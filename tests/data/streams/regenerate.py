#!/usr/bin/python3
"""Regenerate counter-v1.xkvm, the checked-in format-version-1 stream that
tests/test_save.py::test_checked_in_v1_stream_restores restores.

    make all && /usr/bin/python3 tests/data/streams/regenerate.py

It starts a private daemon from $XEN_BUILD (default build/), boots a
16 MiB counter guest with ws=1M from a copy of the counter kernel in a
temporary directory, waits for COUNTER READY and three status lines with
errors=0, saves it with `xl save --format-version 1`, checks the result
and removes the temporary directory -- so the kernel path recorded in the
stream no longer exists, as for a stream carried to another host.
"""
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

NAME = "counter-v1"
OUT = os.path.join(HERE, "counter-v1.xkvm")
CMDLINE = "ws=1M rate=1000 interval=200 verify=300"


def main():
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
        d.create(NAME, kernel=kernel, memory=16, cmdline=CMDLINE)
        w = CounterWatch(d, NAME)
        for s in d.wait_status_lines(NAME, 3):
            assert s["errors"] == 0, s
        w.close()
        saved = os.path.join(tmp, "out.xkvm")
        r = d.xl("save", "--format-version", "1", NAME, saved)
        print(r.out.strip())
        problems = stop_and_check(d)
        d = None
        if problems:
            sys.exit(f"regenerate: the daemon: {problems}")

        s = sl.Stream.load(saved)
        assert s.header.version == 1
        assert {sl.Batch(b.body).encoding for b in s.batches()} == \
            {sl.ENC_NONE}
        st = status_from_bytes(s.page(STATUS_GPA // sl.PAGE_SIZE))
        assert st["magic"] == STATUS_MAGIC and st["errors"] == 0, st
        shutil.copy(saved, OUT)
        os.chmod(OUT, 0o644)
        print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, counter "
              f"{st['counter']}, kernel {s.config()['kernel']} (removed)")
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
