# %% [markdown]
# # 13. Debugging in both modes
#
# PyTorch's design notes make one argument for eager execution above the others: it is easy
# to debug. An error or a NaN points at the line that made it, and you can print anything. A
# deferred graph loses that, unless the framework gives it back. diptych has two engines over
# one kernel set, so the engines can check each other: this lesson plants a bug in a compiler
# pass and lets `equivalence` name it, plants a wrong gradient and lets `gradcheck` find it,
# traces NaNs to their line with `common.detect_anomaly()` in both engines, steps through a
# fused kernel with the debugger, and lets the capture linter say what tracing froze. The
# [footgun gallery](../footguns.md) shows more cases, each with the tool that catches it.

# %%
import dataclasses
import warnings
from unittest import mock

import numpy as np

import common
import eager as E
import symbolic as S
from common import functional as F
from common.anomaly import AnomalyError
from common.dispatch import apply
from common.ops import OPS
from common.ops.core import Aval, OpDef, declare
from compare import lessons
from compare.check import equivalence, gradcheck
from symbolic.passes import fusion

lessons.begin()  # `python docs/lessons/13_debugging.py --check` checks the exercises
N = lessons.size(512, 256)  # N x N float32 arrays: 256 x 256 is the smallest that fuses
gen = np.random.default_rng(0)
warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own NaN warnings: we find them

# %% [markdown]
# ## The engines check each other: a planted bug in a pass
#
# `equivalence(fn, *inputs)` runs `fn` eagerly and compiled at each optimize level, node by
# node, and compares every value. When a level parts from eager, it turns the passes off one
# at a time to find the one that made the difference. To see it work, we plant a bug in the
# fusion pass: a fused kernel that swaps the operands of a subtraction.

# %%
a = gen.standard_normal((N, N)).astype(np.float32)
b = gen.standard_normal((N, N)).astype(np.float32)


def difference(x, y):
    return F.exp(x) - F.tanh(y) * 2.0


real_build = fusion.build_program


def swapping_build(members):
    """fusion.build_program, with a bug: every fused `sub` computes y - x."""
    program, inputs = real_build(members)
    steps = [
        dataclasses.replace(s, args=s.args[::-1]) if s.op == "sub" else s for s in program.steps
    ]
    return dataclasses.replace(program, steps=tuple(steps)), inputs


clean = equivalence(difference, a, b)
print("without the bug:", "every level agrees with eager" if clean.ok else clean)
with mock.patch.object(fusion, "build_program", swapping_build):
    report = equivalence(difference, a, b)
print(report)
found = report.first_divergence

# %%
lessons.claim(
    f"equivalence traced the planted bug to the pass {found.pass_name!r} and the node "
    f"`{found.op}` made at {found.line}, whose values were {found.max_abs_diff:.3g} off "
    f"at optimize={found.optimize}",
    holds=not report.ok and found.pass_name == "fusion" and clean.ok,
)

# %% [markdown]
# ## When both engines are wrong together: gradcheck
#
# Both engines apply an op's VJP rule, so a wrong rule gives the same wrong gradient in
# both: comparing them cannot catch it. `gradcheck` holds both to central differences in
# float64. Here is a custom op, `cube`, whose VJP forgot a power.

# %%
CUBE = OPS.get("cube") or declare(  # a name is declared once per process
    OpDef(
        "cube",
        "elementwise",
        kernel=lambda xp, x: x * x * x,
        abstract=lambda x: Aval(x.shape, x.dtype),
        vjp=(lambda g, out, x: g * 3 * x,),  # wrong: d(x**3)/dx is 3 * x**2
    )
)


def cubed(x):
    return F.sum(apply(CUBE, x))


