# %% [markdown]
# # 4. Dynamic vs static graphs
#
# A recurrent network reads a sequence one step at a time, and sequences differ in length.
# Eagerly that is a Python loop over the steps a sequence really has: the graph is rebuilt
# by every run and **follows the data**. A compiled graph is fixed before the data exists,
# so a length must be dealt with one of two ways: **one graph for every length** (run the
# longest length with `F.scan`, and let a mask keep finished sequences unchanged), or **one
# graph per length** (`S.function` traces the eager loop again for each new length, and
# caches the graphs). This lesson measures what each costs, across lengths.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from compare import lessons
from compare.zoo import rnn_varlen
from eager import visualize as tape_pictures

lessons.begin()  # `python docs/lessons/04_dynamic_vs_static.py --check` checks the exercises
T_MAX = lessons.size(64, 16)  # the longest sequence
LENGTHS = [2**k for k in range(1, T_MAX.bit_length())]  # 2, 4, ..., T_MAX
model = rnn_varlen.VarLenRNN(T_MAX, seed=0)  # the zoo's Elman RNN: a cell and a linear head
rng = np.random.default_rng(0)
steps = rng.standard_normal((T_MAX, 1, rnn_varlen.FEATURES)).astype(np.float32)  # time-major
target = rng.standard_normal((1, 1)).astype(np.float32)
print(f"one sequence of up to {T_MAX} steps, {rnn_varlen.FEATURES} features, lengths {LENGTHS}")

# %% [markdown]
# ## The program written for eager use
#
# A plain Python loop: it runs as many steps as the sequence has. Eagerly each step's ops
# are recorded as they run, so the tape of a longer sequence is longer.


# %%
def final_loss(xs, y):
    """The loss of the RNN's last state: the loop runs once per step of xs."""
    h = rnn_varlen.zeros_beside(xs, (xs.shape[1], rnn_varlen.HIDDEN))
    for t in range(xs.shape[0]):
        h = model.cell(xs[t], h)
    return F.mse_loss(model.head(h), y)


def tape_length(length: int) -> int:
    """How many ops the eager tape records for a sequence of this length."""
    recording = tape_pictures.record_tape(final_loss, E.tensor(steps[:length]), E.tensor(target))
    return len(recording.steps)


tape_ops = {length: tape_length(length) for length in LENGTHS}
for length, ops in tape_ops.items():
    print(f"length {length:3d}: the tape recorded {ops:4d} ops")
per_step = (tape_ops[T_MAX] - tape_ops[2]) / (T_MAX - 2)
lessons.claim(
    f"eagerly the graph followed the data: the tape recorded {tape_ops[2]} ops for a "
    f"sequence of length 2 and {tape_ops[T_MAX]} for length {T_MAX}, {per_step:g} more per step",
    holds=all(tape_ops[n] == tape_ops[2] + per_step * (n - 2) for n in LENGTHS),
)

# %% [markdown]
# ## Two static answers
#
# **One graph per length.** `S.function(final_loss)` traces the same eager program on
# placeholders: the loop runs while tracing and is unrolled into the graph. A graph is
# specialized to its input shapes, so a new length means a new trace, which `S.function`
# counts and explains.
#
# **One graph for all lengths.** The zoo model's own `forward` scans all `T_MAX` steps with
# `F.scan` (one loop node whose body is drawn once), and a mask keeps the state of a
# sequence that has ended: `h = where(mask[t], cell(x[t], h), h)`. Every length feeds the
# same padded shapes, so it is traced once.


# %%
def masked_loss(xs, mask, y):
    """The zoo model's forward: F.scan over every padded step, the mask freezing h."""
    loss, _ = model(xs, mask, y)
    return loss


def padded(length: int) -> tuple[np.ndarray, np.ndarray]:
    """The sequence padded with zeros to T_MAX steps, and its mask (True while it lasts)."""
    mask = (np.arange(T_MAX) < length)[:, None, None]
    return steps * mask, mask


one_per_length = S.function(final_loss, warn_after=len(LENGTHS))
one_for_all = S.function(masked_loss)

start = time.perf_counter()
one_for_all(*padded(T_MAX), target)  # the first call traces and compiles
masked_compile = time.perf_counter() - start

trace_seconds, losses = {}, {}
for length in LENGTHS:
    start = time.perf_counter()
    traced_loss = one_per_length(steps[:length], target)  # a new length: trace, compile, run
    trace_seconds[length] = time.perf_counter() - start
    eager_loss = final_loss(E.tensor(steps[:length]), E.tensor(target)).item()
    losses[length] = (eager_loss, float(traced_loss), float(one_for_all(*padded(length), target)))

print("why S.function traced again (its own explanations):")
for explanation in one_per_length.explanations[:2]:
    print("  ", explanation)
