"""Tutorial 3: what deferred execution buys. The whole graph is known before it runs, so the
compiler can rewrite it: fold constants, simplify, merge duplicates, drop dead code, fuse
elementwise chains into one generated kernel, and plan memory.

Run it: python docs/tutorials/03_optimizing_the_graph.py
"""

import math

import numpy as np

import symbolic as S
from common import functional as F

# 1. A function with everything the passes look for.
x = S.placeholder((100_000,), name="x")
scale = S.constant(2.0) * S.constant(3.0)  # only constants: folded at compile time
y = x * 1 + 0  # identities: simplified away
z = F.tanh(y) + F.tanh(y)  # the same subexpression twice: computed once
gelu = 0.5 * z * (1 + F.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))  # fusable
out = gelu * scale

# 2. Compile at each level and compare the graphs' sizes.
for level in (0, 1, 2):
    f = S.compile(out, inputs=[x], optimize=level)
    print(f"optimize={level}: {len(f.graph.ops)} ops")

# 3. The report: what each pass changed, with a snapshot of the graph after each one.
f = S.compile(out, inputs=[x], optimize=2)
print(f.report)

# 4. The fused kernel's generated expression and where it came from.
fused = [n for n in f.graph.ops if n.op.name.startswith("fused")]
print("fused expression:", fused[0].op.doc)
print("it replaced the user's lines:", sorted(set(fused[0].provenance))[:3])

# 5. Every level computes the same values (fusion may reorder float arithmetic slightly).
value = np.linspace(-3, 3, 100_000, dtype=np.float32)
reference = S.compile(out, inputs=[x], optimize=0)(value)
np.testing.assert_allclose(f(value), reference, rtol=1e-5, atol=1e-6)
print("optimize=2 matches optimize=0: yes")

# 6. Passes can be switched off by name, to see what each is worth.
no_fusion = S.compile(out, inputs=[x], optimize=2, disable=["fusion"])
print(f"without fusion: {len(no_fusion.graph.ops)} ops; with: {len(f.graph.ops)}")
