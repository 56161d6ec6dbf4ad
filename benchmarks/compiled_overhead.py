"""What does define-then-run buy? diptych compiled next to numpy, diptych eager, torch, jax.jit.

A compiled diptych graph runs a plan: straight-line Python generated from the graph, one
kernel call per node, no dispatch, no tape. At optimize=0 no pass has touched the graph, so
the plan does what the user's ops (and the symbolic gradient) said, one numpy call per op.
This benchmark measures how close that comes to the floor (hand-written numpy) and how it
stands against diptych eager, torch eager and an XLA-compiled jax function, side by side in
one run:

a. the forward pass of an MLP 784-256-256-10 (ReLU) at batch 1 (inference latency: almost
   all overhead, the arithmetic is three small matrix-vector products);
b. one SGD training step of the digits MLP 64-128-64-10 (ReLU), batch 64, softmax
   cross-entropy, lr 0.1, compiled as ONE step (forward, gradient and updates), next to
   the same step of benchmarks/eager_overhead.py's contenders.

Every contender starts from the same weights (diptych's init, seed 0). Timing as in
benchmarks/harness.py (calibrated loops, interleaved repeats, median and IQR).

    .venv/bin/python benchmarks/compiled_overhead.py            # the tables
    .venv/bin/python benchmarks/compiled_overhead.py --profile  # + the compiled step, by op

--threads N: the thread policy, as `diptych compare`'s (default 1), printed with the results.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import eager_overhead as eo
import numpy as np
from harness import (
    REPEATS,
    THREAD_ENV_VARS,
    Stats,
    add_threads_argument,
    iqr,
    print_machine,
    print_noise_note,
    print_table,
    print_thread_pools,
    race,
    ratio,
    thread_limit,
    us,
)

import eager as E
import symbolic as S
from common import nn
from compare.contenders import (
    BATCH,
    FORWARD_SIZES,
    LR,
    SIZES,
    build_mlp,
    compile_training_step,
    make_compiled_step,
    make_diptych_step,
    make_jax_step,
    make_numpy_step,
    make_torch_step,
    numpy_forward,
    training_setup,
)

torch = eo.torch  # None when torch is not importable
try:
    import jax
    import jax.numpy as jnp
except ImportError:  # the benchmark still runs without jax, minus its rows
    jax = jnp = None

FORWARD_TARGET_NS = 4_000_000  # each forward sample loops for about 4 ms
FORWARD_TOLERANCE = 1e-4  # largest difference in the logits from numpy's
PROFILE_CALLS = 2000
NUMPY, EAGER, COMPILED = "numpy, by hand", "diptych eager", "diptych compiled O0"
NUMPY_WT, JAX_WT = "numpy, x @ W.T", "jax.jit, x @ W.T"


def to_numpy(value: Any) -> np.ndarray:
    """A result of any contender (array, diptych or torch tensor, jax array) as numpy."""
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def print_results(stats: dict[str, Stats], unit: str) -> None:
    ref_np, ref_eager, ref_torch = stats[NUMPY], stats[EAGER], stats.get("torch eager")
    rows = [
        [name, us(s.median), iqr(s), ratio(s, ref_np), ratio(s, ref_eager), ratio(s, ref_torch)]
        for name, s in stats.items()
    ]
    print_table(["contender", f"us/{unit}", "IQR (us)", "vs numpy", "vs eager", "vs torch"], rows)
    print_noise_note(stats.values())
    missing = [name for name, module in (("torch", torch), ("jax", jax)) if module is None]
    if missing:
        print(f"  ({' and '.join(missing)} not importable: no row or ratio for them)")


def print_compiled(fn: S.CompiledFunction) -> None:
    print(
        f"  {COMPILED}: {len(fn.graph.ops)} ops in the graph, compiled in "
        f"{1e3 * fn.report.compile_seconds:.1f} ms ({fn.report.lines_of_code} lines of "
        "Python)"
    )


# ---- a. forward at batch 1 ---------------------------------------------------------------


def no_grad_forward(no_grad: Callable, model: Any, x: Any) -> Any:
    """A framework's module called as a user does for inference."""
    with no_grad():
        return model(x)


def jax_mlp(params: list[tuple], x: Any, transposed: bool = False) -> Any:
    """x @ W.T + b, ReLU between layers; `transposed`: the params hold W.T, not W."""
    for i, (w, b) in enumerate(params):
        x = x @ (w if transposed else w.T) + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def jax_call(fn: Callable, *args: Any) -> Any:
    return fn(*args).block_until_ready()


def jax_params(weights: list[np.ndarray], transposed: bool = False) -> list[tuple]:
    """Device copies of the weights (W.T instead of W if `transposed`) and biases, never
    aliasing the numpy arrays the other contenders share."""
    arrays = [jnp.asarray((w.T if transposed and w.ndim == 2 else w).copy()) for w in weights]
    return list(zip(arrays[0::2], arrays[1::2]))


