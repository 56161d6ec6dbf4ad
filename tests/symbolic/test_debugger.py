"""The stepping debugger (`f.debug(*inputs)`): it runs the plan node by node, through fused
groups one member at a time, stops before a node, an op or a user's line, shows values,
lines and groups, ends with the outputs `f(*inputs)` gives, and drives the same from stdin."""

import io
import pathlib

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from symbolic.debug import DebugError

N = 256  # 65,536 elements: enough to be fused (fusion.MIN_ELEMENTS), run as one numpy block
THIS_FILE = pathlib.Path(__file__)


def _line(marker: str) -> str:
    """`test_debugger.py:N` of the line of this file that ends with `# marker`."""
    lines = THIS_FILE.read_text().splitlines()
    number = next(i for i, text in enumerate(lines, 1) if text.endswith(f"# {marker}"))
    return f"{THIS_FILE.name}:{number}"


def _program():
    """matmul, then four elementwise ops (fused at O2), then a sum."""
    x = S.placeholder((N, N), name="x")
    w = S.variable(np.linspace(-1, 1, N * N, dtype=np.float32).reshape(N, N), name="w")
    h = x @ w  # matmul line
    a = h * 0.01  # scale line
    b = F.tanh(a)  # tanh line
    c = b * 2.0 + x  # affine line
    y = F.sum(c)  # sum line
    return x, w, {"h": h, "a": a, "b": b, "c": c, "y": y}


def _feed():
    return np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)


@pytest.fixture(autouse=True)
def _numpy_fusion(monkeypatch):
    """Fused kernels run with numpy (block by block, each op's own kernel): bit for bit the
    unfused values, which is what the debugger runs."""
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numpy")


def _compiled(optimize: int, updates=None):
    x, w, s = _program()
    f = S.compile([s["y"], s["c"]], inputs=[x], optimize=optimize, updates=updates)
    return f, w, s


# ---- through the API ----------------------------------------------------------------------


@pytest.mark.parametrize("optimize", [0, 2])
def test_stepping_to_the_end_gives_what_a_call_gives(optimize):
    f, _, _ = _compiled(optimize)
    feed = _feed()
    dbg = f.debug(feed)
    ran = []
    while (node := dbg.step()) is not None:
        ran.append(node.op_name)
    assert ran == ["matmul", "mul", "tanh", "mul", "add", "sum"]  # fused groups run unfused
    assert dbg.done and dbg.step() is None
    got, want = dbg.finish(), f(feed)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.tobytes() == w.tobytes()  # bit for bit


def test_the_fused_plan_has_fewer_nodes_than_steps():
    f, _, _ = _compiled(2)
    assert [n.op_name for n in f.graph.ops] == ["matmul", "fused_1", "sum"]
    assert len(f.debug(_feed()).steps) == 6


def test_a_fused_members_value_equals_the_unfused_one():
    feed = _feed()
    f0, _, s0 = _compiled(0)
    f2, _, s2 = _compiled(2)
    values = []
    for f, s in ((f0, s0), (f2, s2)):
        dbg = f.debug(feed)
        assert dbg.continue_to(s["b"]).op_name == "tanh"  # stops before it runs
        with pytest.raises(DebugError, match="has not run yet"):
            dbg.value(s["b"])
        dbg.step()
        values.append(dbg.value())
        assert dbg.value(s["b"]) is values[-1]
    assert values[0].tobytes() == values[1].tobytes()


def test_where_names_the_users_line_and_the_fused_group():
    f, _, s = _compiled(2)
    dbg = f.debug(_feed())
    dbg.continue_to("tanh")
    place = dbg.where()
    assert place.line.startswith(_line("tanh line"))
    assert place.group is f.graph.ops[1] and place.step == 3
    assert _line("tanh line") in str(place) and "fused_1" in str(place)
    assert dbg.where(s["h"]).group is None  # the matmul runs on its own


def test_continue_to_a_line_an_op_a_label_and_a_fused_node():
    f, _, _ = _compiled(2)
    dbg = f.debug(_feed())
    assert dbg.continue_to(_line("affine line")).op_name == "mul"  # b * 2.0, then + x
    assert dbg.position == 3
    assert dbg.continue_to(_line("affine line")).op_name == "add"  # its next node
    assert dbg.continue_to(":" + _line("sum line").split(":")[1]).op_name == "sum"
    dbg = f.debug(_feed())
    assert dbg.continue_to("mul") is dbg.steps[1] and dbg.position == 1
    dbg.continue_to("mul")  # from a stop, the same op goes on to its next occurrence
    assert dbg.position == 3
    dbg = f.debug(_feed())
    assert dbg.continue_to(f.graph.ops[1]) is dbg.steps[1]  # a fused node: its first member
    assert f.debug(_feed()).continue_to("fused_1").op_name == "mul"  # its op name, too
    with f.graph.numbering.active():
        label = dbg.steps[4].label
    assert dbg.continue_to(label).op_name == "add" and dbg.position == 4


