# %% [markdown]
# # 5. Control flow
#
# Eager code branches and loops with Python's own `if`, `while` and `for`: each op runs when
# Python reaches it, so the tape records only the branch taken and one entry per iteration
# run. A deferred graph is built before any number exists, so Python cannot decide a branch
# or a trip count while building it: the decision has to become a node of the graph.
# diptych's `F.cond`, `F.while_loop` and `F.scan` are those nodes on symbols, and plain
# Python on eager tensors. This lesson shows the error a Python `if` on a symbol raises,
# the three control-flow nodes with their gradients (against eager's), and what each mode
# keeps: the tape holds what ran, the graph holds every way it could run.

# %%
import traceback
from pathlib import Path

import numpy as np

import common
import eager as E
import symbolic as S
from common import functional as F
from compare import lessons
from eager.visualize import captioned, png_image, side_by_side, tape_to_dot, walk
from symbolic.visualize import bodies_of

lessons.begin()  # `python docs/lessons/05_control_flow.py --check` checks the exercises
STEPS = lessons.size(40, 12)  # the length of the scanned sequence
rng = np.random.default_rng(0)

# %% [markdown]
# ## A Python `if` on a symbol
#
# The function below is ordinary eager code. Called on tensors it runs; called on symbols
# the `if` asks Python for the truth of `F.sum(x) > 0`, a value that does not exist until
# the graph runs. diptych raises at once, and the traceback's last line of user code is the
# `if` itself.


# %%
def shrink_or_grow(x, w):
    if F.sum(x) > 0:
        return F.sum(F.tanh(x * w))
    return F.sum(x * x * w * 0.5 + x)


LIBRARY = tuple(str(Path(m.__file__).parent) for m in (common, E, S))  # the packages' folders


def user_frame(error: BaseException) -> traceback.FrameSummary:
    """The innermost frame of the traceback that is not diptych's own code."""
    frames = traceback.extract_tb(error.__traceback__)
    return [f for f in frames if not f.filename.startswith(LIBRARY)][-1]


x0 = rng.normal(size=8).astype(np.float32)
w0 = rng.normal(size=8).astype(np.float32)
print("eagerly:", shrink_or_grow(E.tensor(x0), E.tensor(w0)))
x, w = S.placeholder((8,), name="x"), S.placeholder((8,), name="w")
try:
    shrink_or_grow(x, w)
except TypeError as error:
    where = user_frame(error)
    print(f"on symbols: TypeError: {error}\n")
    lessons.claim(
        f"the error was raised at line {where.lineno} of the user's code, "
        f"`{where.line}`, before any graph existed",
        holds=where.line.startswith("if "),
    )

# %% [markdown]
# ## `F.cond`: both branches in the graph, one branch on the tape
#
# `F.cond(pred, true_fn, false_fn, *operands)` runs `true_fn(*operands)` or
# `false_fn(*operands)`. Eagerly it is a Python `if`: the tape records the branch that ran.
# On symbols it traces both functions into subgraphs of one `cond` node, which picks a branch
# each time the compiled graph runs.


# %%
def shrink_or_grow_cond(x, w):
    return F.cond(
        F.sum(x) > 0,
        lambda a: F.sum(F.tanh(a * w)),
        lambda a: F.sum(a * a * w * 0.5 + a),
        x,
    )


def eager_loss_and_grads(fn, **arrays):
    """Run `fn` eagerly on leaf tensors made from `arrays` (in order): the number of ops on
    the loss's tape, the tape's picture, and the gradient of each leaf."""
    leaves = {name: E.tensor(a, requires_grad=True) for name, a in arrays.items()}
    loss = fn(*leaves.values())
    recorded = sum(getattr(v, "grad_fn", None) is not None for v in walk([loss]))
    tape = tape_to_dot(loss, leaves)  # drawn before backward() frees it
    loss.backward()
    return recorded, tape, [t.grad.numpy() for t in leaves.values()]


loss = shrink_or_grow_cond(x, w)
compiled = S.compile([loss, *S.grad(loss, [x, w])], inputs=[x, w])
cond_node = next(n for n in compiled.graph.nodes if n.op_name == "cond")
branch_ops = [len(body.ops) for _, body in bodies_of(cond_node)]

