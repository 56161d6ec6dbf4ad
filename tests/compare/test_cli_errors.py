"""Bad input to `diptych` gives one line, `diptych: error: ...`, exit status 2, no traceback, and
creates nothing: every number and every output path is checked before any work. Each case
runs in an empty folder (the current one) whose listing must not change."""

import subprocess
import sys

import pytest

from common import style
from compare import cli

FAST = ["--repeat", "1", "--warmup", "0", "--target-ms", "1", "--quiet", "--opt", "0"]
TRAIN = ["--steps", "3", "--batch", "4", "--size", "8"]

# (argv, what the error says, paths made before the run: a trailing "/" makes a folder)
CASES = [
    # numbers, compare
    (["compare", "neuron", "--seed", "-1", *FAST], "--seed", ()),
    (["compare", "neuron", "--batch", "0", *FAST], "--batch", ()),
    (["compare", "neuron", "--batch", "-2", *FAST], "--batch", ()),
    (["compare", "neuron", "--batch", "abc", *FAST], "not a whole number", ()),
    (["compare", "neuron", "--sizes", "4", "0", *FAST], "--sizes", ()),
    (["compare", "neuron", *FAST, "--target-ms", "0"], "--target-ms", ()),
    (["compare", "neuron", *FAST, "--target-ms", "-5"], "--target-ms", ()),
    (["compare", "neuron", *FAST, "--target-ms", "nan"], "--target-ms", ()),
    (["compare", "neuron", *FAST, "--target-ms", "inf"], "--target-ms", ()),
    (["compare", "neuron", "--threads", "-2", *FAST], "--threads", ()),
    (["compare", "neuron", *FAST, "--repeat", "0"], "--repeat", ()),
    (["compare", "neuron", *FAST, "--warmup", "-1"], "--warmup", ()),
    (["compare", "neuron", *FAST, "--opt", "9"], "no optimize level 9", ()),
    (["compare", "two_layer_net", "--batch", "100000000", *FAST], "memory", ()),
    (["--batch", "100000000", *FAST], "memory", ()),  # plain `diptych`: the quick set
    # numbers, the other commands
    (["train", "two_layer_net", *TRAIN, "--lr", "nan"], "--lr", ()),
    (["train", "two_layer_net", *TRAIN, "--lr", "inf"], "--lr", ()),
    (["train", "two_layer_net", *TRAIN, "--lr", "0"], "--lr", ()),
    (["train", "two_layer_net", *TRAIN, "--lr", "-0.1"], "--lr", ()),
    (["train", "two_layer_net", *TRAIN, "--batch", "0"], "--batch", ()),
    (["train", "two_layer_net", *TRAIN, "--size", "0"], "--size", ()),
    (["train", "two_layer_net", *TRAIN, "--steps", "1"], "--steps", ()),
    (["train", "two_layer_net", *TRAIN, "--threads", "-2"], "--threads", ()),
    (["train", "two_layer_net", *TRAIN, "--seed", "-1"], "--seed", ()),
    (["train", "two_layer_net", "--steps", "100000000"], "memory", ()),
    (["explain", "neuron", "--batch", "-2"], "--batch", ()),
    (["explain", "neuron", "--size", "0"], "--size", ()),
    (["explain", "neuron", "--opt", "7"], "no optimize level 7", ()),
    (["graph", "neuron", "--batch", "-2"], "--batch", ()),
    (["graph", "neuron", "--max-nodes", "0"], "--max-nodes", ()),
    (["graph", "neuron", "--opt", "3"], "no optimize level 3", ()),
    (["tape", "neuron", "--size", "-1"], "--size", ()),
    (["tape", "neuron", "--batch", "-2"], "--batch", ()),
    # sizes a model cannot take
    (["explain", "mlp_digits", "--batch", "100000"], "mlp_digits cannot run", ()),
    (["explain", "mlp_digits", "--size", "1"], "mlp_digits cannot run", ()),
    (["explain", "attention", "--size", "5"], "attention cannot run", ()),
    (["graph", "two_layer_net", "--batch", "100000000"], "memory", ()),
    (["tape", "attention", "--size", "5"], "attention cannot run", ()),
    # picture paths
    (["graph", "neuron", "-o", "x.jpg"], ".jpg", ()),
    (["graph", "neuron", "-o", "x.txt"], ".txt", ()),
    (["graph", "neuron", "-o", "g.exe"], ".exe", ()),
    (["graph", "neuron", "-o", "nosuffix"], "suffix", ()),
    (["graph", "neuron", "--format", "svg", "-o", "x.png"], "--format svg", ()),
    (["graph", "neuron", "--format", "png", "-o", "g.svg"], "--format png", ()),
    (["graph", "neuron", "-o", "/proc/x.svg"], "/proc", ()),
    (["graph", "neuron", "-o", "missing/x.svg"], "no folder", ()),
    (["graph", "neuron", "-o", "missing/deeper/x.svg"], "no folder", ()),
    (["graph", "neuron", "-o", "afile/x.svg"], "not a folder", ("afile",)),
    (["graph", "neuron", "-o", "adir.svg"], "is a folder", ("adir.svg/",)),
    (["graph", "neuron", "--passes", "-o", "existing.svg"], "--passes", ("existing.svg",)),
    (["graph", "neuron", "--passes", "-o", "fresh.svg"], "--passes", ()),
    (["graph", "neuron", "--passes", "-o", "afile"], "not a folder", ("afile",)),
    (["graph", "neuron", "--passes", "-o", "missing/passes"], "no folder", ()),
    (["graph", "neuron", "--passes", "-o", "missing/p.html"], "no folder", ()),
    (["graph", "neuron", "--memory", "m.txt"], ".txt", ()),
    (["graph", "neuron", "--memory", "missing/m.png"], "no folder", ()),
    (["graph", "neuron", "-o", "same.png", "--memory", "same.png"], "same file", ()),
    (["tape", "neuron", "-o", "x.jpg"], ".jpg", ()),
    (["tape", "neuron", "--format", "svg", "-o", "x.png"], "--format svg", ()),
    (["tape", "neuron", "-o", "/sys/x.svg"], "/sys", ()),
    (["tape", "neuron", "--animate", "a.png"], ".png", ()),
    (["tape", "neuron", "--animate", "missing/a.gif"], "no folder", ()),
    # result paths, checked before the run rather than after it
    (["compare", "neuron", *FAST, "--plot", "p.xyz"], ".xyz", ()),
    (["compare", "neuron", *FAST, "--plot", "out.txt"], ".txt", ()),
    (["compare", "neuron", *FAST, "--plot", "missing/p.png"], "no folder", ()),
    (["compare", "neuron", *FAST, "--json", "out.txt"], ".txt", ()),
    (["compare", "neuron", *FAST, "--json", "missing/out.json"], "no folder", ()),
    (["compare", "neuron", *FAST, "--json", "adir.json"], "is a folder", ("adir.json/",)),
    (["compare", "neuron", *FAST, "--json", "/sys/out.json"], "/sys", ()),
    (["compare", "neuron", *FAST, "--html", "missing/r.html"], "no folder", ()),
    (["compare", "neuron", *FAST, "--html", "r.txt"], ".txt", ()),
    (["train", "two_layer_net", *TRAIN, "--plot", "out.txt"], ".txt", ()),
    (["train", "two_layer_net", *TRAIN, "--plot", "missing/p.png"], "no folder", ()),
    (["train", "two_layer_net", *TRAIN, "--plot", "afile/p.png"], "not a folder", ("afile",)),
]