def forward_contenders(model: Any, x: np.ndarray) -> tuple[dict[str, Callable], Any]:
    """Contender name -> forward call, all with `model`'s weights; and the compiled function."""
    weights = [p.data for p in model.parameters()]
    layers = [(w.copy(), b.copy()) for w, b in zip(weights[0::2], weights[1::2])]
    layers_t = [(np.ascontiguousarray(w.T), b) for w, b in layers]
    x_sym = S.placeholder(x.shape, name="x")
    compiled = S.compile(model(x_sym), inputs=[x_sym], optimize=0)
    table: dict[str, Callable] = {
        NUMPY: partial(numpy_forward, layers_t, x),
        NUMPY_WT: partial(numpy_forward, layers, x, transposed=False),
        EAGER: partial(no_grad_forward, E.no_grad, model, E.tensor(x)),
        COMPILED: partial(compiled, x),
    }
    if torch is not None:
        torch_model = build_mlp(torch.nn, FORWARD_SIZES)
        with torch.no_grad():
            for p, w in zip(torch_model.parameters(), weights, strict=True):
                p.copy_(torch.from_numpy(w))
        table["torch eager"] = partial(
            no_grad_forward, torch.no_grad, torch_model, torch.from_numpy(x.copy())
        )
    if jax is not None:  # W.T stored, as numpy's; then W with x @ W.T in the graph
        x_dev = jnp.asarray(x)
        table["jax.jit"] = partial(
            jax_call,
            jax.jit(partial(jax_mlp, transposed=True)),
            jax_params(weights, transposed=True),
            x_dev,
        )
        table[JAX_WT] = partial(jax_call, jax.jit(jax_mlp), jax_params(weights), x_dev)
    return table, compiled


def bench_forward() -> None:
    print(
        f"a. forward: MLP {'-'.join(map(str, FORWARD_SIZES))} (ReLU) at batch 1 (median of "
        f"{REPEATS} interleaved repeats)"
    )
    E.manual_seed(0)
    model = build_mlp(nn, FORWARD_SIZES)
    x = np.random.default_rng(0).standard_normal((1, FORWARD_SIZES[0])).astype(np.float32)
    contenders, compiled = forward_contenders(model, x)
    ref = contenders[NUMPY]()
    worst = max(float(np.abs(to_numpy(f()) - ref).max()) for f in contenders.values())
    verdict = "OK" if worst <= FORWARD_TOLERANCE else "MISMATCH (check the contenders!)"
    print(
        f"  largest difference in the logits from numpy's: {worst:.2e} (tolerance "
        f"{FORWARD_TOLERANCE:g}): {verdict}"
    )
    print_compiled(compiled)
    print()
    print_results(race(contenders, FORWARD_TARGET_NS), "call")
    given = repr(NUMPY) + ("" if jax is None else " and 'jax.jit'")
    print(
        f"  {given} get W.T, made contiguous once, ahead of time; the "
        "'x @ W.T' rows\n  get W, as diptych's linear does"
        + (
            "."
            if jax is None
            else " (and XLA on the CPU then copies out every transposed\n  weight on every call)."
        )
    )
    print()


# ---- b. one training step ----------------------------------------------------------------


def step_factories() -> dict[str, Callable]:
    factories = {
        NUMPY: make_numpy_step,
        EAGER: make_diptych_step,
        COMPILED: partial(make_compiled_step, optimize=0),
    }
    if torch is not None:
        factories["torch eager"] = make_torch_step
    if jax is not None:
        factories["jax.jit"] = make_jax_step
    return factories


def bench_training_step() -> None:
    print(
        f"b. one training step: MLP {'-'.join(map(str, SIZES))} (ReLU), batch "
        f"{BATCH}, softmax cross-entropy, SGD lr={LR}"
    )
    x, y, weights = training_setup()
    factories = step_factories()
    eo.check_losses(weights, x, y, factories)
    steps = {name: make(weights, x, y) for name, make in factories.items()}
    print_compiled(steps[COMPILED].func)
    print()
    print_results(race({**steps, **eo.compare_steps(opts=(0,))}, eo.STEP_TARGET_NS), "step")
    print(eo.COMPARE_NOTE)
    print()


# ---- --profile: where the compiled step's time goes --------------------------------------


def kernel_owners(fn: S.CompiledFunction) -> dict[tuple[str, int], str]:
    """(file, first line) of each kernel in the plan -> its op's name, to read cProfile by."""
    owners = {}
    for node in fn.graph.ops:
        code = getattr(node.op.kernel, "__code__", None)
        if code is not None:
            owners[(code.co_filename, code.co_firstlineno)] = node.op.name
    return owners


def profile_compiled_step() -> None:
    x, y, weights = training_setup()
    step = compile_training_step(weights, optimize=0)
    counts: dict[str, int] = {}
    for node in step.graph.ops:
        counts[node.op.name] = counts.get(node.op.name, 0) + 1
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [step(x, y) for _ in range(PROFILE_CALLS)])
    stats = pstats.Stats(profiler)
    owners = kernel_owners(step)
    per_op: dict[str, float] = {}
    for (file, line, _), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore
        if (file, line) in owners:
            name = owners[(file, line)]
            per_op[name] = per_op.get(name, 0.0) + cumulative
    total = sum(per_op.values())
    print(
        f"profile of {COMPILED}'s training step: cProfile over {PROFILE_CALLS} calls\n"
        "(cProfile adds a fixed cost to every Python call, so small kernels look dearer)"
    )
    rows = [
        [name, str(counts[name]), us(1e9 * t / PROFILE_CALLS), f"{t / total:.0%}"]
        for name, t in sorted(per_op.items(), key=lambda kv: -kv[1])
    ]
    print_table(["op", "nodes", "us/step (all nodes)", "share of kernels"], rows)
    print()
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile", action="store_true", help="also profile the compiled training step, op by op"
    )
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    jax_line = (
        "jax not importable (its rows are left out)"
        if jax is None
        else f"jax {jax.__version__} on {jax.devices()[0].platform} (XLA's own thread "
        "pool, not listed at the end)"
    )
    with thread_limit(args.threads) as policy:
        print_machine(torch, policy, [jax_line], [*THREAD_ENV_VARS, "XLA_FLAGS"])
        bench_forward()
        bench_training_step()
        print_thread_pools()
        print()
        print(f"total time {time.perf_counter() - start:.1f} s")
        if args.profile:
            print()
            profile_compiled_step()


if __name__ == "__main__":
    sys.exit(main())
