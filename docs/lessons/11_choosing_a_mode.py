# %% [markdown]
# # 11. Choosing a mode
#
# The earlier lessons measured one contrast each. This page puts them together as a
# decision guide: for each situation, which mode to reach for and the lesson that measured
# why. Below the table, one quick measurement per row re-checks it on this machine, and a
# recommendation table is printed from those numbers rather than from belief.
#
# | situation | reach for | measured in |
# |---|---|---|
# | exploring, debugging, printing values | eager | [lesson 1](01_immediate_vs_deferred.py) |
# | control flow that depends on the data | eager, or `F.cond` | [lesson 5](05_control_flow.py) |
# | lengths that vary per input | eager, or masked `F.scan` | [lesson 4](04_dynamic_vs_static.py) |
# | shapes or Python values new at every call | eager | [lesson 10](10_tracing.py) |
# | many calls of a model made of small ops | compiled | [lesson 9](09_cost_of_python.py) |
# | a handful of calls | eager | [lesson 9](09_cost_of_python.py) |
# | long elementwise chains on large arrays | compiled, O2 | [lesson 7](07_fusion.py) |
# | matmul-bound models on large arrays | either | [lesson 7](07_fusion.py) |
# | a training step that must fit in memory | compiled, O2 | [lesson 8](08_memory_reuse.py) |
# | gradients of gradients, called many times | compiled | [lesson 10](10_tracing.py) |
# | seeing what the compiler changed | compiled, `f.report` | [lesson 6](06_the_compile_step.py) |
#
# (O2 is `optimize=2`: fusion and the memory plan.) Why, in a few words each:
#
# - **Eager** has every value the moment its line runs and nothing to compile first, so it is
#   the mode to explore and debug in. It follows the data: the branch taken, the length seen.
# - A graph is **specialized** to its shapes, dtypes and Python values: one that changes at
#   every call is a retrace at every call (pass such values as arrays where you can).
# - Eager pays Python for **every op at every call**; a compiled call pays it once, at compile
#   time. Small ops and many calls favour compiling; a handful of calls does not repay it.
# - On large arrays the kernels dominate. **Fusion** still wins on elementwise chains (one pass
#   over memory instead of one per op); a matmul costs the same in both modes.
# - The **memory plan** reuses buffers whose values are dead, where a tape keeps every
#   intermediate alive until backward.
# - The graph of a **gradient of a gradient** is built and optimized once; eager records a
#   tape of its backward pass at every call.
#
# A rule of thumb falls out of the table: start eager while the program is still changing,
# compile once it runs many times on the same shapes, and measure before believing either.

# %%
import time

import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from compare import lessons, zoo
from compare.harness import Row, Settings, run_model
from compare.timing import thread_limit
from compare.zoo.gelu_chain import gelu

lessons.begin()  # `python docs/lessons/11_choosing_a_mode.py --check` checks the exercises
LARGE = lessons.size(1 << 20, 1 << 17)  # elements of the "large array" row
TINY = 16  # elements of the "small ops" row
MATMUL = lessons.size(512, 128)  # square matrices of the matmul-bound row
GELU_CHAIN_SHAPE = lessons.size((64, 4096), (8, 4096))  # (batch, features) of the step rows
TRAINING_STEPS, A_HANDFUL = 10_000, 10  # the call counts the recommendations assume
TARGET_MS, REPEATS = lessons.size(10, 3), 3  # ms per sample, samples per contender
gen = np.random.default_rng(0)


# %% [markdown]
# ## One quick measurement per row
#
# Each measurement is a smaller version of the lesson's own: element-wise chains and
# matmuls eagerly and compiled, two zoo models through `diptych compare`'s harness (their
# compile time, step time and peak memory), a function fed a new shape at every call, and a
# second-order gradient.


# %%
def eager_and_compiled(fn, array: np.ndarray) -> dict[str, float]:
    """Seconds per call of `fn` on `array` eagerly and compiled at optimize=2."""
    x = S.placeholder(array.shape, "float32", "x")
    compiled = S.compile(fn(x), inputs=[x], optimize=2)
    compiled(array)  # builds any fused kernel: not a call's cost
    tensor = E.tensor(array)
    return lessons.race_seconds(
        {"eager": lambda: fn(tensor), "compiled": lambda: compiled(array)}, TARGET_MS, REPEATS
    )


