#!/usr/bin/python3
"""Boot Debian's kernel under the hypervisor N times in one QEMU host VM and
count the boots that did not reach the guest's init.

A tool for intermittent guest failures in the system tier (tests/system),
such as the one that made the host VM single-CPU: compare host CPU counts,
TCG threading modes, protocols or QEMU builds on the same guest.

    XEN_BUILD=$PWD/build scripts/system/boot-loop.py --host-cpus 2 -n 12

Needs a build (`make`) and what scripts/setup.sh installs.  Failed boots'
messages (daemon log and guest console) go to --out.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("XEN_BUILD", os.path.join(ROOT, "build"))

import sysimages  # noqa: E402
from harness import BUILD, XEN, XL, guest_path  # noqa: E402
from syshost import GUEST_INITRD, GUEST_KERNEL, Guest, HostVM  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=10, help="boots (10)")
    p.add_argument("--host-cpus", type=int, default=1,
                   help="the host VM's -smp (1, as the system tier)")
    p.add_argument("--tcg-thread", choices=("single", "multi"),
                   help="QEMU's TCG threading mode (QEMU's default)")
    p.add_argument("--protocol", choices=sorted(GUEST_KERNEL),
                   default="pvh")
    p.add_argument("--vcpus", type=int, default=2)
    p.add_argument("--memory", type=int, default=192, help="MiB")
    p.add_argument("--loglevel", type=int, default=7,
                   help="the guest kernel's console loglevel")
    p.add_argument("--out", default="/tmp/boot-loop",
                   help="where failed boots' messages are written")
    return p.parse_args()


def start_host(args):
    work = os.path.join(BUILD, "system")
    # The same image as the system tier's, so that neither rebuilds it.
    images = sysimages.build_images(work, [XEN, XL], guest_path("exit"),
                                    sysimages.workload_progs(BUILD))
    host = HostVM(work, images["vmlinuz"], images["host_initrd"],
                  smp=args.host_cpus)
    if args.tcg_thread:
        argv = host.argv
        accel = f"tcg,thread={args.tcg_thread}"
        host.argv = lambda: [accel if a == "tcg" else a for a in argv()]
    print(f"host VM up in {host.start():.1f} s", flush=True)
    return host


def boot_once(host, args, i):
    """One boot to the guest's ready line; the failure text or None."""
    cmdline = (f"console=ttyS0 loglevel={args.loglevel} no_timer_check "
               "systest=poweroff")
    g = Guest(host, f"loop{i}", GUEST_KERNEL[args.protocol], GUEST_INITRD,
              cmdline, memory=args.memory, vcpus=args.vcpus,
              on_crash="preserve")
    g.start()
    try:
        g.wait(r"SYSTEST: ready")
        return None
    except AssertionError as e:
        return str(e)
    finally:
        g.destroy()


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    host = start_host(args)
    failed = 0
    try:
        for i in range(args.n):
            t0 = time.monotonic()
            why = boot_once(host, args, i)
            secs = time.monotonic() - t0
            if why is not None:
                failed += 1
                path = os.path.join(args.out, f"boot-{i}.txt")
                with open(path, "w") as f:
                    f.write(why)
                print(f"boot {i}: FAILED after {secs:.1f} s ({path})",
                      flush=True)
            else:
                print(f"boot {i}: ready in {secs:.1f} s", flush=True)
    finally:
        host.stop()
    print(f"{failed} of {args.n} boots failed ({args.protocol}, "
          f"{args.vcpus} vCPU(s), host -smp {args.host_cpus})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
