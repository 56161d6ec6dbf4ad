"""Algebraic simplification: one case per rule of `RULES` shows it fires and keeps the values;
a second table shows each rule holding back where rewriting would change a shape or a dtype."""

from typing import Callable, NamedTuple

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from common.dispatch import apply
from common.ops import OPS
from symbolic.passes import pass_names
from symbolic.passes.simplify import RULES, simplify
from tests.helpers import assert_identical

F32 = ((2, 3, 4), "float32")
ROW = ((4,), "float32")
I32 = ((2, 3, 4), "int32")


class Case(NamedTuple):
    rule: str  # the rule the case is about (a function name in RULES)
    build: Callable  # placeholders -> the symbol to compile
    inputs: list  # (shape, dtype) per placeholder
    ops_after: list  # op names left once simplify (and dead-code elimination) ran
    exact: bool = True  # bit for bit against optimize=0, else within float32 tolerance


def _op(name: str, *args, **params):
    """The op itself, bypassing F's own shortcuts (F.reshape to the same shape returns x):
    these no-op nodes are what gradients and traced models leave behind."""
    return apply(OPS[name], *args, **params)


FIRES = {
    "x * 1": Case("identity_operand", lambda x: x * 1, [F32], []),
    "1 * x": Case("identity_operand", lambda x: 1.0 * x, [F32], []),
    "x * constant 1": Case("identity_operand", lambda x: x * S.constant(np.float32(1)), [F32], []),
    # -0.0 + 0 is +0.0 but the rewrite gives -0.0 back: equal values, not equal bits
    "x + 0": Case("identity_operand", lambda x: x + 0, [F32], [], exact=False),
    "0 + x": Case("identity_operand", lambda x: 0.0 + x, [F32], [], exact=False),
    "x - 0": Case("identity_operand", lambda x: x - 0.0, [F32], []),
    "x / 1": Case("identity_operand", lambda x: x / 1, [F32], []),
    "x ** 1": Case("identity_operand", lambda x: x**1, [F32], []),
    "int x ** 1": Case("identity_operand", lambda x: x**1, [I32], []),
    "x ** 2 -> mul": Case("strength_reduction", lambda x: x**2, [F32], ["mul"]),
    "int x ** 2 -> mul": Case("strength_reduction", lambda x: x**2, [I32], ["mul"]),
    "x ** 0.5 -> sqrt": Case("strength_reduction", lambda x: x**0.5, [F32], ["sqrt"]),
    "int x ** 0.5 -> sqrt in f64": Case("strength_reduction", lambda x: x**0.5, [I32], ["sqrt"]),
    "--x": Case("double_negation", lambda x: F.neg(-x), [F32], []),
    "permute of permute is x": Case(
        "chained_shape_ops", lambda x: F.permute(F.permute(x, (1, 2, 0)), (2, 0, 1)), [F32], []
    ),
    "permute of permute is one permute": Case(
        "chained_shape_ops",
        lambda x: F.permute(F.permute(x, (1, 0, 2)), (0, 2, 1)),
        [F32],
        ["permute"],
    ),
    "reshape of reshape is one reshape": Case(
        "chained_shape_ops", lambda x: x.reshape(6, 4).reshape(4, 6), [F32], ["reshape"]
    ),
    "reshape of reshape is x": Case(
        "chained_shape_ops", lambda x: x.reshape(6, 4).reshape(2, 3, 4), [F32], []
    ),
    "reshape to its own shape": Case(
        "no_op", lambda x: _op("reshape", x, shape=(2, 3, 4)), [F32], []
    ),
    "broadcast_to its own shape": Case(
        "no_op", lambda x: _op("broadcast_to", x, shape=(2, 3, 4)), [F32], []
    ),
    "broadcast_like itself": Case("no_op", lambda x: _op("broadcast_like", x, x), [F32], []),
    "sum_to_like itself": Case("no_op", lambda x: _op("sum_to_like", x, x), [F32], []),
    "cast to its own dtype": Case("no_op", lambda x: F.cast(x, "float32"), [F32], []),
    "identity permute": Case("no_op", lambda x: F.permute(x, (0, 1, 2)), [F32], []),
    "stop_gradient": Case("no_op", lambda x: F.stop_gradient(x), [F32], []),
    "squeeze of expand_dims": Case(
        "squeeze_of_expand", lambda x: F.squeeze(F.expand_dims(x, 1), 1), [F32], []
    ),
    "add of broadcast_to": Case(
        "implicit_broadcast", lambda x, r: F.broadcast_to(r, (2, 3, 4)) + x, [F32, ROW], ["add"]
    ),
    "mul of broadcast_like": Case(
        "implicit_broadcast", lambda x, r: x * F.broadcast_like(r, x), [F32, ROW], ["mul"]
    ),
}

