"""The libFuzzer targets (tests/fuzz/, tests/fuzz/README.md): each is
built (clang, ASan+UBSan), replays its checked-in seeds and regressions,
and fuzzes for 20 s from them; any crash, leak, sanitizer report or
broken invariant of a target fails its test.  Also: the generated seeds
are current, and the stream seeds hold every record type the record
table checks in a domain's stream.

Without clang's libFuzzer runtime (scripts/setup.sh installs it) the
targets' tests skip, saying why.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile

import pytest

from harness import BUILD, ROOT
import streamlib as sl

FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz")
sys.path.insert(0, FUZZ_DIR)
import make_seeds  # noqa: E402

TARGETS = ("stream", "virtq", "control", "xlcfg", "payload", "stage",
           "migrecv")
# Seeded targets; virtq starts from nothing (its inputs are small).
SEEDED = tuple(t for t in TARGETS if t != "virtq")
MAX_LEN = {"virtq": 8192, "control": 16384, "xlcfg": 16384}
# Coverage (edges) each must end with: a little below what its seeds and
# regressions alone reach (virtq: below what 20 s from nothing reach on
# a loaded 2-core machine), so a target cut off from its code fails.
MIN_COV = {"stream": 250, "virtq": 40, "control": 450, "xlcfg": 430,
           "payload": 190, "stage": 40, "migrecv": 280}


def _clean_env():
    """No make state of an outer make (make test passes its MAKEFLAGS)."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def _fuzzer_runtime():
    """'' if clang can link a libFuzzer target, else why not."""
    src = b"#include <stdint.h>\n#include <stddef.h>\n" \
          b"int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n" \
          b"int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n" \
          b"{ return 0; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            r = subprocess.run(
                ["clang", "-fsanitize=fuzzer,address,undefined", "-x", "c",
                 "-", "-o", os.path.join(tmp, "probe")], input=src,
                capture_output=True, timeout=120)
        except FileNotFoundError:
            return "clang is not installed (scripts/setup.sh installs it)"
        if r.returncode:
            return ("clang cannot link a libFuzzer target (libclang-rt-14-dev "
                    "missing?): " + r.stderr.decode(errors="replace")[-500:])
    return ""


@pytest.fixture(scope="module")
def fuzz_bins():
    why = _fuzzer_runtime()
    if why:
        pytest.skip(why)
    r = subprocess.run(["make", "-s", "-C", ROOT, f"BUILD={BUILD}",
                        "fuzz-build"], capture_output=True,
                       env=_clean_env(), timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-4000:]
    bins = {t: os.path.join(BUILD, "fuzz", "fuzz_" + t) for t in TARGETS}
    for b in bins.values():
        assert os.path.exists(b), b
    return bins


def _inputs(kind, target):
    d = os.path.join(FUZZ_DIR, kind, target)
    if not os.path.isdir(d):
        return []
    return [os.path.join(d, f) for f in sorted(os.listdir(d))]


def test_text_seeds_are_current():
    """The seeds make_seeds.py writes from text are what it writes now."""
    for target, gen in make_seeds.TEXT.items():
        want = gen()
        have = sorted(os.listdir(os.path.join(FUZZ_DIR, "corpus", target)))
        assert have == sorted(want), target
        for name, data in want.items():
            with open(os.path.join(FUZZ_DIR, "corpus", target, name),
                      "rb") as f:
                assert f.read() == data, \
                    f"corpus/{target}/{name} is stale: run make_seeds.py"


def test_stream_seeds_cover_the_record_table():
    """Every record type of a domain's stream is in some stream seed, so
    fuzz_stream starts from each check of the table (common/rec_table.c).
    Handover records belong to live update's own stream, which verify
    refuses as not a domain's."""
    want = {r["name"] for r in sl.FORMAT["records"]
            if r["phase"] != "handover"}
    seen = set()
    for path in _inputs("corpus", "stream"):
        with open(path, "rb") as f:
            data = f.read()
        pos = sl.HEADER_LEN
        while pos + sl.REC_HEAD_LEN <= len(data):
            t, _, length, _ = struct.unpack_from(sl.REC_HEAD_FMT, data,
                                                    pos)
            seen.add(sl.TYPE_NAMES.get(t, hex(t)))
            pos += sl.REC_HEAD_LEN + (length + 7) // 8 * 8
    assert not want - seen, f"no seed holds {sorted(want - seen)}"


@pytest.mark.parametrize("target", SEEDED)
def test_seeds_and_regressions_replay(fuzz_bins, target):
    files = _inputs("corpus", target) + _inputs("regressions", target)
    assert _inputs("corpus", target), f"tests/fuzz/corpus/{target}/ is empty"
    r = subprocess.run([fuzz_bins[target]] + files, capture_output=True,
                       timeout=300)
    log = r.stderr.decode(errors="replace")
    assert r.returncode == 0, log[-4000:]
    assert len(re.findall(r"^Executed .* in \d+ ms$", log, re.M)) == \
        len(files), log[-2000:]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_bounded_run(fuzz_bins, target, tmp_path):
    """20 s of fuzzing from the seeds and regressions: no finding."""
    work = tmp_path / "corpus"
    work.mkdir()
    dicts = [os.path.join(BUILD, "fuzz", target + ".dict")]
    cmd = [fuzz_bins[target], "-max_total_time=20", "-runs=2000000",
           f"-max_len={MAX_LEN.get(target, 65536)}", "-print_final_stats=1",
           f"-artifact_prefix={tmp_path}/"]
    cmd += [f"-dict={d}" for d in dicts if os.path.exists(d)]
    cmd += [str(work)] + [os.path.join(FUZZ_DIR, k, target)
                          for k in ("corpus", "regressions")
                          if os.path.isdir(os.path.join(FUZZ_DIR, k, target))]
    r = subprocess.run(cmd, capture_output=True, timeout=180)
    log = r.stderr.decode(errors="replace")
    found = [f for f in os.listdir(tmp_path) if f != "corpus"]
    assert r.returncode == 0 and not found, \
        f"fuzz_{target} found something ({found}):\n{log[-6000:]}"
    m = re.search(r"stat::number_of_executed_units:\s+(\d+)", log)
    assert m and int(m.group(1)) > 100, log[-3000:]
    cov = re.findall(r"cov: (\d+)", log)
    assert cov and int(cov[-1]) >= MIN_COV[target], log[-3000:]
