"""How guests end: the exit guest leaves through the debug-exit port, a
triple fault, an unknown I/O port (with strict_io, which the harness sets
for the project's guests), a reset through 0xCF9 or the keyboard
controller, or an emulation failure; the domain then follows its on_*
action.  Meanwhile a counter guest in the same daemon keeps counting.
Without strict_io a port or address no device claims behaves as on a PC:
reads are all ones, writes are dropped, the guest goes on."""
import json
import os
import re
import shutil
import struct

import pytest

from harness import (ConsoleStream, build_has, guest_path, kvm_module,
                     still_fine, wait_until)

EXIT_WHY = {
    "triplefault": "triple fault",
    "badport": "unknown I/O port 0x555 (out, 1 bytes)",
    "emulation": "emulation failure (suberror 1)",
}
RESET_WHY = {
    "reboot-cf9": "guest reset through port 0xcf9",
    "reboot-kbd": "guest reset through the keyboard controller",
}
NOW_LINE = {
    "exit": "EXIT GUEST code=",
    "triplefault": "TRIPLE FAULT NOW",
    "badport": "BAD PORT NOW",
    "reboot-cf9": "REBOOT CF9 NOW",
    "reboot-kbd": "REBOOT KBD NOW",
    "exec-unmapped": "EXEC UNMAPPED NOW",
}


def create_exit_guest(daemon, name, mode, kernel="exit", strict_io=True,
                      args="", **actions):
    """Create the guest paused, attach a console stream, unpause: the
    stream shows everything the guest printed even if the domain is
    destroyed at once.  Returns (domid, ConsoleStream)."""
    extra = "".join(f'{k} = "{v}"\n' for k, v in actions.items())
    daemon.create(name, kernel=kernel, cmdline=f"mode={mode} {args}".strip(),
                  extra=extra, paused=True, strict_io=strict_io)
    domid = daemon.domid(name)
    con = ConsoleStream(daemon.sock, name)
    daemon.xl("unpause", name)
    return domid, con


def assert_register_dump(daemon, domid, why):
    """The daemon logged `why` with the vCPU's registers."""
    m = daemon.wait_log(rf"error: d{domid}v0: {re.escape(why)}: "
                        rf"rip=([0-9a-f]{{16}}) rsp=[0-9a-f]{{16}} "
                        rf"rflags=[0-9a-f]{{8}}\n")
    # The dump is several log lines: wait for its last one.
    daemon.wait_log(rf"d{domid}v0:  cs=[0-9a-f]{{4}}\(")
    log = daemon.log()
    tail = log[log.index(m.group(0)):]
    for reg in (r"rax=[0-9a-f]{16} rbx=[0-9a-f]{16} rcx=", r"r13=",
                r"cr0=[0-9a-f]+ cr2=[0-9a-f]+ cr3=", r"cs=[0-9a-f]{4}\("):
        assert re.search(rf"d{domid}v0:  {reg}", tail), (reg, tail[:2000])
    return int(m.group(1), 16)


def follow(daemon, name, domid, action, state, reason, now_line,
           witness, con=None):
    """The domain followed `action` after ending with `reason`; `con` is
    the console attached before it started."""
    if action == "destroy":
        daemon.wait_domain_gone(name)
        daemon.wait_log(rf"d{domid}: destroying '{name}'")
        if con:
            con.wait_closed()
    elif action == "preserve":
        d = daemon.wait_state(name, state)
        assert d["shutdown_reason"] == reason
        assert d["id"] == domid
        daemon.wait_log(rf"d{domid}: preserved in state {state}")
    elif action == "restart":
        # The guest boots again and does the same thing again.
        if now_line:
            daemon.wait_console(name, rf"(?s){re.escape(now_line)}.*"
                                      rf"{re.escape(now_line)}")
        daemon.wait_log(rf"d{domid}: restarted")
        assert daemon.domid(name) == domid
        daemon.xl("destroy", name)
        daemon.wait_domain_gone(name)
    else:
        raise AssertionError(action)
    daemon.wait_log(rf"d{domid}: {reason} -> {action}")
    if con:
        if now_line:
            con.wait(re.escape(now_line))
        if action == "restart" and now_line:
            con.wait(rf"(?s){re.escape(now_line)}.*{re.escape(now_line)}")
        con.close()
    still_fine(daemon, witness)


