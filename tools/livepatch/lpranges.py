"""Code ranges for livepatch-build (docs/livepatch.md, "Ranges").

A changed function can be patched without replacing it whole: the
instructions of the original and the patched build are aligned (difflib
on instructions whose intra-function branches are compared by where they
go, and padding nops left out), and each run of differing instructions
becomes a range of the original function:

  in place   the function's size and layout are unchanged (every
             unchanged instruction at the same offset): the range's new
             bytes are the patched build's bytes at the same offsets;
  jump       (asked for with LIVEPATCH_RANGES(fn)) the range, at least 5
             bytes, becomes `jmp` to payload code made of the patched
             instructions (branches re-encoded as rel32 to where they go
             in the running function or in that code) ending with a jmp
             back to the end of the range.

Either is refused (and the caller falls back to the whole function, or
refuses when the annotation asked for ranges) when an instruction of the
original is the target of a branch or a jump table strictly inside a
range, or when an instruction that must move uses %rip without a
relocation, or loop/jrcxz.
"""
import difflib
import re
import subprocess

RANGE_MAX = 64          # LIVEPATCH_RANGE_MAX (livepatch/payload.h)
JMP_SIZE = 5
MAX_RANGES = 8          # per function; more: patch the function whole
PREFIXES = {0x2e, 0x3e, 0xf2}      # branch hints, bnd
INSN_RX = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+)\t(.*)$")


class NoRange(Exception):
    """Why this change cannot be made as ranges."""


class Insn:
    def __init__(self, off, raw, text, relocs):
        self.off, self.raw, self.text = off, raw, text.strip()
        self.size = len(raw)
        self.end = off + self.size
        self.relocs = relocs            # [(offset in insn, norm key)]
        mn = self.text.split()
        self.nop = bool(mn) and (mn[0].startswith("nop") or
                                 self.text == "xchg   %ax,%ax" or
                                 (mn[0] in ("cs", "ds", "data16") and
                                  any(w.startswith("nop") for w in mn)))
        self.branch = None              # (kind, target offset)
        if not relocs:
            self.branch = _branch(raw, off, self.size)

    def key(self):
        if self.branch:
            return ("br", self.branch[0])
        return (self.raw, tuple(self.relocs))


def _branch(raw, off, size):
    """(kind, target) of a direct branch within the section, or None."""
    i = 0
    while i < len(raw) - 1 and raw[i] in PREFIXES:
        i += 1
    op = raw[i]
    if op == 0xeb and size - i == 2:
        return "jmp", off + size + int.from_bytes(raw[i + 1:], "little",
                                                   signed=True)
    if op in (0xe9, 0xe8) and size - i == 5:
        return ("jmp" if op == 0xe9 else "call"), off + size + \
            int.from_bytes(raw[i + 1:], "little", signed=True)
    if 0x70 <= op <= 0x7f and size - i == 2:
        return f"j{op & 0xf:x}", off + size + int.from_bytes(
            raw[i + 1:], "little", signed=True)
    if op == 0x0f and 0x80 <= raw[i + 1] <= 0x8f and size - i == 6:
        return f"j{raw[i + 1] & 0xf:x}", off + size + int.from_bytes(
            raw[i + 2:], "little", signed=True)
    if 0xe0 <= op <= 0xe3:
        return "loop", off + size + int.from_bytes(raw[i + 1:i + 2],
                                                     "little", signed=True)
    return None


def disassemble(path, sec, data, relocs):
    """The instructions of section `sec` (its bytes `data`); relocs:
    {offset: norm key} of that section."""
    out = subprocess.run(["objdump", "-d", "-w", "--insn-width=16", "-j",
                          sec, path], capture_output=True, text=True,
                         check=True).stdout
    insns = []
    for line in out.splitlines():
        m = INSN_RX.match(line)
        if not m:
            continue
        off = int(m.group(1), 16)
        n = len(m.group(2).split())
        if "(bad)" in m.group(3):
            raise NoRange(f"{sec}: objdump cannot decode +{off:#x}")
        rel = [(o - off, k) for o, k in relocs.items() if off <= o < off + n]
        insns.append(Insn(off, data[off:off + n], m.group(3), sorted(rel)))
    if not insns or insns[-1].end != len(data):
        raise NoRange(f"{sec}: the disassembly does not cover it")
    return insns