def test_bad_targets_say_what_exists_and_run_nothing():
    f, _, _ = _compiled(2)
    dbg = f.debug(_feed())
    dbg.continue_to("sum")
    with pytest.raises(DebugError, match=r"no step ahead runs an op named 'conv2d'.*sum"):
        dbg.continue_to("conv2d")
    lines_ahead = rf"no step ahead was made at nowhere.py:3\. Lines ahead: {_line('sum line')}\."
    with pytest.raises(DebugError, match=lines_ahead):
        dbg.continue_to("nowhere.py:3")
    with pytest.raises(DebugError, match=r"'%999' is not a node of this plan.*%0, %1"):
        dbg.value("%999")
    with pytest.raises(DebugError, match="matmul is not ahead: it already ran"):
        dbg.continue_to(f.graph.ops[0])
    assert dbg.position == 5  # nothing ran


def test_value_before_anything_ran_is_a_clear_error():
    f, _, s = _compiled(0)
    dbg = f.debug(_feed())
    with pytest.raises(DebugError, match=r"nothing has run yet"):
        dbg.value()
    assert dbg.value(s["h"].node.inputs[1]) is s["h"].node.inputs[1].value.data  # a weight


def test_a_failing_kernel_names_the_op_the_line_and_the_feeds_and_stays_put():
    a, b = S.placeholder((None,), name="a"), S.placeholder((None,), name="b")
    f = S.compile(F.exp(a) + b, inputs=[a, b], optimize=0)  # add line
    dbg = f.debug(np.ones(3, np.float32), np.ones(4, np.float32))
    dbg.step()
    with pytest.raises(
        S.GraphRuntimeError, match=rf"(?s)'a' f32\[\?\] \(fed \(3,\).*{_line('add line')}"
    ):
        dbg.step()
    assert dbg.position == 1 and dbg.value().shape == (3,)


def test_feeds_are_checked_as_a_call_checks_them():
    f, _, _ = _compiled(0)
    with pytest.raises(S.FeedError, match="expects shape"):
        f.debug(np.zeros((3, 3), np.float32))


def test_updates_are_written_only_when_asked():
    x, w, s = _program()
    f = S.compile(s["y"], inputs=[x], updates={w: w - 0.1 * x}, optimize=2)
    storage = w.node.value
    before = storage.data.copy()
    feed = _feed()
    assert f.debug(feed).finish() == f.debug(feed).finish()
    assert storage.data.tobytes() == before.tobytes()  # the debugger left the weight alone
    f.debug(feed).finish(apply_updates=True)
    by_debugger = storage.data.copy()
    storage.data[...] = before
    f(feed)
    assert by_debugger.tobytes() == storage.data.tobytes() != before.tobytes()


def test_a_control_flow_node_is_one_step():
    x = S.placeholder((3,), name="x")
    out = F.cond(F.sum(x) > 0, lambda v: v * 2.0, lambda v: v - 1.0, x)
    f = S.compile(out, inputs=[x], optimize=0)
    feed = np.array([1.0, -2.0, 4.0], np.float32)
    dbg = f.debug(feed)
    assert [n.op_name for n in dbg.steps].count("cond") == 1
    np.testing.assert_array_equal(dbg.finish(), f(feed))


def test_the_listing_marks_the_next_step_with_local_labels():
    f, _, _ = _compiled(2)
    dbg = f.debug(_feed())
    dbg.continue_to("tanh")
    text = repr(dbg)  # what Jupyter shows
    assert str(dbg) == text and text.startswith("plan: 2 of 6 steps ran")
    arrow = next(line for line in text.splitlines() if line.startswith("->"))
    assert "tanh(%" in arrow and _line("tanh line") in arrow
    assert "fused_1(%" in text and "run unfused" in text


# ---- through the command loop ---------------------------------------------------------------


def _session(monkeypatch, capsys, dbg, commands: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(commands))
    dbg.interact()
    return capsys.readouterr().out


def test_the_command_loop_steps_prints_and_continues(monkeypatch, capsys):
    f, _, s = _compiled(2)
    dbg = f.debug(_feed())
    out = _session(monkeypatch, capsys, dbg, "s\n\nw\np\nc tanh\nl\nc\nq\n")
    assert out.count("ran ") == 2  # an empty line repeats the last command
    assert "next: " in out and "step 3 of 6" in out and "fused_1" in out
    with f.graph.numbering.active():
        assert f"{dbg.steps[1].label} = array(" in out  # p: the value just run
    assert "-> end: every step ran" in out and dbg.done


def test_the_command_loop_reports_bad_input_and_goes_on(monkeypatch, capsys):
    f, _, _ = _compiled(2)
    dbg = f.debug(_feed())
    out = _session(monkeypatch, capsys, dbg, "frobnicate\nc conv2d\np\nh\np %999\ns\n")
    assert "unknown command 'frobnicate'" in out and "continue" in out
    assert "no step ahead runs an op named 'conv2d'" in out
    assert "nothing has run yet" in out and "is not a node of this plan" in out
    assert dbg.position == 1  # the loop ended at the end of input, after the last `s`
