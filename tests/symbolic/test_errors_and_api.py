"""The user-facing surface of the symbolic engine: every error says what, where and how to
fix it; a failed call changes nothing; compile, source, report, graph dumps, S.function and
training through `updates=` behave as DESIGN.md promises."""

import ast
import copy
import warnings

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from common.ops import DTypeError, OpError, ShapeError

HERE = "test_errors_and_api.py"


def _built_here(build) -> str:
    """The `file:line` a one-line lambda builds its node at: where the error must point."""
    return f"{HERE}:{build.__code__.co_firstlineno}:"


# ---- build-time errors name the user's line ---------------------------------------------

# Each builder is one line: the error must cite exactly that line of this file.
BAD_SHAPES = {
    "add broadcast": lambda x: x + S.placeholder((5,)),
    "matmul": lambda x: x @ S.placeholder((5, 2)),
    "reshape": lambda x: x.reshape(5, -1),
    "concat": lambda x: F.concat([x, S.placeholder((3, 5))], axis=0),
    "squeeze": lambda x: F.squeeze(x, 0),
    "layer in a model": lambda x: nn.Linear(5, 2)(x),
    "mm of a vector": lambda x: F.mm(x, S.placeholder((4,))),
    "sum over a missing axis": lambda x: F.sum(x, axis=5),
    "mse_loss of transposed target": lambda x: F.mse_loss(x, S.placeholder((4, 3))),
    "cross_entropy of 3-d logits": lambda x: F.cross_entropy(
        F.expand_dims(x, 0), S.placeholder((1,), "int64")
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SHAPES))
def test_shape_error_at_build_time_names_the_users_line(name):
    build = BAD_SHAPES[name]
    x = S.placeholder((3, 4), name="x")
    with pytest.raises(ShapeError, match="Fix:") as info:
        build(x)
    assert _built_here(build) in str(info.value)


BAD_BUILDS = {
    "grad of a non-scalar": (lambda x: S.grad(x * 2, x), OpError, r"not a single value"),
    "grad w.r.t. ints": (
        lambda x: S.grad(F.sum(x), S.placeholder((3,), "int64")),
        OpError,
        r"only floating-point values have gradients",
    ),
    "float labels": (
        lambda x: F.cross_entropy(x, S.placeholder((3,), "float32")),
        DTypeError,
        r"labels must be integers",
    ),
    "index out of range": (lambda x: x[5], OpError, r"out of bounds"),
}


@pytest.mark.parametrize("name", sorted(BAD_BUILDS))
def test_other_build_time_errors_name_the_users_line(name):
    build, error, message = BAD_BUILDS[name]
    with pytest.raises(error, match=message) as info:
        build(S.placeholder((3, 4), name="x"))
    assert _built_here(build) in str(info.value)


def test_augmented_assignment_on_a_symbol_builds_a_new_node():
    """Symbols are immutable: `x += 1` rebinds the name to a new node (as in TF), it does not
    change the placeholder; variables change only through `updates=`."""
    x = S.placeholder((3,), name="x")
    original = x
    x += 1
    assert x is not original and original.node.op == "placeholder"
    assert x.node.op_name == "add" and x.node.inputs[0] is original.node
    assert not hasattr(original, "zero_")


COMPILE_MISUSE = {
    "unknown optimize level": (
        lambda x, v: S.compile(x, optimize=5),
        ValueError,
        r"optimize must be one of",
    ),
    "unknown pass": (
        lambda x, v: S.compile(x, disable=["no_such_pass"]),
        ValueError,
        r"no pass is named \['no_such_pass'\]",
    ),
    "update of a placeholder": (
        lambda x, v: S.compile(x, updates={x: x + 1}),
        TypeError,
        r"keys must be variables",
    ),
    "update changes the shape": (
        lambda x, v: S.compile(x, updates={v: x}),
        ValueError,
        r"has shape \(3, 4\), but the variable has \(3,\)",
    ),
    "inputs= misses a placeholder": (
        lambda x, v: S.compile(x + S.placeholder((3, 4), name="y"), inputs=[x]),
        S.FeedError,
        r"placeholder 'y', which inputs= does not",
    ),
}