tape_ops, tapes, worst = {}, {}, 0.0
for branch, x_branch in (("true", np.abs(x0)), ("false", -np.abs(x0))):
    tape_ops[branch], tapes[branch], eager_grads = eager_loss_and_grads(
        shrink_or_grow_cond, x=x_branch, w=w0
    )
    _, *graph_grads = compiled(x_branch, w0)
    worst = max(worst, *(np.max(np.abs(g - e)) for g, e in zip(graph_grads, eager_grads)))

lessons.claim(
    f"eagerly the tape recorded {tape_ops['true']} ops when sum(x) > 0 and "
    f"{tape_ops['false']} when not: only the branch taken",
    holds=tape_ops["true"] != tape_ops["false"],
)
lessons.claim(
    f"the compiled graph holds both branches whatever the data: {branch_ops[0]} ops "
    f"(true) and {branch_ops[1]} ops (false) inside one cond node",
    holds=len(branch_ops) == 2,
)
lessons.claim(
    f"the gradients of x and w through the cond agree, eager vs compiled: max abs "
    f"difference {worst:.1e} over both branches",
    holds=worst <= 1e-6,
)

# %% [markdown]
# The picture puts the two tapes next to the graph, at the same scale: each tape is the
# branch that ran, the graph is both branches (the cond node picks one per call).

# %%
forward = S.compile(loss, inputs=[x, w], optimize=0)
panels = [
    captioned(png_image(tapes["true"], 72), ["eager tape, sum(x) > 0", "the true branch ran"]),
    captioned(png_image(tapes["false"], 72), ["eager tape, sum(x) <= 0", "the false branch"]),
    captioned(
        png_image(forward.to_dot(), 72), ["compiled graph", "both branches, in one cond node"]
    ),
]
path = lessons.figure("05_cond_tape_vs_graph.png")
side_by_side(panels).save(path)
lessons.show(path)

# %% [markdown]
# ## `F.while_loop`: a trip count decided by the data
#
# The loop below grows `h` until its squared norm passes 100, so the number of iterations
# depends on the input. Eagerly it is a Python `while`: every iteration adds its ops to the
# tape, and a Python counter in the body counts every iteration. On symbols the body is
# traced once into a subgraph, whatever the trip count: the graph does not grow, and a
# Python counter in the body counts one call (the trace). The carry also counts iterations
# as a value, `i + 1`, which both modes compute.

# %%
body_calls = {"count": 0}


def grow(x, w):
    def body(carry):
        body_calls["count"] += 1  # a Python side effect: runs when the body is *called*
        i, h = carry
        return i + 1, h * w + 0.1

    i, h = F.while_loop(lambda c: F.sum(c[1] * c[1]) < 100.0, body, (np.array(0), x))
    return i, F.sum(F.tanh(h))


x_small = (0.1 * rng.normal(size=8)).astype(np.float32)
w_grow = (1.5 + 0.1 * rng.normal(size=8)).astype(np.float32)
i_sym, loss_sym = grow(x, w)
traced_calls = body_calls["count"]
loop = S.compile([i_sym, loss_sym, *S.grad(loss_sym, [x, w])], inputs=[x, w])
loop_ops = len(S.compile(loss_sym, inputs=[x, w], optimize=0).graph.ops)  # the forward alone

rows, worst = [], 0.0
for label, start in (("small x", x_small), ("large x", 20 * x_small)):
    body_calls["count"] = 0
    tape_len, _, eager_grads = eager_loss_and_grads(lambda a, b: grow(a, b)[1], x=start, w=w_grow)
    eager_calls = body_calls["count"]
    trips, _, *graph_grads = loop(start, w_grow)
    worst = max(worst, *(np.max(np.abs(g - e)) for g, e in zip(graph_grads, eager_grads)))
    rows.append((label, int(trips), eager_calls, tape_len, body_calls["count"] - eager_calls))
print(f"{'input':<10}{'iterations':>12}{'body calls':>12}{'tape ops':>10}{'graph ops':>11}")
for label, trips, calls, tape_len, _ in rows:
    print(f"{label:<10}{trips:>12}{calls:>12}{tape_len:>10}{loop_ops:>11}")

