"""Elementwise chains on the GPU (cupy), side by side in one run: eager, compiled at
optimize 0 and 2 (one generated ElementwiseKernel per fused group), torch.compile and
jax.jit where installed; with the fraction of the measured device bandwidth.

    python benchmarks/gpu_chains.py [elements] [--threads N]

--threads N: the thread policy, as `diptych compare`'s (default 1), printed with the results
(it limits the host's BLAS and OpenMP pools; the GPU work is not affected).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from harness import add_threads_argument, policy_line, thread_limit

import eager as E
import symbolic as S
from common import functional as F
from common.backend import get_backend


def pythagoras(x, y):
    return F.sqrt(x * x + y * y)


def gelu(x, y):
    return 0.5 * x * (1 + F.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gpu_time(fn: Callable, sync: Callable, repeats: int = 20) -> float:
    """Median seconds per call, synchronized (CUDA calls are asynchronous)."""
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def peers(name: str, a: np.ndarray, b: np.ndarray) -> dict[str, Callable]:
    found = {}
    try:
        import torch

        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        torch_fn = (
            (lambda x, y: torch.sqrt(x * x + y * y))
            if name == "pythagoras"
            else (
                lambda x, y: (
                    0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
                )
            )
        )
        compiled = torch.compile(torch_fn)
        found["torch eager"] = lambda: (torch_fn(ta, tb), torch.cuda.synchronize())
        found["torch.compile"] = lambda: (compiled(ta, tb), torch.cuda.synchronize())
    except Exception as exc:  # noqa: BLE001 (an optional peer)
        print(f"  note: torch rows skipped ({type(exc).__name__}: {str(exc)[:80]})")
    try:
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        jax_fn = (
            (lambda x, y: jnp.sqrt(x * x + y * y))
            if name == "pythagoras"
            else (
                lambda x, y: (
                    0.5 * x * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
                )
            )
        )
        jitted = jax.jit(jax_fn)
        found["jax.jit"] = lambda: jitted(ja, jb).block_until_ready()
    except Exception as exc:  # noqa: BLE001
        print(f"  note: jax row skipped ({type(exc).__name__}: {str(exc)[:80]})")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Elementwise chains on the GPU, side by side.")
    parser.add_argument(
        "elements",
        type=int,
        nargs="?",
        default=100_000_000,
        help="float32 elements per array (100,000,000)",
    )
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    with thread_limit(args.threads) as policy:
        run(args.elements, policy)


def run(n: int, policy: str) -> None:
    cuda = get_backend("cuda")
    import cupy

    print(
        f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}; "
        f"{n:,} float32 elements; {policy_line(policy)}"
    )
    src, dst = cupy.ones(n, np.float32), cupy.empty(n, np.float32)
    copy_s = gpu_time(lambda: cupy.copyto(dst, src), cuda.synchronize)
    gbs = 2 * src.nbytes / copy_s / 1e9
    print(f"bandwidth of a device copy: {gbs:.0f} GB/s")
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    ga, gb = cupy.asarray(a), cupy.asarray(b)
    for fn, used in ((pythagoras, 2), (gelu, 1)):
        x, y = S.placeholder((n,), name="x"), S.placeholder((n,), name="y")
        out = fn(x, y)
        compiled = {
            lvl: S.compile(out, inputs=[x, y], optimize=lvl, backend="cuda") for lvl in (0, 2)
        }
        ta, tb = E.tensor(a, device="cuda"), E.tensor(b, device="cuda")
        rows = {
            "diptych eager": partial(fn, ta, tb),
            "compiled optimize=0": partial(compiled[0], ga, gb),
            "compiled optimize=2": partial(compiled[2], ga, gb),
        }
        times = {k: gpu_time(v, cuda.synchronize) for k, v in rows.items()}
        times.update({k: gpu_time(v, lambda: None) for k, v in peers(fn.__name__, a, b).items()})
        moved = (used + 1) * a.nbytes
        print(f"\n{fn.__name__}")
        for name, seconds in times.items():
            rate = moved / seconds / 1e9
            print(
                f"  {name:<22}{1e3 * seconds:8.3f} ms  {times['diptych eager'] / seconds:6.1f}x"
                f" vs eager  {rate:7.0f} GB/s ({100 * rate / gbs:.0f}% of copy bandwidth)"
            )


if __name__ == "__main__":
    main()
