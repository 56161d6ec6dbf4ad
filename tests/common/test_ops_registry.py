"""Registry-driven op tests: every op's shape rule, VJP and dtype behaviour, from its samples.

Adding an op with `samples` adds its tests here with no test edit (STYLE.md, lesson 9); an op
without samples must be stateful or named in `COVERED_ELSEWHERE`, so none slips through.
"""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common.dispatch import apply
from common.ops import OPS
from tests.helpers import is_float_array

# Ops without samples, each with where it is tested instead.
COVERED_ELSEWHERE = {
    "one_hot",  # integer labels in, no gradient: through cross_entropy in test_torch_oracle
    "stop_gradient",  # the gradient barrier: detach in test_autograd, softmax in the oracle
    # control ops hold traced bodies in their params: tests/symbolic/test_control_flow.py,
    # test_while_grad.py, and the fresh-memory test below
    "cond",
    "while_loop",
    "scan",
    "item",
}

RTOL, ATOL = 1e-5, 1e-7  # against central differences in float64 (conftest.numeric_grad)


def _sample_cases() -> list:
    """One case per (op, sample), drawn once with a fixed seed; ids read `name-index`."""
    cases = []
    for name, op in OPS.items():
        if op.samples is not None:
            samples = op.samples(np.random.default_rng(0))
            cases += [
                pytest.param(op, args, params, id=f"{name}-{i}")
                for i, (args, params) in enumerate(samples)
            ]
    return cases


SAMPLES = _sample_cases()
WITH_VJP = [case for case in SAMPLES if case.values[0].vjp is not None]
WITHOUT_VJP = [case for case in SAMPLES if case.values[0].vjp is None]
ELEMENTWISE_WITH_VJP = [case for case in WITH_VJP if case.values[0].kind == "elementwise"]
# Ops that choose their output dtype (`cast`) are exempt from precision preservation.
PRECISION = [
    case
    for case in SAMPLES
    if case.values[0].kind in ("elementwise", "reduction") and "dtype" not in case.values[2]
]
BINARY_ELEMENTWISE = sorted(
    {
        op.name
        for op, args, _ in (case.values for case in SAMPLES)
        if op.kind == "elementwise" and len(args) == 2 and all(is_float_array(a) for a in args)
    }
)


def _as_dtype(args: tuple, dtype) -> tuple:
    return tuple(a.astype(dtype) if is_float_array(a) else a for a in args)


def _leaves(args: tuple) -> list:
    """Float inputs as leaves that require grad; integer and boolean inputs stay arrays."""
    return [E.tensor(a, requires_grad=True) if is_float_array(a) else a for a in args]


def _first_grads(op, args, params, cotangent, create_graph: bool) -> tuple[list, tuple]:
    """The float leaves and d sum(op(args) * cotangent) / d leaf, through eager autograd.

    A None gradient is a zero one: inputs that only lend their shape (`like`) get None.
    """
    leaves = _leaves(args)
    out = apply(op, *leaves, **params)
    wrt = [t for t in leaves if isinstance(t, E.Tensor)]
    grads = E.grad((out * cotangent).sum(), wrt, create_graph=create_graph, allow_unused=True)
    return wrt, grads


def _values(grads, wrt) -> list:
    return [np.zeros(x.shape) if g is None else g.numpy() for g, x in zip(grads, wrt)]


def _cotangent(op, args, params, rng) -> np.ndarray:
    return rng.normal(size=np.shape(op.kernel(np, *args, **params)))


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.samples is None))
def test_op_without_samples_is_accounted_for(name):
    """An op added without samples would silently escape every test below."""
    assert OPS[name].stateful or name in COVERED_ELSEWHERE, (
        f"op {name!r} has no samples: give it samples, or name it in COVERED_ELSEWHERE "
        "with the tests that cover it"
    )


def test_allowlist_is_not_stale():
    """An allowlisted op that gained samples (or was removed) should leave the list."""
    assert {n for n in COVERED_ELSEWHERE if n not in OPS or OPS[n].samples is not None} == set()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op, args, params", SAMPLES)
def test_shape_rule_matches_kernel(op, args, params, dtype):
    """The symbolic engine trusts the shape rule; it must predict what the kernel makes."""
    args = _as_dtype(args, dtype)
    out = op.kernel(np, *args, **params)
    aval = op.eval_abstract(*args, **params)
    assert (aval.shape, aval.dtype) == (np.shape(out), np.result_type(out))


@pytest.mark.parametrize("op, args, params", WITH_VJP)
def test_vjp_matches_finite_differences(op, args, params, rng, numeric_grad):
    cotangent = _cotangent(op, args, params, rng)
    wrt, grads = _first_grads(op, args, params, cotangent, create_graph=False)
    floats = [i for i, a in enumerate(args) if is_float_array(a)]

    def loss(*primals):
        return np.sum(op.kernel(np, *primals, **params) * cotangent)

    for i, grad in zip(floats, _values(grads, wrt), strict=True):
        np.testing.assert_allclose(
            grad,
            numeric_grad(loss, args, i),
            rtol=RTOL,
            atol=ATOL,
            strict=True,
            err_msg=f"input {i}",
        )


