"""What the graph passes are worth, measured side by side in one run (issue 4's claims):

1. elementwise chains on 10M float32 (sqrt(a*a + b*b), the tanh GELU): eager, compiled at
   optimize 0 and 2, torch.compile and jax.jit where installed, with the fraction of the
   machine's memory bandwidth (measured here, by a large copy) each one reaches;
2. peak memory (tracemalloc, which sees numpy's buffers) of a deep MLP's forward and
   backward at batch 256: eager against optimize=2 (its planned buffers counted);
3. compile time against graph size, up to 10,000 nodes (numba's kernel builds excluded:
   fused kernels compile on their first call, reported separately).

    python benchmarks/passes.py [--quick] [--threads N]

--threads N: the thread policy, as `diptych compare`'s (default 1), printed with the results;
it limits BLAS and OpenMP pools, not the fused kernels' threads nor the bandwidth copy's.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from harness import add_threads_argument, print_machine, print_table, race, thread_limit, us

import eager as E
import symbolic as S
from common import functional as F
from common import nn, optim
from common.fusion import _pool

N = 10_000_000


def pythagoras(x: Any, y: Any) -> Any:
    return F.sqrt(x * x + y * y)


def gelu(x: Any, y: Any) -> Any:
    return 0.5 * x * (1 + F.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))) + 0 * y


def bandwidth_gbs(n: int) -> float:
    """Read + write bytes per second of a large copy on every core (a copy split in one
    block per core): the machine's practical memory bandwidth."""
    a, b = np.ones(n, np.float32), np.empty(n, np.float32)
    cores = os.cpu_count() or 1
    blocks = [(slice(i * n // cores, (i + 1) * n // cores)) for i in range(cores)]

    def parallel_copy() -> None:
        list(_pool.map(lambda s: np.copyto(b[s], a[s]), blocks))

    stats = race({"copy": parallel_copy}, target_ns=50_000_000, repeats=7)
    return 2 * a.nbytes / (stats["copy"].median / 1e9) / 1e9


def _peers(fn: Callable, a: np.ndarray, b: np.ndarray) -> dict[str, Callable]:
    found = {}
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        compiled = torch.compile(lambda x, y: fn_torch(fn, x, y))
        compiled(ta, tb)
        found["torch.compile"] = lambda: compiled(ta, tb)
    except Exception as exc:  # noqa: BLE001 (a peer is optional)
        print(f"  note: torch.compile row skipped ({type(exc).__name__}: {exc})"[:160])
    try:
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        jitted = jax.jit(lambda x, y: fn_jax(fn, x, y))
        jitted(ja, jb).block_until_ready()
        found["jax.jit"] = lambda: jitted(ja, jb).block_until_ready()
    except Exception as exc:  # noqa: BLE001
        print(f"  note: jax.jit row skipped ({type(exc).__name__}: {exc})"[:160])
    return found


def fn_torch(fn: Callable, x: Any, y: Any) -> Any:
    import torch

    if fn is pythagoras:
        return torch.sqrt(x * x + y * y)
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def fn_jax(fn: Callable, x: Any, y: Any) -> Any:
    import jax.numpy as jnp

    if fn is pythagoras:
        return jnp.sqrt(x * x + y * y)
    return 0.5 * x * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def bench_chains(n: int, with_peers: bool) -> None:
    gbs = bandwidth_gbs(n)
    print(
        f"\n1. elementwise chains on {n:,} float32; memory bandwidth measured by a copy: "
        f"{gbs:.1f} GB/s"
    )
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    for fn, inputs_used in ((pythagoras, 2), (gelu, 1)):
        x, y = S.placeholder((n,), name="x"), S.placeholder((n,), name="y")
        out = fn(x, y)
        compiled = {level: S.compile(out, inputs=[x, y], optimize=level) for level in (0, 2)}
        start = time.perf_counter()
        compiled[2](a, b)  # the first call builds (or loads) the fused kernel
        first_call = time.perf_counter() - start
        kernel = next(
            node.op.kernel for node in compiled[2].graph.ops if node.op.name.startswith("fused")
        )
        ta, tb = E.tensor(a), E.tensor(b)
        contenders = {
            "diptych eager": partial(fn, ta, tb),
            "compiled optimize=0": partial(compiled[0], a, b),
            "compiled optimize=2": partial(compiled[2], a, b),
        }
        if with_peers:
            contenders.update(_peers(fn, a, b))
        stats = race(contenders, target_ns=200_000_000, repeats=7)
        moved = (inputs_used + 1) * a.nbytes  # inputs read once, output written once
        eager = stats["diptych eager"].median
        rows = [
            [
                name,
                f"{s.median / 1e6:.1f}",
                f"{eager / s.median:.1f}x",
                f"{moved / s.median:.1f}",
                f"{100 * moved / s.median / gbs:.0f}%",
            ]
            for name, s in stats.items()
        ]
        print(
            f"\n{fn.__name__}: fused kernel {kernel.choice}; first call {first_call:.2f} s "
            f"(numba build {kernel.compile_seconds:.2f} s)"
        )
        print_table(["contender", "ms", "vs eager", "GB/s", "of bandwidth"], rows)


def deep_mlp(depth: int = 8, width: int = 512) -> nn.Module:
    E.manual_seed(0)
    layers: list = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _peak(fn: Callable[[], Any], extra: int = 0) -> int:
    fn()  # warm: lazy allocations (kernel caches, buffers) happen before measuring
    gc.collect()
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak + extra


def bench_memory(batch: int = 256) -> None:
    """A training step (forward, backward, SGD) both ways; the gradients stay inside."""
    model = deep_mlp()
    params = list(model.parameters())
    x_np = np.random.default_rng(0).random((batch, 512), dtype=np.float32)
    labels = np.arange(batch) % 10
    sgd = optim.SGD(params, lr=1e-3)

    def eager_step() -> Any:
        sgd.zero_grad()
        loss = F.cross_entropy(model(x_np), labels)
        loss.backward()
        sgd.step()
        return loss

    x, t = S.placeholder((batch, 512), name="x"), S.placeholder((batch,), "int64", name="t")
    loss = F.cross_entropy(model(x), t)
    updates = {p: p - 1e-3 * g for p, g in zip(params, S.grad(loss, params))}
    peaks = {"diptych eager": _peak(eager_step)}
    for level in (0, 2):
        f = S.compile(loss, inputs=[x, t], updates=updates, optimize=level)
        planned = f.graph.memory.planned_bytes if f.graph.memory else 0
        peaks[f"compiled optimize={level}"] = _peak(lambda f=f: f(x_np, labels), planned)
    print(
        f"\n2. peak memory of a training step (forward, backward, SGD), MLP 8 x 512 at batch "
        f"{batch} (tracemalloc; optimize=2 counts its planned buffers)"
    )
    eager = peaks["diptych eager"]
    print_table(
        ["contender", "peak MB", "vs eager"],
        [[k, f"{v / 1e6:.1f}", f"{v / eager:.2f}x"] for k, v in peaks.items()],
    )


def chain_graph(nodes: int) -> tuple[Any, Any]:
    """A graph of about `nodes` ops mixing elementwise ops, reductions and matmuls."""
    x = S.placeholder((16, 16), name="x")
    h = x
    for i in range(nodes // 3):  # about three nodes a round
        h = F.tanh(h * 1.01 + 0.5) if i % 8 else F.sum(h @ x, axis=0, keepdims=True) * h
    return x, h


def bench_compile_time(sizes: list[int]) -> None:
    print(
        "\n3. compile time against graph size (numba kernel builds excluded: they happen "
        "on the first call)"
    )
    rows = []
    for size in sizes:
        x, out = chain_graph(size)
        for level in (0, 2):
            start = time.perf_counter()
            f = S.compile(out, inputs=[x], optimize=level)
            seconds = time.perf_counter() - start
            rows.append(
                [
                    str(len(f.traced_graph.nodes)),
                    str(level),
                    str(len(f.graph.nodes)),
                    f"{seconds:.2f}",
                    us(1e9 * seconds / len(f.traced_graph.nodes)),
                ]
            )
    print_table(["traced nodes", "optimize", "nodes after", "compile s", "us per node"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements, no peers")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    with thread_limit(args.threads) as policy:
        print_machine(torch, policy)
        bench_chains(1_000_000 if args.quick else N, with_peers=not args.quick)
        bench_memory()
        bench_compile_time([1000, 2500, 5000, 10000] if not args.quick else [1000, 2500])


if __name__ == "__main__":
    main()