def four_gelus(x):
    for _ in range(4):
        x = gelu(x)
    return x


weights = [gen.standard_normal((MATMUL, MATMUL)).astype(np.float32) / MATMUL**0.5 for _ in "abc"]


def matmuls(x):
    for w in weights:
        x = F.tanh(x @ w)
    return x


def zoo_rows(name: str, batch: int | None = None, size: int | None = None) -> tuple[Row, Row]:
    """Eager's and optimize=2's rows of `diptych compare NAME`, under its thread policy."""
    settings = Settings(
        opts=(2,), repeat=REPEATS, warmup=1, target_ms=TARGET_MS, batch=batch, size=size
    )
    with thread_limit(1):
        eager_row, compiled_row = run_model(zoo.get(name), settings).rows
    return eager_row, compiled_row


def break_even(eager_row: Row, compiled_row: Row) -> int | None:
    """Calls until compiling has paid for itself; None if the compiled step is not faster."""
    saved_s = (eager_row.stats.median - compiled_row.stats.median) / 1e9
    return int(np.ceil(compiled_row.compile_s / saved_s)) if saved_s > 0 else None


small_ops = eager_and_compiled(four_gelus, gen.standard_normal(TINY).astype(np.float32))
fusion = eager_and_compiled(four_gelus, gen.standard_normal(LARGE).astype(np.float32))
with thread_limit(1):  # BLAS on one thread, as `diptych compare` times by default
    matmul = eager_and_compiled(matmuls, gen.standard_normal((MATMUL, MATMUL)).astype(np.float32))
gelu_rows = zoo_rows("gelu_chain", *GELU_CHAIN_SHAPE)
tiny_rows = zoo_rows("pythagoras")
gelu_calls, tiny_calls = break_even(*gelu_rows), break_even(*tiny_rows)

# %%
W = gen.standard_normal((32, 32)).astype(np.float32)  # a constant on purpose: capitals
batches = [gen.standard_normal((rows, 32)).astype(np.float32) for rows in range(1, 9)]
retracing = S.function(lambda x: F.tanh(x @ W), warn_after=len(batches))  # retraces expected
started = time.perf_counter()
for batch in batches:
    retracing(batch)
retrace_s = (time.perf_counter() - started) / len(batches)
retraced = lessons.race_seconds(
    {"eager": lambda: F.tanh(E.tensor(batches[-1]) @ W), "cached": lambda: retracing(batches[-1])},
    TARGET_MS,
    REPEATS,
)

# %%
x_second = gen.standard_normal(4 * TINY).astype(np.float32)
x_symbol = S.placeholder(x_second.shape, "float32", "x")
(g_symbol,) = S.grad(F.sum(F.tanh(x_symbol) * x_symbol), [x_symbol])
(h_symbol,) = S.grad(F.sum(g_symbol), [x_symbol])
second_order = S.compile(h_symbol, inputs=[x_symbol])


def eager_second_order():
    x = E.tensor(x_second, requires_grad=True)
    (g,) = E.grad(F.sum(F.tanh(x) * x), [x], create_graph=True)
    return E.grad(F.sum(g), [x])[0]


second_order_times = lessons.race_seconds(
    {"eager": eager_second_order, "compiled": lambda: second_order(x_second)},
    TARGET_MS,
    REPEATS,
)

# %% [markdown]
# ## The recommendations, from this machine's numbers


# %%
def faster(seconds: dict[str, float], margin: float = 1.25) -> str:
    """'compiled' or 'eager' when one is faster by `margin`, else 'either'."""
    ratio = seconds["eager"] / seconds["compiled"]
    return "compiled" if ratio > margin else "eager" if ratio < 1 / margin else "either"


def times(seconds: dict[str, float]) -> str:
    return f"eager {seconds['eager'] / seconds['compiled']:.2f}x compiled's time"


def pays_off(calls: int | None) -> str:
    return f"pays off after {calls:,} calls" if calls else "never pays off"


def fewer_than(calls: int | None, count: int) -> str:
    return "compiled" if calls and calls < count else "eager"


