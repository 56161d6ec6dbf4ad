"""The timing harness the benchmark scripts share: interleaved races, tables, the machine.

    from harness import race, print_table, us, iqr, ratio
    stats = race({"numpy": f, "diptych": g}, target_ns=4_000_000)   # name -> Stats (ns/call)

Timing: each contender is warmed up and calibrated to a loop of about `target_ns` length; the
contenders are then interleaved across repeats (so drift hits all alike) with the garbage
collector off, and the median and interquartile range of the per-call time are reported.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

REPEATS = 31
NOISY = 0.25  # an IQR wider than this fraction of the median is flagged
THREAD_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                   "OMP_NUM_THREADS")


# ---- timing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stats:
    median: float  # ns per call
    q1: float
    q3: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        q1, median, q3 = statistics.quantiles(samples, n=4)
        return cls(median, q1, q3)

    @property
    def noisy(self) -> bool:
        return self.q3 - self.q1 > NOISY * self.median


def per_call_ns(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number


def calibrate(fn: Callable[[], Any], target_ns: int) -> int:
    """Loop length that takes about `target_ns` (doubling from 1: this is also the warm-up)."""
    number = 1
    while True:
        elapsed = per_call_ns(fn, number) * number
        if elapsed >= target_ns / 2:
            return max(1, int(number * target_ns / max(elapsed, 1)))
        number *= 2


def race(contenders: dict[str, Callable[[], Any]], target_ns: int,
         repeats: int = REPEATS) -> dict[str, Stats]:
    """Per-call time of each contender, interleaved across repeats, gc off while timing."""
    numbers = {name: calibrate(fn, target_ns) for name, fn in contenders.items()}
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            shift = r % len(names)  # rotate who goes first
            for name in names[shift:] + names[:shift]:
                samples[name].append(per_call_ns(contenders[name], numbers[name]))
    finally:
        gc.enable()
    return {name: Stats.of(s) for name, s in samples.items()}


# ---- printing ----------------------------------------------------------------------------

def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:  # the first column left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def us(ns: float) -> str:
    """Nanoseconds as microseconds: two decimals below 100 us, none above."""
    return f"{ns / 1000:.2f}" if ns < 100_000 else f"{ns / 1000:.0f}"


def iqr(s: Stats) -> str:
    return f"{us(s.q1)}-{us(s.q3)}" + (" (noisy)" if s.noisy else "")


def ratio(s: Stats, ref: Stats | None) -> str:
    """`s` in units of `ref` ("-" when there is no reference)."""
    return "-" if ref is None else f"{s.median / ref.median:.1f}x"


def print_noise_note(stats: Iterable[Stats]) -> None:
    if any(s.noisy for s in stats):
        print(f"  (noisy): the IQR exceeds {NOISY:.0%} of the median; on a machine with few "
              "cores this is\n  usually thread pools (torch's OpenMP, numpy's OpenBLAS) "
              "fighting for the CPUs: see the\n  thread pools listed at the end.")


# ---- the machine -------------------------------------------------------------------------

def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def print_machine(torch: Any, extra: Iterable[str] = (),
                  env_vars: Iterable[str] = THREAD_ENV_VARS) -> None:
    """CPU, Python, numpy and torch (a module, or None if not importable), then `extra`
    lines (other frameworks), then the environment variables that size the thread pools."""
    print("machine")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"  {_cpu_name()}; os.cpu_count()={os.cpu_count()}, usable CPUs={cpus}; "
          f"Python {platform.python_version()} on {platform.machine()}")
    print(f"  numpy {np.__version__}", end="")
    if torch is None:
        print("; torch not importable (its columns are left out)")
    else:
        print(f"; torch {torch.__version__} with {torch.get_num_threads()} intra-op / "
              f"{torch.get_num_interop_threads()} inter-op threads (its defaults)")
    for line in extra:
        print(f"  {line}")
    for var in env_vars:
        value = os.environ.get(var)
        print(f"  {var}: {'not set' if value is None else repr(value)}")
    print()


def print_thread_pools() -> None:
    """The native thread pools loaded by now (numpy's BLAS, torch's and sklearn's OpenMP)."""
    try:
        from threadpoolctl import threadpool_info  # comes with scikit-learn (for the digits)
    except ImportError:
        print("thread pools: threadpoolctl is not installed, so they are not listed")
        return
    print("thread pools loaded in this process")
    for pool in threadpool_info():
        owner = pool["filepath"].split("site-packages/")[-1].split("/")[0]
        print(f"  {pool['internal_api']:9s} {pool['num_threads']} threads  ({owner}: "
              f"{os.path.basename(pool['filepath'])})")