@pytest.mark.parametrize("name", sorted(COMPILE_MISUSE))
def test_compile_misuse_is_refused(name):
    build, error, message = COMPILE_MISUSE[name]
    with pytest.raises(error, match=message):
        build(S.placeholder((3, 4), name="x"), S.variable(np.zeros(3)))


# ---- feeds ---------------------------------------------------------------------------------

EXPECTED = "x f32[3, 4], labels i64[3]"  # how a FeedError lists the placeholders

# (positional feeds, keyword feeds, what the error says, what else it must say)
BAD_FEEDS = {
    "missing": ((np.ones((3, 4)),), {}, r"missing a value for placeholder\(s\) labels", EXPECTED),
    "extra": (
        (np.ones((3, 4)), np.arange(3), np.ones(2)),
        {},
        r"got 3 positional inputs",
        EXPECTED,
    ),
    "unknown name": (
        (np.ones((3, 4)),),
        {"label": np.arange(3)},
        r"no placeholder is named",
        EXPECTED,
    ),
    "fed twice": (
        (np.ones((3, 4)), np.arange(3)),
        {"x": np.ones((3, 4))},
        r"'x' was fed twice",
        "by position and name",
    ),
    "wrong shape": ((np.ones((4, 3)), np.arange(3)), {}, r"'x' expects shape f32\[3, 4\]", "Fix:"),
    "wrong rank": ((np.ones(12), np.arange(3)), {}, r"'x' expects shape f32\[3, 4\]", "Fix:"),
    "float labels": (
        (np.ones((3, 4)), np.ones(3)),
        {},
        r"'labels' expects int64, got float64",
        "Fix:",
    ),
    "complex data": (
        (np.ones((3, 4), complex), np.arange(3)),
        {},
        r"'x' expects float32, got complex128",
        "Fix:",
    ),
}


@pytest.fixture
def feed_target():
    x = S.placeholder((3, 4), name="x")
    labels = S.placeholder((3,), "int64", name="labels")
    return S.compile(F.cross_entropy(x, labels), inputs=[x, labels])


@pytest.mark.parametrize("name", sorted(BAD_FEEDS))
def test_bad_feed_says_which_placeholders_are_expected(name, feed_target):
    args, kwargs, message, also = BAD_FEEDS[name]
    with pytest.raises(S.FeedError, match=message) as info:
        feed_target(*args, **kwargs)
    assert also in str(info.value)
    assert feed_target.calls == 0


def test_good_feeds_by_position_by_name_and_converted(feed_target):
    """Feeds of a kind that converts safely (ints and float64 to float32) are accepted."""
    logits, labels = np.zeros((3, 4)), np.array([0, 1, 3])
    by_position = feed_target(logits, labels)
    assert by_position == feed_target(labels=labels, x=logits.astype(np.float32))
    assert by_position == feed_target(logits.astype(np.int64), labels)
    np.testing.assert_allclose(by_position, np.log(4), rtol=1e-6)


# ---- deferred values cannot be used as Python values ------------------------------------


def _branch_on(x):
    if x:
        return 1
    return 0


DEFERRED = {
    "if": _branch_on,
    "bool": bool,
    "float": float,
    "int": int,
    "iterate unknown length": lambda x: list(S.placeholder(name="v")),
    "len unknown length": lambda x: len(S.placeholder((None, 3))),
    "range": lambda x: range(x),
}


@pytest.mark.parametrize("name", sorted(DEFERRED))
def test_python_cannot_look_at_a_symbols_value(name):
    x = S.placeholder((), name="x")
    with pytest.raises(TypeError, match="deferred execution") as info:
        DEFERRED[name](x > 0 if name in ("if", "bool") else x)
    for alternative in ("F.cond", "F.where", "F.while_loop", "F.scan"):
        assert alternative in str(info.value)


def test_iterating_a_symbol_of_known_length_gives_its_rows():
    x = S.placeholder((3, 2), name="x")
    rows = list(x)
    assert [r.shape for r in rows] == [(2,)] * 3
    np.testing.assert_array_equal(rows[2](np.arange(6.0).reshape(3, 2)), [4.0, 5.0])


# ---- run-time failures: the op, the user's line, and no state change --------------------


