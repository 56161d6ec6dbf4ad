"""A new elementwise op, declared here and nowhere else, fuses on every target its declaration
spells it for; where a target has no spelling, or its kernel fails to build, the group runs
unfused there (with a warning naming the op on failure), and `f.report` says so."""

import types
import warnings

import numpy as np
import pytest

import common.fusion as fusion
import symbolic as S
from common.dispatch import apply
from common.fusion import FusedKernel
from common.ops.core import OPS, OpDef, declare, uniform_samples
from common.ops.elementwise import UNARY_SHAPES, unary_float
from tests.common.test_fusion_kernels import KERNELS, _assert_close, _fusable, op_program

SHAPE = (40, 50)


def _softplus_kernel(xp, x, out=None):
    return xp.log1p(xp.exp(x), out=out)


def _declare_softplus(name: str, **fusion_fields) -> OpDef:
    """softplus(x) = log(1 + e^x), as an op family's file would declare it."""
    return declare(OpDef(
        name, "elementwise", _softplus_kernel, unary_float,
        vjp=(lambda g, out, x: g * (1 - (-out).exp()),), writes_out=True,
        samples=uniform_samples(UNARY_SHAPES), **fusion_fields,
    ))  # fmt: skip


@pytest.fixture
def declared():
    """Declares ops for one test and removes them after it (the registry-walking tests
    elsewhere must not meet them)."""
    names = []

    def declare_op(name: str, **fusion_fields) -> OpDef:
        names.append(name)
        return _declare_softplus(name, **fusion_fields)

    yield declare_op
    for name in names:
        del OPS[name]


SPELLED = {"expr": "log1p(exp({0}))", "preamble": {"numba": "from numpy import exp, log1p"}}


def _compiled(op: OpDef):
    x = S.placeholder(SHAPE, name="x")
    out = apply(op, x * 0.5) * 2.0 - x
    values = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    want = S.compile(out, inputs=[x], optimize=0)(values)
    return S.compile(out, inputs=[x], optimize=2), values, want


@pytest.mark.parametrize("target", ["numba", "numpy"])
def test_a_new_op_fuses_with_no_other_file_touched(declared, target, monkeypatch):
    if target == "numba" and not fusion.numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", target)
    f, values, want = _compiled(declared("softplus_example", **SPELLED))
    (fused,) = f.report.fused_kernels
    assert "softplus_example" in {s.op for s in fused.kernel.program.steps}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_close(f(values), want, target)
    assert fused.kernel.choice.startswith(target), fused.kernel.choice


def test_the_registry_walk_takes_in_a_new_op(declared):
    """The registry-driven test of every op on every target sees the new op, no test edit."""
    declared("softplus_example", **SPELLED)
    for target in KERNELS:
        assert "softplus_example" in _fusable(target)
    for target in ("numpy-chunked", "numba"):
        for chained in (False, True):
            program, args, want = op_program("softplus_example", "float32", chained)
            _assert_close(np.asarray(KERNELS[target](program, args)), want, target)


@pytest.mark.skipif(not fusion.numba_available(), reason="numba is not installed")
def test_a_kernel_that_fails_to_build_runs_unfused_with_a_warning_naming_the_op(
    declared, monkeypatch
):
    """The template names `log1p` and `exp` but the declaration imports neither for numba:
    the build fails on the first call, which runs numpy instead, and says which op."""
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numba")
    f, values, want = _compiled(declared("softplus_unbound", expr="log1p(exp({0}))"))
    failed = r"; ops .*softplus_unbound.*\): numba could not build it"
    with pytest.warns(UserWarning, match=failed):
        got = f(values)
    np.testing.assert_array_equal(got, want)
    (fused,) = f.report.fused_kernels
    assert fused.kernel.choice.startswith("numpy-chunked (numba failed: ")
    np.testing.assert_array_equal(f(values), want)  # chosen once: no second warning


def test_a_target_an_op_declares_it_cannot_take_runs_it_unfused_and_the_report_says_so(
    declared, monkeypatch
):
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numba")
    monkeypatch.setattr(fusion, "numba_available", lambda: True)
    op = declared("softplus_no_numba", **SPELLED, scalar={"numba": None})
    f, values, want = _compiled(op)
    np.testing.assert_array_equal(f(values), want)
    (fused,) = f.report.fused_kernels
    reason = "numpy-chunked (softplus_no_numba: no numba spelling)"
    assert fused.kernel.choice == reason
    assert f"target: {reason}" in str(f.report)


def _other_backend() -> types.SimpleNamespace:
    """numpy under another name: the fused kernel takes it for a GPU backend."""
    return types.SimpleNamespace(
        **{name: getattr(np, name) for name in dir(np) if not name.startswith("__")}
    )


def _fused_kernel(op: OpDef) -> FusedKernel:
    f, _, _ = _compiled(op)
    (fused,) = f.report.fused_kernels
    return fused.kernel


def test_on_the_gpu_an_op_without_a_cuda_spelling_runs_unfused(declared):
    kernel = _fused_kernel(declared("softplus_no_cuda", **SPELLED, scalar={"cuda": None}))
    x = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # declared, not failed: no warning
        got = kernel(_other_backend(), x)
    np.testing.assert_array_equal(got, kernel.chunked(np, x))
    assert kernel.gpu_choice == "unfused (softplus_no_cuda: no cuda spelling)"


def test_on_the_gpu_a_kernel_that_fails_to_build_runs_unfused_with_a_warning(declared):
    """Here cupy itself is missing, which fails the build as a bad CUDA spelling would."""
    kernel = _fused_kernel(declared("softplus_gpu", **SPELLED))
    x = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    failed = r"; ops .*softplus_gpu.*\): cuda could not build it"
    with pytest.warns(UserWarning, match=failed):
        got = kernel(_other_backend(), x, out=np.empty(SHAPE, np.float32))
    np.testing.assert_array_equal(got, kernel.chunked(np, x))
    assert kernel.gpu_choice.startswith("unfused (cuda failed: ")


def test_an_op_no_target_spells_is_left_unfused_and_the_report_says_so(declared):
    f, values, want = _compiled(declared("softplus_unspelled"))
    (stage,) = [s for s in f.report.stages if s.stage == "fusion"]
    (line,) = [c for c in stage.changes if "softplus_unspelled" in c]
    assert line.endswith(
        "softplus_unspelled unfused: its op declares no fused expression "
        "for any target (numba, cuda)"
    ), line
    assert "softplus_unspelled" in {n.op_name for n in f.graph.ops}
    assert f"    {line}" in str(f.report)
    np.testing.assert_array_equal(f(values), want)
