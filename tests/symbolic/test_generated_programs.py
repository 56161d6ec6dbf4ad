"""Generated training programs, run eagerly and compiled at optimize=0, 1 and 2 (and 2 without
fusion): the same outputs, gradients and updated variables over two training steps (the first
step's outputs at optimize=0 bit for bit, DESIGN.md; the rest within a float tolerance).

A program mixes what the passes meet in models: elementwise chains (fusion, and the memory
plan's in-place writes and buffer reuse), reductions, matmuls, reshape and permute views, and
`F.cond` / `F.scan` / `F.while_loop` whose bodies read variables that the rest of the program
reads too, including bodies that hand an input back unchanged or as a view of it. While loops
have no gradient: their values are returned but never reach the loss.
"""

from typing import NamedTuple

import numpy as np
from hypothesis import Phase, event, find, given, settings
from hypothesis import strategies as st

import eager as E
import symbolic as S
from common import functional as F
from tests.helpers import assert_identical
from tests.symbolic.test_differential import Step, _draw_step

LR = 0.01  # the update rule: w <- w - LR * dloss/dw
STEPS = 2  # training steps per program: the second reads what the first wrote
TOLERANCE = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-12)}  # (rtol, atol), optimize>0
# The compiled steps compared, by name. Tests fuse groups of any size (conftest.py); by
# default arrays this small are not fused, which gives the memory plan other graphs.
CONFIGS = {
    "optimize=0": {"optimize": 0},
    "optimize=1": {"optimize": 1},
    "optimize=2": {"optimize": 2},
    "optimize=2, unfused": {"optimize": 2, "disable": ["fusion"]},
}


class Program(NamedTuple):
    """Values are [*placeholders, *variables, *predicates, *one per step]."""

    placeholders: list  # shapes of the float inputs, fed anew each step
    variables: list  # shapes of the variables: trained, and read anywhere (bodies included)
    n_preds: int  # boolean inputs: the predicates of the conds
    dtype: str
    steps: list  # Step(label, args, fn): values.append(fn(*values[args]))
    loss_terms: tuple  # the loss is the sum of sum(v * v) over these (no while_loop upstream)
    outputs: tuple  # values returned besides the loss (while_loops' included)
    return_grads: bool  # the gradients (placeholders' too) returned, or only read by updates
    skip_on: bool  # the update is a cond: predicate 0 holds -> the step keeps the weights

    def __repr__(self) -> str:
        first = len(self.placeholders) + len(self.variables) + self.n_preds
        lines = [
            f"Program({self.dtype}, placeholders {self.placeholders}, variables "
            f"{self.variables}, {self.n_preds} predicates)"
        ]
        lines += [f"  %{first + k} = {s.label}{list(s.args)}" for k, s in enumerate(self.steps)]
        lines.append(
            f"  loss = sum of sum(v * v) over {list(self.loss_terms)}; outputs "
            f"{list(self.outputs)}; gradients returned: {self.return_grads}; "
            f"updates skipped when p0: {self.skip_on}"
        )
        return "\n".join(lines)


def evaluate(program: Program, inputs: list) -> list:
    """Every value of the program, on eager tensors or on symbols."""
    values = list(inputs)
    for step in program.steps:
        values.append(step.fn(*(values[i] for i in step.args)))
    return values


def loss_of(program: Program, values: list):
    return sum(F.sum(values[i] * values[i]) for i in program.loss_terms)


def updated(program: Program, w, grad, p0):
    """A weight's new value: a step of gradient descent, or (skip_on) a cond that keeps the
    weight when p0 holds, as a step skipped on a bad batch would."""
    if not program.skip_on:
        return w - LR * grad
    return F.cond(p0, lambda w, g: w, lambda w, g: w - LR * g, w, grad)


# ---- control-flow steps ------------------------------------------------------------------


def _fits(shape: tuple, into: tuple) -> bool:
    """`shape` broadcasts against `into` without changing it."""
    try:
        return np.broadcast_shapes(shape, into) == into
    except ValueError:
        return False


