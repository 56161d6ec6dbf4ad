"""`diptych run` runs a saved graph in a process that cannot import the model's Python (its
module file is deleted first), and `diptych export` writes zoo models that `run` reads back;
bad files and bad inputs are one-line errors with exit status 2."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbolic as S
from compare import zoo
from compare.run import WRITERS, Writer, export_model

ROOT = Path(__file__).resolve().parents[2]

MODEL_SOURCE = '''
import numpy as np
from common import functional as F, nn

class TinyScanner(nn.Module):
    """Only this file knows this model: a scan over time, then a cond."""

    def __init__(self):
        super().__init__()
        self.cell = nn.RNNCell(3, 4, generator=np.random.default_rng(0))

    def forward(self, xs):
        h, _ = F.scan(lambda h, x: (self.cell(x, h), None), np.zeros((2, 4), np.float32), xs)
        return F.cond(F.sum(h) > 0.0, lambda a: a * 2.0, lambda a: -a, h)
'''


def diptych(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m compare ARGS` with the repository alone on the path: not the current
    folder (-P), not the folder the model's module was in."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "compare", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_needs_no_module_of_the_model(tmp_path):
    module_file = tmp_path / "tiny_scanner_model.py"
    module_file.write_text(MODEL_SOURCE)
    spec = importlib.util.spec_from_file_location("tiny_scanner_model", module_file)
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    model = source.TinyScanner()
    xs = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    S.save(S.trace(model, xs), tmp_path / "model.dip")
    want = S.load(tmp_path / "model.dip")(xs)
    module_file.unlink()  # the model's Python is gone: only the file remains
    assert not list(tmp_path.glob("tiny_scanner_model*"))
    np.save(tmp_path / "xs.npy", xs)
    done = diptych("run", "model.dip", "--input", "xs.npy", "-o", "y.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "output 0: float32[2, 4]" in done.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_exported_zoo_model_runs_with_inputs_by_name_and_several_outputs(tmp_path):
    model = zoo.get("mlp_digits")
    fn = export_model("mlp_digits", "dip", tmp_path / "mlp.dip", batch=4, size=8)
    inputs = model.make_inputs(4, 8, 0)
    want = fn(*inputs.values())
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
    named = [f"--input={name}={name}.npy" for name in reversed(list(inputs))]  # any order
    done = diptych("run", "mlp.dip", *named, "-o", "out.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    saved = np.load(tmp_path / "out.npz")
    assert saved.files == ["output_0", "output_1"]
    for i, value in enumerate(want):
        np.testing.assert_array_equal(saved[f"output_{i}"], value)


def test_export_from_the_command_line(tmp_path):
    done = diptych("export", "rnn_varlen", "--format", "dip", "-o", "rnn.dip", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "inputs: xs f32[12, 8, 8], mask bool[12, 8, 1], y f32[8, 1]" in done.stdout
    loaded = S.load(tmp_path / "rnn.dip")
    assert [n.name for n in loaded.graph.inputs] == ["xs", "mask", "y"]


def test_a_new_format_is_one_writer_entry(tmp_path, monkeypatch):
    text = Writer(".txt", lambda fn, path: path.write_text(fn.source))
    monkeypatch.setattr("compare.run.WRITERS", {**WRITERS, "text": text})  # this test's own
    fn = export_model("neuron", "text", tmp_path / "n.txt")
    assert (tmp_path / "n.txt").read_text() == fn.source


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "missing.dip", "--input", "xs.npy"], "missing.dip"),
        (["run", "broken.dip", "--input", "xs.npy"], "broken.dip: container: "),
        (["run", "good.dip"], "missing a value for placeholder(s) xs"),
        (["run", "good.dip", "--input", "xs.txt"], "--input xs.txt: a .npy file is wanted"),
        (["run", "good.dip", "--input", "wrong.npy"], "expects shape f32[5, 2, 3]"),
        (["run", "good.dip", "--input", "xs.npy", "-o", "y.csv"], "-o writes .npy, .npz"),
        (["export", "mlp_digits", "--format", "tflite", "-o", "m.tflite"], "unknown format"),
        (["export", "nope", "-o", "m.dip"], "unknown model 'nope'"),
        (["export", "neuron", "-o", "m.onnx"], "-o writes .dip files"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, says):
    xs = np.zeros((5, 2, 3), np.float32)
    x = S.placeholder(xs.shape, name="xs")
    S.compile(x * 2.0, inputs=[x]).save(tmp_path / "good.dip")
    (tmp_path / "broken.dip").write_bytes((tmp_path / "good.dip").read_bytes()[:200])
    np.save(tmp_path / "xs.npy", xs)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 2), np.float32))
    done = diptych(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("diptych: error: ") and done.stderr.count("\n") == 1
    assert says in done.stderr


def test_export_onnx_writes_a_model_onnxruntime_runs(tmp_path):
    pytest.importorskip("onnxruntime", reason="the `export` extra is not installed")
    from symbolic.serialize.onnx import run_onnxruntime

    fn = export_model("pythagoras", "onnx", tmp_path / "p.onnx")
    model = zoo.get("pythagoras")
    inputs = model.make_inputs(model.batch, model.size, 0)  # export's own sizes
    got = run_onnxruntime(str(tmp_path / "p.onnx"), list(inputs.values()))
    np.testing.assert_allclose(got[0], np.asarray(fn(*inputs.values())[0]), rtol=1e-5)
