"""`compare.check.equivalence`: a bug planted in each pass is found, and the report names the
pass and the user's node (its op and line); correct programs, every zoo model among them,
pass. The bugs are planted through test-only hooks: a pass's helper monkeypatched."""

import argparse
import dataclasses
import pathlib
import re

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common.fusion import FusedKernel
from compare import check, zoo
from compare.check import equivalence, equivalence_of_model, parting
from compare.checks import UsageError
from symbolic.passes import common_subexpressions, constant_folding, fusion, memory

HERE = pathlib.Path(__file__)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4)).astype(np.float32)
Y = RNG.normal(size=(3, 4)).astype(np.float32)
W = RNG.normal(size=(4, 4)).astype(np.float32)


def line_of(marker: str) -> str:
    """`test_check.py:N` for the line of this file that ends with `# <marker>`."""
    lines = HERE.read_text().splitlines()
    (number,) = [i + 1 for i, line in enumerate(lines) if line.endswith(f"# {marker}")]
    return f"{HERE.name}:{number}"


def constant(like, value):
    """A constant on `like`'s engine: a graph constant for a symbol, a tensor eagerly."""
    return S.constant(value) if isinstance(like, S.Symbol) else E.tensor(value)


# ---- programs, each with the line a planted bug must be traced to -------------------------


def scaled(x):
    scale = F.neg(constant(x, np.float32(1.5)))  # fold
    return x * scale


def scaled_twice(x):
    doubled = x * constant(x, np.float32(2.0))
    tripled = x * constant(x, np.float32(3.0))  # cse
    return doubled, tripled


def difference(x, y):
    return F.exp(x) - F.tanh(y) * 2.0  # fusion


def two_products(x, w):
    first = x @ w
    second = F.tanh(x) @ w
    return (first - second).sum()  # memory


# ---- the planted bugs -----------------------------------------------------------------------


def fold_dropping_signs(monkeypatch):
    real = constant_folding.run_kernel
    monkeypatch.setattr(
        constant_folding, "run_kernel", lambda op, args, params: np.abs(real(op, args, params))
    )


def cse_blind_to_values(monkeypatch):
    real = common_subexpressions._key

    def key(node):  # a constant's key without its bytes: any two of one type merge
        found = real(node)
        return found[:3] if node.op == "constant" else found

    monkeypatch.setattr(common_subexpressions, "_key", key)


def fusion_swapping_operands(monkeypatch):
    real = fusion.build_program

    def build(members):
        program, inputs = real(members)
        steps = tuple(
            dataclasses.replace(s, args=s.args[::-1]) if s.op == "sub" else s for s in program.steps
        )
        return dataclasses.replace(program, steps=steps), inputs

    monkeypatch.setattr(fusion, "build_program", build)


def memory_freeing_early(monkeypatch):
    real = memory.lifetimes

    def lifetimes(graph, root):  # every value dies where it is made, unless returned
        kept = {root[n.id].id for n in graph.outputs}
        spans = real(graph, root)
        return {i: s if i in kept else (s[0], s[0]) for i, s in spans.items()}

    monkeypatch.setattr(memory, "lifetimes", lifetimes)


PLANTED = [  # (bug, program, inputs, the pass, the op, the marker of the line, first level)
    (fold_dropping_signs, scaled, (X,), "constant_folding", "neg", "fold", 1),
    (cse_blind_to_values, scaled_twice, (X,), "cse", "mul", "cse", 1),
    (fusion_swapping_operands, difference, (X, Y), "fusion", "sub", "fusion", 2),
    (memory_freeing_early, two_products, (X, W), "memory", "sub", "memory", 2),
]


@pytest.mark.parametrize(
    "plant, program, inputs, pass_name, op, marker, level",
    PLANTED,
    ids=[case[3] for case in PLANTED],
)
def test_a_bug_planted_in_a_pass_is_traced_to_the_pass_and_the_users_node(
    monkeypatch, plant, program, inputs, pass_name, op, marker, level
):
    assert equivalence(program, *inputs).ok  # the program itself is fine
    plant(monkeypatch)
    report = equivalence(program, *inputs)
    assert not report.ok
    assert [d.optimize for d in report.divergences] == list(range(level, 3)), str(report)
    for found in report.divergences:  # every level that runs the pass says the same
        assert (found.pass_name, found.op, found.line) == (pass_name, op, line_of(marker))
    found = report.first_divergence
    assert parting(found.got, found.expected, exact=False) == found.max_abs_diff > 0
    assert found.statement.startswith(f"{found.node} = {op}(")
    assert f"`{found.statement}`, made at {line_of(marker)}" in str(report)
    assert f"The pass {pass_name!r} changed it" in str(report)


