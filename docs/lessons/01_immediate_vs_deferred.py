# %% [markdown]
# # 1. Immediate vs deferred
#
# The same line of Python can mean two things. **Immediately** (eager, define-by-run, as in
# PyTorch), `c = (a**2 + b**2) ** 0.5` computes a number the moment Python reaches it.
# **Deferred** (symbolic, define-then-run, as in TensorFlow 1 or Theano), the same line only
# *describes* a computation: `c` is a node of a graph, and no number exists until the graph
# is compiled and called. This lesson runs Pythagoras both ways, looks at what the deferred
# side holds, and measures *when* each line's work happens in each mode.

# %%
import contextlib
import time

import matplotlib.pyplot as plt
import numpy as np

import eager as E
import symbolic as S
from compare import lessons

lessons.begin()  # `python docs/lessons/01_immediate_vs_deferred.py --check` checks exercises
N = lessons.size(1_000_000, 100_000)  # elements per array: enough for the compiler to fuse

# %% [markdown]
# ## Immediately: every line computes
#
# `a` and `b` are tensors holding numbers, so `c` holds a number too, right after its line.

# %%
a = E.tensor(3.0)
b = E.tensor(4.0)
c = (a**2 + b**2) ** 0.5
print("eager c is", c)

# %% [markdown]
# ## Deferred: every line builds
#
# `a` and `b` are placeholders: values that do not exist yet. The same operators now add
# nodes to a graph, and `c` is the last node. Calling `c(3, 4)` feeds the placeholders (in
# the order they were created), compiles the graph on the first call, and runs it.

# %%
a = S.placeholder(name="a")
b = S.placeholder(name="b")
c = (a**2 + b**2) ** 0.5
print("symbolic c is", c, "- a node, no number; callable:", callable(c))
value = c(3, 4)
lessons.claim(
    f"the symbolic c held no number until it was called: c(3, 4) returned {value}",
    holds=value == 5.0,
)

# %% [markdown]
# What the compiler sees is a small, flat program: one line per node, each with the type
# of its value and the source line that made it. Compiling turns it into straight-line
# Python that calls the very kernels eager mode calls.

# %%
pythagoras = S.compile(c, inputs=[a, b])
print(pythagoras.graph)
print(pythagoras.source)
path = pythagoras.render(lessons.figure("01_pythagoras_graph.svg"))
lessons.show(path)

# %% [markdown]
# Because the graph exists before any number does, its shapes are known at build time: a
# mismatch fails at the line that made it, before anything runs.

# %%
x = S.placeholder((3, 4), name="x")
try:
    x + S.placeholder((5,), name="y")
except ValueError as err:
    print("caught while building, nothing ran:", err)

# %% [markdown]
# ## When does the work happen?
#
# Now the same computation on arrays of `N` elements, split one op per line so each line's
# work can be timed. `Timeline.line` notes when a line starts and ends (`time.perf_counter`);
# eagerly each line computes, deferred each line only builds, then `S.compile` runs the
# compiler's passes and writes the plan, and the *calls* compute. The first call also builds
# the fused kernel the compiler generated (with numba where it is installed), once.