def test_kernel_failure_at_run_time_names_op_and_line():
    labels = S.placeholder((4,), "int64", name="labels")
    build = lambda: F.one_hot(labels, 3)  # one line: the error must cite it
    f = S.compile(build())
    np.testing.assert_array_equal(f(np.array([0, 1, 2, 0])).argmax(1), [0, 1, 2, 0])
    with pytest.raises(
        S.GraphRuntimeError, match=r"one_hot failed.*label 3 is out of range"
    ) as info:
        f(np.array([0, 1, 2, 3]))
    assert _built_here(build) in str(info.value)
    assert "<diptych plan" not in str(info.value)  # generated code is not the user's line


def _step_with_updates():
    """Three variables updated by one step; each kind of failure strikes at another stage."""
    a = S.variable(np.zeros(3), name="a")
    b = S.variable(np.zeros(3), name="b")
    c = S.variable(np.zeros(3), name="c")
    labels = S.placeholder((3,), "int64", name="labels")
    free = S.placeholder(name="free")  # shape unknown until fed
    counts = F.sum(F.one_hot(labels, 3), axis=0)
    step = S.compile(
        F.sum(a), inputs=[labels, free], updates={a: a + 1.0, b: b + counts, c: c + free}
    )
    return step, [a, b, c]


FAILED_CALLS = {
    "feed error": ((np.ones(3), np.ones(3)), S.FeedError),
    "kernel error before the writes": ((np.array([0, 1, 7]), np.ones(3)), S.GraphRuntimeError),
    "error while writing the updates": (
        (np.array([0, 1, 2]), np.ones((2, 3))),
        S.GraphRuntimeError,
    ),
}


@pytest.mark.parametrize("name", sorted(FAILED_CALLS))
def test_a_failed_call_leaves_every_variable_unchanged(name):
    step, variables = _step_with_updates()
    step(np.array([0, 1, 1]), np.full(3, 0.5))  # one good call: a=1, b=[1, 2, 0], c=0.5
    before = [v.node.value.data.copy() for v in variables]
    args, error = FAILED_CALLS[name]
    with pytest.raises(error):
        step(*args)
    for var, old in zip(variables, before):
        np.testing.assert_array_equal(var.node.value.data, old, err_msg=f"variable {var.name}")
    assert step.calls == 1


def test_an_update_that_cannot_be_written_names_its_variable():
    """The value computed fine; writing it into `c` failed: blaming `add` misleads."""
    step, _ = _step_with_updates()
    with pytest.raises(S.GraphRuntimeError) as info:
        step(np.array([0, 1, 2]), np.ones((2, 3)))
    assert "'c'" in str(info.value) or "update c" in str(info.value)


# ---- compile: outputs, source, report ------------------------------------------------------


def test_single_output_gives_an_array_and_a_list_gives_a_list():
    x = S.placeholder((2, 3), name="x")
    value = np.arange(6.0).reshape(2, 3)
    single = S.compile(x * 2)(value)
    assert isinstance(single, np.ndarray) and single.dtype == np.float32
    one = S.compile([x * 2])(value)
    assert isinstance(one, list) and len(one) == 1
    np.testing.assert_array_equal(one[0], single)
    both = S.compile((x * 2, F.sum(x)))(value)
    assert isinstance(both, list) and len(both) == 2
    assert isinstance(both[1], np.float32) and both[1] == 15.0  # 0-d: a numpy scalar


def test_source_is_valid_python_naming_every_op():
    x, w = S.placeholder((2, 3), name="x"), S.variable(np.ones((3, 4)), name="w")
    f = S.compile([F.relu(x @ w).sum(), F.tanh(x).max(axis=0)], inputs=[x])
    tree = ast.parse(f.source)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == ["plan"]
    for node in f.graph.ops:  # each op's kernel is called (a one-ufunc kernel: the ufunc)
        ufunc = getattr(node.op.kernel, "ufunc", None)
        assert f"{f'ufunc_{ufunc}' if ufunc else f'k_{node.op_name}'}(" in f.source, node.op_name
        assert f"# {f.graph.numbering.label(node)} = {node.op_name}(" in f.source
    assert "var_" in f.source  # the variable is read from its storage, not baked in


W_BAKED = np.arange(12.0, dtype=np.float32).reshape(3, 4)


