"""What a new process pays to get a compiled training step going, with the kernel cache cold
and then warm (issue 12: fused kernels are byte-identical across processes, so the second
process loads them from disk instead of building them).

    python benchmarks/warm_start.py [--model mlp_digits] [--batch 256] [--size N]

Each row is a fresh Python process on one temporary cache folder: the first builds every
fused kernel, the second finds them all. "numba" is importing numba (once per process, cache
or not); "compile" is building the model and S.compile (trace, passes, codegen); "first call"
includes building or loading each fused kernel ("kernels" is that part; the first kernel a
process loads also pays numba's one-time start of its compiler target).
"""

from __future__ import annotations

import argparse
import tempfile

from compare.bench import run_child

CHILD = """
import json, sys, time
start = time.perf_counter()
from compare import zoo
from compare.pictures import compile_model
imported = time.perf_counter() - start
t0 = time.perf_counter()
import numba  # once per process, whatever the cache holds: timed apart from compile work
numba_import = time.perf_counter() - t0
model = zoo.get(sys.argv[1])
batch, size = int(sys.argv[2]), int(sys.argv[3]) or None
inputs = model.make_inputs(batch, size or model.size, 0)  # loads the data set: not compile work
t0 = time.perf_counter()
step = compile_model(model, "train", 2, batch, size)
compiled = time.perf_counter() - t0
t0 = time.perf_counter()
step(*inputs.values())
first = time.perf_counter() - t0
t0 = time.perf_counter()
step(*inputs.values())
second = time.perf_counter() - t0
kernels = step.report.fused_kernels
print(json.dumps({"import": imported, "numba": numba_import, "compile": compiled,
                  "first": first, "second": second, "kernels": len(kernels),
                  "build": sum(op.kernel.compile_seconds for op in kernels),
                  "each": [round(op.kernel.compile_seconds, 3) for op in kernels]}))
"""


def run(model: str, batch: int, size: int, cache: str) -> dict:
    return run_child(CHILD, model, str(batch), str(size), env={"DIPTYCH_CACHE": cache})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp_digits")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--size", type=int, default=0, help="the model's size knob (0: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold = run(args.model, args.batch, args.size, cache)
        warm = run(args.model, args.batch, args.size, cache)
    print(f"{args.model} training step, batch {args.batch}, {cold['kernels']} fused kernels")
    print(
        f"{'process':<14}{'import':>10}{'numba':>10}{'compile':>10}{'first call':>12}"
        f"{'kernels':>10}{'2nd call':>10}"
    )
    for name, r in (("cold cache", cold), ("warm cache", warm)):
        print(
            f"{name:<14}{r['import']:>9.3f}s{r['numba']:>9.3f}s{r['compile']:>9.3f}s{r['first']:>11.3f}s"
            f"{r['build']:>9.3f}s{r['second']:>9.4f}s"
        )
    print("kernel build or load, each (s):", cold["each"], "then", warm["each"])
    saved = cold["compile"] + cold["first"] - warm["compile"] - warm["first"]
    print(
        f"the warm cache saved {saved:.2f} s; compile work before the first result in the "
        f"second process: {1e3 * (warm['compile'] + warm['first'] - warm['second']):.0f} ms"
    )


if __name__ == "__main__":
    main()