# %%
class Timeline:
    """When each line's work happened: (line, phase, start, end) in seconds from the start."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[str, str, float, float]] = []

    @contextlib.contextmanager
    def line(self, code: str, phase: str):
        begun = time.perf_counter()
        yield
        self.events.append((code, phase, begun - self.start, time.perf_counter() - self.start))

    def seconds(self, phase: str) -> float:
        return sum(end - begun for _, p, begun, end in self.events if p == phase)


rng = np.random.default_rng(0)
A = rng.uniform(1, 2, N).astype(np.float32)
B = rng.uniform(1, 2, N).astype(np.float32)

eager_run = Timeline()
with eager_run.line("a = E.tensor(A)", "compute"):
    a = E.tensor(A)
with eager_run.line("b = E.tensor(B)", "compute"):
    b = E.tensor(B)
with eager_run.line("a2 = a**2", "compute"):
    a2 = a**2
with eager_run.line("b2 = b**2", "compute"):
    b2 = b**2
with eager_run.line("s = a2 + b2", "compute"):
    s = a2 + b2
with eager_run.line("c = s ** 0.5", "compute"):
    c_eager = s**0.5

deferred_run = Timeline()
with deferred_run.line("a = S.placeholder((N,))", "build"):
    a = S.placeholder((N,), name="a")
with deferred_run.line("b = S.placeholder((N,))", "build"):
    b = S.placeholder((N,), name="b")
with deferred_run.line("a2 = a**2", "build"):
    a2 = a**2
with deferred_run.line("b2 = b**2", "build"):
    b2 = b**2
with deferred_run.line("s = a2 + b2", "build"):
    s = a2 + b2
with deferred_run.line("c = s ** 0.5", "build"):
    c = s**0.5
with deferred_run.line("f = S.compile(c)", "compile"):
    f = S.compile(c, inputs=[a, b])
with deferred_run.line("f(A, B)  # first call", "compute"):
    f(A, B)
with deferred_run.line("f(A, B)  # second call", "compute"):
    second = f(A, B)

kernel_build = sum(op.kernel.compile_seconds for op in f.report.fused_kernels)
np.testing.assert_allclose(second, c_eager.numpy(), rtol=1e-6)
print(f"both ways computed the same {N:,} hypotenuses (to float32 rounding)")

# %% [markdown]
# The timeline: one row per source line, a bar where that line's work happened. Eagerly the
# arithmetic sits on the lines that wrote it; deferred, those lines only add nodes (bars too
# short to see, marked with a dot), and all the arithmetic happens inside the calls.

# %%
COLORS = {"compute": "#2563eb", "build": "#94a3b8", "compile": "#f59e0b", "kernel build": "#dc2626"}
MEANINGS = {
    "compute": "computing (kernels run)",
    "build": "building graph nodes",
    "compile": "compiling (passes, plan)",
    "kernel build": "building the fused kernel (first call)",
}


def bars(run: Timeline, kernel_seconds: float = 0.0) -> list[tuple[int, str, float, float]]:
    """(row, kind, start, end) of each bar; a first call builds its kernel before it runs."""
    found = []
    for row, (code, phase, begun, end) in enumerate(run.events):
        if code.endswith("first call") and kernel_seconds:
            found.append((row, "kernel build", begun, begun + kernel_seconds))
            found.append((row, "compute", begun + kernel_seconds, end))
        else:
            found.append((row, phase, begun, end))
    return found


def draw(ax, run: Timeline, kernel_seconds: float = 0.0) -> None:
    """One mode's lines, top to bottom in the order they ran, times in ms."""
    for row, kind, start, end in bars(run, kernel_seconds):
        ax.barh(row, 1e3 * (end - start), left=1e3 * start, color=COLORS[kind], height=0.6)
    for row, (_, phase, begun, end) in enumerate(run.events):
        ax.plot(1e3 * begun, row, "o", color=COLORS[phase], markersize=4)  # seen when tiny
        ax.annotate(f" {1e3 * (end - begun):.3g} ms", (1e3 * end, row), va="center", fontsize=8)
    ax.set_yticks(range(len(run.events)), [code for code, *_ in run.events], family="monospace")


# The first call can spend a long time building its kernel: the time axis then breaks there,
# so that the microseconds before it and the calls after it both stay readable.
lines_end = 1e3 * max(eager_run.events[-1][3], deferred_run.events[-3][3])
calls_start = 1e3 * (deferred_run.events[-2][2] + kernel_build)  # the first call computes
calls_end = 1e3 * deferred_run.events[-1][3]
if calls_start > 2 * lines_end:
    margin = 0.2 * (calls_end - calls_start)
    spans = [(0, 1.15 * lines_end), (calls_start - margin, calls_end + 2 * margin)]
else:
    spans = [(0, 1.25 * calls_end)]
