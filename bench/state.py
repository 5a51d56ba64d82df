"""Save and restore throughput per encoding and worker count.

A counter guest with 1 GiB of RAM whose working set is 512 MiB: the guest
fills every working-set page with its pattern at start, so half of the RAM
is non-zero and half is zero.  For each case (encoding, worker threads) we
`save -c` it to a file on tmpfs (/dev/shm, so the figure is the page
pipeline's and not a disk's), then `restore` the file under another name,
several times, and report GiB/s of guest RAM (1 GiB / seconds the daemon
reports) and the stream size.  The saved guest, whose counter spins, is
paused while the copy is restored, as it is stopped while it is saved.  In the same run, a memcpy of 1 GiB
(Python's bytes copy, which is memcpy underneath), measured before and
after the cases, gives the machine's ceiling; the ratios are against it.
Beside it, a copy into new memfd pages (first touch) shows what filling a
new guest's RAM costs on this host before any stream is read.

Two backings, in the same run: `memfd` (the default: guest RAM in
memfds, the file on /dev/shm; both in 4 KiB pages unless the host's
shmem_enabled says otherwise) and `huge-tmpfs` (a tmpfs mounted with
huge=always for this run: the daemon's `--mem-path` puts guest RAM there
and the file goes there too, so both are in 2 MiB pages).  The second
needs root, to mount; without it the table says it was left out.
"""
import subprocess
import os
import shutil
import statistics
import tempfile
import time

import common

RAM_MIB = 1024
WS = "512M"
# (encoding, workers): workers are the page pipeline's threads.
CASES = (("none", 1), ("none", 2), ("lz4", 1), ("lz4", 2), ("zlib", 1),
         ("zlib", 2))
HUGE_CASES = (("none", 1), ("none", 2), ("lz4", 1), ("lz4", 2))
TMPFS = "/dev/shm"


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


def fresh_gibs(runs):
    """512 MiB copied into pages of a new memfd (first touch), as restore
    fills a new guest's RAM: the kernel allocates and zeroes each page on
    the way (in a VM, the host may back it then too)."""
    import mmap
    size = 512 << 20
    src = bytearray(os.urandom(1 << 20)) * 512
    samples = []
    for _ in range(runs):
        fd = os.memfd_create("bench-fresh")
        try:
            os.ftruncate(fd, size)
            m = mmap.mmap(fd, size)
            t0 = time.perf_counter()
            m[:] = src
            samples.append(size / (1 << 30) / (time.perf_counter() - t0))
            m.close()
        finally:
            os.close(fd)
    return samples


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_case(d, files, enc, workers, runs):
    """`runs` saves and restores, after one not counted: the first pages
    a run allocates may be ones the host took back (in a VM with free-page
    reporting), which costs the host's backing, not the pipeline."""
    save_s, restore_s, sizes = [], [], []
    for i in range(runs + 1):
        path = os.path.join(files, f"big.{enc}.{workers}")
        r = d.call("save", domain="big", path=path, checkpoint=True,
                   compress=enc, workers=workers)
        save_s.append(r["seconds"])
        sizes.append(os.path.getsize(path))
        name = f"r{enc}{workers}x{i}"
        # The saved guest spins (its counter): paused meanwhile, so the
        # restore is not measured against a busy vCPU on the same cores
        # (the save's figure is taken while it is stopped, too).
        d.call("pause", domain="big")
        try:
            rr = d.call("restore", path=path, name=name, paused=True)
        finally:
            d.call("unpause", domain="big")
        restore_s.append(rr["seconds"])
        d.call("destroy", domain=name)
        os.unlink(path)
        if i == 0:
            save_s, restore_s, sizes = [], [], []
    gib = RAM_MIB / 1024
    return {
        "encoding": enc, "workers": workers,
        "save_gibs": gib / statistics.median(save_s),
        "restore_gibs": gib / statistics.median(restore_s),
        "stream_mib": statistics.median(sizes) / (1 << 20),
        "save_s": save_s, "restore_s": restore_s, "stream_bytes": sizes,
    }


