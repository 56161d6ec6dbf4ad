"""Fused elementwise kernels (`common.fusion`) against the unfused graph: the chunked numpy
target bit for bit (it calls the ops' own kernels), numba within float32 tolerance, both
below and above `SMALL` (one block, one thread / many blocks over the cores), in place, and
the per-group choice `FusedKernel` makes on its first call, by rule."""

import warnings
from typing import Callable, NamedTuple

import numpy as np
import pytest

import common.fusion as fusion
import symbolic as S
from common import functional as F
from common.fusion import ChunkedKernel, FusedKernel, NumbaKernel, Program, Step
from common.ops import OPS
from common.ops.core import Aval
from symbolic.graph import Graph
from symbolic.passes.fusion import fuse_elementwise
from tests.helpers import gelu

RTOL, ATOL = 2e-6, 1e-6  # numba's float32 tanh is within 7 ulp of numpy's; exp, log: libm's
SIZES = {"small": (40, 50), "large": (600, 500)}  # 2,000 and 300,000 elements around SMALL
needs_numba = pytest.mark.skipif(not fusion.numba_available(), reason="numba is not installed")


class Case(NamedTuple):
    fn: Callable
    layouts: tuple  # per input: "full" (rows, cols), "col" (rows, 1), "row" (1, cols), "0-d"
    dtype: str = "float32"


CASES = {
    "pythagoras": Case(lambda a, b: F.sqrt(a * a + b * b), ("full", "full")),
    "pythagoras-f64": Case(lambda a, b: F.sqrt(a * a + b * b), ("full", "full"), "float64"),
    "gelu-tanh": Case(gelu, ("full",)),
    "silu": Case(lambda a: F.sigmoid(a) * a, ("full",)),
    "where-compare": Case(lambda a, b: F.where(a > b, a - b, b * 0.5), ("full", "full")),
    "logic-mix": Case(
        lambda a, b: F.where(F.logical_or(F.logical_not(a > 0), b < 0.5), a * b, -a),
        ("full", "full"),
    ),
    # logical ops take any dtype (nonzero is true), as numpy's do
    "logic-on-floats": Case(
        lambda a, b: F.where(F.logical_not(F.relu(a) * b), a, b) + 1.0, ("full", "full")
    ),
    "bool-output": Case(lambda a, b: F.logical_and(a > 0, b > a * 0.5), ("full", "full")),
    "clamp": Case(lambda a: F.clamp(a * 2.0, min=-0.5, max=0.75) + F.clamp(a, min=0.0), ("full",)),
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
    arrays = [
        np.asarray(rng.normal(size=_shape(lay, SIZES[size])), case.dtype) for lay in case.layouts
    ]
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
    # one loop nest (none for a 0-d output), serial below PARALLEL elements
    assert "prange" not in kernel.source
    assert ("for i0 in" in kernel.source) == bool(fused.program.shape)


def _in_place_inputs(name: str, size: str) -> tuple[Fused, np.ndarray, list]:
    """The case with `out` IS its first full-shape input, as the memory planner arranges."""
    fused = fuse(name, size)
    args = [a.copy() for a in fused.args]
    victim = next(
        a for a in args if a.shape == fused.program.shape and a.dtype == fused.program.dtype
    )
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


RULE = {
    "pythagoras": "numba (DIPTYCH_FUSION_TARGET=auto)",
    "gelu-tanh": "numba (DIPTYCH_FUSION_TARGET=auto)",  # tanh: the float32 approximation
    "outer-broadcast": "numba (DIPTYCH_FUSION_TARGET=auto)",  # read through strides
    "0-d-scalar": "numpy-chunked (exp: scalar libm in numba, SIMD in numpy)",
    "pythagoras-f64": "numba (DIPTYCH_FUSION_TARGET=auto)",
}


@needs_numba
@pytest.mark.parametrize("name", RULE)
def test_fused_kernel_chooses_its_target_by_rule_on_its_first_call(name):
    """No timing: the group's ops, size and dtypes decide, so every run gives the same bits."""
    fused = fuse(name, "large")
    kernel = FusedKernel(fused.program)
    assert kernel.choice == "not run yet" and kernel.chosen is None
    _assert_close(kernel(np, *fused.args), fused.want, name)
    assert kernel.choice == RULE[name]
    assert kernel.chosen.target == RULE[name].split()[0]
    assert kernel.source == kernel.chosen.source
    assert (kernel.compile_seconds > 0) == (kernel.chosen.target == "numba")
    chosen, again = kernel.chosen, fuse(name, "large", seed=3)
    _assert_close(kernel(np, *again.args), again.want, "second call")
    assert kernel.chosen is chosen  # chosen once, kept


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_the_target_variable_overrides_the_rule(target, monkeypatch):
    if target == "numba" and not fusion.numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", target)
    fused = fuse("0-d-scalar", "small")  # auto: numpy (small, and exp)
    kernel = FusedKernel(fused.program)
    _assert_close(kernel(np, *fused.args), fused.want, target)
    assert kernel.chosen.target == {"numpy": "numpy-chunked", "numba": "numba"}[target]
    assert f"DIPTYCH_FUSION_TARGET={target}" in kernel.choice


def test_an_unknown_target_is_an_error_that_names_the_choices(monkeypatch):
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "fastest")
    fused = fuse("pythagoras", "small")
    with pytest.raises(ValueError, match=r"'fastest'.*'auto', 'numba', 'numpy'"):
        FusedKernel(fused.program)(np, *fused.args)


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
@pytest.mark.parametrize("name", ["pythagoras", "gelu-tanh", "0-d-scalar"])
def test_fused_kernel_in_place_on_its_first_call(name):
    """The first call builds the chosen target and runs it once: the real `out`, here an
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


# ---- special values: every op, every target, against the op's own numpy kernel ---------


def _fusable(target: str) -> list[str]:
    """The registry's elementwise ops that `target` fuses, as their declarations say: the
    numpy target runs each op's own kernel, so it takes any op some target spells."""
    targets = fusion.SCALAR_TARGETS if target == "numpy-chunked" else (target,)
    return sorted(
        name
        for name, op in OPS.items()
        if op.kind == "elementwise"
        and op.writes_out
        and not op.stateful
        and any(op.spelling(t) is not None for t in targets)
    )


