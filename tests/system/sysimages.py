"""Images for the system tier: a host initramfs (busybox, kvm modules, the
project's binaries and their libraries, the guest images) and a guest
initramfs (busybox and an init script), written as newc cpio archives by
Python so that no root and no cpio tool is needed."""
import glob
import os
import re
import shutil
import stat
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXTRACT_VMLINUX = os.path.join(ROOT, "scripts", "system",
                               "extract-vmlinux.py")
BUSYBOX = "/bin/busybox"
# Where the guests are inside the host VM.
GUEST_KERNEL = {"bzimage": "/guest/bzImage", "pvh": "/guest/vmlinux"}
GUEST_INITRD = "/guest/initrd"
# The project's own exit-test guest (tests/guests/exit.c), when built.
EXIT_GUEST = "/guest/exit.elf"
# kvm-amd, and virtio-serial for the harness's channel to the host.
HOST_MODULES = ("kvm-amd", "virtio_pci", "virtio_console")
# Loaded by the guests' init: fw_cfg's sysfs driver (no dependencies).
GUEST_MODULES = ("qemu_fw_cfg",)


class Cpio:
    """A newc ("070701") cpio archive built in memory."""

    def __init__(self):
        self.parts = []
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0],
            rdev[1], len(name_b), 0))
        self.ino += 1
        out = hdr.encode() + name_b
        out += b"\0" * (-len(out) % 4)
        out += data + b"\0" * (-len(data) % 4)
        self.parts.append(out)

    def dir(self, path):
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.dir(os.path.dirname(path))
        self.dirs.add(path)
        self._entry(path, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, path, data, mode=0o644):
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | mode, data)

    def copy(self, path, src, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        if mode is None:
            mode = os.stat(src).st_mode & 0o777
        self.file(path, data, mode)

    def symlink(self, path, target):
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, path, major, minor, mode=0o600):
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, stat.S_IFCHR | mode, rdev=(major, minor))

    def write(self, dest):
        self._entry("TRAILER!!!", 0)
        tmp = dest + ".tmp"
        with open(tmp, "wb") as f:
            for p in self.parts:
                f.write(p)
            f.write(b"\0" * (-f.tell() % 512))
        os.replace(tmp, dest)


def busybox_base(c):
    """busybox with a symlink per applet in /bin, and /dev/console."""
    c.copy("bin/busybox", BUSYBOX, 0o755)
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True,
                             text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            c.symlink(f"bin/{a}", "busybox")
    c.symlink("sbin", "bin")
    c.symlink("usr/bin", "../bin")
    for d in ("proc", "sys", "dev", "tmp", "run", "etc"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)


# ------------------------------------------------------------------ kernel
def find_kernel():
    """(release, vmlinuz, modules dir) of the newest installed Debian
    kernel that has kvm-amd; None when there is none."""
    best = None
    for vmlinuz in glob.glob("/boot/vmlinuz-*"):
        rel = os.path.basename(vmlinuz)[len("vmlinuz-"):]
        mods = os.path.join("/lib/modules", rel)
        if not glob.glob(os.path.join(mods, "kernel/arch/x86/kvm/kvm-amd.ko*")):
            continue
        key = [int(x) if x.isdigit() else x
               for x in re.split(r"[.-]", rel)]
        key = [(0, x) if isinstance(x, int) else (1, x) for x in key]
        if best is None or key > best[0]:
            best = (key, rel, vmlinuz, mods)
    return best and best[1:]


def elf_xen_note(path, note_type):
    """The value of the ELF note ("Xen", note_type) of a 64-bit ELF file,
    or None: how the loader finds XEN_ELFNOTE_PHYS32_ENTRY (18)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type != 4:         # PT_NOTE
            continue
        off, end = p_offset, p_offset + p_filesz
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, off)
            name = data[off + 12:off + 12 + namesz].rstrip(b"\0")
            desc_off = off + 12 + ((namesz + 3) & ~3)
            if name == b"Xen" and ntype == note_type:
                desc = data[desc_off:desc_off + descsz]
                return int.from_bytes(desc[:8], "little")
            off = desc_off + ((descsz + 3) & ~3)
    return None


def module_order(moddir, names):
    """The .ko paths (relative to moddir) to insmod for `names`, each
    after its dependencies, from modules.dep."""
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(m))
               .replace("_", "-"): m for m in deps}
    order = []

    def visit(m):
        if m in order:
            return
        for d in deps.get(m, []):
            visit(d)
        order.append(m)
    for n in names:
        visit(by_name[n.replace("_", "-")])
    return order


def read_module(path):
    """A module's bytes, decompressed (insmod in busybox takes plain .ko)."""
    if path.endswith(".xz"):
        import lzma
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq", path], capture_output=True,
                              check=True).stdout
    if path.endswith(".gz"):
        import gzip
        with gzip.open(path) as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ libs
