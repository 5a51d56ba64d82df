"""Benchmark 3: port-I/O exit round trip, timed inside the guest.

The exit guest's `mode=iobench count=N port=P` (tests/guests/README.md)
times N `outb` and then N `inb` on port P with rdtsc, interrupts off, and
prints the per-access averages in TSC cycles and in ns of its own PIT
calibration; then it leaves through the debug-exit port.  Same guest file
and command line under ours and under QEMU (`-device isa-debug-exit`).

Ports:
  0x80  POST port: a device model in userspace in both (ours: the board's
        "absent" port; QEMU pc: ioport80).  A full exit to the VMM process
        and back: KVM exit, return from KVM_RUN, the VMM's dispatch, KVM_RUN.
  0x21  master PIC mask register: KVM's in-kernel PIC in both (kernel
        irqchip), so it never leaves the kernel.  The difference to 0x80 is
        the userspace part of the round trip.

ns in the table are cycles / the host TSC rate (`xl info` tsc_khz, which is
KVM's, and the guest TSC runs at that rate); the guest's own ns figures,
which carry the error of its 50 ms PIT calibration under KVM-PVM, are in
the JSON as *_ns_guest.
"""
from common import IOBENCH_RX, BenchError, Pressure, Qemu, summary

TIMEOUT = 120


def _parse(text_bytes, host_tsc_khz):
    m = IOBENCH_RX.search(text_bytes)
    if not m:
        return None
    port, count, oc, ons, ic, ins = m.groups()
    oc, ic, ons, ins = int(oc), int(ic), float(ons), float(ins)
    s = {"port": int(port, 16), "count": int(count),
         "out_cycles": oc, "in_cycles": ic,
         "out_ns_guest": ons, "in_ns_guest": ins,
         "guest_tsc_khz": round(oc * 1e6 / ons) if ons else None,
         "line": m.group(0).decode().strip()}
    if host_tsc_khz:
        s["out_ns"] = oc * 1e6 / host_tsc_khz
        s["in_ns"] = ic * 1e6 / host_tsc_khz
    return s


def cmdline(port, count):
    return f"mode=iobench count={count} port=0x{port:x}"


def once_ours(ours, name, port, count, host_tsc_khz):
    cfg = ours.cfg(name, "exit", cmdline(port, count),
                   extra='on_poweroff = "preserve"\n')
    ours.xl_create(cfg)
    try:
        ours.d.wait_console(name, r"IOBENCH port=[^\r\n]*\r\n", TIMEOUT)
        d = ours.d.wait_state(name, "shutdown", TIMEOUT)
        data, _ = ours.d.console_read(name)
    finally:
        ours.destroy(name)
    s = _parse(data, host_tsc_khz)
    if s is None:
        raise BenchError(f"no IOBENCH line: {data[-400:]!r}")
    s["exit_code"] = d.get("exit_code")
    if s["exit_code"] != 1:
        raise BenchError(f"{name} exited with {s['exit_code']}, not 1")
    return s


def once_qemu(variant, port, count, host_tsc_khz):
    q = Qemu(variant, "exit", cmdline(port, count), debug_exit=True)
    try:
        rc = q.wait_exit(TIMEOUT)
    finally:
        q.kill()
    data = bytes(q.out.buf)
    s = _parse(data, host_tsc_khz)
    if s is None:
        raise BenchError(f"no IOBENCH line (exit {rc}): {data[-400:]!r} "
                         f"{q.stderr_text()[-300:]!r}")
    s["exit_code"] = rc
    s["argv"] = q.argv
    if rc != 1:
        raise BenchError(f"QEMU exited with {rc}, not 1")
    return s


def run(ours, plan, count, host_tsc_khz, log):
    """`plan`: {port: {"ours": runs, variant: runs, ...}}.  Runs are
    interleaved round by round, like the boot benchmark."""
    res = {"method": __doc__.strip(), "count": count,
           "host_tsc_khz": host_tsc_khz, "ports": {}}
    seq = [0]
    for port, runs in plan.items():
        pres = {k: {"samples": [], "errors": []} for k in runs}
        res["ports"][f"0x{port:x}"] = pres
        for i in range(max(runs.values())):
            for key, n in runs.items():
                if i >= n:
                    continue
                pr = Pressure()
                try:
                    if key == "ours":
                        seq[0] += 1
                        s = once_ours(ours, f"io{seq[0]}", port, count,
                                      host_tsc_khz)
                    else:
                        s = once_qemu(key, port, count, host_tsc_khz)
                except Exception as e:  # noqa: BLE001 - recorded
                    pres[key]["errors"].append(str(e))
                    log(f"  iobench 0x{port:x} {key}: ERROR {e}")
                    continue
                s["cpu_pressure"] = pr.fraction()
                pres[key]["samples"].append(s)
                log(f"  iobench 0x{port:x} {key}: out {s['out_cycles']} "
                    f"cycles, in {s['in_cycles']} cycles (host CPU pressure "
                    f"{s['cpu_pressure']})")
        for key, r in pres.items():
            for f in ("out_cycles", "in_cycles", "out_ns", "in_ns",
                      "out_ns_guest", "in_ns_guest", "guest_tsc_khz",
                      "cpu_pressure"):
                r[f] = summary([s.get(f) for s in r["samples"]])
    return res
