# %% [markdown]
# # 10. Tracing
#
# Nobody wants to write a model twice. `S.function(model)` takes a model written for eager
# use (a `common.nn.Module` whose `forward` is ordinary Python) and turns it into graphs: it
# runs `forward` once on symbols, records what the `F` ops did, and compiles that. The
# Python itself does not survive: loops are unrolled, `if`s are decided, numbers are frozen.
# So a traced graph is specialized to what it saw, and `S.function` keeps one graph per
# *signature* and retraces when the signature changes. This lesson shows what is captured,
# when and why it retraces (in its own words), what gets baked in, and a case where a graph
# shines: the gradient of a gradient.

# %%
import time
import warnings

import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from compare import lessons

lessons.begin()  # `python docs/lessons/10_tracing.py --check` checks the exercises
BATCH = lessons.size(64, 8)
HESSIAN_SIZE = lessons.size(512, 64)  # the vector the second-order gradient is taken for
TARGET_MS, REPEATS = lessons.size(10, 3), lessons.size(5, 3)  # ms per sample, samples per contender
gen = np.random.default_rng(0)


# %% [markdown]
# ## A model written for eager use
#
# A small classifier with dropout, a `temperature` attribute and a plain Python argument
# `scale`. Eagerly it is just Python calling `F` ops on tensors.


