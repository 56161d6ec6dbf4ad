"""Fused elementwise kernels: one loop over the output for a whole group of elementwise ops.

A `Program` is the group as data (steps over inputs, temporaries and literals). The backend
compiles it:
- numpy, chunked: the group runs block by block (cache-sized chunks) through the ops' own
  SIMD kernels, the blocks spread over the cores (numpy releases the GIL); values equal the
  unfused graph's bit for bit;
- numba: one loop (over the cores for large groups) with no temporaries, at memory
  bandwidth; each step rounds to its dtype as numpy's kernel does, so NaN, inf and overflow
  land where numpy's do (exp, log and tanh may differ by a few ulp);
- cupy: one `ElementwiseKernel` on the GPU.
Which CPU target runs a group is a rule, not a measurement, so that a program gives the same
bits in every run: see `FusedKernel` and `$DIPTYCH_FUSION_TARGET`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import math
import os
import pathlib
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from common import kernel_cache
from common.ops import OPS

CHUNK_ELEMENTS = 1 << 15  # 128 KB of float32 per temporary: stays in the L2 cache
SMALL = 1 << 16  # below this many elements one chunk, one thread: no pool overhead
PARALLEL = 1 << 21  # from this many elements on, blocks go to the thread pool (measured: below
# it, waking the pool's threads costs more than the second core gives on these machines)
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1)


@dataclass(frozen=True)
class Step:
    op: str  # a registered elementwise op
    args: tuple  # ("in", i) | ("t", j) | ("lit", value)
    params: tuple = ()  # the op's params as sorted (name, value) pairs
    dtype: str = "float32"  # the step's result (comparisons give bool)

    def __post_init__(self) -> None:
        """Kernel source spells only registered op names, identifiers and numbers: nothing a
        user named (a variable, a placeholder) can reach it."""
        names = [self.op, *(name for name, _ in self.params)]
        if self.op not in OPS or not all(name.isidentifier() for name in names):
            raise ValueError(
                f"fusion: {self.op!r} (params {names[1:]}) is not a registered "
                "op with identifier names"
            )
        for value in [v for kind, v in self.args if kind == "lit"] + [v for _, v in self.params]:
            if value is not None and not is_number(value):
                raise TypeError(f"fusion: {self.op} takes {value!r}, which is not a number")


def is_number(value: Any) -> bool:
    """A literal a kernel can hold: a Python or numpy bool, integer or float."""
    return isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating))


@dataclass(frozen=True)
class Program:
    inputs: tuple[str, ...]  # each input's dtype
    steps: tuple[Step, ...]  # the last step's value is the output
    shape: tuple
    dtype: str

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def dtypes(self) -> set[str]:
        """Every dtype the kernel computes with."""
        return {*self.inputs, *(s.dtype for s in self.steps)}

    def operand_dtype(self, step: Step) -> np.dtype:
        """The dtype numpy's kernel takes `step`'s operands in: a Python literal adopts the
        arrays' dtype (NEP 50: `x_f32 * 0.1` multiplies by float32(0.1)), a numpy one keeps
        its own."""
        dtypes = [
            self.inputs[v] if kind == "in" else self.steps[v].dtype if kind == "t" else v
            for kind, v in step.args
        ]
        return np.result_type(*dtypes, *(v for _, v in step.params if v is not None))

    def expression(self, names: list[str] | None = None) -> str:
        """The group as readable code from the ops' templates: a value used twice is named
        (`t1 = tanh(x0); (t1 + t1)`), anything else is written inline."""
        names = names or [f"x{i}" for i in range(self.n_inputs)]
        uses = Counter(a[1] for s in self.steps for a in s.args if a[0] == "t")
        done: list[str] = []
        lets: list[str] = []
        for j, step in enumerate(self.steps):
            args = [
                names[a[1]] if a[0] == "in" else done[a[1]] if a[0] == "t" else repr(a[1])
                for a in step.args
            ]
            template = OPS[step.op].expr or f"{step.op}({', '.join(['{}'] * len(args))})"
            text = template.format(*args, **dict(step.params))
            if uses[j] > 1:
                lets.append(f"t{j} = {text}")
                text = f"t{j}"
            done.append(text)
        return "; ".join(lets + [done[-1]])


def numpy_source(program: Program) -> tuple[str, dict[str, Any]]:
    """Straight-line numpy for one block: each step is the op's own kernel writing into a
    scratch buffer (the last into `out`), so values equal the unfused graph's bit for bit.
    Literals and params are bound by name (`c0`): the kernel gets the very objects the graph
    holds (inf, -0.0, a weak Python float or a numpy float64), no spelling to go wrong."""
    constants: dict[str, Any] = {}

    def bind(value: Any) -> str:
        name = f"c{len(constants)}"
        constants[name] = value
        return name

    inputs = [f"a{i}" for i in range(program.n_inputs)]
    scratch = [f"s{j}" for j in range(len(program.steps) - 1)]
    lines = [f"def block(xp, {', '.join(inputs + scratch + ['out'])}):"]
    for j, step in enumerate(program.steps):
        args = [
            f"a{v}" if kind == "in" else f"t{v}" if kind == "t" else bind(v)
            for kind, v in step.args
        ]
        args += [f"{name}={bind(value)}" for name, value in step.params]
        target = "out" if j == len(program.steps) - 1 else f"s{j}"
        lines.append(f"    t{j} = k_{step.op}(xp, {', '.join(args)}, out={target})")
    lines.append(f"    return t{len(program.steps) - 1}")
    return "\n".join(lines) + "\n", constants


class ChunkedKernel:
    """numpy target: cache-sized blocks along the leading axis, spread over the cores."""

    target = "numpy-chunked"

    def __init__(self, program: Program) -> None:
        self.program = program
        self.source, namespace = numpy_source(program)
        namespace.update({f"k_{s.op}": OPS[s.op].kernel for s in program.steps})
        exec(compile(self.source, "<diptych fused block>", "exec"), namespace)  # noqa: S102
        self._block = namespace["block"]
        self._scratch = threading.local()  # each thread's temporaries, reused across calls
        shape = program.shape
        self._size = int(np.prod(shape))
        self._one_block = self._size <= SMALL or not shape or shape[0] == 1

    def unfused(self, xp: Any, inputs: tuple, out: Any = None) -> Any:
        """The ops' own kernels one after another on whole arrays (any backend): the
        unfused plan, for a target that cannot spell an op or failed to build."""
        out = xp.empty(self.program.shape, self.program.dtype) if out is None else out
        result = self._block(xp, *inputs, *([None] * (len(self.program.steps) - 1)), out)
        if result is not out:  # a 0-d result comes back as a scalar
            xp.copyto(out, result, casting="unsafe")
        return out

    def _buffers(self, rows: int) -> list:
        """One block-sized temporary per step but the last (which writes the output)."""
        cached = getattr(self._scratch, "buffers", None)
        if cached is None or cached[0] != rows:
            shape = ((rows,) + tuple(self.program.shape[1:])) if self.program.shape else ()
            cached = (rows, [np.empty(shape, s.dtype) for s in self.program.steps[:-1]])
            self._scratch.buffers = cached
        return cached[1]

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        shape, dtype = self.program.shape, self.program.dtype
        out = np.empty(shape, dtype) if out is None else out
        size = self._size
        if self._one_block:  # on this thread, straight through
            rows = shape[0] if shape else 0
            result = self._block(xp, *inputs, *self._buffers(rows), out)
            if result is not out:  # a 0-d result comes back as a scalar
                np.copyto(out, result, casting="unsafe")
            return out
        rows = max(1, CHUNK_ELEMENTS // max(1, size // shape[0]))
        lead = shape[0]

        def block(start: int) -> None:
            stop = min(start + rows, lead)
            part = tuple(a[start:stop] if _has_lead(a, shape) else a for a in inputs)
            self._block(
                xp, *part, *(b[: stop - start] for b in self._buffers(rows)), out[start:stop]
            )

        starts = range(0, lead, rows)
        if size >= PARALLEL:
            list(_pool.map(block, starts))
        else:
            for start in starts:
                block(start)
        return out


def _has_lead(value: Any, shape: tuple) -> bool:
    return getattr(value, "ndim", 0) == len(shape) and value.shape[0] == shape[0] > 1


# ---- numba: one loop nest ---------------------------------------------------------------

# No fast-math flags: each one changes special values somewhere ('nnan'/'ninf' drop NaN and
# inf, 'nsz' flips the sign of a zero and so of 1/0, 'arcp' turns inf / huge into inf * 0 =
# NaN, 'contract' (FMA) skips the overflow of x*x in x*x - x*x, 'reassoc' moves an overflow,
# 'afn' approximates libm); the loops vectorize without them (measured on 300,000 float32:
# the gelu group 10% slower without, pythagoras, SGD and where as fast).

SCALAR_TARGETS = ("numba", "cuda")  # the targets that spell each op (numpy runs its kernel)


def unspelled(program: Program, target: str) -> list[str]:
    """The ops of `program` that declare no spelling for `target` (see `OpDef.scalar`)."""
    return sorted({s.op for s in program.steps if OPS[s.op].spelling(target) is None})


def preamble(program: Program, target: str) -> str:
    """What the program's ops need declared before a `target` kernel, each text once."""
    seen: dict[str, None] = {}  # in step order, without repeats
    for step in program.steps:
        text = OPS[step.op].preamble.get(target, "")
        seen[(text(program.dtypes) if callable(text) else text).strip("\n")] = None
    imports = "\n".join(text for text in seen if text and "\n" not in text)  # one-liners first
    blocks = [text for text in seen if "\n" in text]  # then definitions
    return "\n\n".join(text for text in [imports, *blocks] if text) + "\n"


