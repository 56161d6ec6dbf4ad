"""What the graph passes are worth, measured side by side in one run (issue 4's claims):

1. elementwise chains on 10M float32 (sqrt(a*a + b*b), the tanh GELU): eager, compiled at
   optimize 0 and 2, torch.compile and jax.jit where installed, with the fraction of the
   machine's memory bandwidth each one reaches (the bandwidth probe of `diptych bench`,
   compare/contenders.py, raced with them);
2. peak memory (tracemalloc, which sees numpy's buffers) of a deep MLP's forward and
   backward at batch 256: eager against optimize=2 (its planned buffers counted);
3. compile time against graph size, up to 10,000 nodes (numba's kernel builds excluded:
   fused kernels compile on their first call, reported separately).

    python benchmarks/passes.py [--quick] [--threads N]

--threads N: the thread policy, as `diptych compare`'s (default 1), printed with the results;
it limits BLAS and OpenMP pools, numba's parallel loops too where numba's threading layer is
OpenMP (the fused kernels' and the bandwidth probe's alike).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from harness import add_threads_argument, print_machine, print_table, thread_limit, us

import eager as E
import symbolic as S
from common import functional as F
from common import nn, optim
from compare.bench import timed
from compare.contenders import chain_peers, gelu, pythagoras, triad_probe

N = 10_000_000


def bench_chains(n: int, with_peers: bool) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    probe, triad, triad_bytes = triad_probe(n)
    print(
        f"\n1. elementwise chains on {n:,} float32; memory bandwidth measured by the {probe}, "
        "raced with each chain"
    )
    for fn, arrays in ((pythagoras, [a, b]), (gelu, [a])):
        feeds = [S.placeholder((n,), name=name) for name in "xy"[: len(arrays)]]
        out = fn(F, *feeds)
        compiled = {level: S.compile(out, inputs=feeds, optimize=level) for level in (0, 2)}
        start = time.perf_counter()
        compiled[2](*arrays)  # the first call builds (or loads) the fused kernel
        first_call = time.perf_counter() - start
        kernel = next(
            node.op.kernel for node in compiled[2].graph.ops if node.op.name.startswith("fused")
        )
        contenders = {
            probe: triad,
            "diptych eager": partial(fn, F, *(E.tensor(x) for x in arrays)),
            "compiled optimize=0": partial(compiled[0], *arrays),
            "compiled optimize=2": partial(compiled[2], *arrays),
        }
        missing: dict[str, str] = {}
        if with_peers:
            contenders.update(chain_peers(fn, arrays, True, missing))
        t = timed(contenders, 200, 7)
        gbs = triad_bytes / t.pop(probe) / 1e9
        moved = (len(arrays) + 1) * a.nbytes  # inputs read once, output written once
        eager = t["diptych eager"]
        rows = [
            [
                name,
                f"{s * 1e3:.1f}",
                f"{eager / s:.1f}x",
                f"{moved / s / 1e9:.1f}",
                f"{100 * moved / s / 1e9 / gbs:.0f}%",
            ]
            for name, s in t.items()
        ]
        print(
            f"\n{fn.__name__}: fused kernel {kernel.choice}; first call {first_call:.2f} s "
            f"(numba build {kernel.compile_seconds:.2f} s); bandwidth {gbs:.1f} GB/s"
        )
        print_table(["contender", "ms", "vs eager", "GB/s", "of bandwidth"], rows)
        for name, why in missing.items():
            print(f"  {name}: {why}")


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