# name -> (fn(a, c), applies(shape of a, shape of c)); each returns a value shaped like a.
BRANCHES = {
    "a": (lambda a, c: a, lambda sa, sc: True),  # passes its operand through
    "c": (lambda a, c: c, lambda sa, sc: sa == sc),  # hands back what it reads (a variable)
    "a + c": (lambda a, c: a + c, lambda sa, sc: _fits(sc, sa)),
    "tanh(a) * c": (lambda a, c: F.tanh(a) * c, lambda sa, sc: _fits(sc, sa)),
    "a.T.T": (lambda a, c: F.transpose(F.transpose(a)), lambda sa, sc: len(sa) >= 2),
    "reshape(a)": (lambda a, c: a.reshape(-1).reshape(a.shape), lambda sa, sc: len(sa) >= 1),
    "scan(a) ys": (  # a loop inside a branch: running sums of a along its first axis
        lambda a, c: F.scan(lambda h, x: (h + x * c, h), a[0] * 0.0, a)[1],
        lambda sa, sc: len(sa) >= 1 and _fits(sc, sa[1:]),
    ),
}

# name -> (fn(c, x, w, p) -> (carry, y), applies(shape of w, step shape), has a y).
SCAN_BODIES = {
    "(c, x)": (lambda c, x, w, p: (c, x), lambda sw, s: True, True),  # all passed through
    "(x, c)": (lambda c, x, w, p: (x, c), lambda sw, s: True, True),  # carry: a view of xs
    "(c + x, c * x)": (lambda c, x, w, p: (c + x, c * x), lambda sw, s: True, True),
    "(tanh(c * w + x), None)": (lambda c, x, w, p: (F.tanh(c * w + x), None), _fits, False),
    "(c * 0.5 + x * w, sum(c))": (lambda c, x, w, p: (c * 0.5 + x * w, F.sum(c)), _fits, True),
    "(cond(p; c * w + x | c), x)": (  # a cond inside the loop, on an outer predicate
        lambda c, x, w, p: (F.cond(p, lambda c, x: c * w + x, lambda c, x: c, c, x), x),
        _fits,
        True,
    ),
}

# name -> (fn(c, w), applies(shape of w, shape of c)): the carry's update in a counted loop.
WHILE_BODIES = {
    "c": (lambda c, w: c, lambda sw, sc: True),
    "tanh(c) * w": (lambda c, w: F.tanh(c) * w, _fits),
    "c * 0.5 + w": (lambda c, w: c * 0.5 + w, _fits),
}


def _read(draw, floats: list, variables: list) -> int:
    """A value a body reads from outside: often a variable, so that several bodies (and
    plain steps) share it; else often an intermediate, which has a buffer."""
    return draw(st.sampled_from(variables) | st.sampled_from(floats[-2:]) | st.sampled_from(floats))


def _operand(draw, floats: list) -> int:
    """Mostly one of the latest values: an intermediate, which the memory plan gives a buffer
    (placeholders and variables have none)."""
    return draw(st.sampled_from(floats[-2:]) | st.sampled_from(floats))


def _branch(draw, names: list, n: int) -> tuple:
    """(label, fn) of a branch returning n values (two: a cond with two items)."""
    picked = [draw(st.sampled_from(names)) for _ in range(n)]
    fns = [BRANCHES[name][0] for name in picked]
    return " & ".join(picked), fns[0] if n == 1 else lambda a, c: tuple(f(a, c) for f in fns)


def _cond(draw, shapes, floats, variables, preds) -> Step:
    a, c = _operand(draw, floats), _read(draw, floats, variables)
    p, fixed = draw(st.sampled_from(preds)), draw(st.sampled_from([None, None, True, False]))
    names = sorted(n for n, (_, applies) in BRANCHES.items() if applies(shapes[a], shapes[c]))
    names += ["a"]  # twice as likely: the pass-through
    n = draw(st.integers(1, 2))
    (true_name, true_fn), (false_name, false_fn) = _branch(draw, names, n), _branch(draw, names, n)

    def combined(out):  # two items: both read, added
        return out[0] + out[1] * 0.5 if isinstance(out, tuple) else out

    def pred(p):  # a predicate fed at each call, or one known when the graph is built
        return p if fixed is None else np.bool_(fixed)

    label = f"cond({true_name} | {false_name}{'' if fixed is None else f'; p={fixed}'}"
    if draw(st.booleans()):  # c an operand of the cond
        return Step(
            f"{label}; operands a, c)",
            (p, a, c),
            lambda p, a, c: combined(F.cond(pred(p), true_fn, false_fn, a, c)),
        )
    return Step(
        f"{label}; captures c)",
        (p, a, c),  # c captured
        lambda p, a, c: combined(
            F.cond(pred(p), lambda a: true_fn(a, c), lambda a: false_fn(a, c), a)
        ),
    )


