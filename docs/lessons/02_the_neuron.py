# %% [markdown]
# # 2. The neuron: three ways to a gradient
#
# One neuron, `y = tanh(w*x + b)`, and its gradient three ways: by hand with the chain rule
# (numpy, every number printed), with the eager **tape** (each op records itself as it runs
# and `backward()` walks the record in reverse), and as a **gradient graph** (`S.grad` adds
# the backward computation to the graph as ordinary nodes, before any number exists). The
# rules applied are the same; what differs is *when* they are applied and what is kept.

# %%
import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import style
from compare import lessons
from eager import visualize as tape_pictures
from symbolic import visualize as graph_pictures

lessons.begin()  # `python docs/lessons/02_the_neuron.py --check` checks the exercises
W, X, B = -1.2, 0.5, 0.3  # the weight, the input and the bias (float64 throughout)

# %% [markdown]
# ## By hand: the chain rule written out
#
# Forward, keep what backward needs; backward, multiply local derivatives from the output
# back to each input: `dy/dw = dy/dz * dz/dw` with `z = w*x + b`, `dy/dz = 1 - tanh(z)²`.

# %%
z = W * X + B
y = np.tanh(z)
dy_dz = 1 - y**2  # the derivative of tanh at z
by_hand = {"w": dy_dz * X, "x": dy_dz * W, "b": dy_dz * 1.0}  # dz/dw = x, dz/dx = w, dz/db = 1
print(f"forward:  z = w*x + b = {W}*{X} + {B} = {z:.6f};  y = tanh(z) = {y:.6f}")
print(f"backward: dy/dz = 1 - y**2 = {dy_dz:.6f}")
for name, value in by_hand.items():
    print(f"          dy/d{name} = dy/dz * dz/d{name} = {value:+.6f}")

# %% [markdown]
# ## With the tape (eager)
#
# The forward line runs at once, and each result that needs a gradient remembers the op
# that made it (`grad_fn`) and that op's inputs: a chain back to the leaves.

# %%
w, x, b = (E.tensor(np.float64(v), requires_grad=True) for v in (W, X, B))
y_eager = F.tanh(w * x + b)
print("y =", y_eager)
node, recorded = y_eager.grad_fn, []
while node is not None:  # follow the first input that was itself recorded
    recorded.append(node.name)
    node = next((a.grad_fn for a in node.inputs if getattr(a, "grad_fn", None)), None)
print("the tape, last op first:", " <- ".join(recorded))
y_eager.backward(retain_graph=True)  # keep the record, to draw it below
by_tape = {"w": w.grad.item(), "x": x.grad.item(), "b": b.grad.item()}
print("backward() filled .grad:", {k: round(v, 6) for k, v in by_tape.items()})

# %% [markdown]
# ## As a gradient graph (deferred)
#
# On placeholders the forward line builds three nodes. `S.grad` applies the same
# derivative rules, but to symbols: it *builds* the backward computation as new nodes. The
# compiled function then returns the output and its three gradients in one call.

# %%
w_s, x_s, b_s = (S.placeholder((), "float64", name=n) for n in "wxb")
y_s = F.tanh(w_s * x_s + b_s)
grads = S.grad(y_s, [w_s, x_s, b_s])
neuron = S.compile([y_s, *grads], inputs=[w_s, x_s, b_s])
print(neuron.graph)
_, *values = neuron(W, X, B)
by_graph = dict(zip("wxb", (float(v) for v in values)))

# %% [markdown]
# ## The two pictures
#
# Left, what the tape recorded: the three forward ops and the `.grad` that `backward()` left
# on each leaf; the backward computation itself ran and is gone. Right, the gradient graph:
# the same three forward ops, and the backward ones as nodes of their own, ready to run as
# often as asked (the compiler already simplified them).

# %%
tape_path = tape_pictures.render_tape(
    y_eager, lessons.figure("02_tape.svg"), names={"w": w, "x": x, "b": b}
)
graph_path = neuron.render(lessons.figure("02_gradient_graph.svg"))
tape_dot = tape_pictures.tape_to_dot(y_eager, names={"w": w, "x": x, "b": b})
graph_dot = graph_pictures.to_dot(neuron)
dpi = min(style.dpi_to_fit(d, 700, 900) for d in (tape_dot, graph_dot))  # one scale
pair = tape_pictures.side_by_side(
    [
        tape_pictures.captioned(
            tape_pictures.png_image(tape_dot, dpi),
            ["eager: the tape after backward()", "forward ops recorded; gradients on the leaves"],
        ),
        tape_pictures.captioned(
            tape_pictures.png_image(graph_dot, dpi),
            ["deferred: the gradient graph", "forward and backward ops, all built before a run"],
        ),
    ]
)
pair_path = lessons.figure("02_tape_and_graph.png")
pair.save(pair_path)
lessons.show(pair_path)

# %% [markdown]
# ## Do the three agree?

# %%
print(f"{'':4}{'by hand':>12}{'tape':>12}{'graph':>12}")
for name in "wxb":
    print(f"d/d{name}{by_hand[name]:12.6f}{by_tape[name]:12.6f}{by_graph[name]:12.6f}")
tape_gap = max(abs(by_hand[k] - by_tape[k]) for k in "wxb")
graph_gap = max(abs(by_hand[k] - by_graph[k]) for k in "wxb")
lessons.claim(
    f"all three gradients agree: the tape differs from the hand-written chain rule by at most "
    f"{tape_gap:.1e} and the gradient graph by at most {graph_gap:.1e} (float64)",
    holds=max(tape_gap, graph_gap) < 1e-12,
)
backward_ops = len(neuron.graph.ops) - len(recorded)
lessons.claim(
    f"the tape recorded {len(recorded)} ops and kept none of the backward computation; the "
    f"compiled gradient graph holds {len(neuron.graph.ops)} ops, {backward_ops} of them backward",
    holds=backward_ops > 0,
)

# %% [markdown]
# ## Exercises
#
# In `docs/lessons/exercises/02_the_neuron.py`; check them with
# `python docs/lessons/02_the_neuron.py --check`.
#
# 1. Write the derivative of `tanh(w*x + b)` with respect to `w` by hand, as a function of
#    `(w, x, b)` (numpy); it is checked against finite differences.
# 2. Given placeholders `w, x, b`, return the symbol for `d tanh(w*x + b) / db`: a graph of
#    the gradient, not a number.
# 3. Given an eager result `y`, walk its tape and return the names of the ops it recorded,
#    last op first, following the first recorded input of each op.