point = np.array([0.5, 1.0, 2.0, 3.0])
xe = E.tensor(point, requires_grad=True)
cubed(xe).backward()
xs = S.placeholder((4,), "float64", "x")
(gs,) = S.grad(cubed(xs), [xs])
compiled_grad = S.compile(gs, inputs=[xs])(point)
engines_apart = np.abs(xe.grad.numpy() - compiled_grad).max()
checked = gradcheck(cubed, point, order=1)
print(checked)

# %%
lessons.claim(
    f"eager and compiled gradients of the planted op agreed to {engines_apart:.2g}, yet "
    f"gradcheck found them wrong: {checked.worst.got:.4g} where central differences give "
    f"{checked.worst.expected:.4g}",
    holds=engines_apart == 0 and not checked.ok,
)

# %% [markdown]
# ## A NaN, traced to its line: forward
#
# The entropy of a distribution with a zero in it is NaN (`0 * log(0)` is `0 * -inf`), in
# both engines, and nothing says where it came from. Inside `common.detect_anomaly()` the
# first op that produces NaN or inf raises an `AnomalyError` naming the op and the user's
# line, as torch's anomaly mode does for eager code. A compiled function called in anomaly
# mode is stepped node by node (a fused group one op at a time) instead of run, so it can
# name the same line.

# %%
probabilities = np.full(N, 1.0 / (N - 1), np.float32)
probabilities[0] = 0.0


def entropy(p):
    return -F.sum(p * F.log(p))


fast_entropy = S.function(entropy)
print("eager:", entropy(E.tensor(probabilities)).item(), " compiled:", fast_entropy(probabilities))
errors = {}
with common.detect_anomaly():
    for engine, run in [
        ("eager", lambda: entropy(E.tensor(probabilities))),
        ("compiled", lambda: fast_entropy(probabilities)),
    ]:
        try:
            run()
        except AnomalyError as error:
            errors[engine] = error
            print(f"{engine}: AnomalyError: {str(error).splitlines()[0]}")

# %%
named = {f"{e.op} at {e.line}" for e in errors.values()}
lessons.claim(
    f"anomaly mode stopped {len(errors)} of 2 engines at the first op that made -inf, "
    f"naming {len(named)} op and line for both: {', '.join(sorted(named))}",
    holds=len(errors) == 2 and len(named) == 1,
)

# %% [markdown]
# ## A NaN, traced to its line: backward
#
# The norm of a zero vector is 0, but the gradient of `sqrt` at 0 is infinite, and
# `inf * 0` is NaN. The forward pass is fine; the gradients are NaN. Anomaly mode names the
# op of the backward pass that produced the inf, the forward op whose gradient it was, and
# that forward op's line: eagerly from the tape, compiled from the line `S.grad` gave the
# gradient's nodes (the forward node's).


# %%
def norm(v):
    squares = F.sum(v * v)
    return F.sqrt(squares)


def eager_gradient():
    v = E.tensor(np.zeros(N, np.float32), requires_grad=True)
    norm(v).backward()
    return v.grad.numpy()


w = S.variable(np.zeros(N, np.float32), name="w")
(gw,) = S.grad(norm(w), [w])
compiled_gradient = S.compile(gw, inputs=[])
nan_counts = [int(np.isnan(g).sum()) for g in (eager_gradient(), compiled_gradient())]
print(f"NaN entries in the gradient: eager {nan_counts[0]}, compiled {nan_counts[1]} of {N}")
backward_errors = {}
with common.detect_anomaly():
    for engine, run in [("eager", eager_gradient), ("compiled", compiled_gradient)]:
        try:
            run()
        except AnomalyError as error:
            backward_errors[engine] = error
            print(f"{engine}: AnomalyError: {str(error).splitlines()[0]}")

# %%
named = {
    f"{e.op} in the gradient of {e.backward_of} made at {e.line}" for e in backward_errors.values()
}
lessons.claim(
    f"in the backward pass, anomaly mode stopped {len(backward_errors)} of 2 engines, "
    f"naming {len(named)} op and line for both: {', '.join(sorted(named))}",
    holds=len(backward_errors) == 2 and len(named) == 1,
)