(_, trips_a, calls_a, tape_a, _), (_, trips_b, calls_b, tape_b, graph_calls) = rows
lessons.claim(
    f"eagerly the tape grew with the trip count ({tape_a} ops for {trips_a} iterations, "
    f"{tape_b} for {trips_b}); the compiled graph is {loop_ops} ops for both, the body held once "
    "inside its while node",
    holds=tape_a > tape_b and trips_a > trips_b,
)
lessons.claim(
    f"a Python counter in the loop body counted {calls_a} calls for {trips_a} eager "
    f"iterations, {traced_calls} call when the body was traced, and {graph_calls} more while "
    f"the compiled loop ran {trips_b} iterations",
    holds=calls_a == trips_a and traced_calls == 1 and graph_calls == 0,
)
lessons.claim(
    f"the gradients through the while loop agree, eager vs compiled: max abs difference "
    f"{worst:.1e}",
    holds=worst <= 1e-5,
)

# %% [markdown]
# The symbolic loop gets its gradient the way TF1 did: the forward loop saves the carry of
# each iteration it runs, and the gradient is a reverse loop over them. With
# `max_iterations=` it becomes a scan of fixed length instead (JAX's way: memory known in
# advance).
#
# ## `F.scan`: a loop over a sequence, drawn once
#
# `F.scan(fn, init, xs)` runs `carry, y = fn(carry, x)` along the first axis of `xs`, as a
# recurrent network does. Eagerly it is a `for` loop, and the tape holds every step; the
# compiled graph holds the step's body once.


# %%
def recurrence(h, xs, w):
    final, _ = F.scan(lambda c, x_t: (F.tanh(c * w + x_t), None), h, xs)
    return F.sum(final)


h0 = rng.normal(size=8).astype(np.float32)
xs0 = rng.normal(size=(STEPS, 8)).astype(np.float32)
h, xs = S.placeholder((8,), name="h"), S.placeholder((STEPS, 8), name="xs")
loss_scan = recurrence(h, xs, w)
scan_fn = S.compile(S.grad(loss_scan, [h, xs, w]), inputs=[h, xs, w])
scan_node = next(n for n in scan_fn.graph.nodes if n.op_name == "scan")
forward_body = len(bodies_of(scan_node)[0][1].ops)
scan_tape, _, eager_grads = eager_loss_and_grads(recurrence, h=h0, xs=xs0, w=w0)
worst = max(np.max(np.abs(g - e)) for g, e in zip(scan_fn(h0, xs0, w0), eager_grads))
lessons.claim(
    f"over {STEPS} steps the eager tape recorded {scan_tape} ops; the scan's body holds "
    f"{forward_body} ops, traced once",
    holds=scan_tape > forward_body,
)
lessons.claim(
    f"the gradients through the scan (of h0, every x_t and w) agree, eager vs compiled: "
    f"max abs difference {worst:.1e}",
    holds=worst <= 1e-5,
)

# %% [markdown]
# ## What to take away
#
# - Python control flow decides *now*; a static graph decides *when it runs*. On a symbol,
#   `if`, `while`, `bool()`, `float()` and `len()` of an unknown size raise, at the line that
#   asked, and name the alternatives.
# - `F.cond`, `F.while_loop` and `F.scan` work in both modes and are differentiable in both.
#   Eagerly they are Python, and the tape is a record of what ran: one branch, one entry per
#   iteration. Compiled, they are nodes whose bodies are subgraphs traced once: the graph
#   holds every branch, and its size does not depend on the trip count.
# - Python side effects in a traced body (a counter, a print) happen once, at trace time.
#
# ## Exercises
#
# Fill in `docs/lessons/exercises/05_control_flow.py`, then run
# `python docs/lessons/05_control_flow.py --check`.
#
# 1. `double_or_negate(x)`: `x * 2` when `sum(x) > 0`, else `-x`, written so that it runs on
#    symbols (compiled) and on eager tensors alike.
# 2. `halvings(x)`: halve `x` until every `|x| < 1`; return `(count, x)`. The count must come
#    from the graph when `x` is a symbol.
# 3. `running_sum(xs)`: the running sums along the first axis (`ys[t] = xs[0] + ... + xs[t]`),
#    as one scan: the graph must not grow with the sequence's length.