unrolled = next(reversed(one_per_length.cache.values())).graph  # the latest: length T_MAX
(scanned,) = (compiled.graph for compiled in one_for_all.cache.values())
lessons.claim(
    f"S.function traced {one_per_length.traces} graphs for {len(LENGTHS)} lengths "
    f"({one_per_length.retraces} retraces), while the masked scan traced "
    f"{one_for_all.traces} for all of them",
    holds=one_per_length.traces == len(LENGTHS) and one_for_all.traces == 1,
)
lessons.claim(
    f"tracing and compiling one graph per length cost {1e3 * sum(trace_seconds.values()):.0f} ms "
    f"in all ({1e3 * trace_seconds[T_MAX]:.0f} ms for length {T_MAX}, whose unrolled graph has "
    f"{len(unrolled.ops)} ops); the masked scan's graph of {len(scanned.ops)} ops compiled "
    f"once, in {1e3 * masked_compile:.0f} ms",
    holds=sum(trace_seconds.values()) > masked_compile,
)
worst = max(abs(a - b) for values in losses.values() for a in values for b in values)
lessons.claim(
    f"all three computed the same loss at every length (largest difference {worst:.1e})",
    holds=worst < 1e-5,
)

# %% [markdown]
# ## What a call costs, length by length
#
# Each approach timed at each length, interleaved: eager re-records its tape every call; the
# graph traced for that length runs just its steps; the masked scan always runs `T_MAX`.


# %%
def contenders(length: int) -> dict:
    """The three ways to the loss of a sequence of this length, as calls to time."""
    xs, xs_t, y_t = steps[:length], E.tensor(steps[:length]), E.tensor(target)
    xs_padded, mask = padded(length)
    return {
        "eager": lambda: final_loss(xs_t, y_t),
        "one graph per length": lambda: one_per_length(xs, target),
        "masked scan, one graph": lambda: one_for_all(xs_padded, mask, target),
    }


per_call = {"eager": {}, "one graph per length": {}, "masked scan, one graph": {}}
for length in LENGTHS:
    seconds = lessons.race_seconds(
        contenders(length), target_ms=lessons.size(10, 4), repeats=lessons.size(7, 3)
    )
    for name, s in seconds.items():
        per_call[name][length] = s
print(f"{'length':>6}" + "".join(f"{name:>26}" for name in per_call))
for length in LENGTHS:
    print(f"{length:>6}" + "".join(f"{1e3 * t[length]:>23.3f} ms" for t in per_call.values()))

shortest_masked = per_call["masked scan, one graph"][2]
shortest_own = per_call["one graph per length"][2]
lessons.claim(
    f"at length 2 the masked scan still ran all {T_MAX} steps: {1e3 * shortest_masked:.3f} ms "
    f"per call, {shortest_masked / shortest_own:.1f}x the graph traced for length 2 "
    f"({1e3 * shortest_own:.3f} ms)",
    holds=shortest_masked > shortest_own,
)
longest = {name: t[T_MAX] for name, t in per_call.items()}
lessons.claim(
    f"at length {T_MAX} eager took {1e3 * longest['eager']:.3f} ms per call, "
    f"{longest['eager'] / longest['one graph per length']:.1f}x the graph traced for that "
    f"length and {longest['eager'] / longest['masked scan, one graph']:.1f}x the masked scan",
    holds=longest["eager"]
    > max(longest["one graph per length"], longest["masked scan, one graph"]),
)

# %% [markdown]
# The picture: on the left what each call costs, on the right what each approach paid once
# (tracing and compiling) before its calls could start.

# %%
fig, (calls, once) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
for (name, times), marker in zip(per_call.items(), "o^s"):
    calls.plot(LENGTHS, [1e3 * times[n] for n in LENGTHS], marker=marker, label=name)
calls.set(xscale="log", yscale="log", xlabel="sequence length (steps)", ylabel="ms per call")
calls.set_xticks(LENGTHS, [str(n) for n in LENGTHS])
calls.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
calls.set_title("cost of a call", loc="left")
calls.legend(fontsize=9)
once.bar(
    [str(n) for n in LENGTHS],
    [1e3 * trace_seconds[n] for n in LENGTHS],
    color="#f59e0b",
    label=f"one graph per length: {one_per_length.traces} traces",
)
once.axhline(
    1e3 * masked_compile,
    color="#16a34a",
    linestyle="--",
    label=f"masked scan: {one_for_all.traces} trace, for every length",
)
once.set(xlabel="sequence length (steps)", ylabel="ms to trace and compile (first call)")
once.set_title("paid once per graph", loc="left")
once.legend(fontsize=9)
path = lessons.figure("04_cost_by_length.svg")
fig.savefig(path)
plt.close(fig)
lessons.show(path)

# %% [markdown]
# Which answer wins depends on the data: a few lengths that recur many times favour one
# graph per length (the traces are paid once, then each call runs only the real steps); many
# different lengths favour the masked scan (one trace, but every call pays for `T_MAX` steps;
# real systems bucket lengths to get some of both). Eager pays neither trace nor padding,
# and pays for re-recording its tape on every call instead.
#
# ## Exercises
#
# In `docs/lessons/exercises/04_dynamic_vs_static.py`; check them with
# `python docs/lessons/04_dynamic_vs_static.py --check`.
#
# 1. Pad a list of sequences of different lengths into one time-major array and build its
#    mask, as the masked scan needs them.
# 2. With `F.scan`, sum each sequence over the steps its mask allows, in a way that runs
#    eagerly on tensors and builds a graph on placeholders.
# 3. Compile the sum of squares of a 1-D array of any length up to 16 so that sixteen
#    different lengths trace only one graph.
