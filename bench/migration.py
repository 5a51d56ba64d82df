"""Live migration over loopback: ours with plain TCP and with TLS 1.3,
uncompressed and LZ4, beside QEMU's (`-incoming`, plain TCP and TLS).

Ours.  Two daemons on this host, each accepting migrations on a
127.0.0.1 port: a pair with `--migrate-insecure` (plain TCP) and a pair
with `--migrate-tls DIR` (certificates made by certtool, tests/
tlscerts.py, for 127.0.0.1).  Per point (transport, encoding, guest RAM,
load) one counter guest is created on the first daemon and, once it
printed COUNTER READY (+1 s), migrated `runs` times back and forth with
`xl migrate --json [--insecure] --compress ENC` (max-downtime 300 ms, the
default).  The destination guest must print a status line with errors=0
afterwards or the run counts as failed.  Recorded from the final report:
  total_s      from the migrate command to the destination's RUNNING;
  downtime_ms  the daemon's: from parking the vCPUs on the source to the
               destination's RUNNING (one round trip after the guest
               runs there);
  wire_bytes   bytes of the state stream (before TLS framing);
  throughput   guest RAM (MiB) / total_s, and wire MiB / total_s.
Loads: idle (`ws=1M rate=0`: only the counter page changes), busy
(`ws=64M rate=5000`: a 64 MiB working set, every page of it written,
rewritten at 20 MiB/s all along) and half (half of RAM written once, then
only the counter: the throughput case, where TLS costs most).  `rate=max`
is not used: on this project's loaded 2-core machines its dirty rate is
above the link's and it does not converge without --auto-converge.

QEMU.  `qemu-system-x86_64 -accel kvm -machine pc -bios qboot.rom -m SIZE
... -kernel counter.elf -append CMDLINE`, the destination with
`-incoming defer`; for TLS both get `-object tls-creds-x509,dir=DIR,
endpoint=server|client,verify-peer=on` on the same certificate
directories and `migrate-set-parameters tls-creds`.  Both sides get
downtime-limit 300 ms and max-bandwidth unlimited (QEMU's default of
128 MiB/s would cap it); no multifd, no compression (QEMU has no LZ4).
Recorded from query-migrate: total-time, downtime, ram.transferred.

Loopback TCP limit: one Python thread sends 2 GiB in 4 MiB send() calls
to another that recv_into()s them, over 127.0.0.1 in the same run (a
lower bound of the kernel's limit: Python's own overhead is included).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import tlscerts
from common import (BenchError, QEMU, QEMU_VARIANTS, _cleanups, _pdeathsig,
                    harness, summary)
from liveupdate import Qmp, _wait_file

SIZES = (256, 1024)
LOADS = {"idle": "ws=1M rate=0", "busy": "ws=64M rate=5000",
         "half": "ws={half}M rate=0"}
ENCODINGS = ("none", "lz4")
TRANSPORTS = ("tcp", "tls")
QEMU_VARIANT = "qemu-qboot"
READY_TIMEOUT = 120
STATUS_RX = re.compile(rb"COUNTER counter=(\d+) [^\r\n]*errors=(\d+)")


def _cmdline(mib, load):
    return LOADS[load].format(half=mib // 2) + " interval=1000"


def loopback_gibs(total=2 << 30, chunk=4 << 20):
    """GiB/s of one TCP stream over 127.0.0.1."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    got = [0]

    def sink():
        c, _ = lsn.accept()
        buf = memoryview(bytearray(chunk))
        while True:
            n = c.recv_into(buf)
            if not n:
                break
            got[0] += n
        c.close()
    t = threading.Thread(target=sink)
    t.start()
    s = socket.create_connection(lsn.getsockname())
    data = memoryview(bytearray(os.urandom(1 << 20)) * (chunk >> 20))
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(data)
        sent += chunk
    s.shutdown(socket.SHUT_WR)
    t.join()
    dt = time.perf_counter() - t0
    s.close()
    lsn.close()
    return got[0] / dt / (1 << 30)


# ------------------------------------------------------------ ours

