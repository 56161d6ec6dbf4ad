# %% [markdown]
# # 8. Memory reuse
#
# A classic argument for deferred execution (MXNet's "programming models" notes put it this
# way): *symbolic programs can safely reuse memory for in-place computation*. Before a
# compiled step runs, the compiler knows every value's last reader, so it can give a dead
# value's memory to a later one, and let an elementwise op overwrite an input that nothing
# reads afterwards. Eager code cannot know what the next line will read: it allocates each
# result, and the tape keeps what backward needs until backward runs. This lesson shows the
# plan of a training step (its lifetimes as a chart), measures the peak bytes of the step
# eagerly and compiled, counts the buffers reused and the in-place writes, and shows the cases
# the planner refuses, each with its reason.

# %%
import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import nn, optim
from compare import lessons
from compare.harness import peak_memory, pool_bytes
from compare.timing import thread_limit
from symbolic.visualize import render_memory_plan

lessons.begin()  # `python docs/lessons/08_memory_reuse.py --check` checks the exercises
BATCH, HIDDEN = lessons.size((512, 96), (128, 64))  # hidden values stay under fusion's size
FEATURES, CLASSES = 32, 10
rng = np.random.default_rng(0)

# %% [markdown]
# ## A training step, both ways
#
# A two-layer network and plain SGD. Eagerly the step is three calls: forward (the tape
# records), `backward()`, `opt.step()`. Compiled, it is one graph: forward, the gradient
# graph `S.grad` builds, and the SGD update written into the weights.

# %%
model = nn.Sequential(
    nn.Linear(FEATURES, HIDDEN, generator=rng), nn.Tanh(), nn.Linear(HIDDEN, CLASSES, generator=rng)
)
x_value = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
labels = rng.integers(0, CLASSES, size=BATCH)
eager_opt = optim.SGD(model.parameters(), lr=0.01)


def eager_step():
    eager_opt.zero_grad()
    loss = F.cross_entropy(model(E.tensor(x_value)), labels)
    loss.backward()
    eager_opt.step()
    return loss


def compiled_step(**options) -> S.CompiledFunction:
    x = S.placeholder((BATCH, FEATURES), name="x")
    t = S.placeholder((BATCH,), "int64", name="labels")
    loss = F.cross_entropy(model(x), t)
    opt = optim.SGD(model.parameters(), lr=0.01)
    updates = S.optimizer_updates(opt, S.grad(loss, opt.params))
    return S.compile(loss, inputs=[x, t], updates=updates, **options)


def kb(n: int) -> str:
    return f"{n / 1024:.0f} KB"  # 1 KB = 1,024 bytes, as in the chart below


step = compiled_step()
plan = step.graph.memory
reused = len(plan.assignment) - len(plan.buffers)
print(f"the compiled step runs {len(step.graph.ops)} ops")
lessons.claim(
    f"the plan put the step's {len(plan.assignment)} intermediates in {len(plan.buffers)} "
    f"buffers ({reused} values reuse a dead value's buffer) and wrote {len(plan.in_place)} in "
    f"place: {kb(plan.planned_bytes)} instead of {kb(plan.intermediate_bytes)}",
    holds=reused > 0 and plan.planned_bytes < plan.intermediate_bytes,
)

# %% [markdown]
# ## Peak bytes, measured
#
# Measured as `diptych compare` measures it (`compare/harness.py`): Python's `tracemalloc`
# sees every numpy allocation, and the peak of one steady step is taken above what was
# allocated when it began. A compiled plan allocates its buffer pool once, at its first call,
# and keeps it, so its peak is the step's own allocations plus the pool. Below, `O0` runs
# the graph as traced (each value allocated, and released after its last reader), and `O2
# without memory` has every pass but the plan.

# %%
versions = {
    "O0": compiled_step(optimize=0),
    "O2 without memory": compiled_step(optimize=2, disable=["memory"]),
    "O2": step,
}
eager_step()  # warm: the first step allocates the gradients
eager_peak = peak_memory(eager_step)
peaks = {"eager": (eager_peak, 0)}
for name, fn in versions.items():
    fn(x_value, labels)  # the first call allocates the pool
    peaks[name] = (peak_memory(lambda fn=fn: fn(x_value, labels)), pool_bytes(fn))
print(f"{'mode':<20}{'during the step':>16}{'held pool':>11}{'peak':>9}")
for name, (during, pool) in peaks.items():
    print(f"{name:<20}{kb(during):>16}{kb(pool):>11}{kb(during + pool):>9}")

# %%
total = {name: during + pool for name, (during, pool) in peaks.items()}
lessons.claim(
    f"the eager step peaked at {kb(total['eager'])}, the compiled O2 step at "
    f"{kb(total['O2'])}: {total['eager'] / total['O2']:.1f}x less",
    holds=total["O2"] < total["eager"],
)
lessons.claim(
    f"the O2 step allocated {kb(peaks['O2'][0])} while it ran, its {kb(peaks['O2'][1])} pool "
    f"being allocated once; O0 allocated {kb(peaks['O0'][0])} in every step (O2's peak, pool "
    f"included, is {total['O2'] / total['O0']:.2f}x O0's)",
    holds=peaks["O2"][0] < peaks["O0"][0],
)

