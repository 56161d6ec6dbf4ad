"""The benchmark scripts' printing helpers over compare.timing, the one timing harness that
`diptych compare` uses too (races, Stats, the thread policy, the machine).

    from harness import race, print_table, us, iqr, ratio
    with thread_limit(args.threads) as policy:       # --threads, as `diptych compare`'s
        print_machine(torch, policy)
        stats = race({"numpy": f, "diptych": g}, target_ns=4_000_000)  # name -> Stats (ns)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from compare.checks import at_least
from compare.timing import (  # noqa: F401 (re-exported for the benchmark scripts)
    NOISY,
    REPEATS,
    THREAD_ENV_VARS,
    THREADS_HELP,
    Stats,
    calibrate,
    cpu_name,
    per_call_ns,
    policy_line,
    race,
    table_text,
    thread_limit,
    us,
    usable_cpus,
)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """--threads, with `diptych compare`'s default and meaning (compare.timing.thread_limit)."""
    parser.add_argument("--threads", type=at_least(0), default=1, help=THREADS_HELP)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    print(table_text(headers, rows))


def iqr(s: Stats) -> str:
    return f"{us(s.q1)}-{us(s.q3)}" + (" (noisy)" if s.noisy else "")


def ratio(s: Stats, ref: Stats | None) -> str:
    """`s` in units of `ref` ("-" when there is no reference)."""
    return "-" if ref is None else f"{s.median / ref.median:.1f}x"


def print_noise_note(stats: Iterable[Stats]) -> None:
    if any(s.noisy for s in stats):
        print(
            f"  (noisy): the IQR exceeds {NOISY:.0%} of the median; on a machine with few "
            "cores this is\n  usually thread pools (torch's OpenMP, numpy's OpenBLAS) "
            "fighting for the CPUs: see the\n  thread pools listed at the end."
        )


def print_machine(
    torch: Any, policy: str, extra: Iterable[str] = (), env_vars: Iterable[str] = THREAD_ENV_VARS
) -> None:
    """CPU, Python, numpy and torch (a module, or None if not importable), then `extra`
    lines (other frameworks), the environment variables that size the thread pools, and the
    thread policy (`thread_limit`'s words), printed as `diptych compare` prints it."""
    import platform

    print("machine")
    cpus = usable_cpus() or "?"
    print(
        f"  {cpu_name()}; os.cpu_count()={os.cpu_count()}, usable CPUs={cpus}; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    print(f"  numpy {np.__version__}", end="")
    if torch is None:
        print("; torch not importable (its columns are left out)")
    else:
        print(
            f"; torch {torch.__version__} with {torch.get_num_threads()} intra-op / "
            f"{torch.get_num_interop_threads()} inter-op threads"
        )
    for line in extra:
        print(f"  {line}")
    for var in env_vars:
        value = os.environ.get(var)
        print(f"  {var}: {'not set' if value is None else repr(value)}")
    print(f"  {policy_line(policy)}")
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
        print(
            f"  {pool['internal_api']:9s} {pool['num_threads']} threads  ({owner}: "
            f"{os.path.basename(pool['filepath'])})"
        )
