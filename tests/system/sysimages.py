"""Images for the system tier: a host initramfs (busybox, kvm modules, the
project's binaries and their libraries, QEMU, the guest images), a guest
initramfs (busybox, an init script, the virtio and ext4 modules), written as
newc cpio archives by Python, and the guests' ext4 root disk, made by
`mkfs.ext4 -d` from a directory: no root and no cpio tool needed."""
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
# The guests' ext4 root disk (a copy per test: guests write to it) and
# the static programs of the workloads (tests/system/system.mk).
GUEST_ROOTFS = "/guest/rootfs.ext4"
ROOTFS_MIB = 32
# QEMU's firmware for the twin tests (QEMU inside the host VM): `-L` there.
HOST_QEMU_FIRMWARE = "/usr/share/qemu-systest"
QEMU_FIRMWARE = ("bios-256k.bin", "kvmvapic.bin", "linuxboot_dma.bin")
# kvm-amd, virtio-serial for the harness's channel to the host, tun (the
# guests' taps: /dev/net/tun), bridge, vhost_net (vif vhost=1) and veth
# (the link to the migration test's second network namespace).
HOST_MODULES = ("kvm-amd", "virtio_pci", "virtio_console", "tun", "bridge",
                "vhost_net", "veth")
# Loaded by the guests' init, in this order after their dependencies:
# fw_cfg's sysfs driver; the virtio PCI transport and the block, net and
# rng drivers on it; ext4 for the root disk (its soft dependency,
# crypto-crc32c, comes with it).  Those the kernel has built in are
# listed, not loaded.
GUEST_MODULES = ("qemu_fw_cfg", "virtio_pci", "virtio_blk", "virtio_net",
                 "virtio_rng", "ext4", "button", "evdev")


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


def mod_name(path_or_name):
    """A module's name as the kernel spells it (dashes are underscores)."""
    return re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(path_or_name)) \
        .replace("-", "_")


class ModuleSet:
    """What a kernel's /lib/modules/RELEASE says of its modules:
    modules.dep (hard dependencies), modules.softdep ("pre:" ones, e.g.
    ext4 on crypto-crc32c), modules.alias (to name a soft dependency's
    modules) and modules.builtin (what CONFIG_...=y put in the kernel)."""

    def __init__(self, moddir):
        self.moddir = moddir
        self.deps = {}
        with open(os.path.join(moddir, "modules.dep")) as f:
            for line in f:
                mod, _, rest = line.partition(":")
                self.deps[mod] = rest.split()
        self.path = {mod_name(m): m for m in self.deps}
        self.builtin = set()
        self.softdeps = {}
        self.aliases = {}
        for fname, parse in (("modules.builtin", self._builtin),
                             ("modules.softdep", self._softdep),
                             ("modules.alias", self._alias)):
            try:
                with open(os.path.join(moddir, fname)) as f:
                    for line in f:
                        parse(line.split())
            except FileNotFoundError:
                pass

    def _builtin(self, words):
        if words:
            self.builtin.add(mod_name(words[0]))

    def _softdep(self, words):
        # softdep MOD pre: A B post: C
        if len(words) < 3 or words[0] != "softdep":
            return
        pre, when = [], None
        for w in words[2:]:
            if w.endswith(":"):
                when = w[:-1]
            elif when == "pre":
                pre.append(w)
        self.softdeps.setdefault(mod_name(words[1]), []).extend(pre)

    def _alias(self, words):
        if len(words) == 3 and words[0] == "alias" and \
                not any(c in words[1] for c in "*?["):
            self.aliases.setdefault(mod_name(words[1]), []).append(
                mod_name(words[2]))

    def resolve(self, names):
        """(order, builtin, missing) for `names`: order is [(path
        relative to moddir, optional)] to insmod in that order, each
        module after its dependencies and its soft "pre:" dependencies;
        optional marks a module reached only as a soft dependency (e.g.
        crc32c-intel, which needs SSE4.2: its failure is no error)."""
        order, placed, hard, builtin, missing = [], set(), set(), [], []

        def visit(name, optional):
            name = mod_name(name)
            if name in self.builtin:
                if name not in builtin:
                    builtin.append(name)
                return
            if name not in self.path:
                targets = self.aliases.get(name)
                if not targets:
                    if not optional and name not in missing:
                        missing.append(name)
                    return
                for t in targets:
                    visit(t, True)
                return
            path = self.path[name]
            seen = path in placed
            if seen and (optional or path in hard):
                return
            if not optional:
                hard.add(path)
            for soft in self.softdeps.get(name, []):
                visit(soft, True)
            for d in self.deps[path]:
                visit(mod_name(d), optional)
            if not seen:
                order.append(path)
                placed.add(path)
        for n in names:
            visit(n, False)
        return [(p, p not in hard) for p in order], builtin, missing


def module_order(moddir, names):
    """The .ko paths (relative to moddir) to insmod for `names`, each
    after its dependencies, from modules.dep (soft dependencies left
    out).  KeyError when one is neither a module nor built in."""
    ms = ModuleSet(moddir)
    ms.softdeps = {}
    order, _, missing = ms.resolve(names)
    if missing:
        raise KeyError(", ".join(missing))
    return [p for p, _ in order]


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


