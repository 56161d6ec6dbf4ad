# %% [markdown]
# # 6. What the compile step does
#
# A deferred program is a whole graph before it runs, so a compiler can rewrite it: fold what
# only depends on constants, drop identities, compute repeated work once, remove what nothing
# reads, fuse elementwise chains into one kernel, and plan the memory of the intermediates.
# Eager execution sees one op at a time and can do none of this. This lesson runs
# `S.compile(..., optimize=2)` on one small layer that gives every pass something to do,
# shows the graph after each pass with what it changed, and then switches the passes off one
# at a time (`disable=[...]`) to measure what each is worth in nodes and in step time.

# %%
import numpy as np

import symbolic as S
from common import functional as F
from common import style
from compare import lessons
from compare.timing import thread_limit
from symbolic.passes import pass_names
from symbolic.visualize import pass_dots

lessons.begin()  # `python docs/lessons/06_the_compile_step.py --check` checks the exercises
BATCH = lessons.size(4096, 1024)  # rows of x; at 1024 x 64 = 65,536 values the layer still fuses
WIDTH = 64
rng = np.random.default_rng(0)

# %% [markdown]
# ## One layer with something for every pass
#
# Each line below is written the way real code often is: a scale computed from two constants,
# an identity left by a generic wrapper (`* 1.0 + 0.0`), the same activation written twice.


# %%
def act(v):
    return 0.5 * v * (1.0 + F.tanh(v))


x = S.placeholder((BATCH, WIDTH), name="x")
w1 = S.variable(rng.normal(size=(WIDTH, WIDTH)).astype(np.float32) / 8, name="w1")
w2 = S.variable(rng.normal(size=(WIDTH, 8)).astype(np.float32) / 8, name="w2")
scale = S.constant(2.0) * S.constant(0.25)  # only constants: known before any input
h = x @ w1
y = scale * act(h) + act(h)  # act(h) twice
y = y * 1.0 + 0.0  # identities
loss = F.mean(y @ w2)

compiled = S.compile(loss, inputs=[x], optimize=2)
stages = compiled.report.stages
print(f"traced: {len(compiled.traced_graph.ops)} ops; after the passes: {len(compiled.graph.ops)}")


def show_stage(number: int) -> list[str]:
    """Draw the graph after stage `number` (its changes highlighted); print what the pass
    changed (stage 0 is the trace: nothing changed yet)."""
    name, source, changes = pass_dots(compiled)[number]
    lessons.show(style.write(source, lessons.figure(f"06_pass_{number}_{name}.svg")))
    if number == 0:
        return changes
    for line in changes[:6]:
        print("   ", line.split("  #")[0])  # the change, without the source line
    if len(changes) > 6:
        print(f"    ... and {len(changes) - 6} more")
    return changes


def count(changes: list[str], verb: str) -> int:
    return sum(line.startswith(verb) for line in changes)


# %% [markdown]
# The graph as traced: every op the Python code applied, in the order it ran. Green borders
# in the pictures that follow mark what a pass added; red, dashed: what it removed; orange,
# dashed: what it merged or replaced, with a dotted arrow to the node that computes its value
# now.

# %%
show_stage(0)

# %% [markdown]
# ## Constant folding
#
# `2.0 * 0.25` depends on no input: the compiler runs it once, at compile time, and puts
# the result in the graph as a constant.

# %%
folded = count(show_stage(1), "folded")
lessons.claim(f"constant folding folded {folded} op into a constant", holds=folded == 1)

# %% [markdown]
# ## Algebraic simplification
#
# `y * 1.0` is `y`, `y + 0.0` is `y` (for the values a graph sees: the rules keep NaN and
# signed zeros as numpy would): the rewrites send the users of each to its input.

# %%
rewritten = len(show_stage(2))
lessons.claim(f"simplification rewrote {rewritten} identities away", holds=rewritten == 2)

# %% [markdown]
# ## Common-subexpression elimination
#
# Two nodes that apply the same op, with the same parameters, to the same inputs compute the
# same value (ops with state or randomness excepted). The second `act(h)` is four such nodes.

# %%
merged = count(show_stage(3), "merged")
lessons.claim(f"common-subexpression elimination merged {merged} duplicate ops", holds=merged == 4)

# %% [markdown]
# ## Dead-code elimination
#
# What no output or update reads is dropped. Here the two constants that folding replaced.

# %%
removed = count(show_stage(4), "removed")
lessons.claim(f"dead-code elimination removed {removed} nodes nothing read", holds=removed == 2)

# %% [markdown]
# ## Elementwise fusion
#
# The activation, the scale and the sum are elementwise ops on the same shape, each used only
# inside the chain: they become one node whose kernel makes one pass over memory instead of
# one per op (lesson 7 measures when that pays). The matmuls and the reduction stay out.