fig, axes = plt.subplots(
    2,
    len(spans),
    figsize=(11, 7),
    layout="constrained",
    sharey="row",
    squeeze=False,
    gridspec_kw={"height_ratios": [6, 9], "width_ratios": [3, 1][: len(spans)]},
)
for column, (low, high) in enumerate(spans):
    draw(axes[0, column], eager_run)
    draw(axes[1, column], deferred_run, kernel_build)
    for ax in axes[:, column]:
        ax.set_xlim(low, high)
        ax.spines["left"].set_visible(column == 0)
        ax.spines["right"].set_visible(column == len(spans) - 1)
        ax.tick_params(left=column == 0)
axes[0, 0].invert_yaxis()
axes[1, 0].invert_yaxis()
axes[0, 0].set_title("immediate (eager): each line computes when Python reaches it", loc="left")
axes[1, 0].set_title("deferred (symbolic): lines build, the calls compute", loc="left")
if len(spans) > 1:
    axes[1, 1].set_title(f"(axis broken: {1e3 * kernel_build:.0f} ms of kernel build)", fontsize=9)
axes[1, 0].set_xlabel(f"wall-clock time since the first line (ms), arrays of {N:,} float32")
drawn = {kind for _, kind, *_ in bars(eager_run) + bars(deferred_run, kernel_build)}
handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[kind]) for kind in COLORS if kind in drawn]
labels = [MEANINGS[kind] for kind in COLORS if kind in drawn]
fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=9)
path = lessons.figure("01_timeline.svg")
fig.savefig(path)
plt.close(fig)
lessons.show(path)

# %% [markdown]
# What the timeline measured, in sentences:

# %%
built = deferred_run.seconds("build")
computed = eager_run.seconds("compute")
compiled = deferred_run.seconds("compile")
calls = {code: end - begun for code, phase, begun, end in deferred_run.events if phase == "compute"}
first_call, second_call = calls["f(A, B)  # first call"], calls["f(A, B)  # second call"]
lessons.claim(
    f"building the symbolic graph of the six lines took {1e3 * built:.3f} ms, while "
    f"computing them eagerly on {N:,} elements took {1e3 * computed:.2f} ms",
    holds=built < computed,
)
kernel_note = (
    f"{1e3 * kernel_build:.0f} ms of it building the fused kernel"
    if f.report.fused_kernels
    else "the compiler fused nothing at this size, so it built no kernel"
)
lessons.claim(
    f"compiling the graph took {1e3 * compiled:.2f} ms; the first call took "
    f"{1e3 * first_call:.1f} ms ({kernel_note}) and the second {1e3 * second_call:.2f} ms",
    holds=second_call < first_call,
)

# %% [markdown]
# One run is one sample. A steady comparison times many calls of each, interleaved so that
# whatever else the machine does hits both alike: eager re-runs the four ops each time, the
# compiled function runs its one fused kernel.

# %%
a, b = E.tensor(A), E.tensor(B)
t = lessons.race_seconds(
    {"eager": lambda: (a**2 + b**2) ** 0.5, "compiled": lambda: f(A, B)},
    target_ms=lessons.size(20, 5),
    repeats=lessons.size(9, 3),
)
lessons.claim(
    f"once compiled, a call took {1e3 * t['compiled']:.3f} ms against {1e3 * t['eager']:.3f} ms "
    f"eagerly ({t['eager'] / t['compiled']:.1f}x) on {N:,} elements, so the compile's "
    f"{1e3 * (compiled + kernel_build):.0f} ms pay off after "
    f"{(compiled + kernel_build) / max(t['eager'] - t['compiled'], 1e-12):.0f} calls",
    holds=t["compiled"] < t["eager"],
)

# %% [markdown]
# ## Exercises
#
# In `docs/lessons/exercises/01_immediate_vs_deferred.py`; check them with
# `python docs/lessons/01_immediate_vs_deferred.py --check`.
#
# 1. Build the symbolic expression for the hypotenuse of a 3-D box, `sqrt(a² + b² + c²)`, on
#    three placeholders, and return it compiled: `f(1, 2, 2)` must give `3.0`.
# 2. Write the hypotenuse of `a` and `b` once, so that it computes a number when given eager
#    tensors and builds a graph when given placeholders (no `if` on the type needed).
# 3. Without running anything, return the shape of `(a**2 + b**2) ** 0.5` for placeholders
#    `a` and `b` of the given shapes: the graph knows it before any number exists.
