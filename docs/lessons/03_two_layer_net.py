# %% [markdown]
# # 3. The two-layer network four ways
#
# PyTorch's classic example, `x.mm(w1).clamp(min=0).mm(w2)` with a sum-of-squares loss and
# plain SGD, trained four ways from the same initial weights: **numpy by hand** (forward and
# backward written out), **eager autograd** (the tape computes the backward), a **custom
# `E.Function`** (our own ReLU with a hand-written backward, inside the eager tape), and a
# **compiled training step** whose weight update is part of the graph. All four apply the
# same arithmetic, so they must reach the same weights; how long a step takes differs.

# %%
import numpy as np

import eager as E
import symbolic as S
from common import optim
from compare import lessons
from compare.timing import thread_limit
from compare.zoo import two_layer_net

lessons.begin()  # `python docs/lessons/03_two_layer_net.py --check` checks the exercises
BATCH, D_IN = lessons.size(64, 16), lessons.size(1000, 100)  # the tutorial's N and D_in
STEPS, LR = lessons.size(10, 3), 1e-6
data = two_layer_net.make_inputs(BATCH, D_IN, seed=0)
x, y = data["x"], data["y"]


def fresh_model() -> two_layer_net.TwoLayerNet:
    """The zoo's model, with the same initial weights every time (seed 0)."""
    return two_layer_net.TwoLayerNet(D_IN, seed=0)


print(f"x: {x.shape}, y: {y.shape}; w1: {fresh_model().w1.shape}, w2: {fresh_model().w2.shape}")

# %% [markdown]
# ## 1. numpy by hand
#
# No autograd at all: the forward keeps what the backward needs (`h`, `h_relu`), and the
# backward is the chain rule, one matrix product per weight.

# %%
start = fresh_model()
hand = {"w1": start.w1.numpy().copy(), "w2": start.w2.numpy().copy()}


def numpy_step() -> float:
    h = x @ hand["w1"]
    h_relu = np.maximum(h, 0)
    y_pred = h_relu @ hand["w2"]
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.T @ grad_y_pred
    grad_h = (grad_y_pred @ hand["w2"].T) * (h > 0)  # ReLU passes gradient where h > 0
    grad_w1 = x.T @ grad_h
    hand["w1"] -= LR * grad_w1
    hand["w2"] -= LR * grad_w2
    return float(loss)


# %% [markdown]
# ## 2. Eager autograd
#
# The model's forward runs and records the tape; `backward()` walks it; the optimizer
# updates the weights in place. The backward is no longer written by us.

# %%
eager_model = fresh_model()
eager_sgd = optim.SGD(eager_model.parameters(), lr=LR)
x_t, y_t = E.tensor(x), E.tensor(y)


def eager_step() -> float:
    loss, _ = eager_model(x_t, y_t)
    eager_sgd.zero_grad()
    loss.backward()
    eager_sgd.step()
    return loss.item()


# %% [markdown]
# ## 3. A custom `E.Function`
#
# Between the two: the tape still drives the backward, but one op's gradient is ours. A
# `Function` says what to save in `forward` and how to turn the output's gradient into the
# input's in `backward` (see docs/custom_ops.md).


# %%
class ReLU(E.Function):
    @staticmethod
    def forward(ctx, h):
        ctx.save_for_backward(h)
        return h.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (h,) = ctx.saved_tensors
        return grad_output * (h > 0)


function_model = fresh_model()
function_sgd = optim.SGD(function_model.parameters(), lr=LR)


def function_step() -> float:
    y_pred = ReLU.apply(x_t.mm(function_model.w1)).mm(function_model.w2)
    loss = (y_pred - y_t).pow(2).sum()
    function_sgd.zero_grad()
    loss.backward()
    function_sgd.step()
    return loss.item()


# %% [markdown]
# ## 4. A compiled training step
#
# On placeholders the same model builds a graph; `S.grad` adds the backward; and
# `S.optimizer_updates` adds the very same SGD rule as nodes whose results are written back
# into the weights after each call (Theano's `updates`, TF1's `train_op`). One call is one
# whole training step, with no Python between the ops.

