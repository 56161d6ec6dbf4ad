"""Fused elementwise kernels (`common.fusion`) against the unfused graph: the chunked numpy
target bit for bit (it calls the ops' own kernels), numba within float32 tolerance, both
below and above `SMALL` (one block, one thread / many blocks over the cores), in place, and
the per-group choice `FusedKernel` makes on its first call."""

import re
import warnings
from typing import Callable, NamedTuple

import numpy as np
import pytest

import common.fusion as fusion
import symbolic as S
from common import functional as F
from common.fusion import ChunkedKernel, FusedKernel, NumbaKernel, Program
from symbolic.graph import Graph
from symbolic.passes.fusion import fuse_elementwise

RTOL, ATOL = 2e-6, 1e-6  # numba evaluates literals in float64: float32 rounding apart
SIZES = {"small": (40, 50), "large": (600, 500)}  # 2,000 and 300,000 elements around SMALL
needs_numba = pytest.mark.skipif(not fusion.numba_available(), reason="numba is not installed")


@pytest.fixture(autouse=True, scope="module")
def _private_kernel_cache(tmp_path_factory):
    """Numba kernels compiled here go to this session's folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fusion, "CACHE_DIR", tmp_path_factory.getbasetemp() / "kernels")
        yield


class Case(NamedTuple):
    fn: Callable
    layouts: tuple  # per input: "full" (rows, cols), "col" (rows, 1), "row" (1, cols), "0-d"
    dtype: str = "float32"


def _gelu(x):
    return 0.5 * x * (1.0 + F.tanh(0.7978845608 * (x + 0.044715 * x**3)))


CASES = {
    "pythagoras": Case(lambda a, b: F.sqrt(a * a + b * b), ("full", "full")),
    "pythagoras-f64": Case(lambda a, b: F.sqrt(a * a + b * b), ("full", "full"), "float64"),
    "gelu-tanh": Case(_gelu, ("full",)),
    "silu": Case(lambda a: F.sigmoid(a) * a, ("full",)),
    "where-compare": Case(lambda a, b: F.where(a > b, a - b, b * 0.5), ("full", "full")),
    "logic-mix": Case(lambda a, b: F.where(F.logical_or(F.logical_not(a > 0), b < 0.5),
                                           a * b, -a), ("full", "full")),
    # logical ops take any dtype (nonzero is true), as numpy's do
    "logic-on-floats": Case(lambda a, b: F.where(F.logical_not(F.relu(a) * b), a, b) + 1.0,
                            ("full", "full")),
    "bool-output": Case(lambda a, b: F.logical_and(a > 0, b > a * 0.5), ("full", "full")),
    "clamp": Case(lambda a: F.clamp(a * 2.0, min=-0.5, max=0.75) + F.clamp(a, min=0.0),
                  ("full",)),
    "cube": Case(lambda a: a**3 - a, ("full",)),
    "relu": Case(lambda a, b: F.relu(a + b) * 2.0, ("full", "full")),
    "outer-broadcast": Case(lambda a, b: F.tanh(a * b + a) - b, ("col", "row")),
    "row-broadcast": Case(lambda a, b: F.exp(a - b) * b, ("full", "row")),
    "0-d-scalar": Case(lambda a, s: F.exp(-((a * s) ** 2)) + s, ("full", "0-d")),
    "all-0-d": Case(lambda a, b: F.sqrt(a * a + b * b), ("0-d", "0-d")),
}
FLAT = [name for name, case in CASES.items() if set(case.layouts) <= {"full", "0-d"}]


def _shape(layout: str, size: tuple) -> tuple:
    rows, cols = size
    return {"full": (rows, cols), "col": (rows, 1), "row": (1, cols), "0-d": ()}[layout]


class Fused(NamedTuple):
    program: Program
    args: list  # the arrays in the program's input order
    want: np.ndarray  # the unfused graph's value (optimize=0)


def fuse(name: str, size: str, seed: int = 0) -> Fused:
    """The case traced, fused by the pass into one node, its inputs and the unfused value."""
    case = CASES[name]
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(rng.normal(size=_shape(lay, SIZES[size])), case.dtype)
              for lay in case.layouts]
    inputs = [S.placeholder(a.shape, case.dtype, name=f"x{i}") for i, a in enumerate(arrays)]
    out = case.fn(*inputs)
    fused_graph, changes = fuse_elementwise(Graph([i.node for i in inputs], [out.node]))
    (node,) = fused_graph.ops  # the whole expression is one group
    assert node.op_name.startswith("fused_") and len(changes) == 1, changes
    feed = {i.node.id: a for i, a in zip(inputs, arrays)}
    want = np.asarray(S.compile(out, inputs=inputs, optimize=0)(*arrays))
    return Fused(node.op.kernel.program, [feed[n.id] for n in node.inputs], want)


def _scalars(args: list) -> frozenset:
    return frozenset(i for i, a in enumerate(args) if np.ndim(a) == 0)


def _assert_close(got, want, what: str) -> None:
    got = np.asarray(got)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), what
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def test_the_sizes_straddle_the_single_block_threshold():
    """Otherwise the multi-threaded block path (or the numba candidate) would never run."""
    small, large = (int(np.prod(s)) for s in SIZES.values())
    assert small <= fusion.SMALL < large
    assert large > 4 * fusion.CHUNK_ELEMENTS  # several blocks, spread over the pool


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", CASES)
def test_chunked_kernel_equals_the_unfused_graph_bit_for_bit(name, size):
    fused = fuse(name, size)
    got = ChunkedKernel(fused.program)(np, *fused.args)
    np.testing.assert_array_equal(got, fused.want, strict=True, err_msg=name)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", CASES)
def test_chunked_kernel_writes_into_the_given_out_and_reuses_its_scratch(name, size):
    """Two calls on one kernel (scratch buffers reused), the second with other inputs."""
    kernel = ChunkedKernel(fuse(name, size).program)
    for seed in (1, 2):
        fused = fuse(name, size, seed)
        out = np.empty(fused.program.shape, fused.program.dtype)
        assert kernel(np, *fused.args, out=out) is out
        np.testing.assert_array_equal(out, fused.want, strict=True, err_msg=f"seed {seed}")


@needs_numba
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", FLAT)
def test_numba_kernel_matches_the_unfused_graph_within_float32_tolerance(name, size):
    fused = fuse(name, size)
    kernel = NumbaKernel(fused.program, _scalars(fused.args))
    _assert_close(kernel(np, *fused.args), fused.want, name)
    assert kernel.compile_seconds > 0  # reported apart from the run time
    # one loop nest, its outer loop parallel; a 0-d output needs no loop at all
    assert ("prange" in kernel.source) == bool(fused.program.shape)


def _in_place_inputs(name: str, size: str) -> tuple[Fused, np.ndarray, list]:
    """The case with `out` IS its first full-shape input, as the memory planner arranges."""
    fused = fuse(name, size)
    args = [a.copy() for a in fused.args]
    victim = next(a for a in args if a.shape == fused.program.shape
                  and a.dtype == fused.program.dtype)
    return fused, victim, args


IN_PLACE = ["pythagoras", "gelu-tanh", "where-compare", "logic-mix", "cube", "0-d-scalar"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", IN_PLACE + ["row-broadcast"])
def test_chunked_kernel_in_place_into_an_input(name, size):
    fused, victim, args = _in_place_inputs(name, size)
    assert ChunkedKernel(fused.program)(np, *args, out=victim) is victim
    np.testing.assert_array_equal(victim, fused.want, strict=True)


@needs_numba
@pytest.mark.parametrize("name", IN_PLACE)
def test_numba_kernel_in_place_into_an_input(name):
    fused, victim, args = _in_place_inputs(name, "large")
    kernel = NumbaKernel(fused.program, _scalars(args))
    kernel(np, *args)  # compiles, into a fresh output
    assert kernel(np, *args, out=victim) is victim
    _assert_close(victim, fused.want, name)


@needs_numba
def test_numba_kernel_in_place_on_its_first_call_runs_once():
    """The call that compiles must run the loop once too: run twice in place, the second
    run reads the first one's output as its input a (sqrt(sqrt(a*a + b*b)**2 + b*b))."""
    fused, victim, args = _in_place_inputs("pythagoras", "large")
    kernel = NumbaKernel(fused.program, _scalars(args))
    kernel(np, *args, out=victim)
    _assert_close(victim, fused.want, "in place on the call that compiles")