def run_backing(backing, files, extra_args, cases, runs, log):
    """Every case of one backing, with its own daemon and guest."""
    tmp = tempfile.mkdtemp(prefix="bench-state-")
    d = common.harness.Daemon(tmp, extra_args=extra_args)
    out = []
    try:
        d.start()
        d.create("big", memory=RAM_MIB,
                 cmdline=f"ws={WS} rate=0 interval=1000")
        d.wait_console("big", r"COUNTER READY", timeout=120)
        for enc, workers in cases:
            c = run_case(d, files, enc, workers, runs)
            c["backing"] = backing
            out.append(c)
            log(f"state {backing} {enc} x{workers}: save "
                f"{c['save_gibs']:.2f} GiB/s, restore "
                f"{c['restore_gibs']:.2f} GiB/s, {c['stream_mib']:.0f} MiB")
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def mount_huge_tmpfs():
    """A tmpfs in 2 MiB pages for this run, or (None, why not)."""
    if os.geteuid() != 0:
        return None, "mounting a tmpfs needs root"
    path = tempfile.mkdtemp(prefix="bench-huge-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"huge=always,size={4 * RAM_MIB}M", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode:
        os.rmdir(path)
        return None, f"mount -o huge=always: {r.stderr.strip()}"
    return path, None


def run(runs, log):
    files = tempfile.mkdtemp(prefix="bench-state-",
                             dir=TMPFS if os.path.isdir(TMPFS) else None)
    out = {"ram_mib": RAM_MIB, "working_set": WS, "cases": [],
           "file_dir": files, "errors": [], "loadavg": [loadavg()]}
    memcpy = []
    huge = None
    try:
        memcpy += memcpy_gibs(max(runs, 3))
        out["cases"] += run_backing("memfd", files, [], CASES, runs, log)
        huge, why = mount_huge_tmpfs()
        if huge:
            out["huge_dir"] = huge
            out["cases"] += run_backing("huge-tmpfs", huge,
                                        ["--mem-path", huge], HUGE_CASES,
                                        runs, log)
        else:
            out["huge_left_out"] = why
            log(f"state huge-tmpfs left out: {why}")
        memcpy += memcpy_gibs(max(runs, 3))
        out["fresh_samples"] = fresh_gibs(max(runs, 3))
        out["fresh_gibs"] = statistics.median(out["fresh_samples"])
    except Exception as e:  # noqa: BLE001 - reported, not raised
        out["errors"].append(str(e))
    finally:
        shutil.rmtree(files, ignore_errors=True)
        if huge:
            subprocess.run(["umount", "-l", huge], check=False)
            os.rmdir(huge)
    out["loadavg"].append(loadavg())
    out["memcpy_samples"] = memcpy
    if memcpy:
        out["memcpy_gibs"] = statistics.median(memcpy)
    return out


def print_table(r):
    m = r.get("memcpy_gibs", 0)
    print(f"\nsave/restore of a {r['ram_mib']} MiB guest, working set "
          f"{r['working_set']} (the rest zero), file in {r['file_dir']}; "
          f"memcpy of 1 GiB: {m:.2f} GiB/s; loadavg "
          + " -> ".join(f"{x:.1f}" for x in r["loadavg"] if x is not None))
    if r.get("fresh_gibs"):
        print(f"memcpy into new memfd pages (first touch, as restore "
              f"fills a new guest): {r['fresh_gibs']:.2f} GiB/s")
    if r.get("huge_left_out"):
        print(f"huge-tmpfs backing left out: {r['huge_left_out']}")
    print(f"{'backing':10} {'encoding':9} {'workers':>7} {'save GiB/s':>11} "
          f"{'of memcpy':>10} {'restore GiB/s':>14} {'of memcpy':>10} "
          f"{'stream MiB':>11}")
    for c in r["cases"]:
        print(f"{c.get('backing', 'memfd'):10} {c['encoding']:9} "
              f"{c['workers']:7d} {c['save_gibs']:11.2f} "
              f"{c['save_gibs'] / m if m else 0:10.0%} "
              f"{c['restore_gibs']:14.2f} "
              f"{c['restore_gibs'] / m if m else 0:10.0%} "
              f"{c['stream_mib']:11.0f}")
