"""Tutorial 1: define-by-run. Each line runs the moment Python reaches it, and the tape
remembers what ran, so `backward()` can walk it in reverse.

Run it: python docs/tutorials/01_define_by_run.py
"""

import numpy as np

import eager as E
from common import functional as F

# 1. Ops run immediately: `y` holds numbers, not a description of a computation.
x = E.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
y = F.tanh(x @ x).sum()
print("y =", y)

# 2. The tape: every result that needs a gradient remembers the op that made it.
node, chain = y.grad_fn, []
while node is not None:
    chain.append(node.name)
    node = next((a.grad_fn for a in node.inputs if getattr(a, "grad_fn", None)), None)
print("recorded, last op first:", " <- ".join(chain))

# 3. backward() applies each op's VJP rule in reverse and fills x.grad.
y.backward()
print("dy/dx =", x.grad)


# 4. Because the graph is rebuilt on every run, ordinary Python control flow just works:
#    the number of recorded ops depends on the data.
def collatz_steps(n):
    v = E.tensor(float(n), requires_grad=True)
    out, steps = v, 0
    while out.item() != 1.0:
        out = out / 2 if out.item() % 2 == 0 else 3 * out + 1
        steps += 1
    return steps


print("ops recorded for 6 and for 7:", collatz_steps(6), collatz_steps(7))

# 5. Gradients of gradients: create_graph=True records the backward pass too.
a = E.tensor(3.0, requires_grad=True)
(da,) = E.grad(a**3, [a], create_graph=True)
(dda,) = E.grad(da, [a])
print(f"d/da a^3 = {da.item()} (3a^2),  d2/da2 a^3 = {dda.item()} (6a)")
assert np.isclose(da.item(), 27.0) and np.isclose(dda.item(), 18.0)