def shared_libs(binary):
    """Absolute paths of the shared libraries (and the loader) `binary`
    needs, from ldd."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if "not a dynamic executable" in r.stdout + r.stderr:
        return []
    r.check_returncode()
    out = []
    for line in r.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            out.append(m.group(1))
    return out


# ------------------------------------------------------------------ builds
def _newer(dest, *srcs):
    """dest exists and is newer than every src."""
    try:
        t = os.path.getmtime(dest)
    except OSError:
        return False
    return all(os.path.getmtime(s) <= t for s in srcs)


def _same_inputs(dest, inputs):
    """dest was built from `inputs` (a description of what went in, kept
    beside it): mtimes alone miss a file added or left out."""
    try:
        with open(dest + ".inputs") as f:
            return f.read() == inputs
    except OSError:
        return False


def _record_inputs(dest, inputs):
    with open(dest + ".inputs", "w") as f:
        f.write(inputs)


def pvh_vmlinux(vmlinuz, dest):
    """The ELF vmlinux inside `vmlinuz` (cached at dest)."""
    if not _newer(dest, vmlinuz, EXTRACT_VMLINUX):
        subprocess.run(["/usr/bin/python3", EXTRACT_VMLINUX, vmlinuz,
                        dest], check=True)
    return dest


def guest_initrd(dest, moddir):
    """Busybox, the init script and, when the kernel has it as a module,
    qemu_fw_cfg (the init loads it and reports /sys/firmware/qemu_fw_cfg).
    """
    init = os.path.join(HERE, "guest-init.sh")
    mods = []
    try:
        mods = [os.path.join(moddir, m)
                for m in module_order(moddir, GUEST_MODULES)]
    except KeyError:
        pass        # a kernel without them: the init says so
    inputs = repr(mods)
    if _newer(dest, init, BUSYBOX, __file__, *mods) and \
            _same_inputs(dest, inputs):
        return dest
    c = Cpio()
    busybox_base(c)
    c.copy("init", init, 0o755)
    for path in mods:
        name = re.sub(r"\.(xz|zst|gz)$", "", os.path.basename(path))
        c.file(f"lib/modules/{name}", read_module(path))
    c.write(dest)
    _record_inputs(dest, inputs)
    return dest


def host_initrd(dest, moddir, binaries, guest_files):
    """The host VM's initramfs.  `binaries`: paths installed in /usr/bin
    with their libraries; `guest_files`: {path in host: local path}."""
    init = os.path.join(HERE, "host-init.sh")
    srcs = [init, BUSYBOX, __file__] + list(binaries) + \
        list(guest_files.values())
    inputs = repr((moddir, list(binaries), sorted(guest_files.items())))
    if _newer(dest, *srcs) and _same_inputs(dest, inputs):
        return dest
    c = Cpio()
    busybox_base(c)
    c.copy("init", init, 0o755)
    order = []
    for rel in module_order(moddir, HOST_MODULES):
        name = re.sub(r"\.(xz|zst|gz)$", "", os.path.basename(rel))
        c.file(f"lib/modules/{name}", read_module(os.path.join(moddir, rel)))
        order.append(name)
    c.file("lib/modules/order", ("\n".join(order) + "\n").encode())
    libs = set()
    for b in binaries:
        c.copy(f"usr/local/bin/{os.path.basename(b)}", b, 0o755)
        libs.update(shared_libs(b))
    for lib in sorted(libs):
        c.copy(lib, os.path.realpath(lib), 0o755)
    for path, src in guest_files.items():
        c.copy(path, src, 0o644)
    c.write(dest)
    _record_inputs(dest, inputs)
    return dest


def build_images(work, binaries, exit_guest=None):
    """Every image of the tier under `work`: the PVH vmlinux, the guest
    initramfs and the host initramfs holding `binaries` (xen, xl), the
    Debian guest's kernels and initramfs and, if given, the project's
    exit-test guest.  Returns what the tests need to know of them."""
    release, vmlinuz, moddir = find_kernel()
    os.makedirs(work, exist_ok=True)
    vmlinux = pvh_vmlinux(vmlinuz, os.path.join(work, "vmlinux"))
    initrd = guest_initrd(os.path.join(work, "guest-initrd.cpio"), moddir)
    guest_files = {GUEST_KERNEL["bzimage"]: vmlinuz,
                   GUEST_KERNEL["pvh"]: vmlinux, GUEST_INITRD: initrd}
    if exit_guest and os.path.exists(exit_guest):
        guest_files[EXIT_GUEST] = exit_guest
    host = host_initrd(os.path.join(work, "host-initrd.cpio"), moddir,
                       binaries, guest_files)
    return {"release": release, "vmlinuz": vmlinuz, "vmlinux": vmlinux,
            "host_initrd": host, "pvh_entry": elf_xen_note(vmlinux, 18),
            "exit_guest": EXIT_GUEST if EXIT_GUEST in guest_files else None}


def tools_missing():
    """What the tier needs that is not installed, as a list of reasons."""
    missing = []
    if not shutil.which("qemu-system-x86_64"):
        missing.append("qemu-system-x86_64 (package qemu-system-x86)")
    if not os.path.exists(BUSYBOX):
        missing.append(f"{BUSYBOX} (package busybox-static)")
    if not find_kernel():
        missing.append("a /boot/vmlinuz-* with kvm-amd.ko "
                       "(package linux-image-amd64)")
    return missing
