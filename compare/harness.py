"""One harness runs a zoo model every way and puts the numbers side by side: eager, symbolic at
each optimize level (and with each pass switched off, for --ablate), and the peers.

    result = run_model(zoo.get("mlp_digits"), Settings(opts=(0, 2)))
    result.rows[0].mode, result.rows[0].stats.median        # "eager", ns per step

Every mode computes the same thing from the same inputs and initial weights: the loss, the
model's outputs and the gradients of the parameters (and of the inputs in `model.wrt`).
Eager's results are the reference the others are checked against.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from common.backend import get_backend
from common.methods import ArrayMethods
from compare import peers as peer_lib
from compare.timing import Stats, race, seconds, time_once
from compare.zoo import Model

EXACT, CLOSE = 0.0, 1e-4  # tolerances: optimize=0 must be bit-exact, optimized graphs close
PEER_TOLERANCE = 1e-4  # other kernels, other summation orders
NOT_EXACT = (
    "the eager program differs from the graph (see the model), so optimize=0 is held to {tol:g} too"
)


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"
    batch: int | None = None  # None: each model's own default
    size: int | None = None
    repeat: int = 15
    warmup: int = 2
    opts: tuple[int, ...] = (0, 1, 2)
    peers: tuple[str, ...] = ()
    ablate: bool = False
    breakdown: bool = False
    seed: int = 0
    target_ms: float = 10.0  # each timing sample loops for about this long


@dataclass
class Row:
    """One mode of one model: what the table and the JSON show."""

    mode: str  # "eager", "symbolic O2", "symbolic O2 -cse", "torch eager", ...
    kind: str  # "eager" | "symbolic" | "peer"
    optimize: int | None = None
    disabled: list[str] = field(default_factory=list)
    compile_s: float | None = None  # symbolic: trace + grad + passes + codegen + kernel_build_s
    kernel_build_s: float | None = None  # symbolic: the fused kernels' builds at the first call
    fused_kernels: list[dict] = field(default_factory=list)  # {"op", "target", "build_s"} each
    first_call_s: float | None = None  # the first step, kernel builds included
    stats: Stats | None = None  # ns per step, steady state
    speedup: float | None = None  # eager's median / this median
    peak_bytes: int | None = None  # tracemalloc's peak during a steady step + pool_bytes
    pool_bytes: int | None = None  # symbolic: the plan's buffer pool, held between steps
    max_abs: float | None = None  # largest |this - eager| over outputs and gradients
    max_rel: float | None = None  # largest of max|this - eager| / max|eager|, per array
    tolerance: float | None = None
    verdict: str = ""  # "reference", "exact", "ok", "FAIL", "skipped"
    note: str = ""
    graph_ops: int | None = None  # ops in the compiled graph


@dataclass
class ModelResult:
    model: str
    batch: int
    size: int
    size_means: str
    rows: list[Row]
    notes: list[str]
    breakdown: list[dict] | None = None

    @property
    def failed(self) -> bool:
        return any(r.verdict == "FAIL" for r in self.rows)


@dataclass
class Contender:
    row: Row
    step: Callable[[], Any]
    to_numpy: Callable[[Any], list[np.ndarray]]
    traced_memory: bool = True  # tracemalloc sees numpy's allocations, not torch's or XLA's
    compiled: S.CompiledFunction | None = None


class Case:
    """A model instantiated at one size: its module, inputs and device."""

    def __init__(self, model: Model, settings: Settings) -> None:
        self.model = model
        self.backend = get_backend(settings.device)
        self.batch = settings.batch or model.batch
        self.size = settings.size or model.size
        self.module = model.build(self.size, settings.seed).to(settings.device)
        self.host_inputs = model.make_inputs(self.batch, self.size, settings.seed)
        self.inputs = {k: self.backend.asarray(v) for k, v in self.host_inputs.items()}
        self.params = list(self.module.parameters())

    def to_numpy(self, values: list) -> list[np.ndarray]:
        arrays = [v.data if isinstance(v, ArrayMethods) else v for v in values]  # tensors
        return [np.array(self.backend.to_host(a)) for a in arrays]

    def eager(self) -> Contender:
        model, sync = self.model, self.backend.synchronize
        tensors = [
            E.tensor(v, device=self.backend.device, requires_grad=k in model.wrt)
            for k, v in self.inputs.items()
        ]
        targets = self.params + [t for k, t in zip(self.inputs, tensors) if k in model.wrt]

        def step() -> list:
            results = model.loss_and_outputs(self.module, tensors, eager=True)
            results += E.grad(results[0], targets) if targets else []
            sync()
            return results

        return Contender(Row("eager", "eager"), step, self.to_numpy)

    def trace(self) -> tuple[list, list]:
        """Placeholders and the symbols to compute: [loss, *outputs, *gradients]."""
        feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in self.inputs.items()]
        results = self.model.loss_and_outputs(self.module, feeds)
        targets = self.params + [p for k, p in zip(self.inputs, feeds) if k in self.model.wrt]
        return feeds, results + (list(S.grad(results[0], targets)) if targets else [])

    def compile(self, optimize: int, disable: tuple[str, ...] = ()) -> S.CompiledFunction:
        feeds, outputs = self.trace()
        return S.compile(
            outputs,
            inputs=feeds,
            optimize=optimize,
            disable=list(disable),
            backend=self.backend.name,
        )

    def symbolic(self, optimize: int, disable: tuple[str, ...] = ()) -> Contender:
        fn, seconds = time_once(lambda: self.compile(optimize, disable))
        mode = f"symbolic O{optimize}" + "".join(f" -{name}" for name in disable)
        row = Row(
            mode,
            "symbolic",
            optimize,
            list(disable),
            compile_s=seconds,
            graph_ops=len(fn.graph.ops),
        )
        arrays, sync = list(self.inputs.values()), self.backend.synchronize

        def step() -> list:
            results = fn(*arrays)
            sync()
            return results

        return Contender(row, step, self.to_numpy, compiled=fn)


# ---- checking ----------------------------------------------------------------------------


def differences(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """(max abs, max rel): rel is per array max|got - want| / max|want| (the array's scale,
    so entries near zero do not blow it up)."""
    worst_abs = worst_rel = 0.0
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return float("inf"), float("inf")
        if g.size == 0:
            continue
        err = float(np.max(np.abs(g - w)))
        scale = float(np.max(np.abs(w)))
        worst_abs = max(worst_abs, err)
        worst_rel = max(worst_rel, err / scale if scale > 0 else (0.0 if err == 0 else np.inf))
    return worst_abs, worst_rel


def judge(row: Row, got: list[np.ndarray], want: list[np.ndarray], exact: bool) -> None:
    row.max_abs, row.max_rel = differences(got, want)
    if row.kind == "peer":
        row.tolerance = PEER_TOLERANCE
    else:
        row.tolerance = EXACT if row.optimize == 0 and exact else CLOSE
    if row.tolerance == EXACT:
        row.verdict = "exact" if row.max_abs == 0 else "FAIL"
    elif row.max_abs == 0:
        row.verdict = "exact"
    else:
        row.verdict = "ok" if row.max_rel <= row.tolerance else "FAIL"


def peak_memory(step: Callable[[], Any]) -> int:
    """Bytes allocated at the peak of one step, above what was allocated when it began (so
    not what the step keeps between calls: see `pool_bytes`)."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return max(0, tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()