class Function:
    """One build's function: its instructions, its non-nop instructions,
    and the offsets branches and jump tables go to."""

    def __init__(self, insns, table_targets):
        self.insns = insns
        self.real = [i for i in insns if not i.nop]
        self.at = {i.off: i for i in insns}
        self.targets = set(table_targets)
        for i in insns:
            if i.branch:
                self.targets.add(i.branch[1])

    def real_index_at(self, off):
        """Index in .real of the instruction at off (after any nops)."""
        for k, i in enumerate(self.real):
            if i.off >= off:
                return k
        return len(self.real)


def _matched(o, p):
    """Pairs (orig real index, patched real index) that are the same
    instruction, branches going to matching places."""
    sm = difflib.SequenceMatcher(None, [i.key() for i in o.real],
                                 [i.key() for i in p.real], autojunk=False)
    pairs = []
    for tag, a1, a2, b1, _ in sm.get_opcodes():
        if tag == "equal":
            pairs += [(a1 + k, b1 + k) for k in range(a2 - a1)]
    omap = dict(pairs)
    good = []
    for a, b in pairs:
        ob, pb = o.real[a].branch, p.real[b].branch
        if ob and omap.get(o.real_index_at(ob[1])) != \
                p.real_index_at(pb[1]):
            continue
        good.append((a, b))
    return good


def _blocks(o, p, pairs):
    """Runs of unmatched instructions: (a1, a2, b1, b2) real indices."""
    blocks = []
    prev = (-1, -1)
    for a, b in pairs + [(len(o.real), len(p.real))]:
        if a > prev[0] + 1 or b > prev[1] + 1:
            blocks.append((prev[0] + 1, a, prev[1] + 1, b))
        prev = (a, b)
    return blocks


def _span(f, a1, a2):
    """Byte span of real instructions [a1, a2) with the nops around them
    up to the neighbouring real instructions."""
    lo = f.real[a1 - 1].end if a1 > 0 else 0
    hi = f.real[a2].off if a2 < len(f.real) else f.insns[-1].end
    return lo, hi


def _check_interior(o, lo, hi, what):
    inner = sorted(t for t in o.targets if lo < t < hi)
    if inner:
        raise NoRange(f"{what}: +{inner[0]:#x} inside the range "
                      f"+{lo:#x}..+{hi:#x} is a branch target")


def in_place(o, p, pairs, daemon_bytes):
    """[(offset, new bytes)] when size and layout are unchanged."""
    if o.insns[-1].end != p.insns[-1].end:
        raise NoRange("its size changed")
    if any(o.real[a].off != p.real[b].off for a, b in pairs):
        raise NoRange("its layout changed")
    ranges = []
    for a1, a2, b1, b2 in _blocks(o, p, pairs):
        lo, hi = _span(o, a1, a2)
        if (lo, hi) != _span(p, b1, b2):
            raise NoRange("its layout changed")
        new = bytearray()
        for i in (x for x in p.insns if lo <= x.off < hi):
            new += _fill_relocs(i, o, daemon_bytes)
        _check_interior(o, lo, hi, "in place")
        ranges.append((lo, bytes(new)))
    _check_branches_out(o, p, ranges)
    return _limit(ranges)


def _check_branches_out(o, p, ranges):
    """A branch of new bytes going out of its range lands on the start
    of an instruction of the original that stays."""
    for lo, new in ranges:
        for i in (x for x in p.insns if lo <= x.off < lo + len(new)):
            t = i.branch[1] if i.branch else None
            if t is None or lo <= t < lo + len(new):
                continue
            if t not in o.at or any(r < t < r + len(n) for r, n in ranges):
                raise NoRange(f"+{i.off:#x}: its branch to +{t:#x} "
                              "lands inside changed code")


def _fill_relocs(i, o, daemon_bytes):
    """The patched instruction's bytes; a relocated field is allowed only
    where the original has the same relocation: its linked value."""
    b = bytearray(i.raw)
    for ro, key in i.relocs:
        oi = o.at.get(i.off)
        if not oi or (ro, key) not in oi.relocs:
            raise NoRange(f"+{i.off:#x}: a relocation the original "
                          "does not have")
        w = 8 if key[0] in (1, 24) else 4
        b[ro:ro + w] = daemon_bytes[i.off + ro:i.off + ro + w]
    return bytes(b)


def _limit(ranges):
    if not ranges:
        raise NoRange("no instruction differs")
    if len(ranges) > MAX_RANGES:
        raise NoRange(f"{len(ranges)} ranges (at most {MAX_RANGES})")
    for lo, new in ranges:
        if len(new) > RANGE_MAX:
            raise NoRange(f"+{lo:#x}: {len(new)} bytes (at most "
                          f"{RANGE_MAX})")
    return ranges