# Kconfig symbols of GUEST_MODULES: the kernel's /boot/config-RELEASE must
# agree with modules.builtin / modules.dep on each (=y built in, =m a .ko).
GUEST_MODULE_CONFIG = {
    "qemu_fw_cfg": "CONFIG_FW_CFG_SYSFS", "virtio_pci": "CONFIG_VIRTIO_PCI",
    "virtio_blk": "CONFIG_VIRTIO_BLK", "virtio_net": "CONFIG_VIRTIO_NET",
    "virtio_rng": "CONFIG_HW_RANDOM_VIRTIO", "ext4": "CONFIG_EXT4_FS",
    "button": "CONFIG_ACPI_BUTTON", "evdev": "CONFIG_INPUT_EVDEV"}


def kernel_config(moddir):
    """{CONFIG_X: value} from /boot/config-RELEASE ({} without one)."""
    conf = {}
    try:
        with open(f"/boot/config-{os.path.basename(moddir)}") as f:
            for line in f:
                k, eq, v = line.strip().partition("=")
                if eq and k.startswith("CONFIG_"):
                    conf[k] = v
    except FileNotFoundError:
        pass
    return conf


def guest_modules(moddir, names=GUEST_MODULES):
    """(order, builtin, missing) of the guests' modules (ModuleSet.resolve),
    checked against the kernel's config."""
    order, builtin, missing = ModuleSet(moddir).resolve(names)
    conf = kernel_config(moddir)
    loaded = {mod_name(p) for p, _ in order}
    for n in names:
        want = conf.get(GUEST_MODULE_CONFIG.get(n, ""))
        have = "y" if n in builtin else "m" if mod_name(n) in loaded \
            else None
        if conf and want in ("y", "m") and want != have:
            raise RuntimeError(
                f"{n}: the kernel's config says {GUEST_MODULE_CONFIG[n]}="
                f"{want} but modules.builtin/modules.dep say "
                f"{have or 'neither'} ({moddir})")
    return order, builtin, missing