@pytest.mark.parametrize("op, args, params", ELEMENTWISE_WITH_VJP)
def test_second_derivative_matches_finite_differences(op, args, params, rng, numeric_grad):
    """VJPs are written with F ops, so differentiating them again must work (create_graph)."""
    cotangent = _cotangent(op, args, params, rng)
    floats = [i for i, a in enumerate(args) if is_float_array(a)]
    directions = [rng.normal(size=args[i].shape) for i in floats]

    def directional(*primals):  # <first derivative, directions>: a scalar of the primals
        wrt, grads = _first_grads(op, primals, params, cotangent, create_graph=False)
        return sum(np.sum(g * d) for g, d in zip(_values(grads, wrt), directions))

    wrt, grads = _first_grads(op, args, params, cotangent, create_graph=True)
    total = sum((g * d).sum() for g, d in zip(grads, directions) if g is not None)
    # A first derivative that does not depend on the inputs (add, neg) has no graph: zero.
    second = (
        E.grad(total, wrt, allow_unused=True)
        if getattr(total, "requires_grad", False)
        else [None] * len(wrt)
    )
    for i, x, h in zip(floats, wrt, second):
        actual = np.zeros(x.shape) if h is None else h.numpy()
        np.testing.assert_allclose(
            actual,
            numeric_grad(directional, args, i),
            rtol=RTOL,
            atol=1e-6,
            strict=True,
            err_msg=f"input {i}",
        )


@pytest.mark.parametrize("op, args, params", WITHOUT_VJP)
def test_op_without_vjp_records_no_tape(op, args, params):
    """Comparisons and sign cut the graph: their results must not ask for a gradient."""
    out = apply(op, *_leaves(args), **params)
    assert not out.requires_grad
    assert out.grad_fn is None


def _shared_inputs(out, inputs: list) -> list[int]:
    """Positions of the array inputs whose memory some output (or part of a tuple) shares."""
    outs = out if isinstance(out, tuple) else (out,)
    return [
        i
        for i, a in enumerate(inputs)
        if isinstance(a, np.ndarray)
        and any(isinstance(o, np.ndarray) and np.shares_memory(o, a) for o in outs)
    ]


@pytest.mark.parametrize("op, args, params", [c for c in SAMPLES if not c.values[0].view])
def test_an_op_not_declared_a_view_returns_fresh_memory(op, args, params):
    """The memory plan reads aliasing from `OpDef.view` alone: any other op's output owns its
    memory, so an input's buffer may be handed to a later value once the input dies."""
    shared = _shared_inputs(op.kernel(np, *args, **params), list(args))
    assert not shared, (
        f"{op.name}: the output shares the memory of input(s) {shared}. Fix: "
        "return a copy, or declare the op view=True"
    )


def _cond_reading(p, x, value):
    return F.cond(p, lambda a: value, F.exp, x)  # value: computed outside, captured


def _pass_through_cases() -> dict:
    """Control flow whose body hands back an input (or a view of one): (x, xs, w, p) -> out."""
    return {
        "cond returns its operand": lambda x, xs, w, p: F.cond(p, lambda a: a, F.tanh, x),
        "cond returns a view of it": lambda x, xs, w, p: F.cond(
            p, F.transpose, lambda a: a * 2.0, x
        ),
        "cond returns a variable it reads": lambda x, xs, w, p: F.cond(p, lambda a: w, F.exp, x),
        "cond returns a value it reads": lambda x, xs, w, p: _cond_reading(p, x, xs[0] * 2.0),
        "while_loop runs no step": lambda x, xs, w, p: F.while_loop(
            lambda c: c[0] < 0, lambda c: (c[0] + 1, F.tanh(c[1])), (np.array(0), x)
        ),
        "while_loop keeps its carry": lambda x, xs, w, p: F.while_loop(
            lambda c: c[0] < 2, lambda c: (c[0] + 1, c[1]), (np.array(0), x)
        ),
        "scan keeps its carry, passes xs": lambda x, xs, w, p: F.scan(lambda c, t: (c, t), x, xs),
        "scan carries a view of xs": lambda x, xs, w, p: F.scan(lambda c, t: (t, c), x, xs),
        "scan carries what it reads": lambda x, xs, w, p: F.scan(lambda c, t: (w, c * t), x, xs),
    }