HOLDS_BACK = {
    "int x * 1.0 is a float": Case("identity_operand", lambda x: x * 1.0, [I32], ["mul"]),
    "bool x + 0 is an int": Case("identity_operand", lambda x: x + 0, [((3,), "bool")], ["add"]),
    "int x / 1 is a float": Case("identity_operand", lambda x: x / 1, [I32], ["div"]),
    "f32 x + f64 zero is f64": Case(
        "identity_operand", lambda x: x + S.constant(np.array(0.0)), [F32], ["add"]
    ),
    "x + a 0 of more axes": Case(
        "identity_operand",
        lambda x: x + S.constant(np.zeros((1, 1, 1, 1), np.float32)),
        [F32],
        ["add"],
    ),
    "x * a 1 of more axes": Case(
        "identity_operand",
        lambda x: x * S.constant(np.ones((1,), np.float32)),
        [((), "float32")],
        ["mul"],
    ),
    "0 - x is not x": Case("identity_operand", lambda x: 0.0 - x, [F32], ["sub"]),
    "int x ** 2.0 is a float": Case("strength_reduction", lambda x: x**2.0, [I32], ["pow"]),
    "f32 x ** f64 2 is f64": Case(
        "strength_reduction", lambda x: x ** S.constant(np.array(2.0)), [F32], ["pow"]
    ),
    "x ** a 2 of more axes": Case(
        "strength_reduction",
        lambda x: x ** S.constant(np.full((1, 1), 2.0, np.float32)),
        [ROW],
        ["pow"],
    ),
    "single neg": Case("double_negation", lambda x: -x, [F32], ["neg"]),
    "reshape to a new shape": Case("no_op", lambda x: x.reshape(6, 4), [F32], ["reshape"]),
    "cast to another dtype": Case("no_op", lambda x: F.cast(x, "float64"), [F32], ["cast"]),
    "permute that moves axes": Case("no_op", lambda x: F.permute(x, (2, 0, 1)), [F32], ["permute"]),
    "squeeze of another axis": Case(
        "squeeze_of_expand",
        lambda x: F.squeeze(F.expand_dims(x, 0), 1),
        [((1, 4), "float32")],
        ["expand_dims", "squeeze"],
    ),
    "broadcast the other operand does not do": Case(
        "implicit_broadcast",
        lambda x, r: F.broadcast_to(r, (2, 3, 4)) + x[0],
        [F32, ROW],
        ["broadcast_to", "getitem", "add"],
    ),
}


def _feed(shape: tuple, dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(-5, 6, size=shape).astype(dtype)
    value = rng.normal(size=shape).astype(dtype)
    value.flat[0] = -0.0  # signed zeros tell exact rewrites from nearly exact ones
    return value


def _compile_simplified(case: Case) -> tuple:
    inputs = [
        S.placeholder(shape, dtype, name=f"in{i}") for i, (shape, dtype) in enumerate(case.inputs)
    ]
    out = case.build(*inputs)
    reference = S.compile(out, inputs=inputs, optimize=0)
    others = [n for n in pass_names() if n not in ("simplify", "dce")]
    simplified = S.compile(out, inputs=inputs, optimize=2, disable=others)
    return out, reference, simplified


def _rules_fired(compiled) -> set[str]:
    (stage,) = [s for s in compiled.report.stages if s.stage == "simplify"]
    return {change.split(":")[0] for change in stage.changes}


def _check_values(case: Case, reference, simplified, rng) -> None:
    feeds = [_feed(shape, dtype, rng) for shape, dtype in case.inputs]
    with np.errstate(invalid="ignore"):  # x ** 0.5 of negative numbers: nan either way
        want, got = reference(*feeds), simplified(*feeds)
    if case.exact:
        assert_identical(got, want, "simplified vs optimize=0")
    else:
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", sorted(FIRES))
def test_rule_fires_and_keeps_the_values(name, rng):
    case = FIRES[name]
    out, reference, simplified = _compile_simplified(case)
    assert case.rule in _rules_fired(simplified)
    assert [n.op_name for n in simplified.graph.ops] == case.ops_after, str(simplified.graph)
    assert simplified.graph.outputs[0].aval == out.node.aval
    _check_values(case, reference, simplified, rng)
    again, changes = simplify(simplified.graph)
    assert changes == [], "a second simplify found more work: the first one stopped early"


@pytest.mark.parametrize("name", sorted(HOLDS_BACK))
def test_rule_holds_back_where_it_would_change_shape_or_dtype(name, rng):
    case = HOLDS_BACK[name]
    out, reference, simplified = _compile_simplified(case)
    assert simplified.graph.outputs[0].aval == out.node.aval
    assert case.rule not in _rules_fired(simplified)
    assert [n.op_name for n in simplified.graph.ops] == case.ops_after, str(simplified.graph)
    _check_values(case, reference, simplified, rng)


def test_every_rule_has_a_case_that_fires_it():
    """A rule added to RULES without a case here fails this test."""
    assert {rule.__name__ for rule in RULES} == {case.rule for case in FIRES.values()}


def test_every_rule_has_a_case_where_it_holds_back():
    assert {rule.__name__ for rule in RULES} - {case.rule for case in HOLDS_BACK.values()} <= {
        "chained_shape_ops"
    }  # permute/reshape chains compose whatever the shapes


def test_the_change_list_names_the_rule_the_node_and_its_replacement():
    x = S.placeholder((3,), name="x")
    y = F.exp(x * 1) ** 2
    graph = S.Graph([x.node], [y.node])
    after, changes = simplify(graph)
    assert len(changes) == 2
    assert changes[0].startswith("identity_operand: %") and "= mul(" in changes[0]
    assert changes[0].endswith(f"-> {after.numbering.label(x.node)}")
    assert changes[1].startswith("strength_reduction: %") and "= pow(" in changes[1]
    assert changes[1].endswith(f"-> {after.numbering.label(after.outputs[0])}")
    assert after.outputs[0].op_name == "mul" and after.outputs[0].inputs[0].op_name == "exp"


def test_a_rewritten_node_keeps_the_user_lines_it_replaced():
    x = S.placeholder((2, 3, 4), name="x")
    first = F.permute(x, (1, 0, 2))
    second = F.permute(first, (0, 2, 1))
    simplified, _ = simplify(S.Graph([x.node], [second.node]))
    merged = simplified.outputs[0]
    assert merged.source == first.node.source
    assert second.node.source in merged.provenance
    assert merged.params["dims"] == (1, 2, 0)