def _constant(draw, shapes, floats, dtype) -> Step:
    """A constant the step combines with a value: folded, simplified, or fed to a fused
    kernel, by the passes."""
    a = _operand(draw, floats)
    array = np.linspace(-1.0, 1.0, int(np.prod(shapes[a]))).reshape(shapes[a]).astype(dtype)

    def constant(like):  # the array as a value of the engine running the program
        return S.constant(array) if isinstance(like, S.Symbol) else E.tensor(array)

    name = draw(st.sampled_from(["a + k", "a * tanh(k)", "a + (k * 0.0 + 1.0)"]))
    fn = {
        "a + k": lambda a: a + constant(a),
        "a * tanh(k)": lambda a: a * F.tanh(constant(a)),
        "a + (k * 0.0 + 1.0)": lambda a: a + (constant(a) * 0.0 + 1.0),
    }[name]
    return Step(f"{name} (k a constant)", (a,), fn)


def _scan(draw, shapes, floats, variables, preds) -> Step | None:
    sequences = [i for i in floats if len(shapes[i]) >= 1]
    if not sequences:
        return None
    xs, w = _operand(draw, sequences), _read(draw, floats, variables)
    shape = shapes[xs][1:]
    name = draw(
        st.sampled_from(
            sorted(n for n, (_, applies, _) in SCAN_BODIES.items() if applies(shapes[w], shape))
        )
    )
    body, _, has_y = SCAN_BODIES[name]
    init = draw(
        st.sampled_from(["xs[0]", "mean(xs, 0)"] + [i for i in floats if shapes[i] == shape])
    )
    part = draw(st.sampled_from(["carry", "ys"] if has_y else ["carry"]))

    def fn(xs, w, p, *given):
        start = given[0] if given else xs[0] if init == "xs[0]" else F.mean(xs, 0)
        carry, ys = F.scan(lambda c, x: body(c, x, w, p), start, xs)
        return carry if part == "carry" else ys

    args = (xs, w, draw(st.sampled_from(preds))) + ((init,) if isinstance(init, int) else ())
    return Step(f"scan({name}, init={init}).{part}", args, fn)


def _while(draw, shapes, floats, variables) -> Step:
    a, w = _operand(draw, floats), _read(draw, floats, variables)
    name = draw(
        st.sampled_from(
            sorted(n for n, (_, applies) in WHILE_BODIES.items() if applies(shapes[w], shapes[a]))
        )
    )
    body, n = WHILE_BODIES[name][0], draw(st.integers(0, 3))  # 0: the body never runs

    def fn(a, w):
        _, c = F.while_loop(
            lambda c: c[0] < n, lambda c: (c[0] + 1, body(c[1], w)), (np.array(0), a)
        )
        return c

    return Step(f"while_loop({name}, {n} times)", (a, w), fn)


# ---- programs ----------------------------------------------------------------------------

# drawn uniformly: the mix ("again" repeats an earlier step: the same subgraph twice)
STEP_KINDS = ["data", "data", "cond", "cond", "scan", "while", "constant", "again"]


def _shapes(draw) -> tuple[list, list]:
    """Placeholder and variable shapes that broadcast together: suffixes of one base shape,
    some axes set to 1; variables may be scalars (as learning-rate-like weights are)."""
    base = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))

    def one() -> tuple:
        suffix = base[draw(st.integers(0, len(base))) :]
        return tuple(1 if draw(st.booleans()) else d for d in suffix)

    return (
        [one() for _ in range(draw(st.integers(1, 2)))],
        [one() for _ in range(draw(st.integers(1, 3)))],
    )


def _step(draw, kind: str, shapes, floats, variables, preds, dtype) -> Step:
    """A step of `kind`; a plain one (elementwise, reduction, view, matmul) if it has none."""
    step = {
        "cond": lambda: _cond(draw, shapes, floats, variables, preds),
        "scan": lambda: _scan(draw, shapes, floats, variables, preds),
        "while": lambda: _while(draw, shapes, floats, variables),
        "constant": lambda: _constant(draw, shapes, floats, dtype),
    }.get(kind, lambda: None)()
    if step is None:
        step = _draw_step(draw, [shapes[i] for i in floats])
        step = Step(step.label, tuple(floats[i] for i in step.args), step.fn)
    return step