MEASURED = re.compile(r"^(numba|numpy-chunked) \(measured: numba \d+\.\d\d ms, "
                      r"numpy-chunked \d+\.\d\d ms\)$")


@needs_numba
@pytest.mark.parametrize("name", ["pythagoras", "gelu-tanh", "0-d-scalar"])
def test_fused_kernel_measures_both_targets_on_its_first_call(name):
    fused = fuse(name, "large")
    kernel = FusedKernel(fused.program)
    assert kernel.choice == "not run yet" and kernel.chosen is None
    _assert_close(kernel(np, *fused.args), fused.want, name)
    match = MEASURED.match(kernel.choice)
    assert match, kernel.choice
    assert kernel.chosen.target == match.group(1)
    assert kernel.compile_seconds > 0
    assert kernel.source == kernel.chosen.source
    chosen, again = kernel.chosen, fuse(name, "large", seed=3)
    _assert_close(kernel(np, *again.args), again.want, "second call")
    assert kernel.chosen is chosen  # measured once, kept


@pytest.mark.parametrize("name, size", [("pythagoras", "small"), ("all-0-d", "small")])
def test_fused_kernel_runs_small_groups_in_one_numpy_block(name, size, monkeypatch):
    monkeypatch.setattr(fusion, "numba_available", lambda: True)  # the numba check comes first
    fused = fuse(name, size)
    kernel = FusedKernel(fused.program)
    got = kernel(np, *fused.args)
    assert kernel.choice == "numpy-chunked (small: one block)"
    assert kernel.chosen is kernel.chunked
    np.testing.assert_array_equal(np.asarray(got), fused.want, strict=True)