def test_report_lists_constants_a_traced_function_closes_over():
    def fn(x):
        return F.tanh(x @ W_BAKED)  # the array is captured: baked into the graph

    f = S.compile(fn, inputs=[S.placeholder((2, 3), name="x")])
    line = f"{HERE}:{fn.__code__.co_firstlineno + 1}: return F.tanh(x @ W_BAKED)"
    assert len(f.report.constants) == 1
    assert "float32[3, 4]" in f.report.constants[0]
    assert line in f.report.constants[0]
    assert line in str(f.report)
    assert "stage" in str(f.report) and "plan:" in str(f.report)
    np.testing.assert_allclose(f(np.ones((2, 3))), np.tanh(np.ones((2, 3)) @ W_BAKED))


def test_graph_dump_reads_like_an_ir():
    x, y = S.placeholder((3, 4), name="x"), S.placeholder((4,), name="y")
    out = F.sum(x + y, axis=1)
    text = str(S.compile(out).graph)  # numbered locally, in the traced graph's order
    assert text.startswith("graph(%0, %1) {")
    assert "%0 = placeholder('x') : f32[3, 4]" in text
    assert "%2 = add(%0, %1) : f32[3, 4]" in text
    assert "%3 = sum(%2; axis=(1,), keepdims=False) : f32[3]" in text
    assert "return %3" in text
    assert f"# {HERE}:" in text


def test_to_networkx_has_one_node_per_value_and_one_edge_per_use():
    x, y = S.placeholder((3,), name="x"), S.placeholder((3,), name="y")
    v = S.variable(np.zeros(3), name="v")
    out = x * x + y  # x used twice by one node: two edges, keyed by argument position
    f = S.compile(out, updates={v: v + out}, optimize=0)
    g = f.graph.to_networkx()
    assert g.number_of_nodes() == len(f.graph.nodes) == 6  # x, y, v, mul, add, add
    assert g.number_of_edges() == 2 + 2 + 2 + 1  # mul, add, v + out, the update
    assert g.number_of_edges(x.node.id, out.node.inputs[0].id) == 2
    assert g.has_edge(f.graph.updates[0][1].id, v.node.id, key="update")
    assert g.nodes[out.node.id]["op"] == "add"


def test_trace_gives_the_graph_of_a_module():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    graph = S.trace(model, (2, 4))
    text = str(graph)
    assert "placeholder('x') : f32[2, 4]" in text
    assert "variable('0.weight') : f32[3, 4]" in text and "= tanh(" in text
    assert graph.outputs[0].type_str() == "f32[2, 3]"
    g = graph.to_networkx()
    assert g.number_of_nodes() == len(graph.nodes)
    assert [op for _, op in g.nodes(data="op")].count("variable") == 2


# ---- S.function ---------------------------------------------------------------------------


def test_function_caches_per_signature_and_explains_retraces():
    power = S.function(lambda x, n: x**n, warn_after=10)
    x3 = np.full(3, 2.0, np.float32)
    np.testing.assert_array_equal(power(x3, 3), [8.0] * 3)
    np.testing.assert_array_equal(power(x3 + 1, 3), [27.0] * 3)  # new values, same graph
    assert (power.retraces, power.traces) == (0, 1)
    np.testing.assert_array_equal(power(x3, 4), [16.0] * 3)
    assert power.retraces == 1
    assert power.explanations == [
        "retraced because argument n changed 3 -> 4: a Python int "
        "is baked into the graph; pass it as an array to avoid this"
    ]
    power(np.full(4, 2.0, np.float32), 4)
    power(np.full(4, 2.0), 4)
    assert power.explanations[1:] == [
        "retraced because argument x changed shape (3,) -> (4,): a graph is specialized to its "
        "input shapes and dtypes",
        "retraced because argument x changed dtype float32 -> float64: a graph is specialized "
        "to its input shapes and dtypes",
    ]
    power(x3, 3)  # back to the first signature: served from the cache
    assert (power.retraces, power.traces) == (3, 4)


def test_function_warns_once_retraces_reach_warn_after():
    scale = S.function(lambda x, k: x * k, warn_after=2)
    x = np.ones(2, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the first trace and first retrace
        scale(x, 1)
        scale(x, 2)
    with pytest.warns(
        UserWarning,
        match=r"retraced 2 times; last: retraced because argument "
        r"k changed 2 -> 3",
    ):
        scale(x, 3)


def test_model_through_function_gives_eager_outputs(rng):
    model = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 2))
    fast = S.function(model)
    for batch in (4, 4, 7):
        x = rng.normal(size=(batch, 5)).astype(np.float32)
        np.testing.assert_allclose(fast(x), model(E.tensor(x)).numpy(), rtol=1e-6, atol=1e-7)
    assert (fast.traces, fast.retraces) == (2, 1)


