"""A compiled graph lowered onto Dask ahead of time: each node that works row by row becomes
one task per block of batch rows (`dask.array.blockwise`), each node that sums over the batch
a tree of partial results (Dask's own reductions), so one call runs across a cluster, or on
Dask's threads, and equals the local call.

    lowered = f.to_dask(chunks={"x": 16, "labels": 16})   # rows per block of batched inputs
    loss, logits = lowered(x, labels)      # Dask arrays: a task graph, nothing has run yet
    loss, logits = lowered.compute(x, labels)   # numpy, as f(x, labels) returns them

Which nodes split is decided before anything runs, from the graph alone: a node whose
inputs' rows mix (a reshape across rows, a loop over the batch) is named in a `SplitError`.
Tasks carry op names from the registry and their params, never code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ModuleNotFoundError as missing:  # an optional extra
    raise ModuleNotFoundError(
        "f.to_dask needs Dask. Fix: pip install 'dask[distributed]' (diptych's `dist` extra)."
    ) from missing

from common.fusion import FusedKernel, Program
from common.ops import OPS
from common.ops.indexing import ARRAY
from symbolic.graph import Node, Numbering
from symbolic.symbol import Symbol, at_line


class SplitError(ValueError):
    """A graph, or a node of it, that cannot run in blocks of batch rows: says which node
    (op and the user's line) and why."""


@dataclass(frozen=True)
class Rows:
    """A value split by batch rows: its `axis` holds the batch, `per_row` entries of that axis
    for each row of the batch (a reshape may fold a row's 8x8 pixels into 64 rows)."""

    axis: int
    per_row: int = 1


@dataclass(frozen=True)
class Tree:
    """A node that reduces over the batch: one partial result per block, then Dask's tree
    reduction combines the partials with `combine` (sum, max or min)."""

    combine: str


@dataclass(frozen=True)
class BlockKernel:
    """What one task runs: a registered op (by name) or a fused group's program (registered
    ops in order) on numpy blocks. `stacked` gives a partial result a leading axis of one,
    one slice per block, for the tree reduction to combine."""

    op: str | Program
    params: tuple  # sorted (name, value) pairs
    stacked: bool = False

    def __call__(self, *args: Any) -> Any:
        if isinstance(self.op, Program):
            out = _run_program(self.op, args)
        else:
            out = OPS[self.op].kernel(np, *args, **dict(self.params))
        out = np.asarray(out)
        return out[None] if self.stacked else out


def _run_program(program: Program, inputs: tuple) -> Any:
    values: list = []
    for step in program.steps:
        args = [
            inputs[v] if kind == "in" else values[v] if kind == "t" else v for kind, v in step.args
        ]
        values.append(OPS[step.op].kernel(np, *args, **dict(step.params)))
    return values[-1]


class _Unsplittable(Exception):
    """Why a node cannot run by blocks of rows (becomes a SplitError naming the node)."""


# ---- the rules: where each op's output holds the batch -----------------------------------


def _ndim(value: Any) -> int:
    return len(value.shape) if isinstance(value, Node) else 0


def _broadcast(node: Node, layouts: list, core: int = 0) -> Rows:
    """Inputs aligned from the right (numpy's broadcasting) over all but their last `core`
    axes: the split ones must put the batch on one output axis, and no whole input may
    span that axis."""
    rank = len(node.shape)
    found = set()
    for value, layout in zip(node.inputs, layouts):
        if layout is not None:
            if layout.axis >= _ndim(value) - core:
                raise _Unsplittable(f"the batch is on a core axis of {value.label}")
            found.add(Rows(layout.axis + rank - _ndim(value), layout.per_row))
    if len(found) != 1:
        raise _Unsplittable("its inputs hold the batch on different axes")
    out = found.pop()
    for value, layout in zip(node.inputs, layouts):
        at = out.axis - (rank - _ndim(value))
        if layout is None and isinstance(value, Node) and at >= 0 and value.shape[at] != 1:
            raise _Unsplittable(f"{value.label} {value.type_str()} spans the batch axis whole")
    return out


def _reduction(node: Node, layouts: list) -> Rows | Tree:
    rows, axes = layouts[0], node.params["axis"]
    axes = (axes,) if isinstance(axes, int) else axes
    if axes is None or rows.axis in axes:
        if node.op_name not in ("sum", "max", "min"):
            raise _Unsplittable(f"{node.op_name} over the batch has no tree reduction")
        return Tree(node.op_name)
    kept = rows.axis if node.params["keepdims"] else rows.axis - sum(a < rows.axis for a in axes)
    return Rows(kept, rows.per_row)


def _sum_to_like(node: Node, layouts: list) -> Rows | Tree:
    x, like = node.inputs
    if layouts[1] is not None:
        return _broadcast(node, layouts)
    at = layouts[0].axis - (_ndim(x) - _ndim(like))
    if at >= 0 and like.shape[at] != 1:
        raise _Unsplittable(f"{like.label} {like.type_str()} spans the batch axis whole")
    return Tree("sum")  # the batch axis is summed away


def _matmul(node: Node, layouts: list) -> Rows | Tree:
    (a, b), (la, lb) = node.inputs, layouts
    if la and lb and la.axis == _ndim(a) - 1 and lb.axis == max(_ndim(b) - 2, 0):
        return Tree("sum")  # the product sums over the batch: x.T @ g, a weight's gradient
    if min(_ndim(a), _ndim(b)) < 2:
        raise _Unsplittable("a vector operand holds the batch")
    rank = len(node.shape)
    if lb is None and la.axis == _ndim(a) - 2:
        return Rows(rank - 2, la.per_row)  # rows of x @ w
    if la is None and lb.axis == _ndim(b) - 1:
        return Rows(rank - 1, lb.per_row)  # columns of w @ x.T
    return _broadcast(node, layouts, core=2)  # a stack of matrices, one per batch row


def _linear(node: Node, layouts: list) -> Rows | Tree:
    x, (lx, lw) = node.inputs[0], layouts
    if lx and lw and lx.axis == _ndim(x) - 1 and lw.axis == 1:
        return Tree("sum")
    if lw is None and lx.axis < _ndim(x) - 1:
        return lx
    raise _Unsplittable("the weight holds the batch")


def _reshape(node: Node, layouts: list) -> Rows:
    (x,), (rows,) = node.inputs, layouts
    per_batch_row = math.prod(x.shape[1:]) * rows.per_row
    inner = math.prod(node.shape[1:])
    batch = x.shape[0] // rows.per_row
    if rows.axis != 0 or inner == 0 or per_batch_row % inner:
        raise _Unsplittable("the new shape mixes batch rows")
    out = Rows(0, per_batch_row // inner)
    if node.shape[0] != batch * out.per_row:
        raise _Unsplittable("the new shape mixes batch rows")
    return out


def _getitem(node: Node, layouts: list) -> Rows:
    rows, template = layouts[0], node.params["index"]
    if any(isinstance(part, str) and part == ARRAY for part in template):
        raise _Unsplittable("an array index may pick rows from anywhere")
    spread = _ndim(node.inputs[0]) - sum(p is not None and p is not Ellipsis for p in template)
    parts = [q for p in template for q in ([slice(None)] * spread if p is Ellipsis else [p])]
    axis_in = axis_out = 0
    for part in parts:
        if part is None:
            axis_out += 1
            continue
        if axis_in == rows.axis:
            if part != slice(None):
                raise _Unsplittable("the index picks among the batch rows")
            return Rows(axis_out, rows.per_row)
        axis_in, axis_out = axis_in + 1, axis_out + (not isinstance(part, int))
    return Rows(axis_out + rows.axis - axis_in, rows.per_row)


def _same_axis(node: Node, layouts: list) -> Rows:
    """Ops that keep the axes before their last ones (one_hot, unfold, pad off the batch)."""
    rows = layouts[0]
    if node.op_name == "unfold" and rows.axis >= 2:
        raise _Unsplittable("the windows slide along the batch axis")
    if node.op_name == "pad" and node.params["widths"][rows.axis] != (0, 0):
        raise _Unsplittable("it pads the batch axis")
    return rows


def _moved(node: Node, layouts: list) -> Rows:
    """permute, expand_dims and squeeze move the batch axis; concat keeps it."""
    rows, params = layouts[0], node.params
    if node.op_name == "permute":
        return Rows(params["dims"].index(rows.axis), rows.per_row)
    if node.op_name == "expand_dims":
        return Rows(rows.axis + (params["axis"] <= rows.axis), rows.per_row)
    if node.op_name == "squeeze":
        if rows.axis in params["axis"]:
            raise _Unsplittable("it squeezes the batch axis away")
        return Rows(rows.axis - sum(a < rows.axis for a in params["axis"]), rows.per_row)
    if len(set(layouts)) != 1 or params["axis"] == rows.axis:
        raise _Unsplittable("it joins along the batch, or joins whole inputs to split ones")
    return rows


RULES = {
    "sum": _reduction, "max": _reduction, "min": _reduction,
    "argmax": _reduction, "argmin": _reduction, "sum_to_like": _sum_to_like,
    "matmul": _matmul, "linear": _linear, "reshape": _reshape, "getitem": _getitem,
    "one_hot": _same_axis, "unfold": _same_axis, "pad": _same_axis,
    "permute": _moved, "expand_dims": _moved, "squeeze": _moved, "concat": _moved,
    "broadcast_like": _broadcast, "stop_gradient": _broadcast, "binary_cross_entropy": _broadcast,
}  # fmt: skip


def split_rule(node: Node, layouts: list) -> Rows | Tree | None:
    """How `node` runs when some inputs are split by rows (`layouts`, None: whole): by
    blocks (its output's `Rows`), as a tree reduction, or whole (None: nothing is split)."""
    if node.op.kind == "control":
        raise _Unsplittable("a control-flow op holds graphs of its own, which tasks do not carry")
    if all(layout is None for layout in layouts):
        return None
    if node.op.kind == "elementwise":
        return _broadcast(node, layouts)
    rule = RULES.get(node.op_name)
    if rule is None:
        stateful = node.op.kind == "random"
        raise _Unsplittable(
            "each block would draw its own random numbers"
            if stateful
            else "diptych has no rule for splitting it by rows"
        )
    return rule(node, layouts)


# ---- lowering: the plan, then one Dask array per node ------------------------------------


@dataclass(frozen=True)
class Lowered:
    """One node's place in the task graph: whole (None), by blocks (`Rows`), or a `Tree`."""

    node: Node
    how: Rows | Tree | None
    layouts: tuple  # of its inputs: Rows, or None for whole values and literals


class DaskFunction:
    """A compiled function lowered onto Dask for inputs split in blocks of rows along axis 0.
    Calling it builds Dask arrays (nothing runs); `compute` runs them on the scheduler in force:
    a `distributed.Client`'s cluster if one is open, else Dask's threads."""

    def __init__(self, fn: Any, chunks: dict) -> None:
        self.fn = fn
        self.rows = _rows_per_block(fn, chunks)  # placeholder id -> rows per block
        self._numbers = fn.graph.numbering or Numbering(fn.graph)
        self.plan = self._plan()

    def _plan(self) -> list[Lowered]:
        """Each op's place, decided from the graph before anything runs (sources are split
        when chunks= names them, else whole)."""
        layout: dict[int, Rows | None] = {node_id: Rows(0) for node_id in self.rows}
        plan = []
        with self._numbers.active():
            for node in self.fn.graph.ops:
                layouts = tuple(
                    layout.get(a.id) if isinstance(a, Node) else None for a in node.inputs
                )
                try:
                    how = split_rule(node, list(layouts))
                except _Unsplittable as why:
                    raise _split_error(node, str(why)) from None
                if node.shape is None or None in node.shape:
                    raise _split_error(node, "its shape is known only when it runs")
                layout[node.id] = how if isinstance(how, Rows) else None
                plan.append(Lowered(node, how, layouts))
        return plan

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        feeds = self.fn._feeds(args, kwargs)
        arrays: dict[int, Any] = {}
        for node, value in zip(self.fn.graph.inputs, feeds):
            rows = self.rows.get(node.id)
            chunks = (rows, *value.shape[1:]) if rows else value.shape
            arrays[node.id] = da.from_array(value, chunks=chunks)
        for node in self.fn.graph.nodes:
            if node.op in ("variable", "constant"):
                value = node.value.data if node.op == "variable" else node.value
                value = np.array(value)  # a copy: training may move the weights before it runs
                arrays[node.id] = da.from_array(value, chunks=value.shape)
        for step in self.plan:
            arrays[step.node.id] = _lower(step, arrays)
        outputs = [arrays[n.id] for n in self.fn.graph.outputs]
        return outputs[0] if self.fn._single else outputs

    def compute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the lowered graph: numpy results, as the compiled function's call gives."""
        outputs = self(*args, **kwargs)
        results = dask.compute(*(outputs if isinstance(outputs, list) else [outputs]))
        results = [r[()] if r.ndim == 0 else r for r in map(np.asarray, results)]
        return results[0] if self.fn._single else results


def _split_error(node: Node, why: str) -> SplitError:
    return SplitError(
        at_line(
            f"to_dask: {node.label} = {node.op_name}{_expression(node)} cannot run in blocks "
            f"of batch rows: {why}. Fix: compute it outside the lowered function, or leave "
            "its inputs whole (out of chunks=).",
            node.source,
        )
    )


def _expression(node: Node) -> str:
    """A fused group's members, so the error names the user's ops, not a kernel."""
    kernel = node.op.kernel
    return f" ({kernel.program.expression()})" if isinstance(kernel, FusedKernel) else ""


def _rows_per_block(fn: Any, chunks: dict) -> dict[int, int]:
    placeholders = fn.graph.inputs
    rows: dict[int, int] = {}
    for key, count in chunks.items():
        node = key.node if isinstance(key, Symbol) else None
        matches = [n for n in placeholders if n is node or (node is None and n.name == key)]
        if len(matches) != 1:
            names = ", ".join(repr(n.name) for n in placeholders)
            raise SplitError(
                f"to_dask: chunks names {key!r}, which is {'ambiguous' if matches else 'not'} a "
                f"placeholder of the function. Fix: name one of {names}, or pass the symbol."
            )
        if not isinstance(count, int) or count < 1:
            raise SplitError(f"to_dask: rows per block must be a positive int, got {count!r}.")
        rows[matches[0].id] = count
    batched = [n for n in placeholders if n.id in rows]
    sizes = {n.shape[0] if n.shape else None for n in batched}
    if len(set(rows.values())) > 1 or len(sizes) > 1 or None in sizes:
        raise SplitError(
            "to_dask: every input in chunks= needs the same known batch size on axis 0 and "
            f"the same rows per block; got {[(n.name, n.type_str()) for n in batched]} with "
            f"{sorted(set(rows.values()))} rows. Fix: compile with the batch size you feed."
        )
    if fn.graph.updates:
        raise SplitError(
            "to_dask: lowers functions without updates. Fix: compile the loss and gradients "
            "as outputs, and apply the updates to the results."
        )
    return rows


def _lower(step: Lowered, arrays: dict) -> Any:
    """The node as `dask.array.blockwise`: index "b" runs over the blocks of rows; every other
    axis is one block. A tree's partials get a leading "b" axis, which Dask then reduces."""
    node, how = step.node, step.how
    kernel = BlockKernel(_block_op(node), _block_params(node, how), isinstance(how, Tree))
    args: list = []
    for i, (value, layout) in enumerate(zip(node.inputs, step.layouts)):
        if not isinstance(value, Node):
            args += [value, None]  # a literal, passed as it is
            continue
        index = [f"in{i}_{d}" for d in range(_ndim(value))]
        if layout is not None:
            index[layout.axis] = "b"
        args += [arrays[value.id], tuple(index)]
    out = [f"out{d}" for d in range(len(node.shape))]
    new_axes = dict(zip(out, node.shape))
    adjust: dict = {}
    if isinstance(how, Rows):
        del new_axes[out[how.axis]]
        out[how.axis] = "b"
        split = next(layout for layout in step.layouts if layout is not None)
        if split.per_row != how.per_row:  # a reshape folding rows in or out
            adjust["b"] = lambda size: size * how.per_row // split.per_row
    elif isinstance(how, Tree):
        out.insert(0, "b")
        adjust["b"] = lambda size: 1  # one partial per block
    blocks = da.blockwise(
        kernel,
        tuple(out),
        *args,
        name=f"{node.op_name}-{tokenize(kernel, *args)}",
        new_axes=new_axes,
        adjust_chunks=adjust or None,
        concatenate=True,
        dtype=node.dtype,
        meta=np.empty((0,) * len(out), node.dtype),
    )
    if isinstance(how, Tree):
        return getattr(da, how.combine)(blocks, axis=0)
    return blocks


def _block_op(node: Node) -> str | Program:
    kernel = node.op.kernel
    return kernel.program if isinstance(kernel, FusedKernel) else node.op_name


def _block_params(node: Node, how: Rows | Tree | None) -> tuple:
    params = dict(node.params)
    if node.op_name == "reshape" and isinstance(how, Rows):
        params["shape"] = (-1, *node.shape[1:])  # a block's rows, whatever their count
    return tuple(sorted(params.items()))