FUSABLE = _fusable("numpy-chunked")
TOLERANCE = {"float32": 8e-7, "float64": 2e-15}  # relative, finite values: a few ulp


def _specials(dtype: str) -> np.ndarray:
    info = np.finfo(dtype)
    return np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal, info.max, 1.5, -2.0], dtype
    )


def _special_grid(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and y over every pair of special values, and a condition that alternates."""
    x, y = (a.ravel() for a in np.meshgrid(_specials(dtype), _specials(dtype)))
    return x, y, np.arange(x.size) % 2 == 0


def _operands(name: str, grid: tuple) -> tuple[tuple, dict, np.dtype]:
    """The op's operands from the grid (arity and bool arguments from its samples), its params
    and its result's dtype."""
    args, params = OPS[name].samples(np.random.default_rng(0))[0]
    x, y, cond = grid
    floats = iter((x, y))
    operands = tuple(cond if np.asarray(a).dtype == bool else next(floats) for a in args)
    result = OPS[name].abstract(*(Aval(o.shape, o.dtype) for o in operands), **params)
    return operands, params, result.dtype


def _all_ops_program(names: list[str], grid: tuple) -> tuple[Program, list, list]:
    """One program for many ops (one numba build, not one per op): row k of the (ops, grid)
    output is op k's value on the grid, picked by where(row == k, op_k, the rows above)."""
    inputs = list(grid)  # x, y, cond: broadcast along the rows
    inputs += [np.arange(len(names))[:, None] == k for k in range(1, len(names))]
    steps, wants = [], []
    for k, name in enumerate(names):
        operands, params, dtype = _operands(name, grid)
        which = [next(i for i, a in enumerate(inputs) if a is o) for o in operands]
        steps.append(
            Step(name, tuple(("in", i) for i in which), tuple(sorted(params.items())), dtype.name)
        )
        if k:  # rows k and above from op k, the rows above from the ops before it
            steps.append(
                Step(
                    "where",
                    (("in", 2 + k), ("t", len(steps) - 1), ("t", len(steps) - 2)),
                    (),
                    dtype.name,
                )
            )
        with np.errstate(all="ignore"):
            wants.append(np.asarray(OPS[name].kernel(np, *operands, **params)))
    program = Program(
        tuple(a.dtype.name for a in inputs),
        tuple(steps),
        (len(names), grid[0].size),
        steps[-1].dtype,
    )
    return program, inputs, wants


def _assert_same_specials(got: np.ndarray, want: np.ndarray, grid: tuple, what: str) -> None:
    """NaN where numpy has NaN, the same infinities, and exact values wherever the inputs
    are NaN, infinite or zero; finite values within a few ulp (subnormal results apart)."""
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN")
    infinite = np.isinf(got) | np.isinf(want)
    np.testing.assert_array_equal(got[infinite], want[infinite], err_msg=f"{what}: inf")
    special = ~np.isfinite(grid[0]) | (grid[0] == 0)
    special &= ~np.isfinite(grid[1]) | (grid[1] == 0)
    np.testing.assert_array_equal(got[special], want[special], err_msg=f"{what}: exact")
    finite = np.isfinite(want)
    np.testing.assert_allclose(
        got[finite],
        want[finite],
        rtol=TOLERANCE[want.dtype.name],
        atol=np.finfo(want.dtype).tiny,
        err_msg=what,
    )


TARGETS = {
    "numpy-chunked": lambda program, args: ChunkedKernel(program)(np, *args),
    "numba": lambda program, args: NumbaKernel(program, frozenset())(np, *args),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fusable_op_keeps_nan_and_inf_where_numpy_has_them(dtype, target):
    """[nan, inf, -inf, 0, -0, tiny, huge, 1.5, -2] in every position of every op."""
    if target == "numba" and not fusion.numba_available():
        pytest.skip("numba is not installed")
    grid = _special_grid(dtype)
    fusable = _fusable(target)
    truths = {name: _operands(name, grid)[2].kind == "b" for name in fusable}
    for truth in (False, True):  # one program per result dtype
        names = [name for name in fusable if truths[name] == truth]
        program, args, wants = _all_ops_program(names, grid)
        with np.errstate(all="ignore"):
            got = TARGETS[target](program, args)
        for name, row, want in zip(names, got, wants, strict=True):
            _assert_same_specials(row, want, grid, f"{name} on {target}, {dtype}")


# ---- every op on every target, alone and in a chain, against its own kernel --------------


def _cupy_run(program: Program, args: list) -> np.ndarray:
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (no GPU here)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # cupy without a device
        pytest.skip(f"no GPU for cupy: {error}")
    got = fusion.cupy_kernel(program)(*(cupy.asarray(a) for a in args))
    return cupy.asnumpy(got)


def _numba_run(program: Program, args: list) -> np.ndarray:
    if not fusion.numba_available():
        pytest.skip("numba is not installed")
    return NumbaKernel(program, _scalars(args))(np, *args)


KERNELS = {
    "numpy-chunked": lambda program, args: ChunkedKernel(program)(np, *args),
    "numba": _numba_run,
    "cuda": _cupy_run,
}


def _twice(arg: tuple, dtype: str, steps: list) -> tuple:
    """`arg` through an op that is its own inverse, twice: the same value, one more step."""
    op = "logical_not" if dtype == "bool" else "neg"
    steps.append(Step(op, (arg,), (), dtype))
    steps.append(Step(op, (("t", len(steps) - 1),), (), dtype))
    return ("t", len(steps) - 1)


def op_program(name: str, dtype: str, chained: bool) -> tuple[Program, list, np.ndarray]:
    """Op `name` on its first sample (floats as `dtype`) as a program, alone or with each
    operand and its result passed through neg twice (logical_not for bools); its inputs; and
    its own kernel's value."""
    sample, params = OPS[name].samples(np.random.default_rng(0))[0]
    args = [np.asarray(a, a.dtype if a.dtype == bool else dtype) for a in sample]
    steps: list[Step] = []
    operands = tuple(
        _twice(("in", i), a.dtype.name, steps) if chained else ("in", i) for i, a in enumerate(args)
    )
    result = OPS[name].abstract(*(Aval(a.shape, a.dtype) for a in args), **params)
    steps.append(Step(name, operands, tuple(sorted(params.items())), result.dtype.name))
    if chained:
        _twice(("t", len(steps) - 1), result.dtype.name, steps)
    program = Program(
        tuple(a.dtype.name for a in args), tuple(steps), result.shape, result.dtype.name
    )
    return program, args, np.asarray(OPS[name].kernel(np, *args, **params))


@pytest.mark.parametrize("chained", [False, True], ids=["alone", "chained"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("target", KERNELS)
def test_every_op_fuses_on_every_target_that_spells_it(target, dtype, chained):
    """Walks the registry: each op whose declaration spells it for `target` (the numpy
    target: any) fuses, alone and in a chain, to its own kernel's value."""
    for name in _fusable(target):
        program, args, want = op_program(name, dtype, chained)
        got = np.asarray(KERNELS[target](program, args))
        if target == "numpy-chunked":
            np.testing.assert_array_equal(got, want, strict=True, err_msg=name)
        else:
            _assert_close(got, want, f"{name} on {target}")


def test_ops_that_a_target_cannot_spell_say_so_in_their_declaration():
    """Every elementwise op the pass may fuse is spelled for numba and cuda (a target that
    lacks one runs the group unfused, correctly but slower): none lacks one today."""
    for target in fusion.SCALAR_TARGETS:
        assert _fusable(target) == FUSABLE, target


# ---- constants in fused graphs: every float value, spelled so that it reads back --------


def _special_inputs() -> np.ndarray:
    """NaN, infinities, zeros, the extremes and two finite values (one no exact decimal)."""
    info = np.finfo(np.float32)
    return np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            info.smallest_subnormal,
            info.max,
            -info.max,
            0.1,
            1.5,
        ],
        np.float32,
    )


CONSTANT_CASES = {  # each was wrong in the numba kernel, or would not build
    "x * 0 + x * 0": lambda x: x * 0.0 + x * 0.0,  # fast math folded it to 0 for NaN and inf
    "x * inf": lambda x: x * float("inf") + 1.0,  # `inf` was spelled as an undefined name
    "x + nan": lambda x: (x + float("nan")) * 2.0,
    "clamp(min=-inf)": lambda x: F.clamp(x, min=-float("inf")) * 2.0,
    "1 / (x * -0.0)": lambda x: 1.0 / (x * -0.0),  # the zero's sign decides the infinity
    "x * 2 / 4": lambda x: x * 2.0 / 4.0,  # numpy's float32 x * 2 overflows; float64 did not
    "x > 0.1": lambda x: F.where(x > 0.1, x, 0.1 - x),  # against float32(0.1), as numpy
    "x * float64(2)": lambda x: x * np.float64(2.0) - 1.0,  # a numpy scalar keeps its dtype
    "tanh(x * 1e30)": lambda x: F.tanh(x * 1e30) * 2.0,  # saturates to +-1 exactly
    "x ** 0.5": lambda x: x**0.5 + 1.0,  # numpy's kernel takes it as sqrt: (-inf) ** 0.5 is NaN
}


@pytest.mark.parametrize("target", ["numba", "numpy"])
@pytest.mark.parametrize("name", CONSTANT_CASES)
def test_constants_and_special_values_in_fused_graphs_match_numpy_bit_for_bit(
    name, target, monkeypatch
):
    if target == "numba" and not fusion.numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", target)
    x = S.placeholder((10,), name="x")
    out = CONSTANT_CASES[name](x)
    f = S.compile(out, inputs=[x], optimize=2)
    (fused,) = f.report.fused_kernels
    with np.errstate(all="ignore"):
        want = S.compile(out, inputs=[x], optimize=0)(_special_inputs())
        got = f(_special_inputs())
    assert fused.kernel.choice.startswith({"numba": "numba", "numpy": "numpy"}[target])
    np.testing.assert_array_equal(got, want, strict=True)


LITERALS = [
    np.nan,
    np.inf,
    -np.inf,
    -0.0,
    0.0,
    5e-324,
    1e-45,
    1.7976931348623157e308,
    0.1,
    np.float32(0.1),
    np.float64(2.0),
    np.float16(0.1),
    3,
    -(2**70),
    True,
    np.int8(-3),
    np.bool_(False),
]


@needs_numba
def test_numba_literals_read_back_as_numpy_converts_them():
    """Each literal as numpy's kernel takes it (a Python one in the arrays' dtype), bit for
    bit: `np.float32(0.1)`, not 0.1; inf and NaN spelled so that they are defined."""
    import numba

    cases = [
        (value, np.dtype(dtype)) for dtype in ("float32", "float64", "bool") for value in LITERALS
    ]
    spelled = [fusion.numba_literal(value, dtype) for value, dtype in cases]
    namespace = {"np": np}
    exec(f"def literals():\n    return ({', '.join(spelled)},)\n", namespace)  # noqa: S102
    got = numba.njit(namespace["literals"])()
    for (value, dtype), text, read in zip(cases, spelled, got, strict=True):
        with np.errstate(over="ignore"):  # 1.8e308 into float32: inf, as in numpy's kernel
            want = np.asarray(value, dtype)
        assert np.asarray(read, dtype).tobytes() == want.tobytes(), (value, dtype, text)


def test_only_numbers_and_identifiers_reach_kernel_source():
    """A user's names (of placeholders, variables) never appear in any target's source; a
    literal that is not a number, or an op name that is not an identifier, is refused."""
    x = S.placeholder((10,), name="user_secret_x")
    w = S.variable(np.ones(10, np.float32), name="user_secret_w")
    f = S.compile(F.tanh(x * w + 1.5) * 2.0, inputs=[x], optimize=2)
    (fused,) = f.report.fused_kernels
    program = fused.kernel.program
    for source in (
        fusion.numpy_source(program)[0],
        fusion.numba_source(program),
        fusion.cupy_source(program),
    ):
        assert "user_secret" not in source, source
    with pytest.raises(TypeError, match="not a number"):
        Step("mul", (("in", 0), ("lit", "__import__('os')")))
    with pytest.raises(ValueError, match="not a registered op"):
        Step("mul; import os", (("in", 0), ("in", 1)))


@needs_numba
def test_a_lower_rank_input_is_read_in_its_own_layout_not_a_stride_0_view():
    """A bias (n,) added to (m, n) is indexed at 0 on its broadcast axis: the loop keeps
    contiguous inputs (a stride-0 broadcast view made the fused GELU 5-9x slower)."""
    steps = (Step("add", (("in", 0), ("in", 1))), Step("tanh", (("t", 0),)))
    program = Program(("float32", "float32"), steps, (4, 3), "float32")
    source = fusion.numba_source(program, frozenset(), ((4, 3), (3,)))
    assert "a0[i0, i1]" in source and "a1[0, i1]" in source
    a = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    b = np.array([0.5, -1.0, 2.0], np.float32)
    kernel = NumbaKernel(program, frozenset(), ((4, 3), (3,)))
    np.testing.assert_allclose(kernel(np, a, b), np.tanh(a + b), rtol=1e-6)
    with pytest.raises(ValueError, match="built for input shapes"):
        kernel(np, a, np.ones((4, 3), np.float32))
