"""Fused elementwise kernels: one loop over the output for a whole group of elementwise ops.

A `Program` is the group as data (steps over inputs, temporaries and literals). The backend
compiles it:
- numpy, chunked: the group runs block by block (cache-sized chunks) through the ops' own
  SIMD kernels, the blocks spread over the cores (numpy releases the GIL); values equal the
  unfused graph's bit for bit;
- numba: one parallel loop (`prange`) with no temporaries, at memory bandwidth; chosen per
  group by timing it against the chunked kernel on the first call, because numba calls
  scalar libm for exp and tanh, which can be slower than numpy's vectorized ones;
- cupy: one `ElementwiseKernel` on the GPU.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import os
import pathlib
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from common.ops import OPS

CHUNK_ELEMENTS = 1 << 15  # 128 KB of float32 per temporary: stays in the L2 cache
SMALL = 1 << 16  # below this many elements one chunk, one thread: no pool overhead
PARALLEL = 1 << 21  # from this many elements on, blocks go to the thread pool (measured: below
# it, waking the pool's threads costs more than the second core gives on these machines)
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
CACHE_DIR = pathlib.Path(os.environ.get("DIPTYCH_CACHE", pathlib.Path.home() / ".cache" /
                                        "diptych")) / "kernels"


@dataclass(frozen=True)
class Step:
    op: str  # a registered elementwise op
    args: tuple  # ("in", i) | ("t", j) | ("lit", value)
    params: tuple = ()  # the op's params as sorted (name, value) pairs
    dtype: str = "float32"  # the step's result (comparisons give bool)


@dataclass(frozen=True)
class Program:
    n_inputs: int
    steps: tuple[Step, ...]  # the last step's value is the output
    shape: tuple
    dtype: str

    def expression(self, names: list[str] | None = None) -> str:
        """The group as readable code from the ops' templates: a value used twice is named
        (`t1 = tanh(x0); (t1 + t1)`), anything else is written inline."""
        names = names or [f"x{i}" for i in range(self.n_inputs)]
        uses = Counter(a[1] for s in self.steps for a in s.args if a[0] == "t")
        done: list[str] = []
        lets: list[str] = []
        for j, step in enumerate(self.steps):
            args = [names[a[1]] if a[0] == "in" else done[a[1]] if a[0] == "t" else repr(a[1])
                    for a in step.args]
            text = OPS[step.op].expr.format(*args, **dict(step.params))
            if uses[j] > 1:
                lets.append(f"t{j} = {text}")
                text = f"t{j}"
            done.append(text)
        return "; ".join(lets + [done[-1]])


def numpy_source(program: Program) -> str:
    """Straight-line numpy for one block: each step is the op's own kernel writing into a
    scratch buffer (the last into `out`), so values equal the unfused graph's bit for bit."""
    inputs = [f"a{i}" for i in range(program.n_inputs)]
    scratch = [f"s{j}" for j in range(len(program.steps) - 1)]
    lines = [f"def block(xp, {', '.join(inputs + scratch + ['out'])}):"]
    for j, step in enumerate(program.steps):
        args = [f"a{a[1]}" if a[0] == "in" else f"t{a[1]}" if a[0] == "t" else repr(a[1])
                for a in step.args]
        args += [f"{k}={v!r}" for k, v in step.params]
        target = "out" if j == len(program.steps) - 1 else f"s{j}"
        lines.append(f"    t{j} = k_{step.op}(xp, {', '.join(args)}, out={target})")
    lines.append(f"    return t{len(program.steps) - 1}")
    return "\n".join(lines) + "\n"


class ChunkedKernel:
    """numpy target: cache-sized blocks along the leading axis, spread over the cores."""

    target = "numpy-chunked"

    def __init__(self, program: Program) -> None:
        self.program = program
        self.source = numpy_source(program)
        namespace = {f"k_{s.op}": OPS[s.op].kernel for s in program.steps}
        exec(compile(self.source, "<diptych fused block>", "exec"), namespace)  # noqa: S102
        self._block = namespace["block"]
        self._scratch = threading.local()  # each thread's temporaries, reused across calls
        shape = program.shape
        self._size = int(np.prod(shape))
        self._one_block = self._size <= SMALL or not shape or shape[0] == 1

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
            self._block(xp, *part, *(b[:stop - start] for b in self._buffers(rows)),
                        out[start:stop])

        starts = range(0, lead, rows)
        if size >= PARALLEL:
            list(_pool.map(block, starts))
        else:
            for start in starts:
                block(start)
        return out


def _has_lead(value: Any, shape: tuple) -> bool:
    return getattr(value, "ndim", 0) == len(shape) and value.shape[0] == shape[0] > 1


# ---- numba: one parallel loop -----------------------------------------------------------

