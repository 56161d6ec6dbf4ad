"""The `diptych` entry point, driven as a user would: the console-script function
`compare.cli.main` and, once, a subprocess. Sizes and repeats are tiny, to stay fast."""

import json
import subprocess
import sys

import pytest

from compare import cli, harness, zoo
from compare.schema import validate
from symbolic.passes import PIPELINES, pass_names

FAST = ["--repeat", "3", "--warmup", "0", "--target-ms", "0.5", "--quiet"]


def compare(*args, tmp_path=None):
    path = tmp_path / "out.json"
    code = cli.main(["compare", *args, *FAST, "--json", str(path)])
    return code, json.loads(path.read_text())


def test_compare_writes_valid_json_and_checks_every_level(tmp_path, capsys):
    code, doc = compare("neuron", "--sizes", "3", tmp_path=tmp_path)
    assert code == 0 and doc["ok"]
    validate(doc)
    (result,) = doc["results"]
    assert result["size"] == 3
    modes = [row["mode"] for row in result["rows"]]
    assert modes == ["eager"] + [f"symbolic O{o}" for o in (0, 1, 2)]
    assert [row["verdict"] for row in result["rows"]][:2] == ["reference", "exact"]
    out = capsys.readouterr().out
    assert "machine:" in out and "median step" in out and "numpy" in out


def test_ablate_switches_off_each_pass_the_library_has_now(tmp_path):
    code, doc = compare("pythagoras", "--opt", "1", "--ablate", tmp_path=tmp_path)
    active = {name for name, _ in PIPELINES[1]}
    expected = [f"symbolic O1 -{name}" for name in pass_names() if name in active]
    modes = [row["mode"] for row in doc["results"][0]["rows"]]
    assert code == 0 and modes == ["eager", "symbolic O1", *expected]


def test_breakdown_splits_each_step(tmp_path, capsys):
    code, doc = compare(
        "two_layer_net",
        "--batch",
        "4",
        "--sizes",
        "8",
        "--opt",
        "0",
        "--breakdown",
        tmp_path=tmp_path,
    )
    entries = doc["results"][0]["breakdown"]
    assert code == 0 and [e["mode"] for e in entries] == ["eager", "symbolic O0"]
    assert all(e["kernel_calls"] > 0 and e["kernel_s"] > 0 for e in entries)
    assert "where a step's time goes" in capsys.readouterr().out


def test_a_size_sweep_plots_and_writes_html(tmp_path):
    pytest.importorskip("matplotlib")
    plot, page = tmp_path / "scaling.png", tmp_path / "report.html"
    code = cli.main(
        [
            "compare",
            "neuron",
            "--sizes",
            "2",
            "4",
            "--opt",
            "0",
            *FAST,
            "--plot",
            str(plot),
            "--html",
            str(page),
        ]
    )
    assert code == 0 and plot.stat().st_size > 1000
    assert "<table>" in page.read_text() and "data:image/png" in page.read_text()


def test_a_failed_check_exits_with_status_1(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "differences", lambda got, want: (1.0, 1.0))
    code, doc = compare("neuron", "--opt", "0", tmp_path=tmp_path)
    assert code == 1 and not doc["ok"]
    assert doc["results"][0]["rows"][1]["verdict"] == "FAIL"


def test_a_bad_model_name_lists_the_zoo(capsys):
    assert cli.main(["compare", "resnet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet'" in err and all(name in err for name in zoo.MODELS)


@pytest.mark.parametrize(
    "device, message", [("tpu", "unknown device 'tpu'"), ("cuda", "device 'cuda'")]
)
def test_a_bad_device_is_a_clear_error(device, message, capsys):
    if device == "cuda":
        from common.backend import cuda_available

        if cuda_available():
            pytest.skip("this machine has a GPU")
    assert cli.main(["compare", "neuron", "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err


def test_unknown_peers_and_levels_are_usage_errors(capsys):
    assert cli.main(["compare", "neuron", "--peers", "mxnet"]) == 2
    assert cli.main(["compare", "neuron", "--opt", "9"]) == 2
    err = capsys.readouterr().err
    assert "unknown peer 'mxnet'" in err and "no optimize level 9" in err


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_a_missing_peer_is_a_note_not_a_crash(peer, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, peer, None)  # `import torch` now raises ImportError
    code, doc = compare("neuron", "--opt", "0", "--peers", peer, tmp_path=tmp_path)
    assert code == 0
    assert [row["kind"] for row in doc["results"][0]["rows"]] == ["eager", "symbolic"]
    assert f"{peer} is not installed" in capsys.readouterr().out
    assert any(f"{peer} is not installed" in n for n in doc["results"][0]["notes"])


def test_jax_peer_rows_agree_with_eager(tmp_path):
    pytest.importorskip("jax")
    code, doc = compare("neuron", "--opt", "0", "--peers", "jax", tmp_path=tmp_path)
    row = doc["results"][0]["rows"][-1]
    assert code == 0 and row["mode"] == "jax.jit" and row["verdict"] in ("ok", "exact")


def test_models_without_a_peer_say_so(tmp_path):
    code, doc = compare(
        "attention",
        "--batch",
        "1",
        "--sizes",
        "4",
        "--opt",
        "0",
        "--peers",
        "jax",
        tmp_path=tmp_path,
    )
    assert code == 0 and "no peer implementation of attention" in doc["results"][0]["notes"][0]


def test_train_prints_both_curves_and_they_agree(capsys):
    assert (
        cli.main(
            [
                "train",
                "two_layer_net",
                "--steps",
                "20",
                "--batch",
                "8",
                "--size",
                "32",
                "--opt",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "eager loss" in out and "symbolic loss" in out
    assert float(out.split("loss curves: ")[1].split()[0]) == 0.0  # optimize=0: same bits


def test_train_refuses_a_model_without_weights(capsys):
    assert cli.main(["train", "pythagoras"]) == 2
    assert "no parameters" in capsys.readouterr().err
    assert cli.main(["train", "mlp_digits", "--steps", "1"]) == 2


def test_models_and_explain(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.MODELS)
    assert cli.main(["explain", "neuron", "--opt", "1", "--graph"]) == 0
    out = capsys.readouterr().out
    assert "def plan(" in out and "stage" in out and "trace" in out


def test_help_exits_cleanly(capsys):
    assert cli.main(["--help"]) == 0
    assert "compare" in capsys.readouterr().out


def test_the_module_runs_as_the_console_script(tmp_path):
    path = tmp_path / "out.json"
    ok = subprocess.run(
        [sys.executable, "-m", "compare", "pythagoras", *FAST, "--opt", "0", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    validate(json.loads(path.read_text()))
    bad = subprocess.run(
        [sys.executable, "-m", "compare", "compare", "resnet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "The zoo has:" in bad.stderr
