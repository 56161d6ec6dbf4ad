"""The --json schema and its validator."""

import copy

import pytest

from compare.schema import SCHEMA, errors, validate


def minimal_document():
    row = {
        "mode": "eager",
        "kind": "eager",
        "optimize": None,
        "disabled": [],
        "compile_s": None,
        "kernel_build_s": None,
        "fused_kernels": [],
        "first_call_s": 1e-3,
        "median_s": 1e-4,
        "ci_low_s": 9e-5,
        "ci_high_s": 2e-4,
        "q1_s": 9e-5,
        "q3_s": 1e-4,
        "samples": 5,
        "speedup": 1.0,
        "peak_bytes": 100,
        "pool_bytes": None,
        "max_abs_diff": None,
        "max_rel_diff": None,
        "tolerance": None,
        "verdict": "reference",
        "note": "",
        "graph_ops": None,
    }
    machine = {
        "cpu": "x",
        "cpu_count": 2,
        "usable_cpus": 2,
        "platform": "p",
        "python": "3",
        "device": "cpu",
        "libraries": {},
        "env": {},
        "threads": "1",
        "load_average": [0.5, 0.4, 0.3],
    }
    settings = {
        "device": "cpu",
        "batch": None,
        "repeat": 3,
        "warmup": 0,
        "opts": [0],
        "peers": [],
        "ablate": False,
        "breakdown": False,
        "sizes": None,
        "seed": 0,
        "target_ms": 1.0,
    }
    result = {
        "model": "neuron",
        "batch": 1,
        "size": 4,
        "size_means": "inputs",
        "rows": [row],
        "notes": [],
        "breakdown": None,
    }
    return {
        "schema": SCHEMA["$id"],
        "machine": machine,
        "settings": settings,
        "results": [result],
        "notes": [],
        "ok": True,
    }


def test_a_valid_document_passes():
    validate(minimal_document())


@pytest.mark.parametrize(
    "break_it, problem",
    [
        (lambda d: d.pop("ok"), "missing 'ok'"),
        (lambda d: d["results"][0]["rows"][0].update(verdict="maybe"), "is not one of"),
        (lambda d: d["results"][0]["rows"][0].update(median_s="fast"), "expected number"),
        (lambda d: d["results"][0]["rows"][0].update(extra=1), "unexpected 'extra'"),
        (lambda d: d["results"][0].update(batch=True), "expected integer"),
        (lambda d: d["results"][0]["rows"][0].pop("pool_bytes"), "missing 'pool_bytes'"),
        (
            lambda d: d["results"][0]["rows"][0].update(fused_kernels=[{"op": "fused_1"}]),
            "missing 'target'",
        ),
    ],
)
def test_broken_documents_are_refused_with_the_place(break_it, problem):
    document = copy.deepcopy(minimal_document())
    break_it(document)
    assert any(problem in e for e in errors(document))
    with pytest.raises(ValueError, match=r"\$"):
        validate(document)
