"""Live migration of a Debian guest between two daemons in the host VM,
over TLS with mutual certificates (tests/tlscerts.py), its shell still
answering and its network (virtio-net) still carrying a TCP stream
afterwards.

The two daemons are two hosts as far as networking goes: the source runs
in the host VM's own network namespace, the destination in a second one
(busybox `unshare -n`), joined by a veth pair.  Each namespace has a
bridge `br0`; the guest's `vif = [ 'mac=..., bridge=br0' ]` makes the
daemon create its tap (`vif<domid>.0`) in its own namespace and add it to
that namespace's br0, so the destination's tap never clashes with the
source's.  The TCP stream's sender (seqstream, 10.0.2.2 on the source's
br0) reaches the guest (10.0.2.15) through the source's tap before and
through the veth and the destination's tap after.  The migration itself
goes from the source to the destination's br0 address, 10.0.2.3.

The source is a second daemon in the host VM (with `--migrate-tls`: the
host's own daemon has no certificates), so the session's other tests see
no change."""
import json
import os
import re
import sys
import time

import pytest

from syshost import GUEST_CMDLINE, Guest, record_boot, record_measure
from sysimages import GUEST_INITRD, GUEST_KERNEL
import sysworkloads as wl

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from harness import build_has  # noqa: E402
import tlscerts  # noqa: E402

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not build_has("MIGRATION") or
                       not build_has("DEV_VIRTIO"),
                       reason="this build has no MIGRATION or no "
                              "DEV_VIRTIO"),
]

MAC = "00:16:3e:12:34:5a"
NAME = "vmig"
SRC_SOCK = "/run/xen-src.sock"
DST_SOCK = "/run/xen-dst.sock"
DST_IP = "10.0.2.3"
PORT = 8002
SRC_XL = f"XL_SOCKET={SRC_SOCK} xl"
DST_XL = f"XL_SOCKET={DST_SOCK} xl"
NS_PID = "/run/mig-ns.pid"
SHELL_CMDLINE = f"{GUEST_CMDLINE} systest=shell"


def in_ns(cmd):
    """A shell command run in the destination's network namespace."""
    return f"nsenter -t $(cat {NS_PID}) -n sh -c '{cmd}'"


def bridge(host, name, addr, ns=False):
    """A bridge with `addr`, forwarding at once (STP off, no forward
    delay: through a sysfs mounted in the bridge's namespace)."""
    sysfs = "/tmp/sys-ns" if ns else "/sys"
    cmd = (f"ip link del {name} >/dev/null 2>&1; brctl addbr {name} && "
           f"echo 0 >{sysfs}/class/net/{name}/bridge/stp_state && "
           f"echo 0 >{sysfs}/class/net/{name}/bridge/forward_delay && "
           f"ip addr add {addr} dev {name} && ip link set {name} up")
    if ns:
        cmd = (f"mkdir -p {sysfs} && unshare -m sh -c "
               f"\"mount -t sysfs none {sysfs} && {cmd}\"")
    host.sh(in_ns(cmd) if ns else cmd)


def start_daemon(host, sock, state, log, extra, ns=False):
    cmd = (f"mkdir -p {state} && xen --socket {sock} --state-dir {state} "
           f"--foreground --log {log} {extra} </dev/null >{log}.stderr "
           f"2>&1 & echo $! >{sock}.pid")
    host.sh(in_ns(cmd) if ns else f"({cmd})")
    deadline = time.monotonic() + 60
    while host.run(f"XL_SOCKET={sock} xl list", check=False)[0] != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon on {sock} did not answer:\n" +
                                 host.read_file(f"{log}.stderr"))
        time.sleep(0.5)


def put_creds(host, local_dir, remote_dir):
    host.sh(f"mkdir -p {remote_dir}")
    for f in os.listdir(local_dir):
        if f.endswith(".pem"):
            with open(os.path.join(local_dir, f), "rb") as fh:
                host.put(f"{remote_dir}/{f}", fh.read())


def cleanup(host):
    for sock in (SRC_SOCK, DST_SOCK):
        host.run(f"XL_SOCKET={sock} xl destroy {NAME} >/dev/null 2>&1; "
                 f"kill $(cat {sock}.pid) 2>/dev/null", check=False)
    host.run(f"ip link del vmig0 2>/dev/null; ip link del br0 2>/dev/null; "
             f"kill $(cat {NS_PID}) 2>/dev/null; rm -f {NS_PID}",
             check=False)


