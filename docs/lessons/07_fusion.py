# %% [markdown]
# # 7. Fusion measured
#
# An unfused elementwise op reads its inputs from memory and writes its result back: a chain
# of twenty ops makes twenty passes over the data. A fused kernel makes one: it reads each
# input once, keeps every intermediate in registers, and writes the result once. Only a
# compiler that sees the whole chain before it runs can do this, which is why deferred
# execution has it and eager execution does not. This lesson measures when it pays (long
# chains on large arrays, where memory bandwidth is the limit), when it does not (small
# arrays, where a call's overhead dominates, and matmul-bound models), and why fused results
# differ from eager's in the last bits.

# %%
import contextlib
import os
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from compare import lessons
from compare.harness import CLOSE, differences
from compare.timing import thread_limit
from symbolic.passes import fusion as fusion_pass

lessons.begin()  # `python docs/lessons/07_fusion.py --check` checks the exercises
SIZES = lessons.size([2**k for k in range(10, 24, 2)], [2**k for k in range(10, 18, 2)])
LAYER = lessons.size(512, 256)  # the matmul-bound layer's width
RACE = {"target_ms": lessons.size(20, 5), "repeats": lessons.size(5, 3)}
rng = np.random.default_rng(0)


# %% [markdown]
# ## Two chains, and the bytes they move
#
# A long chain, two GELU layers with a scale each (about twenty elementwise ops on one
# array), and a short one, `tanh(1.5 x + 0.5)`. Unfused, each op streams its inputs in and
# its output out, 4 bytes per float32 value; fused, a kernel reads `x` and writes the result:
# 8 bytes per element.


# %%
def gelu(v):
    return 0.5 * v * (1.0 + F.tanh(0.7978845608 * (v + 0.044715 * v**3)))


def long_chain(x):
    return gelu(gelu(x * 1.5) * 0.5)


def short_chain(x):
    return F.tanh(x * 1.5 + 0.5)


CHAINS = {"long": long_chain, "short": short_chain}


def bytes_per_element(fn) -> int:
    """Bytes each op of a compiled graph reads and writes per element of its output: every
    full-size array input once, and its output once (scalars and constants cost nothing)."""
    total = 0
    for node in fn.graph.ops:
        arrays = [a for a in node.inputs if isinstance(a, S.Node) and a.shape == node.shape]
        total += (len(arrays) + 1) * node.dtype.itemsize
    return total


@contextlib.contextmanager
def fusion_target(target: str):
    """$DIPTYCH_FUSION_TARGET for the kernels first called inside (read on a first call)."""
    saved = os.environ.get("DIPTYCH_FUSION_TARGET")
    os.environ["DIPTYCH_FUSION_TARGET"] = target
    try:
        yield
    finally:
        os.environ.pop("DIPTYCH_FUSION_TARGET")
        if saved is not None:
            os.environ["DIPTYCH_FUSION_TARGET"] = saved


def compiled(chain, size: int, **options) -> S.CompiledFunction:
    x = S.placeholder((size,), name="x")
    return S.compile(chain(x), inputs=[x], **options)


def fused_at_any_size(chain, size: int) -> S.CompiledFunction:
    """The chain fused even below the pass's threshold, its kernel built by numba."""
    with mock.patch.object(fusion_pass, "MIN_ELEMENTS", 1):
        fn = compiled(chain, size)
    with fusion_target("numba"):
        fn(np.zeros(size, np.float32))  # the target is chosen, and built, on the first call
    return fn


moved = {}
for name, chain in CHAINS.items():
    unfused = compiled(chain, SIZES[-1], disable=["fusion"])
    moved[name] = (bytes_per_element(unfused), bytes_per_element(compiled(chain, SIZES[-1])))
    print(
        f"{name} chain: {len(unfused.graph.ops)} ops, {moved[name][0]} bytes per element "
        f"unfused, {moved[name][1]} fused"
    )
lessons.claim(
    f"unfused, the long chain moves {moved['long'][0]} bytes per element; fused, "
    f"{moved['long'][1]}",
    holds=moved["long"][1] < moved["long"][0],
)

