# %% [markdown]
# # 9. The cost of Python
#
# Eager execution runs every op the moment Python reaches it: the interpreter looks up the
# op, picks the engine, checks the arguments, calls the kernel and, when a gradient may be
# wanted, records a tape entry. A compiled graph pays for all of that once, at compile time,
# and then runs straight-line generated code. This lesson measures what that per-op price
# is, at which array size it stops mattering, why eager is still slower than `optimize=0` on
# `gelu_chain` although both call the same kernels, and after how many calls the compile
# step has paid for itself on every model of the zoo.

# %%
import resource

import matplotlib.pyplot as plt
import numpy as np

import eager as E
import symbolic as S
from compare import lessons, zoo
from compare.harness import Case, Settings, run_model
from compare.timing import thread_limit
from compare.zoo.gelu_chain import gelu

lessons.begin()  # `python docs/lessons/09_cost_of_python.py --check` checks the exercises
SIZES = lessons.size([4**k for k in range(11)], [1, 32, 1024, 65536])  # elements
GELU_CHAIN_SHAPE = lessons.size((64, 4096), (16, 4096))  # gelu_chain's (batch, features)
TARGET_MS, REPEATS = lessons.size(10, 3), lessons.size(5, 3)  # ms per sample, samples per contender

# %% [markdown]
# ## Per-op overhead as the array grows
#
# The same elementwise chain (four tanh-GELUs, 32 ops) runs three ways on arrays from one
# element to many: eagerly, compiled without optimization (`optimize=0`: the same kernels,
# called from generated code) and compiled with fusion and memory planning (`optimize=2`).
# On a tiny array each kernel takes nanoseconds, so eager's time is nearly all Python: that
# is its fixed cost per call. As the arrays grow, the kernels' own time grows with them; the
# **crossover** is the size from which the kernels take longer than eager's Python does.


# %%
def chain(x):
    """Four tanh-GELUs in a row: 32 elementwise ops (gelu_chain's layer without weights)."""
    for _ in range(4):
        x = gelu(x)
    return x


def compiled_chain(n: int, optimize: int) -> S.CompiledFunction:
    x = S.placeholder((n,), "float32", "x")
    return S.compile(chain(x), inputs=[x], optimize=optimize)


def chain_seconds(n: int) -> tuple[dict[str, float], S.CompiledFunction]:
    """Seconds per call of the chain on n elements, each way; and the optimized function."""
    array = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    tensor = E.tensor(array)  # no gradient wanted: no tape, only dispatch
    plain, optimized = compiled_chain(n, 0), compiled_chain(n, 2)
    optimized(array)  # the first call builds the fused kernels: not part of a call's cost
    contenders = {
        "eager": lambda: chain(tensor),
        "optimize=0": lambda: plain(array),
        "optimize=2": lambda: optimized(array),
    }
    return lessons.race_seconds(contenders, TARGET_MS, REPEATS), optimized


times = {"eager": [], "optimize=0": [], "optimize=2": []}  # seconds per call, one per size
for n in SIZES:
    measured, optimized = chain_seconds(n)
    for mode, seconds in measured.items():
        times[mode].append(seconds)
OPS = len(compiled_chain(1, 0).graph.ops)
FUSED_AT_LARGEST = len(optimized.report.fused_kernels)


# %% [markdown]
# To find the crossover, eager's times are fitted with the simplest model that explains them,
# `time(n) = overhead + n * per_element`: a fixed price per call (the Python of 32 ops) plus
# work that grows with the array. The crossover is where the two terms are equal,
# `n = overhead / per_element`. A fit over every size is steadier than any single timing.


