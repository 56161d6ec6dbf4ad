"""Lesson 7 (fusion measured) at small sizes: fused kernels move fewer bytes, the sweep and
the plot are made, O0 and the numpy target equal eager bit for bit, and numba's last-bit
differences stay within the tolerance `diptych compare` allows."""

import re
from pathlib import Path

from compare.lessons import claimed


def test_fusion_moves_fewer_bytes(lesson_output):
    out = lesson_output("07_fusion")
    assert claimed(out, r"long chain moves (\d+) bytes per element") > 8 * 10
    assert claimed(out, r"bytes per element; fused, (\d+)") == 8


def test_the_sweep_is_measured_and_plotted(lesson_output, lesson_figures):
    out = lesson_output("07_fusion")
    assert claimed(out, r"fused long chain ran ([\d.]+)x") > 0
    for chain in ("long", "short"):  # where it paid, or that it never did: said either way
        assert re.search(rf"^claim.*: fusing the {chain} chain paid", out, re.MULTILINE)
    assert claimed(out, r"streamed ([\d.]+) GB/s on the largest") > 0
    assert claimed(out, r"matmul alone took (\d+)% of the unfused step") > 0
    assert (Path(lesson_figures) / "07_crossover.svg").stat().st_size > 0


def test_last_bits(lesson_output):
    out = lesson_output("07_fusion")
    assert claimed(out, r"O0 equals eager bit for bit \((\d+) elements differ") == 0
    assert claimed(out, r"FUSION_TARGET=numpy the fused chain equals eager .*\((\d+) elements") == 0
    assert 0 < claimed(out, r"numba-fused chain .* max rel ([\d.e+-]+)") <= 1e-4
    assert claimed(out, r"median of (\d+) ulp") >= 1


def test_the_build_is_reported(lesson_output):
    out = lesson_output("07_fusion")
    assert claimed(out, r"kernel took ([\d.]+) s on its first call") >= 0
    assert claimed(out, r"later compiles of the same chain took at most ([\d.]+) s") >= 0
