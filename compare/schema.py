"""The schema of `diptych compare --json`: a JSON Schema (a small subset of draft 2020-12:
type, properties, required, items, enum, additionalProperties) and a validator for it.

Times are in seconds, memory in bytes. `null` means "does not apply" (eager has no compile
time; tracemalloc cannot see torch's or XLA's memory) and is explained in `notes`.

A symbolic row's compile time includes the fused kernels' numba builds, which happen on the
first call (`kernel_build_s`, each kernel in `fused_kernels`); its peak memory is a steady
step's peak plus the buffer pool the plan allocates at the first call and keeps
(`pool_bytes`). Version 2 added these three fields.
"""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "diptych.compare/2"

NUMBER = {"type": "number"}
MAYBE_NUMBER = {"type": ["number", "null"]}
MAYBE_INT = {"type": ["integer", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}}

FUSED_KERNEL = {
    "type": "object",
    "required": ["op", "target", "build_s"],
    "additionalProperties": False,
    "properties": {
        "op": {"type": "string"},  # the fused op's name in the graph: "fused_3"
        "target": {"type": "string"},  # chosen on the first call, and why: "numba (...)"
        "build_s": NUMBER,  # the numba build (or disk-cache load) on the first call
    },
}

ROW = {
    "type": "object",
    "required": [
        "mode",
        "kind",
        "optimize",
        "disabled",
        "compile_s",
        "kernel_build_s",
        "fused_kernels",
        "first_call_s",
        "median_s",
        "ci_low_s",
        "ci_high_s",
        "q1_s",
        "q3_s",
        "samples",
        "speedup",
        "peak_bytes",
        "pool_bytes",
        "max_abs_diff",
        "max_rel_diff",
        "tolerance",
        "verdict",
        "note",
        "graph_ops",
    ],
    "additionalProperties": False,
    "properties": {
        "mode": {"type": "string"},  # "eager", "symbolic O2", "symbolic O2 -cse", "jax.jit"
        "kind": {"enum": ["eager", "symbolic", "peer"]},
        "optimize": MAYBE_INT,  # symbolic rows only
        "disabled": STRINGS,  # passes switched off (--ablate)
        "compile_s": MAYBE_NUMBER,  # symbolic: trace + S.grad + passes + codegen + builds
        "kernel_build_s": MAYBE_NUMBER,  # symbolic: the part of compile_s spent on builds
        "fused_kernels": {"type": "array", "items": FUSED_KERNEL},  # symbolic, optimize=2
        "first_call_s": NUMBER,  # kernel builds included
        "median_s": NUMBER,  # steady state, per step
        "ci_low_s": NUMBER,  # 95% confidence interval of the median (order statistics)
        "ci_high_s": NUMBER,
        "q1_s": NUMBER,
        "q3_s": NUMBER,
        "samples": {"type": "integer"},
        "speedup": NUMBER,  # eager's median / this median
        "peak_bytes": MAYBE_INT,  # tracemalloc's peak of a steady step + pool_bytes
        "pool_bytes": MAYBE_INT,  # symbolic: the plan's buffer pool, held between steps
        "max_abs_diff": MAYBE_NUMBER,  # against eager, over outputs and gradients
        "max_rel_diff": MAYBE_NUMBER,  # max|diff| / max|eager|, per array
        "tolerance": MAYBE_NUMBER,  # 0: bit-exact required
        "verdict": {"enum": ["reference", "exact", "ok", "FAIL"]},
        "note": {"type": "string"},
        "graph_ops": MAYBE_INT,  # ops in the compiled graph
    },
}

BREAKDOWN = {
    "type": "object",
    "required": [
        "mode",
        "total_s",
        "kernel_s",
        "allocation_s",
        "overhead_s",
        "kernel_calls",
        "untimed_ops",
    ],
    "additionalProperties": False,
    "properties": {
        "mode": {"type": "string"},
        "total_s": NUMBER,
        "kernel_s": NUMBER,
        "allocation_s": NUMBER,
        "overhead_s": NUMBER,
        "kernel_calls": {"type": "integer"},
        "untimed_ops": {"type": "integer"},  # ops whose kernels are not in the registry
    },
}

RESULT = {
    "type": "object",
    "required": ["model", "batch", "size", "size_means", "rows", "notes", "breakdown"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string"},
        "batch": {"type": "integer"},
        "size": {"type": "integer"},
        "size_means": {"type": "string"},
        "rows": {"type": "array", "items": ROW},
        "notes": STRINGS,
        "breakdown": {"type": ["array", "null"], "items": BREAKDOWN},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "diptych compare results",
    "type": "object",
    "required": ["schema", "machine", "settings", "results", "notes", "ok"],
    "additionalProperties": False,
    "properties": {
        "schema": {"enum": [SCHEMA_ID]},
        "machine": {
            "type": "object",
            "required": [
                "cpu",
                "cpu_count",
                "usable_cpus",
                "platform",
                "python",
                "device",
                "libraries",
                "env",
                "threads",
                "load_average",
            ],
            "properties": {
                "cpu": {"type": "string"},
                "cpu_count": MAYBE_INT,
                "usable_cpus": MAYBE_INT,
                "platform": {"type": "string"},
                "python": {"type": "string"},
                "device": {"type": "string"},
                "libraries": {"type": "object"},  # name -> version
                "env": {"type": "object"},  # thread-pool variables -> value or null
                "threads": {"type": "string"},  # the thread policy (timing.thread_limit)
                "load_average": {"type": ["array", "null"], "items": NUMBER},  # 1, 5, 15 min
            },
        },
        "settings": {
            "type": "object",
            "required": [
                "device",
                "batch",
                "repeat",
                "warmup",
                "opts",
                "peers",
                "ablate",
                "breakdown",
                "sizes",
                "seed",
                "target_ms",
            ],
            "properties": {
                "device": {"type": "string"},
                "batch": MAYBE_INT,
                "repeat": {"type": "integer"},
                "warmup": {"type": "integer"},
                "opts": {"type": "array", "items": {"type": "integer"}},
                "peers": STRINGS,
                "ablate": {"type": "boolean"},
                "breakdown": {"type": "boolean"},
                "sizes": {"type": ["array", "null"], "items": {"type": "integer"}},
                "seed": {"type": "integer"},
                "target_ms": NUMBER,
            },
        },
        "results": {"type": "array", "items": RESULT},
        "notes": STRINGS,
        "ok": {"type": "boolean"},  # no row failed its correctness check
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict = SCHEMA, path: str = "$") -> list[str]:
    """Every place where `value` breaks `schema`, as 'path: problem' lines (none: valid)."""
    found = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(value, t) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            found += [f"{path}: unexpected {k!r}" for k in value if k not in props]
        for k, sub in props.items():
            if k in value:
                found += errors(value[k], sub, f"{path}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], f"{path}[{i}]")
    return found


def validate(value: Any) -> None:
    """Raise ValueError listing every problem if `value` does not follow SCHEMA."""
    problems = errors(value)
    if problems:
        raise ValueError("not a valid diptych compare document:\n  " + "\n  ".join(problems))
