"""Tutorial 2: define-then-run. Symbols are values that do not exist yet: applying ops to
them builds a graph, which is compiled once and then run many times.

Run it: python docs/tutorials/02_define_then_run.py
"""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F

# 1. The seeds' example: nothing is computed on these lines, a graph is built.
a = S.placeholder()
b = S.placeholder()
c = (a**2 + b**2) ** 0.5
print("c is", c, "- callable:", callable(c))
print("c(3, 4) =", c(3, 4))  # compiled on the first call, then run

# 2. The graph, as the compiler sees it: one line per node, each with its source line.
f = S.compile(c, inputs=[a, b])
print(f.graph)

# 3. The compile step writes straight-line Python that calls the same kernels eager runs.
print(f.source)

# 4. Gradients are graphs too: S.grad applies the same VJP rules, building nodes.
da, db = S.grad(c, [a, b])
print("dc/da, dc/db at (3, 4):", S.compile([da, db], inputs=[a, b])(3.0, 4.0))

# 5. Shapes are known before anything runs, so a mismatch fails at the line that made it.
x = S.placeholder((3, 4), name="x")
try:
    x + S.placeholder((5,), name="y")
except ValueError as err:
    print("caught at build time:", err)

# 6. Python cannot branch on a value that does not exist yet...
try:
    if x.sum() > 0:
        pass
except TypeError as err:
    print("caught:", str(err).split(":")[0])

# ...so data-dependent choices are ops: F.where elementwise, F.cond for whole branches.
y = F.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
ones = np.ones((3, 4), np.float32)
print("cond on a positive sum doubles:", S.compile(y, inputs=[x])(ones)[0, 0])

# 7. The same code runs eagerly: F.cond is plain Python on tensors.
print(
    "eagerly:",
    F.cond(E.tensor(ones).sum() > 0, lambda v: v * 2, lambda v: -v, E.tensor(ones))[0, 0].item(),
)

# 8. Training inside the graph: the update is part of the compiled step (Theano/TF1 style).
w = S.variable(np.zeros(3, np.float32), name="w")
xs, ys = S.placeholder((8, 3), name="xs"), S.placeholder((8,), name="ys")
loss = F.mse_loss(xs @ w, ys)
(g,) = S.grad(loss, [w])
step = S.compile(loss, inputs=[xs, ys], updates={w: w - 0.1 * g})
rng = np.random.default_rng(0)
data_x = rng.normal(size=(8, 3)).astype(np.float32)
data_y = data_x @ np.array([1.0, -2.0, 0.5], np.float32)
for _ in range(300):
    last = step(data_x, data_y)
print("learned w:", w.value.round(3), "final loss:", float(last))
assert np.allclose(w.value, [1.0, -2.0, 0.5], atol=1e-2)