# ------------------------------------------------------------ debug exit

@pytest.mark.parametrize("code", [0, 5, 255])
def test_debug_exit_code(daemon, witness, feature, code):
    feature("DEV_DEBUG_EXIT")
    daemon.create("ex", kernel="exit", cmdline=f"mode=exit code={code}",
                  extra='on_poweroff = "preserve"\n')
    domid = daemon.domid("ex")
    d = daemon.wait_state("ex", "shutdown")
    assert d["exit_code"] == (code << 1) | 1
    assert d["shutdown_reason"] == "poweroff"
    assert f"EXIT GUEST code={code}" in daemon.console("ex")
    assert "still alive" not in daemon.console("ex")
    daemon.wait_log(rf"d{domid}: guest exited with code "
                    rf"{(code << 1) | 1} \(poweroff\)")
    js = {x["name"]: x for x in json.loads(daemon.xl("list",
                                                     "--json").out)}
    assert js["ex"]["exit_code"] == (code << 1) | 1
    assert js["ex"]["shutdown_reason"] == "poweroff"
    still_fine(daemon, witness)
    daemon.xl("destroy", "ex")


@pytest.mark.parametrize("action", ["destroy", "restart"])
def test_debug_exit_actions(daemon, witness, feature, action):
    feature("DEV_DEBUG_EXIT")
    domid, con = create_exit_guest(daemon, "ex2", "exit",
                                   on_poweroff=action)
    follow(daemon, "ex2", domid, action, "shutdown", "poweroff",
           NOW_LINE["exit"], witness, con)


@pytest.mark.parametrize("action", ["destroy", "preserve"])
def test_debug_exit_port_absent(daemon, witness, action):
    """Without DEV_DEBUG_EXIT port 0xf4 is an unknown port: a crash."""
    if build_has("DEV_DEBUG_EXIT"):
        pytest.skip("DEV_DEBUG_EXIT is in this build")
    domid, con = create_exit_guest(daemon, "nx", "exit", on_crash=action,
                                   on_poweroff="preserve")
    assert_register_dump(daemon, domid, "unknown I/O port 0xf4 (out, "
                                        "1 bytes)")
    if action == "preserve":
        d = daemon.wait_state("nx", "crashed")
        assert d["exit_code"] is None
        assert d["shutdown_reason"] == "crash"
    follow(daemon, "nx", domid, action, "crashed", "crash",
           NOW_LINE["exit"], witness, con)


# ------------------------------------------------------------ crashes

@pytest.mark.parametrize("action", ["destroy", "preserve", "restart"])
@pytest.mark.parametrize("mode", ["triplefault", "badport"])
def test_crash(daemon, witness, mode, action):
    domid, con = create_exit_guest(daemon, "cr", mode, on_crash=action,
                                   on_poweroff="preserve",
                                   on_reboot="preserve")
    rip = assert_register_dump(daemon, domid, EXIT_WHY[mode])
    if mode == "triplefault" and kvm_module() == "kvm_amd":
        # kvm-amd INITs the vCPU at the shutdown intercept, before
        # userspace sees the exit: the dump is the reset state, and the
        # log says so (tests/system/test_exits_on_svm.py has the same).
        assert rip == 0xfff0, hex(rip)
        daemon.wait_log(rf"d{domid}v0: kvm-amd re-initializes a vCPU at "
                        rf"a triple fault: the registers below are its "
                        rf"INIT state")
    else:
        assert 0x100000 <= rip < 0x200000, hex(rip)   # in the image
    daemon.wait_log(rf"d{domid}: {re.escape(EXIT_WHY[mode])} \(crash\)")
    if mode == "badport":
        # rdx holds the port the guest wrote to.
        assert re.search(rf"d{domid}v0:  rax=[0-9a-f]{{16}} "
                         rf"rbx=[0-9a-f]{{16}} rcx=[0-9a-f]{{16}} "
                         rf"rdx=0000000000000555", daemon.log())
    follow(daemon, "cr", domid, action, "crashed", "crash", NOW_LINE[mode],
           witness, con)


# ------------------------------------------------------------ unclaimed