# %% [markdown]
# ## Time per element as the array grows
#
# Each chain is timed unfused (`optimize=2, disable=["fusion"]`) and fused at every size; the
# long one also as `O2` ships it. The fusion pass leaves groups under `MIN_ELEMENTS`
# (65,536 elements) alone, so "fused at every size" lowers that threshold and forces the
# numba target (`DIPTYCH_FUSION_TARGET=numba`, read on a kernel's first call) to show what
# the rule avoids. The machine's own limit is measured beside them: `np.copyto` on the
# largest array, 8 bytes per element like a fused kernel.

# %%
rows = []
long_kernels = []  # the long chain's fused kernel at each size: one program, built once
with thread_limit(1):
    for size in SIZES:
        x_value = rng.standard_normal(size).astype(np.float32)
        versions = {"long O2": compiled(long_chain, size)}
        for name, chain in CHAINS.items():
            versions[f"{name} unfused"] = compiled(chain, size, disable=["fusion"])
            versions[f"{name} fused"] = fused_at_any_size(chain, size)
        long_kernels.append(versions["long fused"].report.fused_kernels[0].kernel)
        seconds = lessons.race_seconds(
            {name: (lambda f=f, x=x_value: f(x)) for name, f in versions.items()}, **RACE
        )
        rows.append((size, {name: t / size for name, t in seconds.items()}))  # s per element
    source = rng.standard_normal(SIZES[-1]).astype(np.float32)
    target = np.empty_like(source)
    copy_seconds = lessons.seconds_per_call(lambda: np.copyto(target, source), **RACE)
copy_gbs = 8 * SIZES[-1] / copy_seconds / 1e9

print(
    f"{'elements':>10}  ns per element:{'long unfused':>13}{'long O2':>9}{'long fused':>11}"
    f"{'short unfused':>14}{'short fused':>12}"
)
for size, per in rows:
    print(
        f"{size:>10,}{'':>16}"
        + "".join(
            f"{1e9 * per[name]:>{width}.2f}"
            for name, width in (
                ("long unfused", 13),
                ("long O2", 9),
                ("long fused", 11),
                ("short unfused", 14),
                ("short fused", 12),
            )
        )
    )


def crossover(name: str):
    """The smallest size from which the fused chain beat the unfused one at every size."""
    for i, (size, _) in enumerate(rows):
        if all(per[f"{name} fused"] < per[f"{name} unfused"] for _, per in rows[i:]):
            return size
    return None


# %%
largest, per = rows[-1]
speedup = per["long unfused"] / per["long fused"]
lessons.claim(
    f"on {largest:,} elements the fused long chain ran {speedup:.1f}x as fast as unfused",
    holds=speedup > 1,
)
for name in CHAINS:
    size = crossover(name)
    if size is None:
        lessons.claim(f"fusing the {name} chain paid at none of the sizes measured", holds=False)
    else:
        every = "at every size measured, " if size == SIZES[0] else ""
        lessons.claim(
            f"fusing the {name} chain paid {every}from {size:,} elements on "
            f"(the pass's threshold is {fusion_pass.MIN_ELEMENTS:,})",
            holds=size > SIZES[0] or name == "long",
        )