def spell(step: Step, args: list[str], literal: Callable[[Any], str], target: str) -> str:
    """One step in a target language, as its op declares it: a template or a function."""
    params = {name: None if v is None else literal(v) for name, v in step.params}
    spelling = OPS[step.op].spelling(target)
    if spelling is None:
        raise ValueError(f"fusion: {step.op} declares no spelling for {target}")
    if callable(spelling):
        return spelling(args, params, step)
    return spelling.format(*args, **params)


def number(value: Any, infinity: str = "np.inf", nan: str = "np.nan") -> str:
    """A number as source text that Python and C read back as exactly that value: `repr` for
    finite ones (it round-trips), bools as 1 and 0, the target's names for inf and NaN."""
    if not is_number(value):
        raise TypeError(f"{value!r} is not a number: only numbers are spelled into kernels")
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not math.isfinite(value):
        return nan if math.isnan(value) else infinity if value > 0 else f"-{infinity}"
    return repr(int(value) if isinstance(value, bool) else value)


def numba_literal(value: Any, dtype: np.dtype) -> str:
    """`value` converted to `dtype` as numpy converts it, spelled so that numba reads back the
    same bits: `np.float32(0.10000000149011612)`, `np.float64(-np.inf)`, `np.bool(True)`."""
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf, as in numpy's kernel
        converted = np.asarray(value, dtype).item()
    return f"np.{dtype.name}({number(converted)})"