# numba calls scalar libm for np.tanh, which no loop can vectorize; for float32 this rational
# approximation (Eigen's, also XLA's on the CPU; a few ulp) is plain arithmetic that LLVM
# vectorizes.
_FAST_TANH = '''
@numba.njit(inline="always", fastmath=FLAGS)
def tanh(x):
    x = min(max(x, np.float32(-7.99881172180175781)), np.float32(7.99881172180175781))
    if abs(x) < np.float32(0.0004):
        return x
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q
'''
FLAGS = {"nsz", "arcp", "contract", "afn", "reassoc"}  # fast math, but NaN and inf kept

_SCALAR_HELPERS = '''
@numba.njit(inline="always")
def where(c, a, b):
    return a if c else b


@numba.njit(inline="always")
def clip(x, lo, hi):
    return min(max(x, lo), hi)
'''


def _bound(value: Any, infinite: str) -> str:
    return infinite if value is None else repr(value)


# How each target spells the ops whose Python template it cannot take as it is.
NUMBA_SPELLING: dict[str, Callable] = {
    "clamp": lambda a, p: f"clip({a[0]}, {_bound(p['min'], '-np.inf')}, "
                          f"{_bound(p['max'], 'np.inf')})",
}
CUDA_SPELLING: dict[str, Callable] = {
    "clamp": lambda a, p: f"_clip({a[0]}, {_bound(p['min'], '-_inf()')}, "
                          f"{_bound(p['max'], '_inf()')})",
    "pow": lambda a, p: f"_pow({a[0]}, {a[1]})",
    "maximum": lambda a, p: f"_maximum({a[0]}, {a[1]})",
    "minimum": lambda a, p: f"_minimum({a[0]}, {a[1]})",
    "relu": lambda a, p: f"_maximum({a[0]}, 0)",
    "where": lambda a, p: f"_where({a[0]}, {a[1]}, {a[2]})",
    "logical_not": lambda a, p: f"(!{a[0]})",
    "logical_and": lambda a, p: f"({a[0]} && {a[1]})",
    "logical_or": lambda a, p: f"({a[0]} || {a[1]})",
}


def expression(program: Program, names: list[str], spelling: dict,
               literal: Callable[[Any], str] = repr) -> str:
    """The group as one expression of a target language, from the ops' templates."""
    done: list[str] = []
    for step in program.steps:
        args = [names[a[1]] if a[0] == "in" else done[a[1]] if a[0] == "t" else literal(a[1])
                for a in step.args]
        params = dict(step.params)
        spell = spelling.get(step.op)
        done.append(spell(args, params) if spell else OPS[step.op].expr.format(*args, **params))
    return done[-1]


def numba_source(program: Program, scalars: frozenset = frozenset()) -> str:
    """One loop nest over the output, the outer loop parallel (`prange`); array inputs come
    broadcast to the output's shape (any strides), 0-d ones (`scalars`) as numbers."""
    ndim = len(program.shape)
    index = ", ".join(f"i{d}" for d in range(ndim)) or "()"
    names = [f"a{i}" if i in scalars else f"a{i}[{index}]" for i in range(program.n_inputs)]
    args = ", ".join(f"a{i}" for i in range(program.n_inputs))
    loops = "".join(f"{'    ' * (d + 1)}for i{d} in "
                    f"{'numba.prange' if d == 0 else 'range'}(out.shape[{d}]):\n"
                    for d in range(ndim))
    body = f"{'    ' * (ndim + 1)}out[{index}] = {expression(program, names, NUMBA_SPELLING)}\n"
    fast = program.dtype == "float32"
    return (f"import numba\nimport numpy as np\n"
            f"from numpy import (abs, exp, log, logical_and, logical_not, logical_or, maximum,\n"
            f"                   minimum, sign, sqrt, tanh)\n"
            f"FLAGS = {FLAGS!r}\n"
            f"{_SCALAR_HELPERS}{_FAST_TANH if fast else ''}\n\n"
            f"@numba.njit(parallel={ndim > 0}, cache=True{', fastmath=FLAGS' if fast else ''})\n"
            f"def kernel(out, {args}):\n{loops}{body}")


