"""Control-flow ops: `cond`, `while_loop`, `scan`, and `item`, which picks a part of their tuple.

Declared here, with every other op, so the registry is complete once `common` is imported. A
control op's params hold its bodies: traced subgraphs made by the symbolic engine, of which
the kernels need only `body.run(xp, *args)`. The VJP rules build symbolic nodes (they inline
bodies and run reverse scans), so each rule here is a trampoline to the body object, whose
class (`symbolic.control.Body`) carries the real rule: `common` imports no engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.autodiff import PartialTuple
from common.ops.core import Aval, OpDef, OpError, declare

__all__: list[str] = []  # reached as `OPS[name]`, or through F.cond, F.while_loop, F.scan

TUPLE = Aval(None, np.dtype(object))  # the abstract value of a control node's tuple


def _tuple(*args: Any, **params: Any) -> Aval:
    return TUPLE


def _owned(xp: Any, outputs: Any, inputs: tuple) -> tuple:
    """`outputs`, each copied if it may share memory with an input. A body that returns its
    argument (or a view of it, or a value it reads) hands back that very array; but a control
    node, like every op not declared a view, must return memory of its own: the memory plan
    hands an input's buffer to a later value once the input dies."""
    arrays = [a for a in inputs if isinstance(a, xp.ndarray)]
    return tuple(o.copy() if any(xp.may_share_memory(o, a) for a in arrays) else o for o in outputs)


# ---- item: one part of a control node's tuple -----------------------------------------

ITEM = declare(OpDef(
    "item", "control", lambda xp, t, index, aval: t[index],
    lambda t, index, aval: Aval(aval[0], np.dtype(aval[1])),
    vjp=(lambda g, out, t, index, aval: PartialTuple({index: g}),),
))  # fmt: skip


# ---- cond -------------------------------------------------------------------------------


def _cond_kernel(xp, pred, *args, branches, out_avals):
    return _owned(xp, branches[0 if bool(pred) else 1].run(xp, *args), args)


def _cond_vjp(g, out, *args, branches, out_avals):
    return branches[0].cond_vjp(g, out, *args, branches=branches, out_avals=out_avals)


COND = declare(OpDef("cond", "control", _cond_kernel, _tuple, vjp=_cond_vjp))


# ---- while_loop -------------------------------------------------------------------------


def _while_kernel(xp, *args, test, body, n_carry, out_avals):
    """The final carry; with a float carry also the trip count and the carries each
    iteration started from, stacked (the tape of the loop: out_avals says which)."""
    carry, caps = list(args[:n_carry]), args[n_carry:]
    saving, befores = len(out_avals) > n_carry, []
    while bool(test.run(xp, *carry, *caps)[0]):
        if saving:
            befores.append(carry)
        carry = list(body.run(xp, *carry, *caps))
    final = _owned(xp, carry, args)  # no step ran, or the body kept a carry
    if not saving:
        return final
    stacked = [
        xp.stack([c[i] for c in befores]) if befores else xp.empty((0, *a.shape), a.dtype)
        for i, a in enumerate(args[:n_carry])
    ]
    return (*final, xp.asarray(len(befores), dtype=xp.int64), *stacked)  # stacks are fresh


def _while_vjp(g, out, *args, test, body, n_carry, out_avals):
    return body.while_vjp(g, out, *args, test=test, body=body, n_carry=n_carry, out_avals=out_avals)


WHILE = declare(OpDef("while_loop", "control", _while_kernel, _tuple, vjp=_while_vjp))


# ---- scan -------------------------------------------------------------------------------


def _scan_kernel(xp, *args, body, n_carry, n_xs, n_ys, out_avals):
    carry = list(args[:n_carry])
    xs, caps = args[n_carry : n_carry + n_xs], args[n_carry + n_xs :]
    if xs[0].shape[0] == 0:  # as eagerly: no step, no ys to stack
        raise OpError("scan: the sequence is empty. Fix: scan over at least one step.")
    befores, ys = [], []
    for t in range(xs[0].shape[0]):
        befores.append(carry)
        outs = body.run(xp, *carry, *(x[t] for x in xs), *caps)
        carry, ys = list(outs[:n_carry]), ys + [outs[n_carry:]]
    stacked_ys = [xp.stack([step[i] for step in ys]) for i in range(n_ys)]
    stacked_carries = [xp.stack([c[i] for c in befores]) for i in range(n_carry)]
    return (*_owned(xp, carry, args), *stacked_ys, *stacked_carries)  # stacks are fresh


def _scan_vjp(g, out, *args, body, n_carry, n_xs, n_ys, out_avals):
    return body.scan_vjp(
        g, out, *args, body=body, n_carry=n_carry, n_xs=n_xs, n_ys=n_ys, out_avals=out_avals
    )


SCAN = declare(OpDef("scan", "control", _scan_kernel, _tuple, vjp=_scan_vjp))
