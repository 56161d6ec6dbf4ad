"""ONNX export checked by onnx.checker and in onnxruntime, and import back into both engines
(symbolic/serialize/onnx). Every op with test samples and every zoo model is exported and run."""

# ruff: noqa: E402  (the imports after the skips need the optional onnx packages)

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX needs the `export` extra: pip install 'diptych[export]'")
pytest.importorskip("onnxruntime", reason="needs the `export` extra: pip install 'diptych[export]'")

import onnx
from onnx import TensorProto, helper, numpy_helper

import eager as E
import symbolic as S
from common import functional as F
from common.dispatch import apply
from common.ops import OPS
from compare import zoo
from compare.pictures import compile_model
from symbolic.serialize.onnx import (
    OnnxExportError,
    OnnxImportError,
    apply_onnx,
    export_onnx,
    import_onnx,
    run_onnxruntime,
    to_onnx,
)
from symbolic.serialize.onnx.ops import BUILDERS, NO_ONNX_FORM

RTOL, ATOL = 1e-4, 1e-5  # float32
DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts" / "onnx.md"
# zoo models whose inference graph ONNX cannot express, with the reason; docs/concepts/onnx.md
# lists the same (today: none, every zoo model exports)
CANNOT_EXPRESS: dict[str, str] = {}


def assert_agree(f, inputs, model=None):
    """onnxruntime gives diptych's results: same dtypes and shapes, values to float32's
    tolerance."""
    model = model or to_onnx(f)
    want = f(*inputs)
    want = want if isinstance(want, list) else [want]
    got = run_onnxruntime(model, inputs)
    assert len(got) == len(want)
    for w, g in zip(want, got):
        w = np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    return model


def op_types(model) -> set[str]:
    """The ONNX op types of a model, bodies included."""
    found, graphs = set(), [model.graph]
    while graphs:
        for node in graphs.pop().node:
            found.add(node.op_type)
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return found


def zoo_function(name: str, what: str = "forward"):
    model = zoo.get(name)
    batch, size = model.test_sizes
    return compile_model(model, what, batch=batch, size=size), list(
        model.make_inputs(batch, size, 0).values()
    )


# ---- the registry: every op exports, or says why it cannot ------------------------------


def test_every_op_has_an_onnx_builder_or_a_reason():
    handled_by_the_walk = {"item"}  # picks an output of cond/scan/while_loop: no node
    assert set(OPS) - set(BUILDERS) - handled_by_the_walk == set(NO_ONNX_FORM)


def test_the_docs_list_every_op_without_an_onnx_form():
    text = DOC.read_text(encoding="utf-8")
    for name in NO_ONNX_FORM:
        assert f"`{name}`" in text
    for name, reason in CANNOT_EXPRESS.items():
        assert f"`{name}`" in text and reason in text


def _sample_call(op, args, params):
    """Float arguments become placeholders (fed), the others (index arrays) constants."""
    feeds, values, symbols = [], [], []
    for arg in map(np.asarray, args):
        if arg.dtype.kind == "f":
            feeds.append(S.placeholder(arg.shape, "float32"))
            values.append(arg.astype(np.float32))
            symbols.append(feeds[-1])
        else:
            symbols.append(S.constant(arg))
    return S.compile(apply(op, *symbols, **params), inputs=feeds), values


SAMPLED = sorted(name for name, op in OPS.items() if op.samples is not None)


@pytest.mark.parametrize("name", SAMPLED)
def test_each_op_sample_agrees_with_onnxruntime(name):
    op = OPS[name]
    for args, params in op.samples(np.random.default_rng(0)):
        assert_agree(*_sample_call(op, args, params))


# ---- the zoo ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["optimized", "traced"])
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_zoo_model_agrees_with_onnxruntime(name, stage):
    f, inputs = zoo_function(name)
    if name in CANNOT_EXPRESS:
        with pytest.raises(OnnxExportError, match=re.escape(CANNOT_EXPRESS[name])):
            to_onnx(f, stage=stage)
        return
    model = to_onnx(f, stage=stage)
    onnx.checker.check_model(model, full_check=True)
    assert_agree(f, inputs, model)


@pytest.mark.parametrize("name", [n for n in zoo.MODELS if n not in CANNOT_EXPRESS])
def test_zoo_model_imports_back_into_both_engines(name):
    f, inputs = zoo_function(name)
    model = to_onnx(f)
    compiled, eager = import_onnx(model)(*inputs), apply_onnx(model, [E.tensor(v) for v in inputs])
    for want, got, tensor in zip(f(*inputs), compiled, eager):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(tensor.numpy(), want, rtol=RTOL, atol=ATOL)


def test_the_training_step_gradients_export_too():
    f, inputs = zoo_function("lenet_digits", "grad")  # fold, scatter_add: by positions
    assert_agree(f, inputs)