def test_a_buffer_reused_while_live_is_named_as_the_reason(monkeypatch):
    memory_freeing_early(monkeypatch)
    found = equivalence(two_products, X, W).first_divergence
    assert found.note.startswith("The buffer holding its input %2 (matmul) was overwritten")


def test_a_fused_kernel_that_computes_wrongly_is_found_by_switching_passes_off(monkeypatch):
    """The node-by-node run expands a fused node into its ops, so a wrong fused kernel shows
    only in the plan's outputs: the pass is then the one whose absence mends them."""
    real = FusedKernel.__call__
    monkeypatch.setattr(FusedKernel, "__call__", lambda *a, **k: real(*a, **k) + 1)
    report = equivalence(difference, X, Y, optimize=(2,))
    found = report.first_divergence
    assert (found.pass_name, found.op, found.line) == ("fusion", "sub", line_of("fusion"))
    assert "the generated plan" in found.note


def drawn_while_tracing(x):
    return x + np.float32(np.random.default_rng().normal())  # drawn


def test_a_program_that_differs_from_its_trace_is_named_at_optimize_0():
    """Random numbers drawn by Python are frozen into the graph: no pass is to blame."""
    report = equivalence(drawn_while_tracing, X, optimize=(0,))
    found = report.first_divergence
    assert (found.pass_name, found.op, found.line) == (None, "add", line_of("drawn"))
    assert "the traced graph already differs from the eager program" in str(report)


def test_a_correct_program_passes_bit_for_bit_at_optimize_0():
    report = equivalence(difference, X, Y)
    assert report.ok and report.first_divergence is None
    assert report.levels[0] == 0.0
    assert report.nodes_checked > 0
    assert "agree at optimize=0, 1, 2: bit for bit at optimize=0" in str(report)


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_model_passes_equivalence(name):
    report = equivalence_of_model(name, *zoo.get(name).test_sizes)
    assert report.ok, str(report)
    assert set(report.levels) == {0, 1, 2}


# ---- `diptych check` ------------------------------------------------------------------------


def diptych_check(*argv: str) -> int:
    """`diptych check ARGV` through the command's own parser."""
    parser = argparse.ArgumentParser()
    check.add_parser(parser.add_subparsers(dest="command"))
    return check.run_check_command(parser.parse_args(["check", *argv]))


SCRIPT = """
import numpy as np
from common import functional as F

def difference(x, y):
    return F.exp(x) - F.tanh(y) * 2.0

def make_inputs():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(2, 3)).astype(np.float32), "y": np.ones((2, 3), np.float32)}
"""


def test_the_command_checks_a_zoo_model(capsys):
    assert diptych_check("neuron") == 0
    out = capsys.readouterr().out
    assert "neuron (batch 1, inputs 4): eager and compiled agree at optimize=0, 1, 2" in out
    assert "gradcheck passes" in out


def test_the_command_checks_a_scripts_function(tmp_path, capsys):
    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    assert diptych_check("--script", f"{script}:difference") == 0
    assert diptych_check("--script", f"{script}:difference", "--shape", "4", "--shape", "4") == 0
    out = capsys.readouterr().out
    assert out.count("difference: eager and compiled agree") == 2
    assert out.count("difference: gradcheck passes") == 2


def test_the_command_exits_1_naming_the_pass(tmp_path, monkeypatch, capsys):
    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    fusion_swapping_operands(monkeypatch)
    assert diptych_check("--script", f"{script}:difference", "--no-gradcheck") == 1
    out = capsys.readouterr().out
    assert "The pass 'fusion' changed it" in out and "gradcheck" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ((), "name a zoo model or pass --script"),
        (("resnet",), "unknown model 'resnet'"),
        (("--script", "nowhere.py:f"), "expected an existing PATH.py:FUNCTION"),
        (("--script", f"{HERE}:missing"), "defines no function 'missing'"),
        (("--script", f"{HERE}:scaled"), "has no make_inputs(); define one or pass --shape"),
        (("--script", f"{HERE}:scaled", "--shape", "3,x"), "--shape '3,x'"),
    ],
)
def test_the_command_refuses_what_it_cannot_run(argv, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        diptych_check(*argv)