eager_step, compiled_step = gelu_rows
batch, features = GELU_CHAIN_SHAPE
rows = [
    (
        "exploring: the first gelu_chain step",
        f"eager {1e3 * eager_step.first_call_s:.1f} ms; compiling {compiled_step.compile_s:.3f} s",
        "eager" if eager_step.first_call_s < compiled_step.compile_s else "compiled",
    ),
    (
        "a new shape at every call",
        f"retrace {1e3 * retrace_s:.2f} ms; eager {1e3 * retraced['eager']:.3f} ms",
        "eager" if retrace_s > retraced["eager"] else "compiled",
    ),
    (
        f"{TRAINING_STEPS:,} gelu_chain steps",
        pays_off(gelu_calls),
        fewer_than(gelu_calls, TRAINING_STEPS),
    ),
    (f"{A_HANDFUL} calls of pythagoras", pays_off(tiny_calls), fewer_than(tiny_calls, A_HANDFUL)),
    (f"32 small ops on {TINY} elements", times(small_ops), faster(small_ops)),
    (f"elementwise chain, {LARGE:,} elements", times(fusion), faster(fusion)),
    (f"{MATMUL}x{MATMUL} matmuls", times(matmul), faster(matmul)),
    (
        "memory of a gelu_chain step",
        f"peak {eager_step.peak_bytes / 1e6:.1f} MB eager, "
        f"{compiled_step.peak_bytes / 1e6:.1f} MB compiled",
        "compiled" if compiled_step.peak_bytes < eager_step.peak_bytes else "eager",
    ),
    ("gradient of a gradient", times(second_order_times), faster(second_order_times)),
]
print(f"{'situation':<40}{'measured here':<44}recommendation")
for situation, measured, choice in rows:
    print(f"{situation:<40}{measured:<44}{choice}")

# %%
lessons.claim(
    f"the first eager gelu_chain step ({batch} x {features}) took "
    f"{1e3 * eager_step.first_call_s:.1f} ms, less than the {compiled_step.compile_s:.3f} s of "
    "compiling alone",
    holds=eager_step.first_call_s < compiled_step.compile_s,
)
lessons.claim(
    f"a call with a new shape took {1e3 * retrace_s:.2f} ms (a retrace), "
    f"{retrace_s / retraced['cached']:.0f}x a cached compiled call and "
    f"{retrace_s / retraced['eager']:.0f}x an eager one",
    holds=retrace_s > retraced["eager"],
)
lessons.claim(
    f"compiling gelu_chain {pays_off(gelu_calls)} and pythagoras {pays_off(tiny_calls)}: "
    f"compile for {TRAINING_STEPS:,} steps of the first, not for {A_HANDFUL} calls of the second",
    holds=fewer_than(gelu_calls, TRAINING_STEPS) == "compiled"
    and fewer_than(tiny_calls, A_HANDFUL) == "eager",
)
lessons.claim(
    f"on {TINY} elements eager took {small_ops['eager'] / small_ops['compiled']:.1f}x the "
    f"compiled time, on {LARGE:,} elements {fusion['eager'] / fusion['compiled']:.1f}x, and on "
    f"{MATMUL}x{MATMUL} matmuls {matmul['eager'] / matmul['compiled']:.2f}x",
    holds=small_ops["eager"] > small_ops["compiled"] and fusion["eager"] > fusion["compiled"],
)
lessons.claim(
    f"a gelu_chain step's peak memory was {eager_step.peak_bytes / 1e6:.1f} MB eagerly and "
    f"{compiled_step.peak_bytes / 1e6:.1f} MB compiled at optimize=2",
    holds=compiled_step.peak_bytes < eager_step.peak_bytes,
)
lessons.claim(
    f"a second-order gradient took "
    f"{second_order_times['eager'] / second_order_times['compiled']:.1f}x as long eagerly "
    "(create_graph=True) as from its compiled graph",
    holds=second_order_times["eager"] > second_order_times["compiled"],
)

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/11_choosing_a_mode.py`, then run
# `python docs/lessons/11_choosing_a_mode.py --check` (or `diptych lesson 11 --check`).
#
# 1. `exercise_1(compile_s, eager_s, compiled_s, calls)`: which mode finishes `calls` calls
#    sooner, compile time included: `"eager"` or `"compiled"`.
# 2. `exercise_2(shapes, trace_s, eager_s, compiled_s)`: the same choice when the calls come
#    with the input shapes in `shapes`, and every new shape costs a trace of `trace_s`.
# 3. `exercise_3()`: a quiz: for each situation in the exercises file, `"eager"` or
#    `"compiled"`.