def test_a_fused_group_exports_as_its_member_ops():
    model = zoo.get("gelu_chain")
    f = compile_model(model, "forward", batch=16, size=4096)  # large enough to fuse
    fused = [n for n in f.graph.nodes if n.op_name.startswith("fused_")]
    assert fused
    exported = assert_agree(f, list(model.make_inputs(16, 4096, 0).values()))
    assert {"Tanh", "Pow", "Mul", "Add"} <= op_types(exported)
    assert not any(t.startswith("fused") for t in op_types(exported))
    lines = {n.doc_string for n in exported.graph.node}
    assert fused[0].source in lines  # each member op carries the user's line


# ---- control flow -----------------------------------------------------------------------


def _relu_or_negate(v):
    return F.cond(v.sum() > 0, F.relu, lambda u: -u, v)


def _halve_until_small(v):
    return F.while_loop(lambda u: u.sum() > 1.0, lambda u: u * 0.5, v)


def test_cond_exports_as_if_and_while_loop_as_loop_with_their_gradients():
    x = S.placeholder((3,), name="x")
    y = _halve_until_small(_relu_or_negate(x))
    (g,) = S.grad(y.sum(), [x])
    f = S.compile([y, g], inputs=[x])
    model = to_onnx(f)
    assert {"If", "Loop"} <= op_types(model)
    for values in ([4.0, -1.0, 3.0], [-4.0, -1.0, -3.0], [0.1, 0.2, 0.3]):  # both branches,
        assert_agree(f, [np.array(values, np.float32)], model)  # and a loop that never runs


def test_scan_exports_as_scan_and_a_bounded_loop_too():
    xs = S.placeholder((5, 2), name="xs")

    def running_sum(carry, v):
        return carry + v, carry * v

    final, ys = F.scan(running_sum, S.constant(np.zeros(2, np.float32)), xs)
    bounded = F.while_loop(lambda c: c.sum() < 50.0, lambda c: c * 2.0 + 1.0, xs[0], 4)
    f = S.compile([final, ys, bounded], inputs=[xs])
    model = to_onnx(f)
    assert "Scan" in op_types(model)
    assert_agree(f, [np.arange(10, dtype=np.float32).reshape(5, 2) / 4], model)


def test_an_integer_while_loop_runs_its_trip_count():
    n = S.placeholder((), "int64", name="n")
    init = (S.constant(np.int64(0)), S.constant(np.int64(1)))
    count, power = F.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2), init)
    f = S.compile([count, power], inputs=[n])
    for trips in (0, 5):
        assert_agree(f, [np.int64(trips)])
    assert [int(v) for v in import_onnx(to_onnx(f))(np.int64(5))] == [5, 32]


# ---- what the model holds ---------------------------------------------------------------


def test_placeholders_become_inputs_with_symbolic_sizes_and_weights_initializers():
    x = S.placeholder((None, 3), name="x")
    w = S.variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
    f = S.compile(F.relu(x @ w), inputs=[x])
    model = to_onnx(f)
    (given,) = model.graph.input
    dims = given.type.tensor_type.shape.dim
    assert given.name == "x" and dims[0].dim_param == "x_dim0" and dims[1].dim_value == 3
    assert [t.name for t in model.graph.initializer] == ["w"]
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), w.value)
    for batch in (1, 4):  # one model, any batch
        assert_agree(f, [np.ones((batch, 3), np.float32)], model)


@pytest.mark.parametrize(
    "dtype, literal, result",
    [("float32", 2, "float32"), ("int64", 2, "int64"), ("int64", 0.5, "float64")],
)
def test_weak_literals_become_constants_of_diptychs_dtype(dtype, literal, result):
    x = S.placeholder((3,), dtype, name="x")
    f = S.compile(x * literal, inputs=[x])
    model = assert_agree(f, [np.array([1, 2, 3], dtype)])
    constants = [numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                 if n.op_type == "Constant"]  # fmt: skip
    assert [c.dtype for c in constants] == [np.dtype(result)]


def test_the_traced_graph_exports_as_built_and_the_optimized_as_it_runs():
    x = S.placeholder((4,), name="x")
    f = S.compile(F.exp(x * 1.0) + (x - x), inputs=[x])
    traced, optimized = to_onnx(f, stage="traced"), to_onnx(f, stage="optimized")
    assert len(optimized.graph.node) < len(traced.graph.node)
    for model in (traced, optimized):
        assert_agree(f, [np.linspace(-1, 1, 4, dtype=np.float32)], model)


def test_export_onnx_writes_a_file_that_onnx_loads(tmp_path):
    f, inputs = zoo_function("mlp_digits")
    path = tmp_path / "mlp.onnx"
    export_onnx(f, path, opset=18)
    model = onnx.load(path)
    assert model.opset_import[0].version == 18
    assert_agree(f, inputs, model)


# ---- errors -----------------------------------------------------------------------------


def test_an_op_without_onnx_form_names_the_op_and_the_users_line():
    x = S.placeholder((2, 3), name="x")
    y = F.dropout(x, 0.5) * 2  # the line the error names
    with pytest.raises(OnnxExportError, match="bernoulli") as caught:
        to_onnx(S.compile(y, inputs=[x]))
    assert "y = F.dropout(x, 0.5) * 2" in str(caught.value)
    assert NO_ONNX_FORM["bernoulli"] in str(caught.value)