class DirTree:
    """Cpio's interface, writing into a directory (for mkfs.ext4 -d).
    Device nodes cannot be made without root: they are left out (the
    guest's /dev is the devtmpfs the initramfs moves over)."""

    def __init__(self, root):
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)

    def _p(self, path):
        return os.path.join(self.root, path.strip("/"))

    def dir(self, path):
        os.makedirs(self._p(path), exist_ok=True)

    def file(self, path, data, mode=0o644):
        p = self._p(path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)

    def copy(self, path, src, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        if mode is None:
            mode = os.stat(src).st_mode & 0o777
        self.file(path, data, mode)

    def symlink(self, path, target):
        p = self._p(path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)

    def chardev(self, path, major, minor, mode=0o600):
        pass


def guest_base(c, order, builtin, missing, progs):
    """What the initramfs and the root disk share: busybox, the init
    script (the same in both: guest-init.sh), the workload script as
    /bin/systest, the static programs in /bin, and the module lists in
    /lib/modules: order ("FILE.ko" or "FILE.ko optional" a line, in
    insmod order), builtin and missing (names)."""
    busybox_base(c)
    c.copy("init", os.path.join(HERE, "guest-init.sh"), 0o755)
    c.copy("bin/systest", os.path.join(HERE, "guest-workload.sh"), 0o755)
    for p in progs:
        c.copy(f"bin/{os.path.basename(p)}", p, 0o755)
    lines = [ko_name(p) + (" optional" if opt else "") for p, opt in order]
    c.file("lib/modules/order", "".join(x + "\n" for x in lines).encode())
    c.file("lib/modules/builtin", "".join(x + "\n" for x in builtin)
           .encode())
    c.file("lib/modules/missing", "".join(x + "\n" for x in missing)
           .encode())
    for d in ("mnt", "newroot", "data"):
        c.dir(d)


def ko_name(path):
    """A module's file name in the images: FILE.ko, decompressed."""
    return re.sub(r"\.(xz|zst|gz)$", "", os.path.basename(path))


GUEST_SCRIPTS = [os.path.join(HERE, n)
                 for n in ("guest-init.sh", "guest-workload.sh")]


def guest_initrd(dest, moddir, progs=()):
    """The guests' initramfs: guest_base() and the modules' .ko files."""
    order, builtin, missing = guest_modules(moddir)
    mods = [os.path.join(moddir, p) for p, _ in order]
    inputs = repr((order, builtin, missing, list(progs)))
    if _newer(dest, *GUEST_SCRIPTS, BUSYBOX, __file__, *mods, *progs) and \
            _same_inputs(dest, inputs):
        return dest
    c = Cpio()
    guest_base(c, order, builtin, missing, progs)
    for path in mods:
        c.file(f"lib/modules/{ko_name(path)}", read_module(path))
    c.write(dest)
    _record_inputs(dest, inputs)
    return dest


def mkfs_ext4():
    """mkfs.ext4's path (it is often in /sbin, off a user's PATH)."""
    return shutil.which("mkfs.ext4") or next(
        (p for p in ("/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4")
         if os.path.exists(p)), None)


def rootfs_image(dest, moddir, progs=(), mib=ROOTFS_MIB):
    """The guests' root disk: an ext4 image of `mib` MiB holding
    guest_base() (no modules: the initramfs loaded them before it
    switch_roots), made without root by `mkfs.ext4 -d DIR`.  Files
    belong to whoever built it; the guests run as root and do not mind."""
    order, builtin, missing = guest_modules(moddir)
    inputs = repr((order, builtin, missing, list(progs), mib))
    if _newer(dest, *GUEST_SCRIPTS, BUSYBOX, __file__, *progs) and \
            _same_inputs(dest, inputs):
        return dest
    tree = dest + ".d"
    t = DirTree(tree)
    guest_base(t, order, builtin, missing, progs)
    t.file("etc/systest-root", b"the system tier's root disk\n")
    tmp = dest + ".tmp"
    subprocess.run([mkfs_ext4(), "-q", "-F", "-L", "systest-root",
                    "-E", "root_owner=0:0", "-d", tree, tmp, f"{mib}M"],
                   check=True, capture_output=True)
    os.replace(tmp, dest)
    shutil.rmtree(tree, ignore_errors=True)
    _record_inputs(dest, inputs)
    return dest


def qemu_firmware():
    """{name: path here} of the firmware QEMU needs for the twin tests
    (SeaBIOS, the Linux loader option ROM, the kvmvapic ROM), found where
    `qemu-system-x86_64 -L help` looks."""
    qemu = shutil.which("qemu-system-x86_64")
    dirs = ["/usr/share/qemu", "/usr/share/seabios"]
    if qemu:
        r = subprocess.run([qemu, "-L", "help"], capture_output=True,
                           text=True)
        dirs = [d.strip() for d in r.stdout.splitlines() if d.strip()] + \
            dirs
    out = {}
    for name in QEMU_FIRMWARE:
        for d in dirs:
            p = os.path.realpath(os.path.join(d, name))
            if os.path.exists(p):
                out[name] = p
                break
    return out


def host_tools():
    """Programs the tests run in the host VM besides the project's:
    e2fsck (checks a guest's disk) and QEMU (the twin tests)."""
    found = []
    for name in ("e2fsck", "qemu-system-x86_64"):
        p = shutil.which(name) or next(
            (d + name for d in ("/sbin/", "/usr/sbin/")
             if os.path.exists(d + name)), None)
        if p:
            found.append(os.path.realpath(p))
    return found


def host_initrd(dest, moddir, binaries, guest_files):
    """The host VM's initramfs.  `binaries`: paths installed in
    /usr/local/bin with their libraries; `guest_files`: {path in host:
    local path}."""
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
        name = ko_name(rel)
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


def workload_progs(build):
    """The static programs of the workloads, as tests/system/system.mk
    builds them under `build`."""
    return [os.path.join(build, "tests", "system", "seqstream")]


def build_images(work, binaries, exit_guest=None, progs=()):
    """Every image of the tier under `work`: the PVH vmlinux, the guest
    initramfs and root disk (with the static programs `progs`, such as
    seqstream), and the host initramfs holding `binaries` (xen, xl),
    `progs`, e2fsck and QEMU with its firmware, the Debian guest's kernels,
    initramfs and root disk and, if given, the project's exit-test guest.
    Returns what the tests need to know of them."""
    release, vmlinuz, moddir = find_kernel()
    os.makedirs(work, exist_ok=True)
    progs = [p for p in progs if os.path.exists(p)]
    vmlinux = pvh_vmlinux(vmlinuz, os.path.join(work, "vmlinux"))
    initrd = guest_initrd(os.path.join(work, "guest-initrd.cpio"), moddir,
                          progs)
    rootfs = rootfs_image(os.path.join(work, "rootfs.ext4"), moddir, progs)
    guest_files = {GUEST_KERNEL["bzimage"]: vmlinuz,
                   GUEST_KERNEL["pvh"]: vmlinux, GUEST_INITRD: initrd,
                   GUEST_ROOTFS: rootfs}
    for name, path in qemu_firmware().items():
        guest_files[f"{HOST_QEMU_FIRMWARE}/{name}"] = path
    if exit_guest and os.path.exists(exit_guest):
        guest_files[EXIT_GUEST] = exit_guest
    host = host_initrd(os.path.join(work, "host-initrd.cpio"), moddir,
                       list(binaries) + list(progs) + host_tools(),
                       guest_files)
    return {"release": release, "vmlinuz": vmlinuz, "vmlinux": vmlinux,
            "host_initrd": host, "pvh_entry": elf_xen_note(vmlinux, 18),
            "exit_guest": EXIT_GUEST if EXIT_GUEST in guest_files else None,
            "rootfs": rootfs, "rootfs_bytes": os.path.getsize(rootfs),
            "guest_modules": guest_modules(moddir),
            "progs": [os.path.basename(p) for p in progs]}


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
    if not mkfs_ext4():
        missing.append("mkfs.ext4 (package e2fsprogs)")
    return missing