def _numba_steps(program: Program, names: list[str]) -> list[str]:
    """One line per step; each value is cast to the step's dtype, as numpy's kernel returns
    it, so a float32 step rounds (and overflows to inf) where numpy's does."""
    lines = []
    for j, step in enumerate(program.steps):
        literal = functools.partial(numba_literal, dtype=program.operand_dtype(step))
        args = [
            names[v] if kind == "in" else f"t{v}" if kind == "t" else literal(v)
            for kind, v in step.args
        ]
        text = spell(step, args, literal, "numba")
        lines.append(f"t{j} = np.{np.dtype(step.dtype).name}({text})")
    return lines


def _fast_tanh(program: Program) -> bool:
    """Whether `tanh` is the float32 approximation (else numpy's, through scalar libm)."""
    return "float64" not in program.dtypes


def padded_shape(shape: tuple, ndim: int) -> tuple:
    """An input's shape with ones in front, to the output's rank (numpy broadcasting)."""
    return (1,) * (ndim - len(shape)) + tuple(shape)


def _indexed(i: int, program: Program, shapes: tuple | None) -> str:
    """Input i read at the loop's position: a broadcast axis (size 1) at index 0, so the
    input keeps its own small, contiguous layout (a stride-0 view made the loop 5-9x slower)."""
    ndim = len(program.shape)
    shape = padded_shape(shapes[i], ndim) if shapes else (None,) * ndim
    return ", ".join("0" if shape[d] == 1 else f"i{d}" for d in range(ndim)) or "()"