# %%
compiled_model = fresh_model()
compiled_sgd = optim.SGD(compiled_model.parameters(), lr=LR)
x_s = S.placeholder(x.shape, name="x")
y_s = S.placeholder(y.shape, name="y")
loss_s, _ = compiled_model(x_s, y_s)
grads = S.grad(loss_s, compiled_sgd.params)
train_step = S.compile(loss_s, inputs=[x_s, y_s], updates=S.optimizer_updates(compiled_sgd, grads))


def compiled_step() -> float:
    return float(train_step(x, y))


path = train_step.render(lessons.figure("03_train_step.svg"))
lessons.show(path)

# %% [markdown]
# A `Function` is eager-only: its `forward` runs on numbers and only the eager tape calls
# its `backward`, so the graph cannot contain it. An op for both engines is declared once
# with a kernel, a shape rule and a gradient rule instead (docs/custom_ops.md).

# %%
try:
    ReLU.apply(x_s)
except TypeError as err:
    print("ReLU.apply(placeholder):", str(err).split(":")[0])

# %% [markdown]
# ## Train each way, from the same start

# %%
ways = {
    "numpy by hand": numpy_step,
    "eager autograd": eager_step,
    "custom E.Function": function_step,
    "compiled step": compiled_step,
}
losses = {name: [step() for _ in range(STEPS)] for name, step in ways.items()}
final = {
    name: [model.w1.numpy(), model.w2.numpy()]
    for name, model in [
        ("eager autograd", eager_model),
        ("custom E.Function", function_model),
        ("compiled step", compiled_model),
    ]
}
reference = final["numpy by hand"] = [hand["w1"], hand["w2"]]
gaps = {
    name: max(float(np.abs(w - r).max()) for w, r in zip(weights, reference))
    for name, weights in final.items()
}
print(f"{'way':<20}{'loss, step 1':>16}{f'loss, step {STEPS}':>16}{'max |w - numpy w|':>20}")
for name, trace in losses.items():
    print(f"{name:<20}{trace[0]:>16,.1f}{trace[-1]:>16,.1f}{gaps[name]:>20.2e}")
scale = max(float(np.abs(r).max()) for r in reference)
lessons.claim(
    f"after {STEPS} steps from the same start the four ways reach the same weights: the "
    f"largest difference from numpy's was {gaps['eager autograd']:.1e} for eager autograd, "
    f"{gaps['custom E.Function']:.1e} for the custom E.Function and "
    f"{gaps['compiled step']:.1e} for the compiled step (weights up to {scale:.1f} in size)",
    holds=max(gaps.values()) <= 1e-5 * scale,
)

# %% [markdown]
# ## What one step costs
#
# The same arithmetic four ways, timed interleaved, with the BLAS thread pool limited to one
# thread so the matrix products do not fight the rest of the machine for cores.

# %%
with thread_limit(1):
    seconds = lessons.race_seconds(
        ways,
        target_ms=lessons.size(20, 5),
        repeats=lessons.size(9, 3),
    )
base = seconds["numpy by hand"]
for name, s in seconds.items():
    print(f"{name:<20}{1e3 * s:8.3f} ms per step   {s / base:5.2f}x numpy")
lessons.claim(
    f"one training step took {1e3 * base:.3f} ms in numpy by hand, "
    f"{seconds['eager autograd'] / base:.2f}x that with eager autograd, "
    f"{seconds['custom E.Function'] / base:.2f}x with the custom E.Function and "
    f"{seconds['compiled step'] / base:.2f}x compiled "
    f"(the compiled step ran {seconds['eager autograd'] / seconds['compiled step']:.2f}x "
    f"as fast as eager) at batch {BATCH}, D_in {D_IN}",
    holds=seconds["compiled step"] < seconds["eager autograd"],
)

# %% [markdown]
# ## Exercises
#
# In `docs/lessons/exercises/03_two_layer_net.py`; check them with
# `python docs/lessons/03_two_layer_net.py --check`.
#
# 1. Write ReLU's backward by hand in numpy: given `h` and the gradient of `relu(h)`, return
#    the gradient of `h`.
# 2. Write a custom `E.Function` for `x**3` whose `backward` is your own formula, and return
#    the class.
# 3. Build a compiled SGD step for linear regression with the update inside the graph: each
#    call must move the variable `w` towards the least-squares answer.
