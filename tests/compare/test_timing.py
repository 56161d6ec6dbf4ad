"""The timing harness: order-statistics intervals, interleaved races, one shared harness."""

import importlib.util
import pathlib

from compare import timing


def test_median_interval_uses_the_binomial_ranks():
    samples = list(range(1, 16))  # n = 15: ranks 4 and 12 cover the median with >= 95%
    assert timing.median_ci(samples) == (4, 12)
    assert timing.median_ci([3, 1, 2]) == (1, 3)  # too few samples: the whole range


def test_stats_of_samples():
    s = timing.Stats.of([5.0, 1.0, 3.0, 2.0, 4.0, 100.0, 3.0])
    assert s.median == 3.0 and s.samples == 7
    assert s.ci_low <= s.median <= s.ci_high
    assert timing.Stats.of([7.0]).median == 7.0


def test_race_interleaves_every_contender():
    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    ticks = []
    stats = timing.race(
        {"a": lambda: bump("a"), "b": lambda: bump("b")},
        target_ns=10_000,
        repeats=5,
        warmup=2,
        tick=lambda: ticks.append(1),
    )
    assert set(stats) == {"a", "b"} and len(ticks) == 5
    assert all(s.samples == 5 and s.median > 0 for s in stats.values())
    assert calls["a"] > 5 and calls["b"] > 5


def test_the_benchmarks_use_the_same_harness():
    path = pathlib.Path(__file__).parents[2] / "benchmarks" / "harness.py"
    spec = importlib.util.spec_from_file_location("bench_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.race is timing.race and module.Stats is timing.Stats


def test_machine_lists_what_numbers_depend_on():
    info = timing.machine()
    assert info["cpu"] and info["python"] and "numpy" in info["libraries"]
    assert "OMP_NUM_THREADS" in info["env"]
    assert "machine:" in timing.machine_text(info)
