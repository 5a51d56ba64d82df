#!/usr/bin/python3
"""Extract the uncompressed ELF vmlinux from a Linux bzImage.

The same idea as the kernel's scripts/extract-vmlinux: find the magic of a
compressed payload (xz, zstd, gzip, lzma, bzip2, lz4) in the image,
decompress from there, and keep the first result that is an ELF file.  The
ELF keeps the kernel's notes, so a PVH-capable kernel (CONFIG_PVH=y) can be
booted from it through XEN_ELFNOTE_PHYS32_ENTRY.

usage: extract-vmlinux.py BZIMAGE OUT
"""
import bz2
import lzma
import shutil
import subprocess
import sys
import zlib

MAGICS = (
    ("xz", b"\xfd7zXZ\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("gzip", b"\x1f\x8b\x08"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("bzip2", b"BZh"),
    ("lz4", b"\x02\x21\x4c\x18"),
)


def _external(argv, data):
    """Decompress through a command-line tool; None if it is missing."""
    if not shutil.which(argv[0]):
        return None
    r = subprocess.run(argv, input=data, capture_output=True)
    return r.stdout or None


def decompress(kind, data):
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(
                data)
        if kind == "lzma":
            return lzma.LZMADecompressor(
                format=lzma.FORMAT_ALONE).decompress(data)
        if kind == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return d.decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
        if kind == "zstd":
            return _external(["zstd", "-dcq"], data)
        if kind == "lz4":
            return _external(["lz4", "-dcq"], data)
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError):
        return None
    return None


def extract(image):
    for kind, magic in MAGICS:
        pos = image.find(magic)
        while pos >= 0:
            out = decompress(kind, image[pos:])
            if out and out[:4] == b"\x7fELF":
                return out
            pos = image.find(magic, pos + 1)
    return None


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 64
    with open(argv[1], "rb") as f:
        image = f.read()
    out = extract(image)
    if out is None:
        sys.stderr.write(f"{argv[1]}: no compressed ELF payload found\n")
        return 1
    with open(argv[2], "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