@needs_numba
@pytest.mark.parametrize("name", ["outer-broadcast", "row-broadcast"])
def test_broadcasting_groups_are_measured_on_both_targets(name):
    """numba's loop nest reads broadcast inputs through their strides, so it competes too."""
    fused = fuse(name, "large")
    kernel = FusedKernel(fused.program)
    _assert_close(kernel(np, *fused.args), fused.want, name)
    assert "measured: numba" in kernel.choice and "numpy-chunked" in kernel.choice


@needs_numba
@pytest.mark.parametrize("name", ["pythagoras", "gelu-tanh", "0-d-scalar"])
def test_fused_kernel_in_place_on_its_first_call(name):
    """The first call times both targets into a scratch output: the real `out`, here an
    input's buffer, is written exactly once."""
    fused, victim, args = _in_place_inputs(name, "large")
    kernel = FusedKernel(fused.program)
    assert kernel(np, *args, out=victim) is victim
    _assert_close(victim, fused.want, kernel.choice)


@pytest.mark.parametrize("size", SIZES)
def test_without_numba_fused_kernels_fall_back_with_a_one_line_warning(size, monkeypatch):
    monkeypatch.setattr(fusion, "numba_available", lambda: False)
    fused = fuse("gelu-tanh", size)
    kernel = FusedKernel(fused.program)
    with pytest.warns(UserWarning, match="numba is not installed") as caught:
        got = kernel(np, *fused.args)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert kernel.choice == "numpy-chunked (numba is not installed)"
    assert kernel.chosen is kernel.chunked
    np.testing.assert_array_equal(got, fused.want, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per kernel, not per call
        np.testing.assert_array_equal(kernel(np, *fused.args), fused.want)


def test_numba_source_passes_0d_inputs_as_numbers():
    fused = fuse("0-d-scalar", "small")
    source = fusion.numba_source(fused.program, _scalars(fused.args))
    (scalar,) = _scalars(fused.args)
    assert f"a{scalar}[" not in source and f"a{scalar}" in source
    assert f"a{1 - scalar}[i0, i1]" in source  # a 2-d output: a loop nest of two