def _load_numba_kernel(source: str) -> Any:
    """Import the kernel from a file in the cache folder, so numba caches it on disk."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"fused_{digest}.py"
    if not path.exists():
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"diptych_fused_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's disk cache finds the function through it
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.kernel


class NumbaKernel:
    target = "numba"

    def __init__(self, program: Program, scalars: frozenset) -> None:
        self.program = program
        self.source = numba_source(program, scalars)
        self.compile_seconds = 0.0
        self._kernel: Any = None

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        shape = self.program.shape
        out = np.empty(shape, self.program.dtype) if out is None else out
        args = [np.broadcast_to(a, shape) if np.ndim(a) else a[()] if hasattr(a, "shape")
                else a for a in inputs]
        if self._kernel is None:  # the first run compiles; it must also be the only run, as
            start = time.perf_counter()  # `out` may be an input's buffer (in place)
            self._kernel = _load_numba_kernel(self.source)
            self._kernel(out, *args)
            self.compile_seconds = time.perf_counter() - start
            return out
        self._kernel(out, *args)
        return out


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


# ---- choosing per group -----------------------------------------------------------------

class FusedKernel:
    """The kernel of one fused group: picks its target on the first call, by measuring."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.chunked = ChunkedKernel(program)
        self.chosen: Any = None
        self.choice = "not run yet"  # why this target, in words (for the report)
        self.compile_seconds = 0.0

    @property
    def source(self) -> str:
        return (self.chosen or self.chunked).source

    def _choose(self, inputs: tuple) -> None:
        """Time the candidates into a scratch output: the real `out` may be an input's
        buffer (written in place), which must be written exactly once."""
        out = np.empty(self.program.shape, self.program.dtype)
        if not numba_available():
            self.chosen, self.choice = self.chunked, "numpy-chunked (numba is not installed)"
            warnings.warn("numba is not installed: fused kernels run block by block with "
                          "numpy instead (pip install 'diptych[fast]').", stacklevel=4)
            return
        if int(np.prod(self.program.shape)) <= SMALL:
            self.chosen, self.choice = self.chunked, "numpy-chunked (small: one block)"
            return
        candidate = NumbaKernel(self.program,
                                frozenset(i for i, a in enumerate(inputs) if np.ndim(a) == 0))
        candidate(np, *inputs, out=out)  # compiles (or loads from the disk cache)
        self.compile_seconds = candidate.compile_seconds
        times = {}
        for kernel in (candidate, self.chunked, candidate, self.chunked):  # best of two each
            start = time.perf_counter()
            kernel(np, *inputs, out=out)
            elapsed = time.perf_counter() - start
            times[kernel.target] = min(elapsed, times.get(kernel.target, elapsed))
        self.chosen = candidate if times["numba"] <= times["numpy-chunked"] else self.chunked
        self.choice = (f"{self.chosen.target} (measured: numba {1e3 * times['numba']:.2f} ms, "
                       f"numpy-chunked {1e3 * times['numpy-chunked']:.2f} ms)")

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        if xp is not np:  # on the GPU: one generated CUDA kernel, written into `out` if given
            kernel = cupy_kernel(self.program)
            return kernel(*inputs) if out is None else kernel(*inputs, out)
        if self.chosen is None:
            self._choose(inputs)
        return self.chosen(xp, *inputs, out=out)


# ---- cupy: an ElementwiseKernel ---------------------------------------------------------

_cupy_kernels: dict[Program, Any] = {}


def cupy_source(program: Program) -> str:
    names = [f"a{i}" for i in range(program.n_inputs)]
    ctype = {"float32": "float", "float64": "double", "bool": "bool"}.get(program.dtype,
                                                                          program.dtype)
    literal = (lambda v: f"(({ctype}){v!r})") if isinstance(ctype, str) else repr
    return f"out = {expression(program, names, CUDA_SPELLING, literal)}"


def cupy_kernel(program: Program) -> Any:
    kernel = _cupy_kernels.get(program)
    if kernel is None:
        import cupy

        # a type placeholder per input (cupy's are single capital letters): dtypes may differ
        params = ", ".join(f"{chr(ord('A') + i)} a{i}" for i in range(program.n_inputs))
        kernel = cupy.ElementwiseKernel(params, f"{program.dtype} out", cupy_source(program),
                                        "diptych_fused", preamble=_CUDA_PREAMBLE)
        _cupy_kernels[program] = kernel
    return kernel


_CUDA_PREAMBLE = """
__device__ float _inf() { return __int_as_float(0x7f800000); }
template <typename C, typename A, typename B>
__device__ A _where(C c, A a, B b) { return c ? a : (A)b; }
template <typename X, typename L, typename H>
__device__ X _clip(X x, L lo, H hi) { return min(max(x, (X)lo), (X)hi); }
template <typename X>
__device__ X sign(X x) { return (x > 0) - (x < 0); }
template <typename A, typename B>
__device__ A _maximum(A a, B b) { return a > (A)b ? a : (A)b; }
template <typename A, typename B>
__device__ A _pow(A x, B y) {  // small integer powers by multiplication, as on the CPU
  if (y == (B)2) return x * x;
  if (y == (B)3) return x * x * x;
  return pow(x, (A)y);
}
template <typename A, typename B>
__device__ A _minimum(A a, B b) { return a < (A)b ? a : (A)b; }
"""