# %% [markdown]
# Planning is about time as well as bytes: a planned step asks the allocator for nothing.

# %%
with thread_limit(1):
    seconds = lessons.race_seconds(
        {
            "eager": eager_step,
            "without": lambda: versions["O2 without memory"](x_value, labels),
            "with": lambda: step(x_value, labels),
        },
        target_ms=lessons.size(20, 5),
        repeats=lessons.size(5, 3),
    )
lessons.claim(
    f"the O2 step took {1e6 * seconds['with']:.0f} us with its memory plan and "
    f"{1e6 * seconds['without']:.0f} us without (eager: {1e6 * seconds['eager']:.0f} us)",
    holds=seconds["with"] <= seconds["without"],
)

# %% [markdown]
# Most of the difference from eager is the tape: eagerly, every value backward needs stays
# alive from the forward op that made it until backward runs, and each gradient is a new
# array. The compiled step frees each value at its last reader (O0 already does, with `del`
# in the generated code), and the plan goes further: intermediates live in a pool allocated
# once, each buffer serving several values in turn.
#
# ## The lifetime chart
#
# One bar per planned value, from the step that defines it to its last reader, coloured by
# the buffer it lives in; hatched bars were written in place into an input that died there.
# Below, the bytes live at each step against the planned pool and the eager peak.

# %%
path = lessons.figure("08_lifetimes.svg")
render_memory_plan(step, path, eager_peak=total["eager"])
lessons.show(path)

# %% [markdown]
# ## What the planner refuses, and why
#
# A buffer may be reused, or an input overwritten, only when nothing can observe it. Each
# small graph below shows one case the planner refuses; the sentences come from the plan
# itself (`f.graph.memory.refused`, and the outputs it leaves alone).

# %%
N = 1000


def refusals(build, *shapes) -> list[str]:
    """Compile `build(*placeholders)` at O2 and say, in sentences, what the plan did not do."""
    xs = [S.placeholder(shape, name=f"x{i}") for i, shape in enumerate(shapes)]
    fn = S.compile(build(*xs), inputs=xs, optimize=2)
    nodes = {n.id: n for n in fn.graph.nodes}
    at = {n.id: i for i, n in enumerate(fn.graph.nodes)}
    said = [
        f"{nodes[node].op_name} at step {at[node]} did not overwrite "
        + ("an input" if given is None else f"its input {nodes[given].op_name} (step {at[given]})")
        + f": {reason}"  # no input named: a refusal for the whole op (a fused kernel)
        for node, given, reason in fn.graph.memory.refused
    ]
    said += [
        f"{out.op_name} at step {at[out.id]} is an output: it gets a fresh array each call, "
        "so what a call returned is never overwritten by the next"
        for out in fn.graph.outputs
        if not out.is_source and out.op.kind == "elementwise"  # one that could have reused
    ]
    for sentence in said:
        print("   ", sentence)
    return said


w = S.variable(np.linspace(-1, 1, N, dtype=np.float32), name="w")
cases = {
    "a value still read later": lambda x: F.sum(F.exp(F.tanh(x)) * F.tanh(x)),
    "a view of a planned value": lambda x: F.sum(F.reshape(F.tanh(x), (N // 10, 10)) * 2.0),
    "a caller's array and a variable": lambda x: F.sum(F.tanh(x) * F.tanh(w)),
    "an output": lambda x: F.tanh(x * 2.0),
}
found = {}
for case, build in cases.items():
    print(f"{case}:")
    found[case] = refusals(build, (N,))

# %%
lessons.claim(
    f"the planner refused {sum(len(s) for s in found.values())} reuses in these "
    f"{len(cases)} graphs, each with its reason (a later reader, a view, a caller's array, "
    "a variable, an output)",
    holds=all(
        all(word in " ".join(found[case]) for word in words)
        for case, words in {
            "a value still read later": ["still read"],
            "a view of a planned value": ["view"],
            "a caller's array and a variable": ["(placeholder)", "(variable)"],
            "an output": ["is an output"],
        }.items()
    ),
)

# %% [markdown]
# Each refusal protects something a program could observe: a later reader would see the
# overwritten value; a view shares its source's memory, so writing one changes the other;
# a placeholder's array belongs to the caller and a variable's to the model; an output
# belongs to whoever called the function, after it returns. Eagerly, only the programmer
# knows these facts, which is why in-place updates are explicit there (`w -= lr * w.grad`
# under `E.no_grad()`) and checked at run time (a leaf that requires grad refuses them).
#
# ## Exercises
#
# Fill in `docs/lessons/exercises/08_memory_reuse.py`, then run
# `python docs/lessons/08_memory_reuse.py --check`.
#
# 1. `reuse_counts(fn)`: from a compiled function's memory plan, how many planned values,
#    buffers and in-place writes it has.
# 2. `in_place_chain(x)`: an elementwise chain on a placeholder whose plan writes at least
#    three values in place.
# 3. `refused_reasons(fn)`: the set of reasons the plan gave for the in-place writes it
#    refused, without the node numbers.