# %% [markdown]
# ## Stepping through a fused kernel
#
# A compiled function runs fused kernels: one loop for a whole chain of elementwise ops, so
# no intermediate value ever exists in memory. `f.debug(*inputs)` runs the plan one node at
# a time instead, a fused group as its member ops, each with the line that made it, so you
# can stop anywhere and look, as in pdb (`dbg.interact()` gives the same commands in a
# terminal).

# %%
x = gen.standard_normal((N, N)).astype(np.float32)
weights = S.variable((gen.standard_normal((N, N)) / N).astype(np.float32), name="weights")
xp = S.placeholder((N, N), name="x")
hidden = xp @ weights
scaled = hidden * 0.5
squashed = F.tanh(scaled)
mixed = squashed * 2.0 + xp
layer = S.compile(F.sum(mixed), inputs=[xp], optimize=2)
print("the plan:", ", ".join(n.op_name for n in layer.graph.ops))

dbg = layer.debug(x)
group = next(n for n in layer.graph.ops if n.op_name.startswith("fused_"))
dbg.continue_to(group.op_name)  # stop before the group's first member
print(dbg)
stepped = []
while not dbg.done and dbg.where().group is group:
    node = dbg.step()
    stepped.append(node.op_name)
    value = dbg.value()
    print(f"  {node.op_name:>5} made at {node.source}: mean {value.mean():+.4f}")
tanh_apart = np.abs(dbg.value(squashed) - np.tanh(x @ weights.value * 0.5)).max()
print(dbg.where())
result = dbg.finish()
apart = abs(float(result) - float(layer(x)))

# %%
lessons.claim(
    f"the debugger ran {group.op_name} as {len(stepped)} steps ({', '.join(stepped)}); the "
    f"tanh value inside it is {tanh_apart:.2g} from numpy's, and the stepped result is "
    f"{apart:.2g} from the fused call's",
    holds=len(stepped) == 4 and apart <= 1e-5 * abs(float(result)),
)

# %% [markdown]
# ## What tracing froze: the capture linter
#
# Tracing runs Python once, and whatever Python did then is frozen into the graph, silently:
# a global read, a random number drawn, a print, a list appended to, a branch taken. When
# `S.function`, `S.trace` or `S.compile` traces a function, the linter warns about each at
# its line (a `CaptureWarning`) and lists them on the report, `f.report.lint`. (The `h:`
# printed below is the print running while tracing: it shows a symbol, once.)

# %%
threshold = 0.1
seen = []
noise = np.random.default_rng(1)
verbose = True


def careless(x):
    h = F.relu(x - threshold)
    h = h + noise.normal(size=x.shape).astype(np.float32) * 0.01
    if verbose:
        print("h:", h)
    seen.append(h)
    return F.sum(h)


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the same findings are printed below
    traced = S.function(careless)
    traced(x)
for finding in traced.report.lint:
    print(f"{finding.kind:>9}  {finding.line}")
kinds = sorted({f.kind for f in traced.report.lint})

# %%
lessons.claim(
    f"the linter found {len(traced.report.lint)} things the trace froze, of {len(kinds)} "
    f"kinds ({', '.join(kinds)}), each at its line",
    holds=len(kinds) == 5,
)

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/13_debugging.py`, then run
# `python docs/lessons/13_debugging.py --check` (or `diptych lesson 13 --check`).
#
# 1. `exercise_1(f, *inputs)`: `f` is a compiled function whose result is NaN for these
#    inputs. Return the name of the op that first produced NaN or inf, and its line.
# 2. `exercise_2(f, x, line)`: the node made at `line` runs inside a fused kernel of `f`.
#    Return its value for the input `x`.
# 3. `exercise_3(x, noise)`: a layer that adds noise, written so that its traced version
#    adds fresh noise at every call, with nothing for the linter to warn about.
