"""Run every C unit test program built under $XEN_BUILD/tests/unit/.

Each program (tests/unit/test_*.c, built by `make unit`) prints one line
per failed check and "N passed, M failed", and exits non-zero on failure.
"""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("XEN_BUILD", REPO / "build"))
UNIT_DIR = BUILD / "tests" / "unit"


def unit_programs():
    if not UNIT_DIR.is_dir():
        return []
    return sorted(p for p in UNIT_DIR.iterdir()
                  if p.name.startswith("test_") and p.is_file()
                  and os.access(p, os.X_OK))


PROGRAMS = unit_programs()


@pytest.mark.skipif(not PROGRAMS,
                    reason=f"no unit test programs in {UNIT_DIR} "
                           "(run `make unit`)")
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_unit_program(program, tmp_path):
    proc = subprocess.run([str(program)], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)
    output = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, (
        f"{program.name} exited {proc.returncode}:\n{output}")