def unclaimed_log_lines(daemon, domid, what):
    return re.findall(rf"warning: d{domid}v0: {re.escape(what)}.*\n",
                      daemon.log())


@pytest.mark.parametrize("port", [0x555, 0x510])
def test_unclaimed_port_and_mmio_read_all_ones(daemon, witness, port):
    """strict_io = 0: writes to a port and an address no device claims
    are dropped, reads of 1, 2 and 4 bytes return all ones, the guest
    goes on, and the log names the port once however often it is used.
    (0x510 is fw_cfg's selector in QEMU; the build may claim it.)"""
    if port == 0x510 and build_has("DEV_FW_CFG"):
        pytest.skip("fw_cfg claims 0x510 in this build")
    names = ("un1", "un2")
    ids = []
    for name in names:
        domid, con = create_exit_guest(daemon, name, "unclaimed",
                                       strict_io=False,
                                       args=f"port={port:#x}",
                                       on_poweroff="preserve",
                                       on_crash="preserve")
        ids.append(domid)
        con.wait(r"UNCLAIMED DONE")
        con.close()
    for name, domid in zip(names, ids):
        text = daemon.console(name)
        assert (f"UNCLAIMED port={port:#x} inb=0xff inw=0xffff "
                f"inl=0xffffffff\r\n") in text, text
        assert ("UNCLAIMED mmio=0x10000000 readb=0xff readl=0xffffffff"
                "\r\n") in text, text
        if build_has("DEV_DEBUG_EXIT"):
            d = daemon.wait_state(name, "shutdown")
            assert d["exit_code"] == 1, d
        else:
            daemon.wait_console(name, r"UNCLAIMED still alive")
            assert daemon.domain(name)["state"] == "running"
        # Six accesses to the port, one line in the log, per domain.
        daemon.wait_log(rf"d{domid}v0: unknown I/O port {port:#x} "
                        rf"\(out, 1 bytes\): no device there")
        assert len(unclaimed_log_lines(
            daemon, domid, f"unknown I/O port {port:#x}")) == 1, \
            daemon.log()
        assert unclaimed_log_lines(
            daemon, domid, "unclaimed MMIO write of 4 bytes at 0x10000000")
        assert "(crash)" not in daemon.log().split(f"d{domid}: created")[1]
    still_fine(daemon, witness)


def test_unclaimed_mmio_with_strict_io_crashes(daemon, witness):
    domid, con = create_exit_guest(daemon, "um", "unclaimed",
                                   args="what=mmio", on_crash="preserve")
    why = "unclaimed MMIO write of 4 bytes at 0x10000000"
    rip = assert_register_dump(daemon, domid, why)
    assert 0x100000 <= rip < 0x200000, hex(rip)
    d = daemon.wait_state("um", "crashed")
    assert d["shutdown_reason"] == "crash"
    con.close()
    assert "UNCLAIMED mmio" not in daemon.console("um")
    still_fine(daemon, witness)


# ------------------------------------------------------------ resets

@pytest.mark.parametrize("action", ["restart", "destroy", "preserve"])
@pytest.mark.parametrize("mode", ["reboot-cf9", "reboot-kbd"])
def test_guest_reset(daemon, witness, mode, action):
    domid, con = create_exit_guest(daemon, "rs", mode, on_reboot=action,
                                   on_crash="preserve")
    daemon.wait_log(rf"d{domid}: {re.escape(RESET_WHY[mode])} \(reboot\)")
    follow(daemon, "rs", domid, action, "shutdown", "reboot",
           NOW_LINE[mode], witness, con)
    assert "crash" not in daemon.log().split(f"d{domid}: created")[1]


# ------------------------------------------------------------ emulation

