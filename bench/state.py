"""Save and restore throughput per encoding (issue: the state format).

A counter guest with 1 GiB of RAM whose working set is 512 MiB: the guest
fills every working-set page with its pattern at start, so half of the RAM
is non-zero and half is zero.  For each encoding we `save -c` it to a
file, then `restore` the file under another name, several times, and
report GiB/s of guest RAM (1 GiB / seconds the daemon reports) and the
stream size.  In the same run, a memcpy of 1 GiB (Python's bytes copy,
which is memcpy underneath) gives the machine's ceiling.
"""
import os
import shutil
import statistics
import tempfile
import time

import common

RAM_MIB = 1024
WS = "512M"
ENCODINGS = ("none", "lz4", "zlib")


def memcpy_gibs(runs):
    """1 GiB copied into an already-touched buffer (slice assignment is a
    memcpy), so page faults are not counted."""
    src = bytearray(os.urandom(1 << 20)) * 1024      # 1 GiB
    dst = bytearray(len(src))
    dst[:] = src                                      # fault it in
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        dst[:] = src
        samples.append(1.0 / (time.perf_counter() - t0))
    del src, dst
    return samples


def run(runs, log):
    tmp = tempfile.mkdtemp(prefix="bench-state-")
    d = common.harness.Daemon(tmp)
    out = {"ram_mib": RAM_MIB, "working_set": WS, "encodings": {},
           "errors": []}
    try:
        d.start()
        d.create("big", memory=RAM_MIB,
                 cmdline=f"ws={WS} rate=0 interval=1000")
        d.wait_console("big", r"COUNTER READY", timeout=120)
        for enc in ENCODINGS:
            save_s, restore_s, sizes = [], [], []
            for i in range(runs):
                path = os.path.join(tmp, f"big.{enc}")
                r = d.call("save", domain="big", path=path,
                           checkpoint=True, compress=enc)
                save_s.append(r["seconds"])
                sizes.append(os.path.getsize(path))
                rr = d.call("restore", path=path, name=f"r{enc}{i}",
                            paused=True)
                restore_s.append(rr["seconds"])
                d.call("destroy", domain=f"r{enc}{i}")
                os.unlink(path)
            gib = RAM_MIB / 1024
            out["encodings"][enc] = {
                "save_gibs": gib / statistics.median(save_s),
                "restore_gibs": gib / statistics.median(restore_s),
                "stream_mib": statistics.median(sizes) / (1 << 20),
                "save_s": save_s, "restore_s": restore_s,
                "stream_bytes": sizes,
            }
            log(f"state {enc}: save {out['encodings'][enc]['save_gibs']:.2f}"
                f" GiB/s, restore "
                f"{out['encodings'][enc]['restore_gibs']:.2f} GiB/s, "
                f"{out['encodings'][enc]['stream_mib']:.0f} MiB")
        out["memcpy_gibs"] = statistics.median(memcpy_gibs(max(runs, 3)))
    except Exception as e:  # noqa: BLE001 - reported, not raised
        out["errors"].append(str(e))
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def print_table(r):
    print(f"\nsave/restore of a {r['ram_mib']} MiB guest, working set "
          f"{r['working_set']} (the rest zero); memcpy of 1 GiB: "
          f"{r.get('memcpy_gibs', 0):.2f} GiB/s")
    print(f"{'encoding':10} {'save GiB/s':>11} {'restore GiB/s':>14} "
          f"{'stream MiB':>11}")
    for enc, e in r["encodings"].items():
        print(f"{enc:10} {e['save_gibs']:11.2f} {e['restore_gibs']:14.2f} "
              f"{e['stream_mib']:11.0f}")