def pool_bytes(fn: S.CompiledFunction) -> int:
    """The compiled plan's buffer pool (optimize=2's memory plan; none below): allocated at
    the first call and held between calls, so a steady step's peak does not see it. One
    instance per concurrent call: the harness calls from one thread."""
    return fn.graph.memory.planned_bytes if fn.graph.memory is not None else 0


def kernel_builds(fn: S.CompiledFunction, device: str) -> list[dict]:
    """Each fused kernel's target (chosen on the first call, by common/fusion.py's rule) and
    the seconds its numba build (or load from the disk cache) took then."""
    return [
        {
            "op": op.name,
            "build_s": op.kernel.compile_seconds,
            "target": op.kernel.choice if device == "cpu" else f"cupy ({device})",
        }
        for op in fn.report.fused_kernels
    ]


def targets_note(model: str, row: Row) -> str:
    """'gelu_chain symbolic O2: 18 fused kernel(s): numba (...) x18; built on the first call
    in 1.28 s (counted in 'compile')'."""
    counts: dict[str, int] = {}
    for kernel in row.fused_kernels:
        counts[kernel["target"]] = counts.get(kernel["target"], 0) + 1
    targets = "; ".join(f"{target} x{n}" for target, n in counts.items())
    return (
        f"{model} {row.mode}: {len(row.fused_kernels)} fused kernel(s): {targets}; built "
        f"on the first call in {seconds(row.kernel_build_s)} (counted in 'compile')"
    )