# %%
show_stage(5)
kernels = compiled.report.fused_kernels
fused_ops = sum(len(op.kernel.program.steps) for op in kernels)
lessons.claim(
    f"fusion put {fused_ops} elementwise ops into {len(kernels)} generated kernel",
    holds=len(kernels) == 1 and fused_ops >= 6,
)

# %% [markdown]
# ## Memory planning
#
# The last pass changes no node: it decides where each intermediate lives. The matmul's
# result dies in the fused kernel, so the kernel writes its own result into that buffer (in
# place), and later results reuse buffers that are free by then. The picture is the same
# graph; the plan, the Python code the compiled function runs, shows the buffers (`out=`)
# and where each value dies (`del`). Lesson 8 draws the lifetimes and measures the bytes.

# %%
show_stage(6)
print(compiled.source)
plan = compiled.graph.memory
lessons.claim(
    f"memory planning put {len(plan.assignment)} intermediates in {len(plan.buffers)} "
    f"buffers, {len(plan.in_place)} written in place: {plan.planned_bytes / 1e6:.2f} MB "
    f"instead of {plan.intermediate_bytes / 1e6:.2f} MB",
    holds=len(plan.buffers) < len(plan.assignment),
)

# %% [markdown]
# ## Each pass switched off, one at a time
#
# The same layer compiled eleven ways: `optimize=0` (the graph as traced), `optimize=1` (the
# four rewriting passes), `optimize=2` (all six), and `optimize=2` with one pass disabled.
# Every version is timed on the same input, interleaved so that drift hits all alike, with
# BLAS on one thread as `diptych compare` does.

# %%
configs = {"O0": {"optimize": 0}, "O1": {"optimize": 1}, "O2": {"optimize": 2}}
configs.update({f"O2 without {p}": {"optimize": 2, "disable": [p]} for p in pass_names()})
x_value = rng.normal(size=(BATCH, WIDTH)).astype(np.float32)
versions = {name: S.compile(loss, inputs=[x], **options) for name, options in configs.items()}
reference = versions["O0"](x_value)
worst = max(abs(float(f(x_value)) - float(reference)) for f in versions.values())  # builds too
with thread_limit(1):
    seconds = lessons.race_seconds(
        {name: (lambda f=f: f(x_value)) for name, f in versions.items()},
        target_ms=lessons.size(20, 5),
        repeats=lessons.size(7, 3),
    )
print(f"{'configuration':<30}{'ops':>5}{'compile ms':>12}{'step ms':>10}{'vs O2':>8}")
for name, f in versions.items():
    print(
        f"{name:<30}{len(f.graph.ops):>5}{1e3 * f.report.compile_seconds:>12.1f}"
        f"{1e3 * seconds[name]:>10.3f}{seconds[name] / seconds['O2']:>7.2f}x"
    )
target = versions["O2"].report.fused_kernels[0].kernel.choice  # chosen on the first call
print(f"the fused kernel ran on: {target}")

# %%
ops = {name: len(f.graph.ops) for name, f in versions.items()}
lessons.claim(
    f"optimize=2 left {ops['O2']} of the {ops['O0']} ops optimize=0 runs, and every "
    f"configuration computed the same loss to within {worst:.1e}",
    holds=ops["O2"] < ops["O1"] < ops["O0"] and worst <= 1e-5,
)
lessons.claim(
    f"the O2 step ran {seconds['O0'] / seconds['O2']:.2f}x as fast as O0's on this machine",
    holds=seconds["O2"] < seconds["O0"],
)
unfused = seconds["O2 without fusion"] / seconds["O2"]
lessons.claim(
    f"switching fusion off made the step {unfused:.2f}x as long as O2's",
    holds=unfused > 1,
)

# %% [markdown]
# Read the table row by row. Folding, simplification and CSE shrink the graph; their time
# matters when what they remove is large (the duplicated activation here runs over the whole
# batch). Without CSE the fused kernel computes the activation twice; without DCE the dead
# constants cost nothing but a line of the plan. Fusion and memory planning touch every
# byte of the intermediates, so they move the step time most on elementwise-heavy code.
#
# ## Exercises
#
# Fill in `docs/lessons/exercises/06_the_compile_step.py`, then run
# `python docs/lessons/06_the_compile_step.py --check`.
#
# 1. `pass_changes(fn)`: from a compiled function's report, a dict from each pass's name to
#    the number of changes it reported.
# 2. `passes_that_shrink(outputs, inputs)`: the names of the passes that, switched off alone,
#    leave more ops in the `optimize=2` graph.
# 3. `work_for_every_pass(x)`: a function of a placeholder `x` (256 x 256) in which constant
#    folding, simplification and CSE each change something and fusion builds a kernel.
