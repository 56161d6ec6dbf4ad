"""Honest measurement: `diptych compare` and the benchmarks run under one thread policy and
print it alike; a compiled row's peak memory counts its plan's buffer pool; its compile time
counts the fused kernels' numba builds, which happen on the first call."""

import importlib
import json
import pathlib
import sys
from dataclasses import replace

import pytest
from threadpoolctl import threadpool_info

from compare import cli, zoo
from compare.harness import Case, Settings, run_model
from compare.schema import validate

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"
FAST = ["--repeat", "1", "--warmup", "0", "--target-ms", "0.1", "--quiet"]
QUICK = Settings(opts=(2,), repeat=1, warmup=0, target_ms=0.1)
# each script's timed sections, replaced by a probe of the thread pools
SECTIONS = {
    "eager_overhead": ("bench_ops", "bench_training_step"),
    "compiled_overhead": ("bench_forward", "bench_training_step"),
    "passes": ("bench_chains", "bench_memory", "bench_compile_time"),
}


def policy_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("thread policy:")]


@pytest.fixture
def bench_script(monkeypatch):
    """Import a benchmark script fresh; forget it afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    names = ("harness", "eager_overhead", *SECTIONS)
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module
    for name in names:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("script", SECTIONS)
def test_benchmarks_time_under_the_policy_diptych_compare_prints(
    script, bench_script, monkeypatch, capsys
):
    module = bench_script(script)
    pool_threads = []  # of every BLAS pool loaded, while each section would run (OpenMP is
    # numba's, left to the fused kernels)
    for section in SECTIONS[script]:
        monkeypatch.setattr(
            module,
            section,
            lambda *args, **kwargs: pool_threads.extend(
                p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"
            ),
        )
    module.main([])  # the default policy, as plain `make bench` runs it
    bench = policy_lines(capsys.readouterr().out)
    assert cli.main(["compare", "neuron", "--opt", "0", *FAST]) == 0
    compare = policy_lines(capsys.readouterr().out)
    assert len(bench) == 1 and bench == compare
    assert pool_threads and set(pool_threads) == {1}


def test_the_benchmarks_time_the_step_diptych_compare_times(bench_script):
    steps = bench_script("eager_overhead").compare_steps(opts=(0,))
    assert list(steps) == ["eager, as diptych compare", "O0, as diptych compare"]
    for step in steps.values():
        step()


def test_peak_memory_counts_the_compiled_plans_buffer_pool(monkeypatch):
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numpy")  # no numba build: memory only here
    model, settings = zoo.get("gelu_chain"), replace(QUICK, batch=8, size=512)
    planned = Case(model, settings).compile(2).graph.memory.planned_bytes
    eager, compiled = run_model(model, settings).rows
    assert compiled.pool_bytes == planned and eager.pool_bytes is None
    # the pool is allocated at the first call and held: a steady step's peak alone misses it
    assert compiled.peak_bytes > planned


def test_compile_time_counts_the_fused_kernels_build(monkeypatch, tmp_path, capsys):
    pytest.importorskip("numba")
    monkeypatch.setenv("DIPTYCH_CACHE", str(tmp_path))  # an empty cache: numba builds
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numba")  # at any size (conftest fuses all)
    path = tmp_path / "out.json"
    assert cli.main(["compare", "pythagoras", "--opt", "2", *FAST, "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    validate(document)
    row = document["results"][0]["rows"][-1]
    builds = [k["build_s"] for k in row["fused_kernels"]]
    assert builds and all(k["target"].startswith("numba") for k in row["fused_kernels"])
    assert row["kernel_build_s"] == pytest.approx(sum(builds)) and sum(builds) > 0.01
    assert row["compile_s"] > row["kernel_build_s"]  # the graph's compile, and the builds
    out = capsys.readouterr().out
    assert " build " in out and "fused kernel(s): numba" in out