unfused_gbs = {size: moved["long"][0] / p["long unfused"] / 1e9 for size, p in rows}
fused_gbs = {size: moved["long"][1] / p["long fused"] / 1e9 for size, p in rows}
print(
    "GB/s the long chain moved: unfused "
    + ", ".join(f"{unfused_gbs[s]:.0f}" for s in SIZES)
    + "; fused "
    + ", ".join(f"{fused_gbs[s]:.1f}" for s in SIZES)
    + f"; np.copyto {copy_gbs:.0f}"
)
lessons.claim(
    f"unfused, the long chain's ops streamed {unfused_gbs[largest]:.1f} GB/s on the largest "
    f"array (peak {max(unfused_gbs.values()):.1f} GB/s, in cache), against "
    f"{copy_gbs:.1f} GB/s for a plain copy: each op is a pass bounded by bandwidth",
    holds=unfused_gbs[largest] > 0.3 * copy_gbs,
)
lessons.claim(
    f"fused, the long chain needs only {fused_gbs[largest]:.1f} GB/s on the largest array: "
    "its loop is bounded by arithmetic, not by memory",
    holds=fused_gbs[largest] < copy_gbs,
)

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
LINES = {
    "long unfused": ("o-", "#2563eb", 'long chain, disable=["fusion"]'),
    "long O2": ("s:", "#0f172a", "long chain, O2 as shipped"),
    "long fused": ("^-", "#16a34a", "long chain, fused at every size"),
    "short unfused": ("o--", "#93c5fd", 'short chain, disable=["fusion"]'),
    "short fused": ("^--", "#86efac", "short chain, fused at every size"),
}
for name, (marker, color, label) in LINES.items():
    ax.plot(SIZES, [1e9 * per[name] for _, per in rows], marker, color=color, label=label)
ax.axvline(
    fusion_pass.MIN_ELEMENTS,
    color="#64748b",
    linestyle=":",
    label=f"the pass's threshold ({fusion_pass.MIN_ELEMENTS:,})",
)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("elements in the array")
ax.set_ylabel("ns per element (lower is better)")
ax.set_title("time per element, fused vs unfused: where the lines cross, fusion starts to pay")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
path = lessons.figure("07_crossover.svg")
fig.savefig(path)
plt.close(fig)
lessons.show(path)

# %% [markdown]
# Read the plot from the right. Large arrays stream from memory, past the caches, and
# every pass the fused kernel saves is a trip through it: the gap grows with the
# size. Small arrays sit in the cache, so an unfused op's pass costs little, while every
# kernel call pays a fixed price (Python, argument checks, the loop's setup). A long chain
# saves many calls and wins even there; a short one saves two calls and loses to the fused
# kernel's higher price per call until the arrays are large. The pass uses one threshold
# for every group, near where short groups start to pay.
#
# ## When the matmul dominates
#
# A dense layer, `gelu(x @ w + b)`: the matmul does `2 n^3` flops on `n^2` values, the
# activation a few flops per value. Fusion removes passes over the activation's values, but
# the step's time is the matmul's.

# %%
x = S.placeholder((LAYER, LAYER), name="x")
w = S.variable(rng.normal(size=(LAYER, LAYER)).astype(np.float32) / LAYER**0.5, name="w")
b = S.variable(np.zeros(LAYER, np.float32), name="b")
layer = gelu(x @ w + b)
x_value = rng.normal(size=(LAYER, LAYER)).astype(np.float32)
layer_fns = {
    "fused": S.compile(layer, inputs=[x]),
    "unfused": S.compile(layer, inputs=[x], disable=["fusion"]),
    "matmul alone": S.compile(x @ w, inputs=[x]),
}
with thread_limit(1):
    for f in layer_fns.values():
        f(x_value)
    layer_seconds = lessons.race_seconds(
        {name: (lambda f=f: f(x_value)) for name, f in layer_fns.items()}, **RACE
    )
share = layer_seconds["matmul alone"] / layer_seconds["unfused"]
ratio = layer_seconds["fused"] / layer_seconds["unfused"]
lessons.claim(
    f"in a {LAYER}x{LAYER} dense layer the matmul alone took {100 * share:.0f}% of the "
    f"unfused step, and the fused step took {ratio:.2f}x the unfused one's time: fusion "
    "barely moves a step the matmul dominates",
    holds=share > 0.5 and 0.8 <= ratio <= 1.25,
)

# %% [markdown]
# ## Why O2 differs from eager in the last bits
#
# `optimize=0` calls the very kernels eager calls, in the same order: the same bits. A fused
# kernel computes the same expression differently: numba's loop rounds each step to float32
# as numpy does, but its `tanh` is a float32 approximation where numpy calls the C library,
# and values may be computed in a different order. The target is chosen per group by a fixed
# rule (numba for large groups of arithmetic and `tanh`, numpy block by block for groups
# that call `exp` or `log`, or below 65,536 elements); `DIPTYCH_FUSION_TARGET=numpy` makes
# every fused group run numpy's own kernels block by block, which gives eager's bits.


