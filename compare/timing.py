"""The timing harness shared by `diptych compare` and benchmarks/: interleaved races, order
statistics, the thread policy, and the machine the numbers were taken on.

    stats = race({"eager": f, "compiled": g}, target_ns=4_000_000)   # name -> Stats (ns/call)

Each contender is warmed up and calibrated to a loop of about `target_ns`; the contenders are
then interleaved across repeats (the first one rotates, so drift hits all alike), with the
garbage collector collected before every round and off while a sample is taken.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

REPEATS = 31
NOISY = 0.25  # an IQR wider than this fraction of the median is flagged
CONFIDENCE = 0.95  # of the interval around the median
THREAD_ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
)
POLICY_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # not OpenMP: numba's pool
THREADS_HELP = (
    "limit BLAS thread pools (and torch's) while timing (default 1: stable numbers on "
    "small or busy machines; 0: the libraries' defaults)"
)


# ---- statistics --------------------------------------------------------------------------


def median_ci(samples: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A distribution-free confidence interval for the median, from order statistics: ranks
    j and n+1-j, with j the largest rank such that P(Binomial(n, 1/2) < j) <= (1-conf)/2.
    Too few samples for that confidence: the whole range."""
    ordered = sorted(samples)
    n = len(ordered)
    tail = (1 - confidence) / 2
    below, j = 0.0, 0  # below = P(X < j + 1) while scanning j upward
    while j < n // 2:
        below += math.comb(n, j) / 2**n
        if below > tail:
            break
        j += 1
    if j == 0:
        return ordered[0], ordered[-1]
    return ordered[j - 1], ordered[n - j]


@dataclass(frozen=True)
class Stats:
    """Per-call times in ns: median, quartiles, the median's confidence interval."""

    median: float
    q1: float
    q3: float
    ci_low: float
    ci_high: float
    samples: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if len(samples) == 1:
            only = samples[0]
            return cls(only, only, only, only, only, 1)
        q1, median, q3 = statistics.quantiles(samples, n=4)
        low, high = median_ci(samples)
        return cls(statistics.median(samples), q1, q3, low, high, len(samples))

    @property
    def noisy(self) -> bool:
        return self.q3 - self.q1 > NOISY * self.median


# ---- timing ------------------------------------------------------------------------------


def per_call_ns(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number


def calibrate(fn: Callable[[], Any], target_ns: int) -> int:
    """Loop length that takes about `target_ns` (doubling from 1: this is also a warm-up)."""
    number = 1
    while True:
        elapsed = per_call_ns(fn, number) * number
        if elapsed >= target_ns / 2:
            return max(1, int(number * target_ns / max(elapsed, 1)))
        number *= 2


def race(
    contenders: dict[str, Callable[[], Any]],
    target_ns: int,
    repeats: int = REPEATS,
    warmup: int = 0,
    tick: Callable[[], None] | None = None,
) -> dict[str, Stats]:
    """Per-call time of each contender, interleaved across repeats. `warmup` extra calls
    come before calibrating; `tick` is called after every round (for progress bars)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    numbers = {name: calibrate(fn, target_ns) for name, fn in contenders.items()}
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    # What exists now (torch, jax, the models) is never walked again: with both peers
    # loaded, a full collection took 0.15-0.26 s, once per round.
    gc.collect()
    gc.freeze()
    try:
        for r in range(repeats):
            gc.collect()  # every round starts from the same heap, and no collection lands
            gc.disable()  # inside a sample
            shift = r % len(names)  # rotate who goes first
            for name in names[shift:] + names[:shift]:
                samples[name].append(per_call_ns(contenders[name], numbers[name]))
            gc.enable()
            if tick is not None:
                tick()
    finally:
        gc.enable()
        gc.unfreeze()
    return {name: Stats.of(s) for name, s in samples.items()}


def time_once(fn: Callable[[], Any]) -> tuple[Any, float]:
    """`fn()` and the seconds it took (for compile steps and first calls)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


# ---- the thread policy ------------------------------------------------------------------


@contextlib.contextmanager
def thread_limit(threads: int, peers: tuple[str, ...] = ()) -> Iterator[str]:
    """The one thread policy of `diptych compare` and benchmarks/: BLAS pools (and torch's,
    if it is loaded or among `peers`) limited to `threads`, 0 leaving them as they are;
    yields the policy in words, which `policy_line` prints with the results. Pools loaded on
    entry are limited by threadpoolctl, pools loaded later (scipy's BLAS, say) by the
    variables they read when they load (POLICY_ENV_VARS, set meanwhile). OpenMP is left
    alone: it is the pool numba's parallel fused kernels run on (limiting it made a 10M
    element triad 2.9x slower), so they use the machine's cores, as torch.compile's and
    XLA's kernels do."""
    if threads <= 0:
        yield "the libraries' defaults (--threads 0)"
        return
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    if "torch" in peers:
        from compare.peers import load

        load("torch")
    torch = sys.modules.get("torch")  # None where it is not loaded (or hidden, by tests)
    torch = torch if hasattr(torch, "set_num_threads") else None
    before = torch.get_num_threads() if torch is not None else 0
    saved = {var: os.environ.get(var) for var in POLICY_ENV_VARS}
    try:
        os.environ.update({var: str(threads) for var in POLICY_ENV_VARS})
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            yield (
                f"BLAS pools limited to {threads} (--threads {threads}); not limited: "
                "OpenMP (numba's fused kernels), XLA's pool"
            )
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        if torch is not None:
            torch.set_num_threads(before)


def policy_line(policy: str) -> str:
    """How `diptych compare` and every benchmark print the thread policy they ran under."""
    return f"thread policy: {policy}"


# ---- formatting --------------------------------------------------------------------------


def us(ns: float) -> str:
    """Nanoseconds as microseconds: two decimals below 100 us, none above."""
    return f"{ns / 1000:.2f}" if ns < 100_000 else f"{ns / 1000:.0f}"


def seconds(s: float | None) -> str:
    """A duration for a table cell: us, ms or s, three significant digits; '-' for None."""
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def nbytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def table_text(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first column left-aligned, the rest right-aligned."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    return "\n".join(
        [line(headers), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]
    )


# ---- the machine -------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def usable_cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def machine(
    device: str = "cpu", env_vars: tuple = (*THREAD_ENV_VARS, "XLA_FLAGS")
) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, Python, library versions, thread settings.
    Versions are read from package metadata, so nothing heavy is imported."""
    libraries = {
        name: _version(name)
        for name in ("diptych", "numpy", "numba", "cupy-cuda12x", "torch", "jax", "jaxlib")
    }
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "libraries": {k: v for k, v in libraries.items() if v is not None},
        "numpy_version": np.__version__,
        "env": {var: os.environ.get(var) for var in env_vars},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_text(info: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
    load = info.get("load_average")
    busy = "" if not load else f"; load average {load[0]:.2f} when the run began"
    policy = f"\n  {policy_line(info['threads'])}" if "threads" in info else ""
    return (
        f"machine: {info['cpu']}; {info['cpu_count']} CPUs ({info['usable_cpus']} usable); "
        f"Python {info['python']}; device {info['device']}{busy}\n"
        f"  libraries: {libs}\n  thread settings: {env}{policy}"
    )