# %%
class Classifier(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.hidden = nn.Linear(8, 16, generator=generator)
        self.drop = nn.Dropout(0.25)
        self.out = nn.Linear(16, 3, generator=generator)
        self.temperature = 2.0

    def forward(self, x, scale):
        h = self.drop(F.relu(self.hidden(x)))
        return F.softmax(self.out(h) * scale / self.temperature, axis=-1)


model = Classifier(gen).eval()
x = gen.standard_normal((BATCH, 8)).astype(np.float32)
eager_out = model(E.tensor(x), 1.0)

fast = S.function(model)  # nothing is traced yet: the first call traces
traced_out = fast(x, 1.0)
evaluating = next(iter(fast.cache.values()))  # the one graph so far: eval mode
graph = evaluating.graph
variables = [n.name for n in graph.nodes if n.op_name == "variable"]
print(f"the first call traced forward() into {len(graph.ops)} ops; the parameters became")
print(f"variables bound to the same storage: {', '.join(variables)}")
path = lessons.figure("10_traced_eval.svg")
evaluating.render(path)
lessons.show(path)

# %%
lessons.claim(
    f"S.function traced the eager model into {len(graph.ops)} ops with "
    f"{len(variables)} parameters as variables, and its output matched eager's "
    f"(max difference {np.abs(traced_out - eager_out.data).max():.2g})",
    holds=np.allclose(traced_out, eager_out.data, atol=1e-6),
)

# %% [markdown]
# ## When and why it retraces
#
# The signature of a call is each array argument's shape and dtype, each plain Python
# argument's *value*, and the train/eval mode of every module the model runs. A call with a
# signature seen before reuses its graph; any other traces a new one, and `S.function`
# writes down why (`fast.explanations`).

# %%
x_longer = gen.standard_normal((BATCH + 1, 8)).astype(np.float32)
x_wide = x_longer.astype(np.float64)


def in_train_mode():
    model.train()
    return fast(x_wide, 0.5)


def back_in_eval_mode():
    model.eval()
    return fast(x, 1.0)


calls = [
    ("same shape, same scale", lambda: fast(x, 1.0)),
    ("one more row", lambda: fast(x_longer, 1.0)),
    ("float64 input", lambda: fast(x_wide, 1.0)),
    ("scale=0.5", lambda: fast(x_wide, 0.5)),
    ("model.train()", in_train_mode),
    ("back to the first signature", back_in_eval_mode),
]
print(f"{'call':<30}{'traces':>7}  why")
for what, call in calls:
    explained = len(fast.explanations)
    call()
    why = fast.explanations[explained] if len(fast.explanations) > explained else "cached"
    print(f"{what:<30}{fast.traces:>7}  {why}")
training = [c for key, c in fast.cache.items() if any(key[1])][0]  # the train-mode graph
path = lessons.figure("10_traced_train.svg")
training.render(path)
lessons.show(path)

# %%
lessons.claim(
    f"{len(calls) + 1} calls with {len(fast.cache)} different signatures made {fast.traces} "
    f"traces ({fast.retraces} retraces, each with its reason); repeated signatures reused "
    "their graphs",
    holds=fast.traces == len(fast.cache),
)
lessons.claim(
    f"the train-mode graph has {len(training.graph.ops)} ops against {len(graph.ops)} in "
    "eval mode: dropout's random mask and its scale exist only while training",
    holds=len(training.graph.ops) > len(graph.ops),
)

# %% [markdown]
# ## What gets baked in
#
# Parameters are variables: the graph reads their storage at every call, so training them
# eagerly (or with a compiled step) changes what the traced function computes. Python
# values are different: `scale`, `self.temperature` and dropout's `1 / (1 - p)` were plain
# numbers when the model was traced, so they are constants inside the graph. The compile
# report lists each one with the line that baked it in.

# %%
print("Python values baked into the train-mode graph:")
for line in training.report.python_values:
    print("  " + line)

before = fast(x, 1.0)
model.temperature = 4.0  # a Python attribute: the graph kept 2.0
stale = fast(x, 1.0)
moved = model(E.tensor(x), 1.0).data
model.temperature = 2.0
model.hidden.bias.data += 0.5  # a parameter, updated in place: the graph reads it
updated = fast(x, 1.0)
eager_updated = model(E.tensor(x), 1.0).data

# %%
lessons.claim(
    f"the train-mode graph lists {len(training.report.python_values)} baked-in Python values; "
    f"after model.temperature changed from 2.0 to 4.0 the traced function's output moved by "
    f"{np.abs(stale - before).max():.2g} while eager's moved by {np.abs(moved - before).max():.2g}",
    holds=np.abs(stale - before).max() == 0 < np.abs(moved - before).max(),
)
lessons.claim(
    f"after a parameter changed in place the traced function followed it: its output moved by "
    f"{np.abs(updated - before).max():.2g} and differs from eager's by "
    f"{np.abs(updated - eager_updated).max():.2g}",
    holds=np.allclose(updated, eager_updated, atol=1e-6) and not np.allclose(updated, before),
)

# %% [markdown]
# ## What a retrace costs, and the Python number that changes every call
#
# A retrace is a full trace and compile. When a Python number changes at every call (a
# learning-rate schedule, a temperature being annealed), each call retraces; `S.function`
# warns after five. Passing the number as an array (here a NumPy scalar) makes it an input
# of the graph instead of a constant in it.

# %%
scales = [round(0.5 + 0.1 * i, 1) for i in range(7)]
as_python = S.function(model)
with warnings.catch_warnings(record=True) as warned:
    warnings.simplefilter("always")
    started = time.perf_counter()
    for s in scales:
        as_python(x, s)
    retrace_s = (time.perf_counter() - started) / len(scales)
print("the warning:", str(warned[0].message) if warned else "(none)")
as_array = S.function(model)
for s in scales:
    as_array(x, np.float32(s))
cached_s = lessons.seconds_per_call(lambda: as_array(x, np.float32(0.5)), TARGET_MS, REPEATS)

# %%
lessons.claim(
    f"{len(scales)} different Python floats made {as_python.traces} graphs, at "
    f"{1e3 * retrace_s:.1f} ms per call; passed as NumPy scalars they ran on "
    f"{as_array.traces} graph at {1e6 * cached_s:.0f} µs per call",
    holds=as_array.traces == 1 < as_python.traces,
)

# %% [markdown]
# ## Higher-order gradients, both ways
#
# The Hessian-vector product `H v` of `energy(x) = sum(tanh(x @ W))` is the gradient of
# `grad(energy)(x) . v`. Eagerly, `create_graph=True` makes the first backward pass record
# its own tape, which the second backward pass walks; every call does all of that again.
# Symbolically, `S.grad` twice builds a graph of the gradient's gradient once, which the
# compiler then optimizes like any other graph.

# %%
W = (gen.standard_normal((HESSIAN_SIZE, HESSIAN_SIZE)) / np.sqrt(HESSIAN_SIZE)).astype(np.float32)
v = gen.standard_normal(HESSIAN_SIZE).astype(np.float32)
point = gen.standard_normal(HESSIAN_SIZE).astype(np.float32)


def energy(x):
    return F.sum(F.tanh(x @ W))


def eager_hvp():
    x = E.tensor(point, requires_grad=True)
    (g,) = E.grad(energy(x), [x], create_graph=True)  # the backward pass is recorded too
    (hv,) = E.grad(F.sum(g * v), [x])
    return hv.data


x_symbol = S.placeholder((HESSIAN_SIZE,), "float32", "x")
(g_symbol,) = S.grad(energy(x_symbol), [x_symbol])
(hv_symbol,) = S.grad(F.sum(g_symbol * v), [x_symbol])
started = time.perf_counter()
compiled_hvp = S.compile(hv_symbol, inputs=[x_symbol], optimize=2)
compile_s = time.perf_counter() - started
unoptimized_ops = len(S.compile(hv_symbol, inputs=[x_symbol], optimize=0).graph.ops)
difference = np.abs(eager_hvp() - compiled_hvp(point)).max()
hvp_times = lessons.race_seconds(
    {"eager": eager_hvp, "compiled": lambda: compiled_hvp(point)}, TARGET_MS, REPEATS
)

# %%
lessons.claim(
    f"the Hessian-vector product on {HESSIAN_SIZE} inputs agreed both ways: max difference "
    f"{difference:.2g} between eager (create_graph=True) and the compiled graph of S.grad twice",
    holds=difference <= 1e-5 * np.abs(eager_hvp()).max(),
)
lessons.claim(
    f"eager took {1e3 * hvp_times['eager']:.3f} ms per product and the compiled graph "
    f"({unoptimized_ops} ops, {len(compiled_hvp.graph.ops)} after optimize=2) "
    f"{1e3 * hvp_times['compiled']:.3f} ms: {hvp_times['eager'] / hvp_times['compiled']:.1f}x, "
    f"after {compile_s:.3f} s of compiling",
    holds=hvp_times["compiled"] < hvp_times["eager"],
)

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/10_tracing.py`, then run
# `python docs/lessons/10_tracing.py --check` (or `diptych lesson 10 --check`).
#
# 1. `exercise_1(calls)`: predict how many graphs `S.function` traces for a list of calls
#    (each a tuple of arguments), without calling it.
# 2. `exercise_2(model)`: wrap a model whose `forward(x, scale)` takes a Python float so that
#    any number of different `scale`s run on one graph.
# 3. `exercise_3(energy, n)`: compile the Hessian-vector product of `energy` (a function of
#    an `n`-vector) as a graph, with `S.grad` twice.