def kernel_entering_outside_ram(tmp_path, entry=0x10000000):
    """The exit guest with its ELF entry point moved to a guest-physical
    address with no RAM behind it (256 MiB, above the 32 MiB the domain
    gets): the first instruction fetch is from nowhere, which KVM cannot
    emulate (KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION)."""
    data = bytearray(open(guest_path("exit"), "rb").read())
    assert data[:5] == b"\x7fELF\x01"          # ELF32: e_entry at 0x18
    struct.pack_into("<I", data, 0x18, entry)
    path = os.path.join(str(tmp_path), "entry-outside-ram.elf")
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("action", ["destroy", "preserve", "restart"])
def test_emulation_failure(daemon, witness, tmp_path, action):
    kernel = kernel_entering_outside_ram(tmp_path)
    domid, con = create_exit_guest(daemon, "emu", "exit", kernel=kernel,
                                   on_crash=action)
    rip = assert_register_dump(daemon, domid, EXIT_WHY["emulation"])
    assert rip == 0x10000000
    if action == "restart":
        # Every boot fails the same way; count two of them.
        def two_failures():
            return len(re.findall(rf"d{domid}v0: emulation failure",
                                  daemon.log())) >= 2
        wait_until(two_failures, 20, "a second emulation failure")
        daemon.wait_log(rf"d{domid}: restarted")
        daemon.xl("destroy", "emu")
        daemon.wait_domain_gone("emu")
        daemon.wait_log(rf"d{domid}: crash -> restart")
        con.wait_closed()
        still_fine(daemon, witness)
    else:
        follow(daemon, "emu", domid, action, "crashed", "crash", "",
               witness, con)
    assert con.text == ""       # it never ran one instruction
    con.close()
    assert daemon.console("witness").count("COUNTER READY") == 1


@pytest.mark.parametrize("action", ["destroy", "preserve", "restart"])
def test_emulation_failure_from_a_running_guest(daemon, witness, action):
    """The exit guest's exec-unmapped mode jumps to GPA 0x10000000, which
    its page tables map but where a 32 MiB domain has no RAM."""
    domid, con = create_exit_guest(daemon, "emu2", "exec-unmapped",
                                   on_crash=action)
    rip = assert_register_dump(daemon, domid, EXIT_WHY["emulation"])
    assert rip == 0x10000000
    daemon.wait_log(rf"d{domid}: {re.escape(EXIT_WHY['emulation'])} "
                    rf"\(crash\)")
    follow(daemon, "emu2", domid, action, "crashed", "crash",
           NOW_LINE["exec-unmapped"], witness, con)


def test_restart_that_cannot_boot_destroys_the_domain(daemon, witness,
                                                    tmp_path):
    """on_reboot=restart reloads the kernel; if it is gone by then the
    domain is destroyed with a log line saying why."""
    kernel = tmp_path / "vanishing.elf"
    shutil.copy(guest_path("counter"), kernel)
    daemon.create("van", kernel=str(kernel), cmdline="interval=200")
    domid = daemon.domid("van")
    daemon.wait_console("van", r"COUNTER READY")
    os.unlink(kernel)
    daemon.xl("reboot", "van")
    daemon.wait_domain_gone("van")
    daemon.wait_log(rf"d{domid}: restart failed: {re.escape(str(kernel))}:"
                    rf" No such file or directory")
    still_fine(daemon, witness)


# ------------------------------------------------------------ several

def test_many_endings_at_once(daemon, witness, tmp_path):
    """Guests ending in every way at the same time, in one daemon."""
    modes = ["triplefault", "badport", "reboot-cf9", "reboot-kbd",
             "exec-unmapped"]
    if build_has("DEV_DEBUG_EXIT"):
        modes.append("exit")
    for i, mode in enumerate(modes):
        daemon.create(f"m{i}", kernel="exit", cmdline=f"mode={mode} code=3",
                      extra='on_crash = "preserve"\non_reboot = "preserve"\n'
                            'on_poweroff = "preserve"\n')
    want = {"triplefault": ("crashed", "crash"),
            "badport": ("crashed", "crash"),
            "reboot-cf9": ("shutdown", "reboot"),
            "reboot-kbd": ("shutdown", "reboot"),
            "exec-unmapped": ("crashed", "crash"),
            "exit": ("shutdown", "poweroff")}
    for i, mode in enumerate(modes):
        d = daemon.wait_state(f"m{i}", want[mode][0])
        assert d["shutdown_reason"] == want[mode][1], (mode, d)
        assert d["exit_code"] == (7 if mode == "exit" else None)
    still_fine(daemon, witness)
    for i in range(len(modes)):
        daemon.xl("destroy", f"m{i}")
    assert set(daemon.domains()) == {"witness"}
    still_fine(daemon, witness)