def numba_source(
    program: Program, scalars: frozenset = frozenset(), shapes: tuple | None = None
) -> str:
    """One loop nest over the output, the outer loop spread over the cores (`prange`) from
    `PARALLEL` elements on, as the chunked kernel's blocks are; 0-d inputs (`scalars`) come
    as numbers; with `shapes` (each input's), a lower-rank or size-1 axis is read at index 0,
    else inputs come broadcast to the output's shape. numpy's error model: x / 0 gives inf
    or NaN as numpy's does, instead of raising (a check that also kept the loop from
    vectorizing)."""
    ndim = len(program.shape)
    parallel = int(np.prod(program.shape)) >= PARALLEL
    index = ", ".join(f"i{d}" for d in range(ndim)) or "()"
    names = [
        f"a{i}" if i in scalars else f"a{i}[{_indexed(i, program, shapes)}]"
        for i in range(program.n_inputs)
    ]
    args = ", ".join(f"a{i}" for i in range(program.n_inputs))
    loops = "".join(
        f"{'    ' * (d + 1)}for i{d} in "
        f"{'numba.prange' if d == 0 and parallel else 'range'}(out.shape[{d}]):\n"
        for d in range(ndim)
    )
    lines = _numba_steps(program, names) + [f"out[{index}] = t{len(program.steps) - 1}"]
    body = "".join(f"{'    ' * (ndim + 1)}{line}\n" for line in lines)
    return (
        f"import numba\nimport numpy as np\n"
        f"{preamble(program, 'numba')}\n\n"
        f"@numba.njit(parallel={parallel}, error_model='numpy')\n"
        f"def kernel(out, {args}):\n{loops}{body}"
    )


# ---- where numba kernels are cached -----------------------------------------------------


def cache_dir() -> pathlib.Path:
    """The folder numba kernels are cached in (see `common.kernel_cache`): $DIPTYCH_CACHE/kernels,
    else ~/.cache/diptych/kernels, read at each use (so tests and users can move it)."""
    root = os.environ.get("DIPTYCH_CACHE") or pathlib.Path.home() / ".cache" / "diptych"
    return pathlib.Path(root) / "kernels"


class NumbaKernel:
    """numba target: one loop nest, built on its first call (from the disk cache if it is
    there and safe to use)."""

    target = "numba"

    def __init__(self, program: Program, scalars: frozenset, shapes: tuple | None = None):
        """`shapes`: the inputs' shapes, which every call keeps (a graph's are fixed); without
        them inputs are broadcast to the output's shape at each call."""
        self.program = program
        self.shapes = shapes
        self.source = numba_source(program, scalars, shapes)
        self.compile_seconds = 0.0
        self._kernel: Any = None

    def _argument(self, a: Any) -> Any:
        if not np.ndim(a):
            return a[()] if hasattr(a, "shape") else a
        shape, ndim = self.program.shape, len(self.program.shape)
        return (
            np.broadcast_to(a, shape)
            if self.shapes is None
            else a.reshape(padded_shape(a.shape, ndim))
        )

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        shape = self.program.shape
        out = np.empty(shape, self.program.dtype) if out is None else out
        if self.shapes is not None and tuple(np.shape(a) for a in inputs) != self.shapes:
            raise ValueError(
                f"fused kernel built for input shapes {self.shapes}, called with "
                f"{tuple(np.shape(a) for a in inputs)}"
            )
        args = [self._argument(a) for a in inputs]
        if self._kernel is None:  # the first run compiles; it must also be the only run, as
            start = time.perf_counter()  # `out` may be an input's buffer (in place)
            self._kernel = kernel_cache.build(self.source, cache_dir(), out, args)
            self.compile_seconds = time.perf_counter() - start
            return out
        self._kernel(out, *args)
        return out


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