# ---- parameters are shared storage ------------------------------------------------------------


def test_updates_write_the_same_parameter_storage_eager_reads(rng):
    model = nn.Linear(3, 2)
    reference = copy.deepcopy(model)  # trained eagerly, by hand, for the expected weights
    storages = [p.data for p in model.parameters()]
    x0 = rng.normal(size=(4, 3)).astype(np.float32)
    t0 = rng.normal(size=(4, 2)).astype(np.float32)

    x, t = S.placeholder((4, 3), name="x"), S.placeholder((4, 2), name="t")
    params = list(model.parameters())
    loss = F.mse_loss(model(x), t)
    grads = S.grad(loss, params)
    step = S.compile(loss, inputs=[x, t], updates={p: p - 0.1 * g for p, g in zip(params, grads)})
    step(x0, t0)

    ref_params = list(reference.parameters())
    ref_grads = E.grad(F.mse_loss(reference(E.tensor(x0)), E.tensor(t0)), ref_params)
    for p, ref, g, storage in zip(params, ref_params, ref_grads, storages):
        assert p.data is storage, f"{p.name} was replaced, not updated in place"
        np.testing.assert_allclose(p.data, ref.data - 0.1 * g.numpy(), rtol=1e-6, atol=1e-7)
    eager_after = model(E.tensor(x0)).numpy()  # eager sees the compiled step's update
    np.testing.assert_allclose(eager_after, x0 @ params[0].data.T + params[1].data, rtol=1e-6)
    assert not np.allclose(eager_after, reference(E.tensor(x0)).numpy())


# ---- shapes known only when fed: the same error eager gives --------------------------------


@pytest.mark.parametrize("level", [0, 1, 2])
def test_a_run_time_shape_mismatch_reads_like_eager_and_names_the_placeholders(level):
    x = S.placeholder((None, 3), name="x")
    y = S.placeholder((None, 3), name="y")
    f = S.compile(F.tanh(x) + y * 2, inputs=[x, y], optimize=level)
    a, b = np.ones((2, 3), "f4"), np.ones((4, 3), "f4")
    with pytest.raises(ShapeError) as eager_error:
        F.tanh(E.tensor(a)) + E.tensor(b) * 2
    with pytest.raises(S.GraphRuntimeError) as info:
        f(a, b)
    message = str(info.value)
    assert isinstance(info.value, ShapeError)
    assert str(eager_error.value).split("\n")[0] in message  # which op, both shapes, the fix
    assert "'x' f32[?, 3] (fed (2, 3), made at test_errors_and_api.py:" in message
    assert "'y' f32[?, 3] (fed (4, 3)" in message
    assert "numpy" not in message and "operands could not be broadcast" not in message


def test_branching_on_a_symbol_names_the_users_line():
    x = S.placeholder((3,), name="x")
    with pytest.raises(TypeError, match=r"bool\(\) of .*\n  at .*: if F\.sum\(x\) > 0:"):
        if F.sum(x) > 0:
            pass


def test_a_retrace_is_explained_against_the_nearest_graph_already_traced():
    """(4, 8) float32 is cached; (4, 8) float64 differs from it only in dtype, although the
    call before was (5, 8) float32."""
    double = S.function(lambda x: x * 2)
    double(np.ones((4, 8), np.float32))
    double(np.ones((5, 8), np.float32))
    double(np.ones((4, 8), np.float64))
    assert "changed dtype float32 -> float64" in double.explanations[-1]
    assert "shape" not in double.explanations[-1].split(":")[0]
    double(np.ones((6, 9), np.float16))  # both differ from everything: both are named
    assert "shape" in double.explanations[-1] and "dtype" in double.explanations[-1]


def test_a_notebook_cell_is_named_cell_not_its_temporary_file():
    from common.ops.core import _file_name

    assert _file_name("/tmp/ipykernel_4021/1414215379.py") == "cell"
    assert _file_name("/home/me/model.py") == "model.py"