def account_first_call(c: Contender, device: str) -> None:
    """After the first call: the kernel builds join the compile time; the pool is known."""
    if c.compiled is None:
        return
    c.row.fused_kernels = kernel_builds(c.compiled, device)
    c.row.kernel_build_s = sum(k["build_s"] for k in c.row.fused_kernels)
    c.row.compile_s += c.row.kernel_build_s
    c.row.pool_bytes = pool_bytes(c.compiled)


# ---- running -----------------------------------------------------------------------------


def symbolic_plan(settings: Settings) -> list[tuple[int, tuple[str, ...]]]:
    """(optimize, disabled passes) per symbolic row; --ablate adds the top level with each
    pass off in turn, the pass list read from symbolic.passes now (new passes join)."""
    from symbolic.passes import PIPELINES, pass_names

    plan: list[tuple[int, tuple[str, ...]]] = [(o, ()) for o in settings.opts]
    if settings.ablate:
        top = max(settings.opts) if max(settings.opts) > 0 else max(PIPELINES)
        active = {name for name, _ in PIPELINES[top]}
        plan += [(top, (name,)) for name in pass_names() if name in active]
    return plan


def contenders_for(case: Case, settings: Settings, notes: list[str]) -> list[Contender]:
    found = [case.eager()]
    found += [case.symbolic(o, off) for o, off in symbolic_plan(settings)]
    for name in settings.peers:
        if case.model.peer is None:
            notes.append(f"{name}: no peer implementation of {case.model.name}")
            continue
        if case.backend.device != "cpu":
            notes.append(f"{name}: peers run on the CPU only; left out on {case.backend.device}")
            continue
        params = [case.backend.to_host(p.data) for p in case.params]
        steps, why = peer_lib.peer_steps(
            name, case.model.peer, params, case.host_inputs, case.model.wrt
        )
        if why:
            notes.append(why)
        for s in steps:
            row = Row(s.mode, "peer", compile_s=s.compile_s, note=s.note)
            found.append(Contender(row, s.step, s.to_numpy, traced_memory=False))
    return found


def first_calls(contenders: list[Contender], case: Case, notes: list[str]) -> list[Contender]:
    """Run each once (timed: the first call), check it against eager, measure its memory.
    A peer that fails here (torch.compile without a compiler, say) becomes a note."""
    kept, reference = [], None
    for c in contenders:
        try:
            results, c.row.first_call_s = time_once(c.step)
        except Exception as exc:
            if c.row.kind != "peer":
                raise
            notes.append(
                f"{c.row.mode}: failed on its first call ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); left out"
            )
            continue
        account_first_call(c, case.backend.device)
        if c.row.fused_kernels:
            notes.append(targets_note(case.model.name, c.row))
        got = c.to_numpy(results)
        if reference is None:
            reference, c.row.verdict = got, "reference"
        else:  # peers return [loss, *grads]: compared with eager's loss and gradients
            want = (
                reference
                if len(got) == len(reference)
                else ([reference[0]] + reference[len(reference) - len(got) + 1 :])
            )
            judge(c.row, got, want, exact=case.model.eager_forward is None)
        if c.traced_memory and case.backend.device == "cpu":  # the honest peak: a steady
            c.row.peak_bytes = peak_memory(c.step) + (c.row.pool_bytes or 0)  # step + its pool
        kept.append(c)
    return kept


def run_model(
    model: Model,
    settings: Settings,
    tick: Callable[[], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> ModelResult:
    """Every mode of `model`: first calls, checks, memory, then one interleaved race."""
    say = stage or (lambda text: None)
    notes: list[str] = []
    say(f"{model.name}: building and compiling")
    case = Case(model, settings)
    contenders = first_calls(contenders_for(case, settings, notes), case, notes)
    if model.eager_forward is not None:
        notes.append(NOT_EXACT.format(tol=CLOSE) + f" ({model.name})")
    say(f"{model.name}: timing {len(contenders)} modes")
    stats = race(
        {c.row.mode: c.step for c in contenders},
        int(settings.target_ms * 1e6),
        repeats=settings.repeat,
        warmup=settings.warmup,
        tick=tick,
    )
    eager_median = stats["eager"].median
    for c in contenders:
        c.row.stats = stats[c.row.mode]
        c.row.speedup = eager_median / c.row.stats.median
    result = ModelResult(
        model.name, case.batch, case.size, model.size_means, [c.row for c in contenders], notes
    )
    if settings.breakdown:
        from compare.breakdown import breakdown

        say(f"{model.name}: breaking the step down")
        result.breakdown = breakdown(case, result.rows, settings)
    return result