def make(root, paths) -> None:
    for name in paths:
        if name.endswith("/"):
            (root / name).mkdir()
        else:
            (root / name).write_text("already here\n")


def listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("argv, says, made", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    argv, says, made, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    make(tmp_path, made)
    before = listing(tmp_path)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("diptych: error: ") and err.count("\n") == 1, err
    assert says in err
    assert "Traceback" not in out + err
    assert listing(tmp_path) == before
    assert all(
        (tmp_path / name).read_text() == "already here\n" for name in made if not name.endswith("/")
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "neuron", *FAST, "--target-ms", "nan"],
        ["tape", "neuron", "--size", "-1"],
        ["graph", "neuron", "-o", "missing/x.svg"],
    ],
    ids=["target-ms nan", "tape size -1", "missing folder"],
)
def test_no_traceback_reaches_the_terminal(argv, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "compare", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("diptych: error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert listing(tmp_path) == []


needs_dot = pytest.mark.skipif(not style.dot_available(), reason="Graphviz's dot is missing")


@needs_dot
def test_good_picture_paths_still_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pictures").mkdir()
    assert cli.main(["graph", "mlp_digits", "-o", "pictures/x.svg"]) == 0
    assert b"<svg" in (tmp_path / "pictures" / "x.svg").read_bytes()[:400]
    assert cli.main(["graph", "neuron", "--format", "png", "-o", "x.png"]) == 0
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "old.svg").write_text("overwritten")
    assert cli.main(["tape", "neuron", "-o", "old.svg"]) == 0
    assert b"<svg" in (tmp_path / "old.svg").read_bytes()[:400]
    assert cli.main(["graph", "neuron", "--passes", "-o", "passes"]) == 0  # asked for: made
    assert len(list((tmp_path / "passes").glob("*.svg"))) > 1
    assert cli.main(["graph", "neuron"]) == 0  # the default name, in the current folder
    assert (tmp_path / "neuron_optimized.svg").exists()
    assert capsys.readouterr().err == ""


def test_good_sizes_and_result_paths_still_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["explain", "attention", "--batch", "2", "--size", "8"]) == 0
    assert cli.main(["compare", "neuron", "--sizes", "3", *FAST, "--json", "out.json"]) == 0
    assert (tmp_path / "out.json").read_text().startswith("{")
    assert capsys.readouterr().err == ""


def test_a_learning_rate_that_diverges_warns(capsys):
    code = cli.main(
        ["train", "two_layer_net", "--steps", "5", "--batch", "8", "--size", "16", "--lr", "1e6"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err.startswith("diptych: warning: ") and err.count("\n") == 1, err
    assert "diverged" in err and "smaller --lr" in err
    assert "Traceback" not in out + err


def test_a_sane_learning_rate_does_not_warn(capsys):
    assert (
        cli.main(
            ["train", "two_layer_net", "--steps", "5", "--batch", "8", "--size", "16", "--opt", "0"]
        )
        == 0
    )
    assert capsys.readouterr().err == ""


def test_running_out_of_memory_anyway_is_one_line(monkeypatch, capsys):
    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 400. GiB for an array")

    monkeypatch.setattr("compare.harness.Case.__init__", too_big)
    assert cli.main(["explain", "neuron"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diptych: error: out of memory") and err.count("\n") == 1
