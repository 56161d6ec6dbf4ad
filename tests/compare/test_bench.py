"""`diptych bench`, driven as a user would (at --quick sizes): every row of issue 14's table
is printed and saved with its numbers and a verdict; a peer that is missing says so. Timing
outcomes are never asserted: machines differ."""

import json
import subprocess
import sys

import pytest

from compare import bench, cli
from compare.bench import MISS, NO_PEER, PASS, SCHEMA_ID, WORK
from compare.contenders import NOT_INSTALLED

QUICK = ["bench", "--quick", "--quiet"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One whole quick run, as a user runs it (`python -m compare` is `diptych`): its exit
    status, its output and the JSON document it wrote."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "compare", *QUICK, "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, json.loads(path.read_text())


def test_every_row_of_the_table_is_printed_with_a_verdict(quick_run):
    code, out, _ = quick_run
    assert code == 0
    for item, work in WORK.items():
        assert f"{item}. {work}" in out
    assert "machine:" in out and "thread policy:" in out and "GB/s" in out
    assert "targets hold" in out


def test_the_json_has_every_row_measured_and_judged(quick_run):
    _, _, doc = quick_run
    assert doc["schema"] == SCHEMA_ID and not bench.errors(doc, bench.SCHEMA)
    assert {row["item"] for row in doc["rows"]} == set(WORK)
    zoo_rows = [row for row in doc["rows"] if row["case"].startswith("zoo ")]
    assert len(zoo_rows) == len(bench.zoo.MODELS)  # O2 against O0 at every zoo model
    for row in doc["rows"]:
        assert row["value"] > 0 and row["verdict"] in (PASS, MISS, NO_PEER), row
        if row["against_value"] is None:
            assert row["against_status"] != "measured" or not row["against"], row
        else:
            assert row["against_value"] > 0 and row["ratio"] > 0, row
        if row["target"]["kind"] == "ratio" and row["against_value"] is not None:
            holds = row["ratio"] <= row["target"]["bound"]
            assert row["verdict"] == (PASS if holds else MISS), row
    bandwidth_rows = [r for r in doc["rows"] if r["target"]["kind"] == "bandwidth"]
    assert {r["item"] for r in bandwidth_rows} == {5, 6}
    assert all(r["bandwidth_bytes_per_s"] > 0 for r in bandwidth_rows)
    assert doc["machine"]["cpu_count"] and doc["machine"]["libraries"]["numpy"]


def test_a_missing_peer_is_reported_not_judged(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now fails, as uninstalled
    path = tmp_path / "out.json"
    assert cli.main([*QUICK, "--rows", "2", "7", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert {row["item"] for row in rows} == {2, 7}
    against_jax = [row for row in rows if row["against"] == "jax.jit"]
    assert len(against_jax) == 3  # row 2's ratio, row 7's cold and warm cache
    assert all(row["against_status"] == NOT_INSTALLED for row in against_jax)
    ratio_rows = [row for row in against_jax if row["target"]["kind"] == "ratio"]
    assert ratio_rows and all(row["verdict"] == NO_PEER for row in ratio_rows)
    assert f"jax.jit: {NOT_INSTALLED}" in capsys.readouterr().out


def test_verdicts_follow_the_targets():
    ratio, at_most = bench.Target("ratio", 1.1), bench.Target("at most", 2e-6)
    assert bench.Row(1, "", "eager", 1.0, ratio, "peer", 1.0).verdict == PASS
    assert bench.Row(1, "", "eager", 1.2, ratio, "peer", 1.0).verdict == MISS
    assert bench.Row(1, "", "eager", 1.2, ratio, "peer").verdict == NO_PEER
    assert bench.Row(4, "", "eager", 3e-6, at_most).verdict == MISS
    fast = bench.Target("bandwidth", 0.8)
    row = bench.Row(5, "", "O2", 1.0, fast, moved_bytes=90, bandwidth=100.0)
    assert row.fraction(row.value) == pytest.approx(0.9) and row.verdict == PASS