# ---- choosing per group -----------------------------------------------------------------

TARGETS = ("auto", "numba", "numpy")  # $DIPTYCH_FUSION_TARGET, read on a kernel's first call
NUMBA_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64".split()
)  # numba has no float16 arithmetic
# numba calls scalar libm for these, where numpy's loops are SIMD: on 300,000 float32, a group
# with exp or log ran 3x slower in numba than chunked; with arithmetic, tanh (the float32
# approximation) or comparisons only, 2-4x faster
LIBM_OPS = frozenset({"exp", "log"})


NO_NUMBA = "numba is not installed"


def _numpy_reason(program: Program, target: str) -> str | None:
    """Why the group runs with numpy, block by block; None when numba runs it. `auto` asks
    for numba where it was measured faster: groups of more than one block with no libm call."""
    if target == "numpy":
        return "DIPTYCH_FUSION_TARGET=numpy"
    if not numba_available():
        return NO_NUMBA
    lacking = sorted(program.dtypes - NUMBA_DTYPES)
    if lacking:
        return f"numba has no {', '.join(lacking)} arithmetic"
    unfusable = unspelled(program, "numba")
    if unfusable:
        return f"{', '.join(unfusable)}: no numba spelling"
    if target == "numba":
        return None
    if int(np.prod(program.shape)) <= SMALL:
        return "small: one block"
    libm = LIBM_OPS if _fast_tanh(program) else LIBM_OPS | {"tanh", "sigmoid"}
    calls = sorted(libm & {s.op for s in program.steps})
    return f"{', '.join(calls)}: scalar libm in numba, SIMD in numpy" if calls else None