@pytest.mark.parametrize("name", sorted(_pass_through_cases()))
def test_a_control_op_returns_fresh_memory_when_its_body_passes_an_input_through(name, rng):
    """A body that returns its argument returns that very array: the control op's kernel must
    copy it, or the planner would reuse the input's buffer under a live output."""
    x, xs = S.placeholder((3, 3), "float64", name="x"), S.placeholder((4, 3, 3), "float64")
    w, p = S.variable(rng.normal(size=(3, 3)), "w", "float64"), S.placeholder((), "bool")
    out = _pass_through_cases()[name](x, xs, w, p)
    first = (out[0] if isinstance(out, tuple) else out).node  # an item of the control node
    node = first.inputs[0]
    arrays = [
        np.array(True)
        if a is p.node
        else a.value.data
        if a.op == "variable"
        else a.value
        if a.op == "constant"
        else rng.normal(size=a.shape)
        for a in node.inputs
    ]  # values computed outside the body are inputs too
    shared = _shared_inputs(node.op.kernel(np, *arrays, **node.params), arrays)
    assert not shared, f"{node.op_name}: an output shares the memory of input(s) {shared}"


@pytest.mark.parametrize("op, args, params", PRECISION)
def test_float32_in_float32_out(op, args, params):
    """Default dtype float32: an op must not silently promote it to float64."""
    wide = apply(op, *[E.tensor(a) if is_float_array(a) else a for a in args], **params)
    narrow = apply(
        op,
        *[E.tensor(a) if is_float_array(a) else a for a in _as_dtype(args, np.float32)],
        **params,
    )
    expected = np.dtype(np.float32) if wide.dtype == np.float64 else wide.dtype
    assert narrow.dtype == expected


@pytest.mark.parametrize("scalar_first", [False, True], ids=["tensor-scalar", "scalar-tensor"])
@pytest.mark.parametrize("name", BINARY_ELEMENTWISE)
def test_python_scalar_is_weak(name, scalar_first):
    """numpy 2 rules: `f32 + 2.0` stays float32, in the kernel and in the shape rule."""
    op = OPS[name]
    x = E.tensor(np.linspace(0.5, 2.0, 6, dtype=np.float32))
    args = (2.0, x) if scalar_first else (x, 2.0)
    out = apply(op, *args)
    assert out.dtype == apply(op, x, x).dtype
    assert out.dtype in (np.float32, np.bool_)
    assert op.eval_abstract(*args).dtype == out.dtype


def test_add_python_float_keeps_float32():
    """The everyday case, through the operator rather than the registry."""
    x = E.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    y = x + 2.0
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ---- logsumexp at the edges of float, against torch ------------------------------------

INF, NAN = np.inf, np.nan
LOGSUMEXP_ROWS = np.array(
    [
        [-INF, -INF, -INF],  # torch: -inf, gradient nan
        [INF, INF, INF],  # inf, gradient nan
        [INF, -INF, 1.0],  # inf, gradient [nan, 0, 0]
        [-INF, 1.0, 2.0],  # an empty term: finite, gradient 0 for it
        [NAN, 1.0, 2.0],
        [INF, NAN, 2.0],
        [88.0, 89.0, 90.0],  # exp overflows float32 without the max shift
        [-1e4, -1e4 + 1, -1e4 - 2],
    ],
    dtype=np.float32,
)


def _logsumexp_eager(rows: np.ndarray) -> list:
    x = E.tensor(rows, requires_grad=True)
    out = F.logsumexp(x, axis=-1)
    out.sum().backward()
    return [out.numpy(), x.grad.numpy()]


def _logsumexp_compiled(optimize: int):
    def run(rows: np.ndarray) -> list:
        x = S.placeholder(rows.shape, "float32")
        out = F.logsumexp(x, axis=-1)
        (grad,) = S.grad(F.sum(out), [x])
        return S.compile([out, grad], inputs=[x], optimize=optimize)(rows)

    return run


@pytest.mark.parametrize(
    "engine",
    [_logsumexp_eager, _logsumexp_compiled(0), _logsumexp_compiled(2)],
    ids=["eager", "compiled-O0", "compiled-O2"],
)
def test_logsumexp_of_infinite_and_nan_rows_matches_torch(engine):
    """torch computes in float64 here: in float32 its gradient, exp(x - out), loses ~1e-3
    of relative precision on the rows near 1e4, where the max-shifted form keeps it."""
    torch = pytest.importorskip("torch", reason="torch not installed: it is the oracle here")
    x = torch.tensor(LOGSUMEXP_ROWS, dtype=torch.float64, requires_grad=True)
    expected = torch.logsumexp(x, dim=-1)
    expected.sum().backward()
    with np.errstate(all="ignore"):  # inf - inf and 0 / 0 are the point here
        value, grad = engine(LOGSUMEXP_ROWS)
    np.testing.assert_allclose(
        value, expected.detach().numpy().astype(np.float32), rtol=1e-6, strict=True
    )
    np.testing.assert_allclose(
        grad, x.grad.numpy().astype(np.float32), rtol=1e-6, atol=1e-7, strict=True
    )