# %%
def ulps(got, want) -> np.ndarray:
    """How many float32 values apart each pair is (units in the last place)."""
    return np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))


size = max(SIZES[-1], 2 * fusion_pass.MIN_ELEMENTS)  # large enough for the numba rule
x_value = rng.standard_normal(size).astype(np.float32)
eager_out = long_chain(E.tensor(x_value)).numpy()
numba_fn = compiled(long_chain, size)
outputs = {"O0": compiled(long_chain, size, optimize=0)(x_value), "O2": numba_fn(x_value)}
with fusion_target("numpy"):
    outputs["O2, target numpy"] = compiled(long_chain, size)(x_value)
print(f"O2's fused kernel ran on: {numba_fn.report.fused_kernels[0].kernel.choice}")
for name, out in outputs.items():
    max_abs, max_rel = differences([out], [eager_out])
    print(
        f"{name:<18} differs from eager in {np.count_nonzero(out != eager_out):>8,} of "
        f"{size:,} elements; max abs {max_abs:.1e}, max rel {max_rel:.1e}"
    )

# %%
numba_out = outputs["O2"]
differ = numba_out != eager_out
large = np.abs(eager_out) >= 0.1
max_abs, max_rel = differences([numba_out], [eager_out])
lessons.claim(
    f"O0 equals eager bit for bit ({np.count_nonzero(outputs['O0'] != eager_out)} elements differ)",
    holds=np.array_equal(outputs["O0"], eager_out),
)
lessons.claim(
    f"the numba-fused chain differs from eager in {100 * differ.mean():.0f}% of the "
    f"elements, by a median of {np.median(ulps(numba_out, eager_out)[differ]):.0f} ulp "
    f"(at most {ulps(numba_out, eager_out)[large].max()} ulp where |value| >= 0.1); max rel "
    f"{max_rel:.1e}, within the {CLOSE:g} that `diptych compare` allows",
    holds=0 < max_rel <= CLOSE,
)
lessons.claim(
    f"with DIPTYCH_FUSION_TARGET=numpy the fused chain equals eager bit for bit "
    f"({np.count_nonzero(outputs['O2, target numpy'] != eager_out)} elements differ)",
    holds=np.array_equal(outputs["O2, target numpy"], eager_out),
)

# %% [markdown]
# The largest relative differences sit near zero, in GELU's negative tail: there the float32
# `tanh` rounds to -1 a little earlier than the C library's, and `1 + tanh` becomes 0 where
# eager keeps 1e-8. The absolute difference is tiny; the relative one is measured against the
# array's scale, as `diptych compare` does.
#
# ## The build is paid once
#
# A numba kernel is compiled on its first call, then kept on disk (`~/.cache/diptych/kernels`
# or `$DIPTYCH_CACHE`), keyed by its source: a later compile of the same chain, in this
# process or the next, loads it instead of building it.

# %%
first, later = long_kernels[0], [k for k in long_kernels[1:] if k.source == long_kernels[0].source]
reload = max((k.compile_seconds for k in later), default=0.0)
lessons.claim(
    f"the long chain's kernel took {first.compile_seconds:.2f} s on its first call (a numba "
    f"build, or a load if the disk cache held it from an earlier run); the {len(later)} "
    f"later compiles of the same chain took at most {reload:.3f} s to load it",
    holds=reload < first.compile_seconds,
)

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/07_fusion.py`, then run
# `python docs/lessons/07_fusion.py --check`.
#
# 1. `bytes_moved(fn)`: bytes per element the ops of a compiled 1-D graph read and write.
# 2. `fusable_chain(x)`: a chain on a large 1-D placeholder that fusion makes one kernel of,
#    with at least eight elementwise ops.
# 3. `fused_ops_left_out(fn)`: the names of elementwise ops of a compiled graph that fusion
#    left outside every fused kernel.