class FusedKernel:
    """The kernel of one fused group. Its target is chosen on the first call by a rule (the
    group's size and dtypes, numba's presence, `$DIPTYCH_FUSION_TARGET`), never by timing,
    so a program gives the same bits in every run; a numba build that fails falls back to
    numpy, with one warning."""

    # A numba loop whose output is one of its inputs cannot be proven free of aliasing, so
    # LLVM leaves it scalar: measured 7-10x slower (gelu on 512x512 float32: 1.4-2.3 ms in
    # place, 0.2 ms into another buffer). The memory planner gives fused ops a buffer of
    # their own; it still reuses buffers across the schedule.
    writes_in_place_well = False

    def __init__(self, program: Program, name: str = "fused kernel") -> None:
        self.program = program
        self.name = name  # the fused op's name, for warnings
        self.chunked = ChunkedKernel(program)
        self.chosen: Any = None
        self.choice = "not run yet"  # why this target, in words (for the report)
        self.gpu_choice: str | None = None  # on the GPU: "cupy", or why the ops run unfused
        self.compile_seconds = 0.0

    @property
    def source(self) -> str:
        return (self.chosen or self.chunked).source

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        if xp is not np:  # on the GPU: one generated CUDA kernel, written into `out` if given
            return self._on_gpu(xp, inputs, out)
        if self.chosen is None:
            return self._first_call(inputs, out)
        return self.chosen(xp, *inputs, out=out)

    def _first_call(self, inputs: tuple, out: Any) -> Any:
        """Choose the target, build it and run it once. Any numba error means numpy instead,
        with one warning: numba fails before it writes `out` (maybe an input's buffer)."""
        target = os.environ.get("DIPTYCH_FUSION_TARGET", "auto")
        if target not in TARGETS:
            raise ValueError(f"DIPTYCH_FUSION_TARGET={target!r}: expected one of {TARGETS}")
        reason = _numpy_reason(self.program, target)
        if reason == NO_NUMBA:
            warnings.warn(
                "numba is not installed: fused kernels run block by block with "
                "numpy instead (pip install 'diptych[fast]').",
                stacklevel=4,
            )
        if reason is None:
            try:
                kernel = NumbaKernel(
                    self.program,
                    frozenset(i for i, a in enumerate(inputs) if np.ndim(a) == 0),
                    tuple(np.shape(a) for a in inputs),
                )
                result = kernel(np, *inputs, out=out)
            except Exception as error:
                reason = self._numba_failed(error)
            else:
                self.chosen, self.choice = kernel, f"numba (DIPTYCH_FUSION_TARGET={target})"
                self.compile_seconds = kernel.compile_seconds
                return result
        self.chosen, self.choice = self.chunked, f"numpy-chunked ({reason})"
        return self.chunked(np, *inputs, out=out)

    def _numba_failed(self, error: Exception) -> str:
        """One warning, naming the kernel and its ops; the reason the report gives."""
        self._warn_failed("numba", error, "with numpy, block by block (each op's own kernel)")
        return f"numba failed: {type(error).__name__}"

    def _warn_failed(self, target: str, error: Exception, instead: str) -> None:
        first_line = (str(error).strip().splitlines() or [""])[0]
        ops = ", ".join(dict.fromkeys(s.op for s in self.program.steps))
        warnings.warn(
            f"{self.name} ({self.program.expression()}; ops {ops}): {target} could "
            f"not build it ({type(error).__name__}: {first_line}); it runs {instead}.",
            stacklevel=6,
        )

    def _on_gpu(self, xp: Any, inputs: tuple, out: Any) -> Any:
        """The CUDA kernel; where an op has no CUDA spelling, or the kernel fails to build
        (before it writes), the ops' own kernels one after another: the unfused plan."""
        if self.gpu_choice is None:
            unfusable = unspelled(self.program, "cuda")
            self.gpu_choice = f"unfused ({', '.join(unfusable)}: no cuda spelling)"
            if not unfusable:
                try:
                    kernel = cupy_kernel(self.program)
                    result = kernel(*inputs) if out is None else kernel(*inputs, out)
                except Exception as error:
                    self._warn_failed("cuda", error, "op by op, unfused")
                    self.gpu_choice = f"unfused (cuda failed: {type(error).__name__})"
                else:
                    self.gpu_choice = "cupy"
                    return result
        if self.gpu_choice == "cupy":
            kernel = cupy_kernel(self.program)
            return kernel(*inputs) if out is None else kernel(*inputs, out)
        return self.chunked.unfused(xp, inputs, out)


# ---- cupy: an ElementwiseKernel ---------------------------------------------------------

_cupy_kernels: dict[Program, Any] = {}


def cupy_source(program: Program) -> str:
    names = [f"a{i}" for i in range(program.n_inputs)]
    ctype = {"float32": "float", "float64": "double", "bool": "bool"}.get(
        program.dtype, program.dtype
    )

    def literal(value: Any) -> str:
        return f"(({ctype}){number(value, infinity='_inf()', nan='_nan()')})"

    done: list[str] = []
    for step in program.steps:
        args = [
            names[v] if kind == "in" else done[v] if kind == "t" else literal(v)
            for kind, v in step.args
        ]
        done.append(spell(step, args, literal, "cuda"))
    return f"out = {done[-1]}"


def cupy_kernel(program: Program) -> Any:
    kernel = _cupy_kernels.get(program)
    if kernel is None:
        import cupy

        # a type placeholder per input (cupy's are single capital letters): dtypes may differ
        params = ", ".join(f"{chr(ord('A') + i)} a{i}" for i in range(program.n_inputs))
        kernel = cupy.ElementwiseKernel(
            params,
            f"{program.dtype} out",
            cupy_source(program),
            "diptych_fused",
            preamble=_CUDA_PREAMBLE + preamble(program, "cuda"),
        )
        _cupy_kernels[program] = kernel
    return kernel


_CUDA_PREAMBLE = """
__device__ float _inf() { return __int_as_float(0x7f800000); }
__device__ float _nan() { return __int_as_float(0x7fc00000); }
"""  # the literals' names; what each op needs comes from its declaration