def test_a_graph_with_updates_cannot_be_exported():
    x, w = S.placeholder((3,), name="x"), S.variable(np.ones(3, np.float32), name="w")
    step = S.compile((x * w).sum(), inputs=[x], updates={w: w * 0.5})
    with pytest.raises(OnnxExportError, match="updates"):
        to_onnx(step)


def test_a_placeholder_without_a_rank_cannot_be_an_onnx_input():
    x = S.placeholder(name="x")  # any shape, any rank
    with pytest.raises(OnnxExportError, match="placeholder 'x' has no shape"):
        to_onnx(S.compile(F.exp(x), inputs=[x]))


def test_an_unknown_onnx_op_names_the_node():
    node = helper.make_node("Det", ["x"], ["y"], name="determinant")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match="'determinant'.*'Det'"):
        import_onnx(model)


# ---- a model from elsewhere -------------------------------------------------------------


def _helper_built_mlp(rng):
    """Gemm -> Relu -> MatMul + Add -> Softmax, with a symbolic batch size."""
    weights = {
        "w1": rng.normal(size=(4, 8)), "b1": rng.normal(size=8),
        "w2": rng.normal(size=(8, 3)), "b2": rng.normal(size=3),
    }  # fmt: skip
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("MatMul", ["active", "w2"], ["scores"]),
        helper.make_node("Add", ["scores", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def test_a_model_built_with_onnx_helper_runs_eagerly_and_compiled():
    rng = np.random.default_rng(0)
    model = _helper_built_mlp(rng)
    onnx.checker.check_model(model, full_check=True)
    f = import_onnx(model)
    assert f.graph.inputs[0].shape == (None, 4)
    assert {v.name for v in f.graph.variables} == {"w1", "b1", "w2", "b2"}
    for batch in (1, 5):
        x = rng.normal(size=(batch, 4)).astype(np.float32)
        want = run_onnxruntime(model, [x])[0]
        np.testing.assert_allclose(f(x), want, rtol=RTOL, atol=ATOL)
        (eager,) = apply_onnx(model, [E.tensor(x)])
        assert isinstance(eager, E.Tensor)
        np.testing.assert_allclose(eager.numpy(), want, rtol=RTOL, atol=ATOL)


def _constant(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def test_the_readers_of_common_ops_agree_with_onnxruntime():
    """Slice (backwards too), Unsqueeze, Squeeze, Transpose, Flatten, ReduceMean with axes as
    an attribute, Clip, Concat, ReduceMax, ArgMax, integer Div (toward zero), Cast, Gather,
    LogSoftmax: read into both engines, as onnxruntime runs them."""
    nodes = [
        _constant("starts", np.array([1, -1])), _constant("ends", np.array([3, -4])),
        _constant("axes", np.array([1, 2])), _constant("steps", np.array([1, -1])),
        _constant("first", np.array([0])), _constant("low", np.float32(-0.5)),
        _constant("high", np.float32(0.5)), _constant("three", np.int64(3)),
        _constant("signed", np.array([-7, 7, -6, 5, 0, -1])), _constant("rows", np.array([2, 0])),
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["cut"]),
        helper.make_node("Unsqueeze", ["cut", "first"], ["wide"]),
        helper.make_node("Squeeze", ["wide", "first"], ["narrow"]),
        helper.make_node("Transpose", ["narrow"], ["turned"], perm=[2, 0, 1]),
        helper.make_node("Flatten", ["turned"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centered"]),
        helper.make_node("Clip", ["centered", "low", "high"], ["clipped"]),
        helper.make_node("Concat", ["clipped", "flat"], ["both"], axis=0),
        helper.make_node("ReduceMax", ["both"], ["largest"], axes=[0], keepdims=0),
        helper.make_node("ArgMax", ["both"], ["where"], axis=1, keepdims=0),
        helper.make_node("Div", ["signed", "three"], ["quotient"]),
        helper.make_node("Add", ["where", "quotient"], ["ints"]),
        helper.make_node("Cast", ["ints"], ["floats"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["both", "rows"], ["picked"], axis=0),
        helper.make_node("LogSoftmax", ["picked"], ["log_probs"], axis=1),
    ]  # fmt: skip
    outputs = [("largest", [4]), ("floats", [6]), ("log_probs", [2, 4])]
    graph = helper.make_graph(
        nodes, "readers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 5])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    want = run_onnxruntime(model, [x])
    for got in (import_onnx(model)(x), [t.numpy() for t in apply_onnx(model, [E.tensor(x)])]):
        for w, g in zip(want, got):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def test_compare_with_onnxruntime_times_both():
    from compare.peers import compare_with_onnxruntime

    f, inputs = zoo_function("mlp_digits")
    diptych, runtime = compare_with_onnxruntime(f, inputs, target_ms=2, repeats=3)
    assert 0 < diptych < 1 and 0 < runtime < 1