@st.composite
def programs(draw) -> Program:
    placeholders, variables = _shapes(draw)
    n_preds = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shapes = placeholders + variables + [()] * n_preds
    floats = list(range(len(placeholders) + len(variables)))
    var_ids = floats[len(placeholders) :]
    preds = list(range(len(floats), len(shapes)))
    first = len(shapes)  # the first step's value
    ghosts = [np.ones(s, dtype) for s in placeholders + variables] + [np.True_] * n_preds
    forward_only: set[int] = set()  # values computed through a while_loop
    steps = []
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(STEP_KINDS))
        if kind == "again" and steps:  # the same subgraph twice: CSE may merge the two
            again = draw(st.integers(0, len(steps) - 1))
            step = steps[again]._replace(label=f"again: {steps[again].label}")
        else:
            again, step = None, _step(draw, kind, shapes, floats, var_ids, preds, dtype)
        steps.append(step)
        ghosts.append(np.asarray(step.fn(*(ghosts[i] for i in step.args))))
        repeats_a_loop = again is not None and first + again in forward_only
        if kind == "while" or repeats_a_loop or forward_only.intersection(step.args):
            forward_only.add(len(shapes))
        floats.append(len(shapes))
        shapes.append(ghosts[-1].shape)
    made = range(first, len(shapes))
    trainable = [i for i in made if i not in forward_only] or var_ids
    last = max(trainable)
    loss_terms = tuple(sorted({last, *draw(st.lists(st.sampled_from(trainable), max_size=1))}))
    outputs = draw(st.lists(st.sampled_from(list(made)), max_size=2, unique=True))
    outputs = tuple(dict.fromkeys(outputs + sorted(forward_only)[-1:]))  # keep a while_loop
    return Program(
        placeholders,
        variables,
        n_preds,
        dtype,
        steps,
        loss_terms,
        outputs,
        draw(st.booleans()),
        draw(st.booleans()),
    )


# ---- running a program eagerly, and compiled ----------------------------------------------


class Feeds(NamedTuple):
    weights: list  # the variables' initial values
    steps: list  # per training step: (placeholder values, predicate values)


def _feeds(program: Program, seed: int, flips: list) -> Feeds:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(program.dtype) for s in program.variables]
    steps = [
        (
            [rng.normal(size=s).astype(program.dtype) for s in program.placeholders],
            [np.bool_(flips[(k * 2 + j) % len(flips)]) for j in range(program.n_preds)],
        )
        for k in range(STEPS)
    ]
    return Feeds(weights, steps)


def eager_steps(program: Program, feeds: Feeds) -> list:
    """Per training step: the returned arrays, then the variables after the step."""
    weights, results = [w.copy() for w in feeds.weights], []
    for xs, ps in feeds.steps:
        inputs = [E.tensor(x, requires_grad=program.return_grads) for x in xs]
        leaves = [E.tensor(w, requires_grad=True) for w in weights]
        values = evaluate(program, inputs + leaves + [E.tensor(p) for p in ps])
        loss = loss_of(program, values)
        wrt = (inputs if program.return_grads else []) + leaves
        # a loss that reads no variable has no tape: every gradient is zero
        grads = E.grad(loss, wrt, allow_unused=True) if loss.requires_grad else [None] * len(wrt)
        grads = [np.zeros_like(x.numpy()) if g is None else g.numpy() for g, x in zip(grads, wrt)]
        weights = [
            updated(program, E.tensor(w), E.tensor(g), E.tensor(ps[0])).numpy()
            for w, g in zip(weights, grads[len(wrt) - len(leaves) :])
        ]
        returned = [loss.numpy()] + [values[i].numpy() for i in program.outputs]
        results.append(returned + (grads if program.return_grads else []) + weights)
    return results


class Compiled(NamedTuple):
    functions: dict  # config name -> the compiled training step
    variables: list  # their storage, shared by every config