def _size(o, a1, a2):
    return o.real[a2 - 1].end - o.real[a1].off if a2 > a1 else 0


def _grow_forward(o, blocks, k, omap):
    """Block k grown to at least 5 bytes with the matched instructions
    after it (and a change it then reaches); (block, next k)."""
    a1, a2, b1, b2 = blocks[k]
    k += 1
    while _size(o, a1, a2) < JMP_SIZE:
        if k < len(blocks) and blocks[k][0] == a2 and blocks[k][2] == b2:
            a2, b2 = blocks[k][1], blocks[k][3]
            k += 1
        elif a2 < len(o.real) and omap.get(a2) == b2:
            a2, b2 = a2 + 1, b2 + 1
        else:
            raise NoRange(f"+{o.real[a1].off:#x}: fewer than {JMP_SIZE} "
                          "bytes to the end of the function")
    _check_interior(o, o.real[a1].off, o.real[a2 - 1].end, "jump")
    return (a1, a2, b1, b2), k


def _grow_back(o, blocks, k, omap, floor):
    """Block k grown with the matched instructions before it, down to
    real index floor (the end of the previous range)."""
    a1, a2, b1, b2 = blocks[k]
    if a2 == a1 and a2 < len(o.real) and omap.get(a2) == b2:
        a2, b2 = a2 + 1, b2 + 1         # an insertion: keep what follows
    while _size(o, a1, a2) < JMP_SIZE:
        if a1 <= floor or omap.get(a1 - 1) != b1 - 1:
            raise NoRange(f"+{o.real[min(a1, len(o.real) - 1)].off:#x}: "
                          f"fewer than {JMP_SIZE} bytes around it")
        a1, b1 = a1 - 1, b1 - 1
    _check_interior(o, o.real[a1].off, o.real[a2 - 1].end, "jump")
    return (a1, a2, b1, b2), k + 1


def _grow(o, blocks, k, omap, floor):
    """Forward first; backward when that reaches the end of the function
    or puts a branch target inside."""
    try:
        return _grow_forward(o, blocks, k, omap)
    except NoRange as e:
        try:
            return _grow_back(o, blocks, k, omap, floor)
        except NoRange:
            raise e


def jumps(o, p, pairs):
    """[(lo, hi, [patched Insn])]: each range of the original and the
    patched instructions its payload code runs."""
    omap = dict(pairs)
    blocks = _blocks(o, p, pairs)
    out = []
    k = floor = 0
    while k < len(blocks):
        (a1, a2, b1, b2), k = _grow(o, blocks, k, omap, floor)
        floor = a2
        lo, hi = o.real[a1].off, o.real[a2 - 1].end
        code = p.real[b1:b2]
        offs = {i.off for i in code}
        for t in sorted(p.targets):
            if code and code[0].off < t < code[-1].end and t not in offs:
                raise NoRange(f"patched +{t:#x} is a branch target "
                              "inside moved code")
        if hi - lo > RANGE_MAX:
            raise NoRange(f"+{lo:#x}: {hi - lo} bytes (at most "
                          f"{RANGE_MAX})")
        out.append((lo, hi, code))
    if not out:
        raise NoRange("no instruction differs")
    if len(out) > MAX_RANGES:
        raise NoRange(f"{len(out)} ranges (at most {MAX_RANGES})")
    return out


def where_in_orig(o, p, pairs, t):
    """The original's offset for patched offset t (a matched insn)."""
    k = p.real_index_at(t)
    back = {b: a for a, b in pairs}
    if k == len(p.real):
        return o.insns[-1].end
    if k not in back:
        raise NoRange(f"patched +{t:#x} (a branch target) has no "
                      "counterpart in the original")
    return o.real[back[k]].off


def plan(o, p, daemon_bytes, jump_ok):
    """("in place", [(lo, new)]) or ("jump", [(lo, hi, code)], pairs);
    NoRange says why neither."""
    pairs = _matched(o, p)
    try:
        return "in place", in_place(o, p, pairs, daemon_bytes), pairs
    except NoRange as e:
        if not jump_ok:
            raise
        why = str(e)
    try:
        return "jump", jumps(o, p, pairs), pairs
    except NoRange as e:
        raise NoRange(f"not in place ({why}), nor as jumps ({e})")