@pytest.fixture(scope="module")
def two_hosts(system_host, tmp_path_factory):
    """The source daemon, and the destination in its own namespace, both
    with certificates of one CA; br0 on each side, joined by veth."""
    host = system_host
    root = str(tmp_path_factory.mktemp("mig-tls"))
    ca = tlscerts.CA(os.path.join(root, "ca"))
    put_creds(host, ca.creds_dir(os.path.join(root, "src"),
                                 client="source"), "/tmp/tls-src")
    put_creds(host, ca.creds_dir(os.path.join(root, "dst"), server=[DST_IP],
                                 client="destination"), "/tmp/tls-dst")
    cleanup(host)
    try:
        host.sh(f"(unshare -n sh -c 'echo $$ >{NS_PID}; "
                f"exec sleep 1000000' </dev/null >/dev/null 2>&1 &); "
                f"i=0; until [ -s {NS_PID} ] || [ $i -gt 50 ]; do "
                f"sleep 0.1; i=$((i + 1)); done; [ -s {NS_PID} ]")
        host.sh(in_ns("ip link set lo up"))
        bridge(host, "br0", "10.0.2.2/24")
        bridge(host, "br0", f"{DST_IP}/24", ns=True)
        # busybox's ip names a veth's peer itself (vethN): find it
        host.sh("ip link add vmig0 type veth")
        out = host.sh("ip -o link show vmig0")
        peer = re.search(r"vmig0@(\w+)", out).group(1)
        host.sh(f"ip link set {peer} netns $(cat {NS_PID}) && "
                "brctl addif br0 vmig0 && ip link set vmig0 up")
        host.sh(in_ns(f"ip link set {peer} name vmig1 && "
                      "brctl addif br0 vmig1 && ip link set vmig1 up"))
        start_daemon(host, SRC_SOCK, "/var/lib/xen-src",
                     "/var/log/xen-src.log", "--migrate-tls /tmp/tls-src")
        start_daemon(host, DST_SOCK, "/var/lib/xen-dst",
                     "/var/log/xen-dst.log",
                     f"--migrate-tls /tmp/tls-dst "
                     f"--migrate-listen {DST_IP}:{PORT}", ns=True)
        yield host
    finally:
        for log in ("/var/log/xen-src.log", "/var/log/xen-dst.log"):
            print(f"--- {log} (tail) ---\n" +
                  host.run(f"tail -n 40 {log}", check=False)[1])
        cleanup(host)


def migrate(host, timeout=1500):
    """`xl migrate --json` in the background, its progress printed every
    15 s (`xl migrate-status`); its final report.  Fails with both
    daemons' logs when it fails or does not end in `timeout` s."""
    out = "/tmp/guests/migrate.out"
    host.sh(f"rm -f {out}; ({SRC_XL} migrate --json --auto-converge "
            f"{NAME} {DST_IP}:{PORT} "
            f">{out} 2>&1; echo \"rc=$?\" >>{out}) </dev/null "
            f">/dev/null 2>&1 &")
    deadline = time.monotonic() + timeout
    while True:
        text = host.read_file(out)
        if re.search(r"^rc=\d+", text, re.M):
            break
        st = host.run(f"{SRC_XL} migrate-status {NAME}", check=False)[1]
        print(f"migrate-status: {' '.join(st.split())[:300]}")
        if time.monotonic() > deadline:
            break
        time.sleep(15)
    m = re.search(r"^rc=(\d+)", text, re.M)
    if not m or m.group(1) != "0":
        logs = host.run("tail -n 30 /var/log/xen-src.log "
                        "/var/log/xen-dst.log", check=False)[1]
        raise AssertionError(f"xl migrate: {text[-3000:]}\n{logs}")
    # the report is one JSON object over several lines
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_debian_guest_migrates_over_tls_and_keeps_its_network(two_hosts):
    host = two_hosts
    g = Guest(host, NAME, GUEST_KERNEL["bzimage"], GUEST_INITRD,
              SHELL_CMDLINE, memory=256,
              extra=f"vif = [ 'mac={MAC}, bridge=br0' ]\n")
    g.xl = SRC_XL
    g.start()
    g.wait(r"SYSTEST: ready", timeout=400)
    record_boot(f"bzimage, 1 vCPU, 256 MiB: domain created to init ready "
                f"({NAME})", time.monotonic() - g.started)
    assert wl.net_up(g) == MAC
    wl.ping_from_guest(g)
    wl.ping_from_host(host)

    s = wl.SeqStream(host, g)
    s.start()
    try:
        before = s.wait_lines(300)
        rep = migrate(host)
        assert rep["state"] == "completed", rep
        # The guest is the destination's now: its console too.
        g.xl = DST_XL
        g.attach_console(history=False)
        assert g.record()["state"] == "running", g.record()
        assert NAME not in host.run(f"{SRC_XL} list", check=False)[1]
        record_measure("xl migrate (TLS, netns) of a 256 MiB Debian guest "
                       "under a TCP stream",
                       f"downtime {rep['downtime_ms']} ms, total "
                       f"{rep['total_s']} s")
        s.wait_lines(before + 300)
    finally:
        result = s.stop()
    s.check(result, "virtio-net across xl migrate (TLS, two namespaces)")
    wl.ping_from_host(host)
    # Its shell still answers, on the destination's console.
    g.do("echo migrated-$((6 * 7))", r"migrated-42")
    g.check_clean()