def compile_steps(program: Program, configs: tuple = tuple(CONFIGS)) -> Compiled:
    inputs = [
        S.placeholder(s, program.dtype, name=f"x{i}") for i, s in enumerate(program.placeholders)
    ]
    variables = [
        S.variable(np.zeros(s), name=f"w{i}", dtype=program.dtype)
        for i, s in enumerate(program.variables)
    ]
    preds = [S.placeholder((), "bool", name=f"p{i}") for i in range(program.n_preds)]
    values = evaluate(program, inputs + variables + preds)
    loss = loss_of(program, values)
    wrt = (inputs if program.return_grads else []) + variables
    grads = S.grad(loss, wrt)
    outputs = [loss] + [values[i] for i in program.outputs]
    outputs += grads if program.return_grads else []
    updates = {
        v: updated(program, v, g, preds[0])
        for v, g in zip(variables, grads[len(wrt) - len(variables) :])
    }
    functions = {
        name: S.compile(outputs, inputs=inputs + preds, updates=updates, **CONFIGS[name])
        for name in configs
    }
    return Compiled(functions, [v.node.value for v in variables])


def compiled_steps(compiled: Compiled, config: str, feeds: Feeds) -> list:
    """As `eager_steps`, from the compiled step of `config` (variables reset first)."""
    for storage, w in zip(compiled.variables, feeds.weights):
        storage.data[...] = w
    results = []
    for xs, ps in feeds.steps:
        returned = compiled.functions[config](*xs, *ps)
        results.append(
            [np.asarray(r).copy() for r in returned]
            + [storage.data.copy() for storage in compiled.variables]
        )
    return results


def _describe(program: Program, k: int) -> str:
    n_out = 1 + len(program.outputs)
    wrt = [f"x{i}" for i in range(len(program.placeholders))] if program.return_grads else []
    wrt += [f"w{i}" for i in range(len(program.variables))]
    n_grads = len(wrt) if program.return_grads else 0
    if k == 0:
        return "loss"
    if k < n_out:
        return f"output %{program.outputs[k - 1]}"
    if k < n_out + n_grads:
        return f"gradient of {wrt[k - n_out]}"
    return f"w{k - n_out - n_grads} after the step"


def _record_events(compiled: Compiled) -> None:
    """What the passes did, for --hypothesis-show-statistics."""
    graph = compiled.functions["optimize=2"].graph
    ops = {n.op_name for n in graph.ops}
    event("fused" if any(o.startswith("fused_") for o in ops) else "nothing fused")
    plan = graph.memory
    event("in place" if plan.in_place else "no in-place write")
    event("buffer reused" if len(plan.buffers) < len(plan.assignment) else "no buffer reused")
    for kind in ("cond", "scan", "while_loop"):
        if kind in ops:
            event(f"has {kind}")


@given(
    program=programs(),
    seed=st.integers(0, 2**32 - 1),
    flips=st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_training_steps_agree_across_engines_and_levels(program, seed, flips):
    """optimize=0 runs eager's kernels in eager's order: the first step's loss and outputs
    are equal bit for bit. Gradients may add the same terms in another order (eager runs a
    branch inline; the graph sums a cond's cotangents before passing them through it), so
    they, and what they change, agree to the tolerance, as the optimized levels do."""
    feeds = _feeds(program, seed, flips)
    want = eager_steps(program, feeds)
    compiled = compile_steps(program)
    _record_events(compiled)
    rtol, atol = TOLERANCE[program.dtype]
    n_forward = 1 + len(program.outputs)
    for config in CONFIGS:
        got = compiled_steps(compiled, config, feeds)
        for step, (got_step, want_step) in enumerate(zip(got, want, strict=True)):
            for k, (g, w) in enumerate(zip(got_step, want_step, strict=True)):
                what = f"{config}, step {step}: {_describe(program, k)}"
                if config == "optimize=0" and step == 0 and k < n_forward:
                    assert_identical(g, w, what)
                else:
                    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def _exercised(program: Program) -> bool:
    """The plan at optimize=2 fuses, writes in place, reuses a buffer, and holds a cond and
    a scan."""
    graph = compile_steps(program, ("optimize=2",)).functions["optimize=2"].graph
    plan, names = graph.memory, {n.op_name for n in graph.ops}
    return (
        any(n.startswith("fused_") for n in names)
        and bool(plan.in_place)
        and len(plan.buffers) < len(plan.assignment)
        and {"cond", "scan"} <= names
    )


def test_the_generator_reaches_fusion_memory_planning_and_control_flow():
    """A generator that never produced what the passes act on would make the test above
    vacuous; the statistics (`--hypothesis-show-statistics`) show how often each happens."""
    found = find(
        programs(),
        _exercised,
        settings=settings(
            max_examples=500, database=None, derandomize=True, phases=[Phase.generate]
        ),
    )
    assert _exercised(found)