# %%
def fixed_and_growing(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(overhead s, s per element) of `seconds = overhead + n * per_element`, fitted by least
    relative squares, so that the small sizes count as much as the large ones."""
    n, t = np.asarray(sizes, float), np.asarray(seconds)
    (overhead, per_element), *_ = np.linalg.lstsq(np.stack([1 / t, n / t], 1), np.ones_like(t))
    return float(overhead), float(per_element)


OVERHEAD, PER_ELEMENT = fixed_and_growing(SIZES, times["eager"])
CROSSOVER = OVERHEAD / PER_ELEMENT if OVERHEAD > 0 and PER_ELEMENT > 0 else None
fig, ax = plt.subplots(figsize=(7, 4.2))
for mode, marker in zip(times, "osD"):
    ax.loglog(SIZES, 1e6 * np.array(times[mode]), marker=marker, label=mode)
ax.axhline(1e6 * OVERHEAD, color="grey", ls=":", label="eager's Python overhead (fitted)")
if CROSSOVER is not None:
    ax.axvline(CROSSOVER, color="black", ls="--", lw=1)
    ax.annotate(
        "kernel time =\nPython overhead",
        (CROSSOVER, 2e6 * OVERHEAD),
        xytext=(-8, 30),
        textcoords="offset points",
        ha="right",
    )
ax.set_xlabel("elements per array")
ax.set_ylabel("µs per call (32 ops)")
ax.set_title("Four GELUs: time per call as the array grows")
ax.legend(loc="upper left")
fig.tight_layout()
path = lessons.figure("09_overhead_vs_size.svg")
fig.savefig(path)
lessons.show(path)

# %%
eager_first, plain_first = times["eager"][0], times["optimize=0"][0]
lessons.claim(
    f"on {SIZES[0]} element eager took {1e6 * eager_first:.0f} µs per call for {OPS} ops "
    f"({1e6 * eager_first / OPS:.1f} µs per op), optimize=0 {1e6 * plain_first:.0f} µs: "
    f"{eager_first / plain_first:.1f}x, and nearly all of it is Python",
    holds=eager_first > plain_first,
)
eager_last, plain_last, optimized_last = (times[m][-1] for m in times)
if CROSSOVER is None:
    lessons.claim(
        "eager's times did not split into a fixed overhead and a growing kernel time up to "
        f"{SIZES[-1]:,} elements",
        holds=False,
    )
else:
    lessons.claim(
        f"eager's Python overhead was about {1e6 * OVERHEAD:.0f} µs per call and the kernels "
        f"took longer than that from about {CROSSOVER:,.0f} elements on; at {SIZES[-1]:,} "
        f"elements eager took {eager_last / plain_last:.2f}x optimize=0's time",
        holds=eager_last / plain_last < eager_first / plain_first,
    )
lessons.claim(
    f"at {SIZES[-1]:,} elements eager took {eager_last / optimized_last:.1f}x the time of "
    f"optimize=2 ({FUSED_AT_LARGEST} fused kernel(s)): past the crossover, fusion (lesson 7), "
    "not saved Python, is what compiling buys",
    holds=optimized_last < eager_last,
)

# %% [markdown]
# ## Why eager is slower than optimize=0 on `gelu_chain`
#
# `diptych compare gelu_chain` shows eager well behind `optimize=0`, and yet `optimize=0`
# applies no pass at all: it calls the very kernels eager calls. The difference is what
# eager does around each kernel. Below, the forward pass runs three ways: eagerly while
# recording the tape (the parameters require gradients), eagerly under `E.no_grad()`, and
# as `optimize=0`'s generated code, on a tiny batch (where only Python costs) and on a large
# one (where memory does). Page faults count the fresh memory each call touches.


# %%
def page_faults_per_call(step, calls: int = 5) -> float:
    """Minor page faults per call: memory the process had not touched (or had given back)."""
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def gelu_chain_costs(batch: int, features: int) -> tuple[dict, dict, S.CompiledFunction]:
    """Seconds and page faults per call of gelu_chain's training step (eager, optimize=0)
    and of its forward pass three ways, built as `diptych compare` builds them."""
    model = zoo.get("gelu_chain")
    case = Case(model, Settings(batch=batch, size=features))
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in case.inputs.items()]
    outputs = model.loss_and_outputs(case.module, feeds)
    plain_forward = S.compile(outputs, inputs=feeds, optimize=0)
    arrays = list(case.inputs.values())
    x = E.tensor(arrays[0])

    def forward_without_tape():
        with E.no_grad():
            return case.module(x)

    contenders = {
        "eager step": case.eager().step,
        "optimize=0 step": case.symbolic(0).step,
        "eager forward, tape recorded": lambda: case.module(x),  # the parameters want grads
        "eager forward, E.no_grad()": forward_without_tape,
        "optimize=0 forward": lambda: plain_forward(*arrays),
    }
    seconds = lessons.race_seconds(contenders, TARGET_MS, REPEATS)
    faults = {name: page_faults_per_call(step) for name, step in contenders.items()}
    return seconds, faults, plain_forward


TINY, LARGE = (1, 64), GELU_CHAIN_SHAPE
tiny, _, _ = gelu_chain_costs(*TINY)
large, faults, plain_forward = gelu_chain_costs(*LARGE)
shapes = [f"{batch} x {features}" for batch, features in (TINY, LARGE, LARGE)]
print(f"{'gelu_chain':<30}{'µs per call':>14}{'ms per call':>14}{'page faults':>14}")
print(f"{'(batch x features)':<30}" + "".join(f"{shape:>14}" for shape in shapes))
for name in large:
    print(f"{name:<30}{1e6 * tiny[name]:>14.0f}{1e3 * large[name]:>14.2f}{faults[name]:>14,.0f}")
print("\noptimize=0's forward is this straight-line code (its first lines):")
print("\n".join(plain_forward.source.splitlines()[:5]))

# %%
FORWARD_OPS = len(plain_forward.graph.ops)
steps = large["eager step"], large["optimize=0 step"]
lessons.claim(
    f"on gelu_chain ({LARGE[0]} x {LARGE[1]}) a training step took {1e3 * steps[0]:.1f} ms "
    f"eagerly and {1e3 * steps[1]:.1f} ms at optimize=0: {steps[0] / steps[1]:.1f}x, with the "
    "same kernels",
    holds=steps[0] > steps[1],
)
tape, no_tape = large["eager forward, tape recorded"], large["eager forward, E.no_grad()"]
lessons.claim(
    f"recording the tape made eager's forward {tape / no_tape:.1f}x slower "
    f"({1e3 * tape:.1f} ms against {1e3 * no_tape:.1f} ms under E.no_grad()): the tape keeps "
    f"the {FORWARD_OPS} ops' results alive for backward, so each op writes fresh memory "
    f"({faults['eager forward, tape recorded']:,.0f} page faults per call instead of "
    f"{faults['eager forward, E.no_grad()']:,.0f})",
    holds=tape > no_tape,
)
per_op = {name: 1e6 * tiny[name] / FORWARD_OPS for name in tiny}
lessons.claim(
    f"at {TINY[0]} x {TINY[1]}, where the kernels take almost no time, eager's forward cost "
    f"{per_op['eager forward, E.no_grad()']:.1f} µs per op without the tape and "
    f"{per_op['eager forward, tape recorded']:.1f} µs with it, against "
    f"{per_op['optimize=0 forward']:.1f} µs for optimize=0's generated code: Python dispatch",
    holds=tiny["eager forward, E.no_grad()"] > tiny["optimize=0 forward"],
)

# %% [markdown]
# ## When does compiling pay off?
#
# Compiling costs time once: tracing, the symbolic gradient, the passes, code generation
# and building the fused kernels on the first call. It saves the difference between an
# eager step and a compiled one at every call after that. The break-even point is the
# compile time divided by the time saved per call. Each zoo model below is run the way
# `diptych compare` runs it (compare/harness.py), at `optimize=2` and its default sizes.


# %%
def calls(n: int) -> str:
    return f"{n:,} call" + ("" if n == 1 else "s")


def break_even(model: zoo.Model) -> tuple[float, float, float, int | None]:
    """(compile s, eager ms, compiled ms, calls until compiling pays off or None), measured
    by the harness `diptych compare` uses, under its thread policy."""
    batch, size = model.test_sizes if lessons.small() else (None, None)
    settings = Settings(
        opts=(2,), repeat=REPEATS, warmup=1, target_ms=TARGET_MS, batch=batch, size=size
    )
    with thread_limit(1):  # BLAS on one thread, as `diptych compare` times by default
        eager_row, compiled_row = run_model(model, settings).rows
    eager_ms, compiled_ms = eager_row.stats.median / 1e6, compiled_row.stats.median / 1e6
    saved_ms = eager_ms - compiled_ms
    paid = int(np.ceil(1e3 * compiled_row.compile_s / saved_ms)) if saved_ms > 0 else None
    return compiled_row.compile_s, eager_ms, compiled_ms, paid


print(f"{'model':<15}{'compile s':>10}{'eager ms':>10}{'O2 ms':>9}{'pays off after':>16}")
for name, model in zoo.MODELS.items():
    compile_s, eager_ms, compiled_ms, paid = break_even(model)
    after = calls(paid) if paid else "never"
    print(f"{name:<15}{compile_s:>10.3f}{eager_ms:>10.3f}{compiled_ms:>9.3f}{after:>16}")
    if paid:
        lessons.claim(
            f"{name}: compile took {compile_s:.3f} s and saves {eager_ms - compiled_ms:.3f} "
            f"ms per call, so it pays off after {calls(paid)}"
        )
    else:
        lessons.claim(
            f"{name}: compile took {compile_s:.3f} s and the compiled step was "
            f"{compiled_ms - eager_ms:.3f} ms slower per call, so it never pays off",
            holds=False,
        )

# %% [markdown]
# Small models pay off after tens of calls even though they compile in milliseconds: the
# saving per call is the Python of a few dozen ops. Models whose fused kernels are built on
# the first call (`gelu_chain` at its default size) pay more up front and save more per call.
# A training run of thousands of steps amortizes any of these; a script that evaluates a
# model a handful of times on ever-changing shapes does not (lesson 10 shows why shapes
# matter).
#
# ## Exercises
#
# Fill in `docs/lessons/exercises/09_cost_of_python.py`, then run
# `python docs/lessons/09_cost_of_python.py --check` (or `diptych lesson 9 --check`).
#
# 1. `exercise_1(compile_s, eager_s, compiled_s)`: the number of calls after which compiling
#    has paid for itself, or `None` when the compiled call is not faster.
# 2. `exercise_2(fn, n)`: how many ops eager dispatches (each paying its Python price) when
#    it runs `fn` on an `n`-element array; count them with a graph rather than by hand.
# 3. `exercise_3(model, x)`: run `model` eagerly on `x` without recording the tape.