class Pair:
    """Two daemons accepting migrations on 127.0.0.1 (TLS or plain)."""

    def __init__(self, tmp, creds):
        self.hosts = []
        for i, cdir in enumerate(creds):
            root = tempfile.mkdtemp(dir=tmp, prefix=f"d{i}-")
            port = harness.free_port()
            args = ["--migrate-listen", f"127.0.0.1:{port}"]
            args += ["--migrate-tls", cdir] if cdir else \
                ["--migrate-insecure"]
            d = harness.Daemon(root, extra_args=args)
            d.addr = f"127.0.0.1:{port}"
            d.start()
            self.hosts.append(d)

    def stop(self):
        for d in self.hosts:
            d.stop()


def _check_guest(d, name):
    """A status line printed after now, with errors=0."""
    start = len(d.console(name))
    m = d.wait_console(name, STATUS_RX.pattern.decode(), timeout=30,
                       start=start)
    if int(m.group(2)):
        raise BenchError(f"{name} reports errors after migration: "
                         f"{m.group(0)}")


VCPU_THREAD = re.compile(r"d\d+v\d+")     # xen/vcpu.c names them so


def daemon_cpu_s(pid):
    """CPU seconds of a daemon's threads but its vCPUs' (the guest's own
    work): what migrating costs the host, which stays comparable on a
    loaded host where wall times are not."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                st = f.read()
        except OSError:
            continue                        # the thread ended meanwhile
        if VCPU_THREAD.fullmatch(comm):
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])     # utime, stime
    return total / hz


def ours_point(pair, tls, enc, mib, load, runs, log):
    src, dst = pair.hosts
    name = f"m{mib}{load}{enc}{'s' if tls else 'p'}"
    src.create(name, memory=mib, cmdline=_cmdline(mib, load))
    src.wait_console(name, r"COUNTER READY", timeout=READY_TIMEOUT)
    time.sleep(1.0)
    pt = {"samples": []}
    try:
        for _ in range(runs):
            args = ["migrate", "--json", "--compress", enc]
            if not tls:
                args.append("--insecure")
            pids = [d.proc.pid for d in pair.hosts]
            cpu0 = sum(daemon_cpu_s(p) for p in pids)
            r = src.xl(*args, name, dst.addr, check=False, timeout=300)
            cpu = sum(daemon_cpu_s(p) for p in pids) - cpu0
            if r.returncode:
                raise BenchError(f"xl migrate: {r.err.strip()}")
            rep = json.loads(r.out)
            _check_guest(dst, name)
            pt["samples"].append({k: rep.get(k) for k in (
                "total_s", "downtime_ms", "wire_bytes", "sent_bytes",
                "iteration", "rate_mib_s")})
            pt["samples"][-1]["daemon_cpu_s"] = cpu
            src, dst = dst, src
    finally:
        src.call("destroy", domain=name)
    s = pt["samples"]
    pt["total_s"] = summary([x["total_s"] for x in s])
    pt["downtime_ms"] = summary([x["downtime_ms"] for x in s])
    pt["wire_mib"] = summary([x["wire_bytes"] / 2**20 for x in s])
    pt["ram_mib_s"] = summary([mib / x["total_s"] for x in s])
    pt["wire_mib_s"] = summary([x["wire_bytes"] / 2**20 / x["total_s"]
                                for x in s])
    pt["cpu_s_per_gib"] = summary([x["daemon_cpu_s"] /
                                   (x["wire_bytes"] / 2**30) for x in s
                                   if x["wire_bytes"] >= 1 << 20])
    log(f"  ours {'TLS' if tls else 'TCP'} {enc} {mib} MiB {load}: total "
        f"{pt['total_s']['median']:.2f} s, downtime "
        f"{pt['downtime_ms']['median']:.1f} ms, wire "
        f"{pt['wire_mib']['median']:.0f} MiB, "
        f"{pt['wire_mib_s']['median']:.0f} MiB/s on the wire")
    return pt


# ------------------------------------------------------------ QEMU

def _qemu_argv(mib, cmdline, serial, qmp, tls_dir, endpoint, incoming):
    argv = [QEMU, "-accel", "kvm", "-m", str(mib), "-nodefaults",
            "-display", "none", "-no-reboot"]
    argv += QEMU_VARIANTS[QEMU_VARIANT]["args"]
    argv += ["-serial", f"file:{serial}", "-kernel",
             harness.guest_path("counter"), "-append", cmdline,
             "-qmp", f"unix:{qmp},server=on,wait=off"]
    if tls_dir:
        argv += ["-object", f"tls-creds-x509,id=tls0,dir={tls_dir},"
                 f"endpoint={endpoint},verify-peer=on"]
    if incoming:
        argv += ["-incoming", "defer"]
    return argv


def qemu_once(tmp, mib, load, tls_dir):
    port = harness.free_port()
    procs, qmps = [], []
    cmdline = _cmdline(mib, load)

    def spawn(tag, endpoint, incoming):
        serial = os.path.join(tmp, f"{tag}.serial")
        qmp = os.path.join(tmp, f"{tag}.qmp")
        for p in (serial, qmp):
            if os.path.exists(p):
                os.unlink(p)
        argv = _qemu_argv(mib, cmdline, serial, qmp, tls_dir, endpoint,
                          incoming)
        procs.append(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_pdeathsig))
        q = Qmp(qmp)
        qmps.append(q)
        return q, serial

    def kill_all():
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    _cleanups.append(kill_all)
    params = {"downtime-limit": 300, "max-bandwidth": 1 << 40}
    if tls_dir:
        params["tls-creds"] = "tls0"
    try:
        qs, src_serial = spawn("src", "client", False)
        qd, dst_serial = spawn("dst", "server", True)
        qs.cmd("migrate-set-parameters", **params)
        qd.cmd("migrate-set-parameters", **params)
        qd.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
        _wait_file(src_serial, re.compile(rb"COUNTER READY"), READY_TIMEOUT,
                   "source QEMU")
        time.sleep(1.0)
        t0 = time.monotonic()
        qs.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        while True:
            st = qs.cmd("query-migrate")
            if st.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - t0 > 300:
                raise BenchError("QEMU migration not done after 300 s")
            time.sleep(0.01)
        if st["status"] != "completed":
            raise BenchError(f"QEMU migration {st['status']}: "
                             f"{st.get('error-desc', st)}")
        start = len(open(dst_serial, "rb").read())
        m = _wait_file(dst_serial, STATUS_RX, 30, "destination guest",
                       start=start)
        if int(m.group(2)):
            raise BenchError("QEMU destination guest reports errors")
        ram = st.get("ram", {})
        return {"total_s": st["total-time"] / 1e3,
                "downtime_ms": st["downtime"],
                "wire_bytes": ram.get("transferred"),
                "mbps": ram.get("mbps")}
    finally:
        for q in qmps:
            q.close()
        kill_all()
        _cleanups.remove(kill_all)


def qemu_point(tmp, mib, load, tls_dir, runs, log):
    s = [qemu_once(tmp, mib, load, tls_dir) for _ in range(runs)]
    pt = {"samples": s,
          "total_s": summary([x["total_s"] for x in s]),
          "downtime_ms": summary([x["downtime_ms"] for x in s]),
          "wire_mib": summary([x["wire_bytes"] / 2**20 for x in s]),
          "ram_mib_s": summary([mib / x["total_s"] for x in s]),
          "wire_mib_s": summary([x["wire_bytes"] / 2**20 / x["total_s"]
                                 for x in s])}
    log(f"  QEMU {'TLS' if tls_dir else 'TCP'} {mib} MiB {load}: total "
        f"{pt['total_s']['median']:.2f} s, downtime "
        f"{pt['downtime_ms']['median']:.1f} ms, wire "
        f"{pt['wire_mib']['median']:.0f} MiB")
    return pt


# ------------------------------------------------------------ run

def _key(transport, enc, mib, load):
    return f"{transport}/{enc}/{mib}/{load}"


def run(plan, qemu_ok, log):
    """plan: {"runs": N, "qemu_runs": M}."""
    res = {"method": __doc__.strip(), "ours": {}, "qemu": {}, "errors": []}
    tmp = tempfile.mkdtemp(prefix="xen-bench-mig-")
    _cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    ca = tlscerts.CA(os.path.join(tmp, "ca"))
    creds = [ca.creds_dir(os.path.join(tmp, f"creds{i}"),
                          server=["127.0.0.1"], client=f"host{i}")
             for i in range(2)]
    res["loopback_tcp_gibs"] = loopback_gibs()
    log(f"  loopback TCP (one stream, Python): "
        f"{res['loopback_tcp_gibs']:.2f} GiB/s")

    def attempt(where, key, fn):
        try:
            where[key] = fn()
        except Exception as e:  # noqa: BLE001 - recorded, run goes on
            res["errors"].append(f"{key}: {e}")
            log(f"  migration {key}: ERROR {e}")

    for transport in TRANSPORTS:
        tls = transport == "tls"
        pair = Pair(tmp, creds if tls else [None, None])
        try:
            for enc in ENCODINGS:
                for mib in SIZES:
                    for load in LOADS:
                        attempt(res["ours"], _key(transport, enc, mib, load),
                                lambda: ours_point(pair, tls, enc, mib, load,
                                                   plan["runs"], log))
        finally:
            pair.stop()
    if qemu_ok:
        for transport in TRANSPORTS:
            for mib in SIZES:
                for load in LOADS:
                    attempt(res["qemu"], _key(transport, "none", mib, load),
                            lambda: qemu_point(
                                tmp, mib, load, creds[0] if transport ==
                                "tls" else None, plan["qemu_runs"], log))
    return res


def table_rows(r, add):
    """Rows for run.py's table: add(metric, ours, qemu, variant)."""
    def med(d, k):
        return ((d or {}).get(k) or {}).get("median")

    gib = r.get("loopback_tcp_gibs")
    add("loopback TCP limit (one stream), MiB/s", gib and gib * 1024, None,
        None)
    for transport in TRANSPORTS:
        for enc in ENCODINGS:
            for mib in SIZES:
                for load in LOADS:
                    k = _key(transport, enc, mib, load)
                    o = r["ours"].get(k)
                    q = r["qemu"].get(k)
                    v = QEMU_VARIANT if q else None
                    size = f"{mib} MiB" if mib < 1024 else \
                        f"{mib // 1024} GiB"
                    what = f"migration {transport.upper()} {enc} {size} " \
                        f"{load}"
                    add(f"{what}: total, s", med(o, "total_s"),
                        med(q, "total_s"), v)
                    add("  downtime, ms", med(o, "downtime_ms"),
                        med(q, "downtime_ms"), v)
                    add("  on the wire, MiB", med(o, "wire_mib"),
                        med(q, "wire_mib"), v)
                    add("  wire MiB/s", med(o, "wire_mib_s"),
                        med(q, "wire_mib_s"), v)
    # What TLS costs, each side against its own plain TCP in this run.
    for enc in ENCODINGS:
        for mib in SIZES:
            for load in LOADS:
                def ratio(d):
                    tls = med(d.get(_key("tls", enc, mib, load)),
                              "wire_mib_s")
                    tcp = med(d.get(_key("tcp", enc, mib, load)),
                              "wire_mib_s")
                    return tls / tcp if tls and tcp else None
                q = ratio(r["qemu"]) if enc == "none" else None
                size = f"{mib} MiB" if mib < 1024 else f"{mib // 1024} GiB"
                add(f"migration TLS / TCP wire MiB/s, {enc} {size} {load}",
                    ratio(r["ours"]), q, QEMU_VARIANT if q else None)
                for transport in TRANSPORTS:
                    add(f"  ours {transport.upper()}: daemon CPU s per GiB "
                        "on the wire", med(r["ours"].get(
                            _key(transport, enc, mib, load)),
                            "cpu_s_per_gib"), None, None)
