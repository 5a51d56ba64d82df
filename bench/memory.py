"""Benchmark 2: host memory per domain, guest RAM excluded.

Accounting (both hypervisors alike): /proc/PID/smaps, summed over every VMA
except the guest-RAM ones.  That is RssAnon + RssFile + any shmem that is
not guest RAM -- heap, thread stacks, malloc arenas, the kvm_run pages of
each vCPU (a device mapping, counted as file), the binary and libraries.
Guest RAM is left out by VMA, not by type, so the guest's touched pages
never count whatever backs them:
  ours  the memfd mappings `/memfd:domN-ram` (shmem, RssShmem);
  QEMU  the anonymous rw-p VMA of exactly -m MiB (QEMU's default anonymous
        RAM; its ROM/firmware blocks are small separate VMAs and do count,
        as they are QEMU's cost, not guest RAM).

Per domain = least-squares slope over K = 1, 4, 8 running counter guests
(ws=1M, sampled 1 s after the last `COUNTER READY`):
  ours  of the daemon's RSS (one process: RSS and PSS slopes agree);
  QEMU  of the sum of PSS over its K processes (one process per guest):
        PSS shares the pages that K QEMUs have in common (binary, libraries)
        among them, so the slope is what one more QEMU really adds -- its
        private pages.  The per-process RSS (what `ps` shows, shared pages
        included) is reported too; a variant measured with one process only
        gets no per-domain figure.
Kernel memory (KVM's VM and vCPU structures, page tables, shadow MMU) is
in no process's RSS and is left out for both.
"""
import re
import time

from common import (GUEST_MEM_MIB, BenchError, Ours, Qemu, READY_RX,
                    harness, memory_split, slope, smaps)

CMDLINE = "ws=1M interval=1000"
KS = (1, 4, 8)
SETTLE_S = 1.0
TIMEOUT = 90
OURS_RAM_RX = re.compile(r"^/memfd:dom\d+-ram")


def ours_is_guest_ram(v):
    return bool(OURS_RAM_RX.match(v["name"]))


def qemu_is_guest_ram(v):
    return (v["size"] == GUEST_MEM_MIB * 1024 and v["perm"] == "rw-p"
            and v["inode"] == 0 and v["name"] == "")


def run_ours(log):
    ours = Ours("mem")
    res = {"points": []}
    try:
        pt = memory_split(smaps(ours.pid), ours_is_guest_ram)
        pt["k"] = 0
        res["baseline"] = pt
        n = 0
        for k in KS:
            while n < k:
                n += 1
                ours.xl_create(ours.cfg(f"mem{n}", "counter", CMDLINE))
            for i in range(1, n + 1):
                ours.d.wait_console(f"mem{i}", r"COUNTER READY", TIMEOUT)
            time.sleep(SETTLE_S)
            pt = memory_split(smaps(ours.pid), ours_is_guest_ram)
            pt["k"] = k
            if pt["guest_ram_vmas"] != k:
                raise BenchError(f"expected {k} guest RAM VMAs in the "
                                 f"daemon, found {pt['guest_ram_vmas']}")
            res["points"].append(pt)
            log(f"  memory ours K={k}: daemon RSS excl. guest RAM "
                f"{pt['overhead_rss_kib']} KiB (guest RAM "
                f"{pt['guest_ram_rss_kib']} KiB)")
    finally:
        ours.stop()
    pts = res["points"]
    res["per_domain_rss_kib"], res["intercept_rss_kib"] = slope(
        [(p["k"], p["overhead_rss_kib"]) for p in pts])
    res["per_domain_pss_kib"], _ = slope(
        [(p["k"], p["overhead_pss_kib"]) for p in pts])
    res["per_domain_anon_kib"], _ = slope(
        [(p["k"], p["overhead_anon_kib"]) for p in pts])
    res["per_domain_file_kib"], _ = slope(
        [(p["k"], p["overhead_file_kib"]) for p in pts])
    res["per_domain_kib"] = res["per_domain_rss_kib"]
    res["first_domain_rss_kib"] = pts[0]["overhead_rss_kib"]
    return res


def _qemu_sample(q):
    pt = memory_split(smaps(q.pid), qemu_is_guest_ram)
    if pt["guest_ram_vmas"] != 1:
        raise BenchError(f"QEMU pid {q.pid}: {pt['guest_ram_vmas']} VMAs "
                         f"look like the {GUEST_MEM_MIB} MiB of guest RAM")
    return pt


def run_qemu(variant, ks, log):
    procs = []
    res = {"points": []}
    try:
        for k in ks:
            while len(procs) < k:
                procs.append(Qemu(variant, "counter", CMDLINE))
            for q in procs:
                q.out.wait(READY_RX, TIMEOUT)
            time.sleep(SETTLE_S)
            per = [_qemu_sample(q) for q in procs]
            pt = {"k": k, "per_process": per,
                  "sum_overhead_pss_kib": sum(p["overhead_pss_kib"]
                                              for p in per),
                  "sum_overhead_rss_kib": sum(p["overhead_rss_kib"]
                                              for p in per),
                  "sum_overhead_private_kib": sum(p["overhead_private_kib"]
                                                  for p in per)}
            res["points"].append(pt)
            log(f"  memory {variant} K={k}: sum of PSS excl. guest RAM "
                f"{pt['sum_overhead_pss_kib']} KiB; RSS excl. guest RAM of "
                f"the first process {per[0]['overhead_rss_kib']} KiB")
        res["argv"] = procs[0].argv
    finally:
        for q in procs:
            q.kill()
    pts = res["points"]
    first = pts[0]["per_process"][0]
    res["first_domain_rss_kib"] = first["overhead_rss_kib"]
    res["first_domain_pss_kib"] = first["overhead_pss_kib"]
    if len(pts) > 1:
        res["per_domain_pss_kib"], res["intercept_pss_kib"] = slope(
            [(p["k"], p["sum_overhead_pss_kib"]) for p in pts])
        res["per_domain_kib"] = res["per_domain_pss_kib"]
    # With one process there is no slope: its PSS and private figures
    # depend on what else on the host maps the same files (another QEMU
    # shares the binary), so no per-domain figure is claimed from them.
    return res


def run(variants, log):
    """`variants`: {variant: tuple of K}."""
    res = {"method": __doc__.strip(), "cmdline": CMDLINE, "ks": list(KS),
           "settle_s": SETTLE_S}
    try:
        res["ours_console_history_kib"] = harness.build_config_int(
            "CONSOLE_HISTORY_KIB")
    except (AttributeError, OSError):
        pass
    for key, fn in [("ours", lambda: run_ours(log))] + [
            (v, lambda v=v, ks=ks: run_qemu(v, ks, log))
            for v, ks in variants.items()]:
        try:
            res[key] = fn()
        except Exception as e:  # noqa: BLE001 - recorded, run goes on
            res[key] = {"errors": [str(e)]}
            log(f"  memory {key}: ERROR {e}")
    return res
