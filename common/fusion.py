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


def _evaluate(program: Program, xp: Any, inputs: tuple, buffers: list) -> Any:
    """Run the steps with the ops' own kernels, each writing into its buffer (the chunked
    target's inner loop: the same ufuncs as the unfused graph, so the same values)."""
    temps: list[Any] = []
    for step, buffer in zip(program.steps, buffers):
        args = [inputs[a[1]] if a[0] == "in" else temps[a[1]] if a[0] == "t" else a[1]
                for a in step.args]
        temps.append(OPS[step.op].kernel(xp, *args, **dict(step.params), out=buffer))
    return temps[-1]


class ChunkedKernel:
    """numpy target: cache-sized blocks along the leading axis, spread over the cores."""

    target = "numpy-chunked"

    def __init__(self, program: Program) -> None:
        self.program = program
        self.source = f"# evaluated block by block with numpy: {program.expression()}"
        self._scratch = threading.local()  # each thread's temporaries, reused across calls

    def _buffers(self, rows: int) -> list:
        """One block-sized temporary per step but the last (which writes the output)."""
        cached = getattr(self._scratch, "buffers", None)
        if cached is None or cached[0] != rows:
            shape = (rows,) + tuple(self.program.shape[1:])
            cached = (rows, [np.empty(shape, s.dtype) for s in self.program.steps[:-1]])
            self._scratch.buffers = cached
        return cached[1]

    def __call__(self, xp: Any, *inputs: Any, out: Any = None) -> Any:
        shape, dtype = self.program.shape, self.program.dtype
        out = np.empty(shape, dtype) if out is None else out
        size = int(np.prod(shape))
        if size <= SMALL or not shape or shape[0] == 1:
            buffers = [None] * (len(self.program.steps) - 1) + [out]
            result = _evaluate(self.program, xp, inputs, buffers)
            if result is not out:  # a 0-d result comes back as a scalar
                np.copyto(out, result, casting="unsafe")
            return out
        rows = max(1, CHUNK_ELEMENTS // max(1, size // shape[0]))
        lead = shape[0]

        def block(start: int) -> None:
            stop = min(start + rows, lead)
            part = tuple(a[start:stop] if _has_lead(a, shape) else a for a in inputs)
            buffers = [b[:stop - start] for b in self._buffers(rows)] + [out[start:stop]]
            _evaluate(self.program, xp, part, buffers)

        list(_pool.map(block, range(0, lead, rows)))
        return out


def _has_lead(value: Any, shape: tuple) -> bool:
    return getattr(value, "ndim", 0) == len(shape) and value.shape[0] == shape[0] > 1


# ---- numba: one parallel loop -----------------------------------------------------------

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
    """One parallel loop; 0-d inputs (in `scalars`) are passed as numbers, not indexed."""
    names = [f"a{i}" if i in scalars else f"a{i}[i]" for i in range(program.n_inputs)]
    args = ", ".join(f"a{i}" for i in range(program.n_inputs))
    return (f"import numba\nimport numpy as np\n"
            f"from numpy import (abs, exp, log, logical_and, logical_not, logical_or, maximum,\n"
            f"                   minimum, sign, sqrt, tanh)\n"
            f"{_SCALAR_HELPERS}\n\n"
            f"@numba.njit(parallel=True, cache=True)\ndef kernel(out, {args}):\n"
            f"    for i in numba.prange(out.size):\n"
            f"        out[i] = {expression(program, names, NUMBA_SPELLING)}\n")


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
        out = np.empty(self.program.shape, self.program.dtype) if out is None else out
        flat = [a.reshape(-1) if np.ndim(a) else a[()] if hasattr(a, "shape") else a
                for a in inputs]
        if self._kernel is None:  # the first run compiles; it must also be the only run, as
            start = time.perf_counter()  # `out` may be an input's buffer (in place)
            self._kernel = _load_numba_kernel(self.source)
            self._kernel(out.reshape(-1), *flat)
            self.compile_seconds = time.perf_counter() - start
            return out
        self._kernel(out.reshape(-1), *flat)
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

    def _flat_compatible(self, inputs: tuple) -> bool:
        shape = self.program.shape
        return all(np.ndim(a) == 0 or (tuple(a.shape) == shape and a.flags.c_contiguous)
                   for a in inputs)

    def _choose(self, inputs: tuple) -> None:
        """Time the candidates into a scratch output: the real `out` may be an input's
        buffer (written in place), which must be written exactly once."""
        out = np.empty(self.program.shape, self.program.dtype)
        if not numba_available():
            self.chosen, self.choice = self.chunked, "numpy-chunked (numba is not installed)"
            warnings.warn("numba is not installed: fused kernels run block by block with "
                          "numpy instead (pip install 'diptych[fast]').", stacklevel=4)
            return
        if not self._flat_compatible(inputs) or int(np.prod(self.program.shape)) <= SMALL:
            self.chosen, self.choice = self.chunked, "numpy-chunked (small or broadcasting)"
            return
        candidate = NumbaKernel(self.program,
                                frozenset(i for i, a in enumerate(inputs) if np.ndim(a) == 0))
        candidate(np, *inputs, out=out)  # compiles (or loads from the disk cache)
        self.compile_seconds = candidate.compile_seconds
        times = {}
        for kernel in (candidate, self.chunked):
            start = time.perf_counter()
            kernel(np, *inputs, out=out)
            times[kernel.target] = time.perf_counter() - start
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
