"""Damaged and hostile .dip files: each gives a LoadError naming the file and the field, never
a crash, a hang, or a large allocation. Damaged: truncated or with a flipped bit (the
checksums catch what the container's own checks let through). Hostile: well-formed files,
checksums recomputed, whose JSON lies (wrong types, huge shapes, unknown ops, references
forward, code in names), which the field-by-field checks must catch."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbolic as S
from common import functional as F
from common import nn, optim
from symbolic.serialize.format import read_file, write_file

ROOT = Path(__file__).resolve().parents[2]
PEAK_BYTES = 8 << 20  # what loading a damaged file of a few kB may allocate, at most


def make_step() -> S.CompiledFunction:
    """A small training step with what a file can hold: a scan and a cond with their bodies,
    variables (weights, momentum), constants, an inf literal, a NumPy scalar, a fancy index."""
    rng = np.random.default_rng(0)
    w = nn.Parameter(rng.standard_normal((3, 3)).astype(np.float32), name="w")
    b = nn.Parameter(np.zeros(3, np.float32), name="b")
    xs = S.placeholder((4, 2, 3), name="xs")

    def step(h, x):
        return F.tanh(x @ w + h + b), None

    h, _ = F.scan(step, np.zeros((2, 3), np.float32), xs)
    out = F.cond(F.sum(h) > 0.0, lambda a: a * 2.0, lambda a: F.minimum(a, float("inf")), h)
    loss = F.mean(out[np.array([1, 0])] ** 2) * np.float32(0.5)
    opt = optim.SGD([w, b], lr=0.1, momentum=0.9)
    updates = S.optimizer_updates(opt, S.grad(loss, [w, b]))
    return S.compile(loss, inputs=[xs], updates=updates)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "good.dip"
    make_step().save(path)
    return path


# ---- the mutations -----------------------------------------------------------------------


def damaged(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Truncations (every offset of the first 64 bytes, then 150 spread over the file) and
    bit flips (every bit of the length prefix, 400 others at random)."""
    offsets = sorted(set(range(64)) | set(np.linspace(64, len(blob) - 1, 150).astype(int)))
    for n in offsets:
        yield f"truncated to {n} bytes", blob[:n]
    rng = np.random.default_rng(0)
    for bit in [*range(64), *rng.integers(64, 8 * len(blob), 400)]:
        yield f"bit {bit} flipped", _flipped(blob, bit)
    yield "last bit flipped", _flipped(blob, 8 * len(blob) - 1)  # in the last tensor's data


def _flipped(blob: bytes, bit: int) -> bytes:
    flipped = bytearray(blob)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def relabeled(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """The container's metadata changed (its length kept, so the header stays readable)."""
    for old, new in [
        (b'"version":"1"', b'"version":"2"'),  # a newer format
        (b'"version":"1"', b'"version":"0"'),
        (b'"version":"1"', b'"version":"x"'),
        (b'"format":"diptych.graph"', b'"format":"diptych.other"'),
    ]:
        assert old in blob
        yield f"{old.decode()} -> {new.decode()}", blob.replace(old, new)
    yield "empty", b""
    yield "random bytes", np.random.default_rng(1).bytes(len(blob))


def _node(document: dict, op: str) -> dict:
    return next(n for n in document["nodes"] if n["op"] == op)


def _set(path: tuple, value: object) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        place = document
        for key in path[:-1]:
            place = place[key]
        place[path[-1]] = value

    return change


def _in_op(op: str, key: str, value: object) -> Callable[[dict], None]:
    return lambda document: _node(document, op).__setitem__(key, value)


NOT_VALUES = [None, -1, 2**70, 1.5, True, [], {}, [[[[1]]]], {"float": "inf"}, "x"]


def lies(document: dict) -> Iterator[tuple[str, Callable[[dict], None]]]:
    """Changes to the JSON that a reader must refuse."""
    kinds = {n["op"]: n for n in document["nodes"]}  # one node of each op
    for op, entry in kinds.items():
        for key, bad in [(k, v) for k in entry for v in NOT_VALUES]:
            if type(bad) is not type(entry[key]) and not (key == "shape" and bad is None):
                yield f"{op}.{key} = {bad!r}", _in_op(op, key, bad)
    yield "unknown op", _in_op("tanh", "op", "frobnicate")
    yield "a fused op", _in_op("tanh", "op", "fused_1")
    yield "huge node shape", _in_op("tanh", "shape", [10**6, 10**6, 10**6])
    yield "huge tensor shape", _set(("tensors", "variables/w", "shape"), [2**40, 2**40])
    yield "tensor shape of the same size", _set(("tensors", "variables/w", "shape"), [9])
    yield "tensor dtype", _set(("tensors", "variables/w", "dtype"), "float64")
    yield "tensor checksum", _set(("tensors", "variables/w", "sha256"), "0" * 64)
    yield "reference forward", _in_op("tanh", "inputs", [len(document["nodes"]) - 1])
    yield (
        "reference to itself",
        lambda d: _node(d, "tanh").__setitem__("inputs", [d["nodes"].index(_node(d, "tanh"))]),
    )
    yield "negative reference", _in_op("tanh", "inputs", [-1])
    yield "code as a param name", _in_op("getitem", "params", {"x=__import__('os')": 1})
    yield "keyword param name", _in_op("getitem", "params", {"lambda": 1})
    yield "unknown value tag", _in_op("getitem", "params", {"index": {"eval": "1"}})
    yield (
        "deeply nested param",
        _in_op("getitem", "params", {"index": json.loads("[" * 40 + "]" * 40)}),
    )
    yield "literal not a number", _in_op("mul", "inputs", [0, {"literal": "2"}])
    yield (
        "body reference forward",
        lambda d: _node(d, "scan")["params"]["body"]["body"].update(inputs=[len(d["nodes"])]),
    )
    for field, bad in [
        ("optimize", 7),
        ("disable", ["nope"]),
        ("device", "tpu"),
        ("single_output", 1),
    ]:
        yield f"options.{field} = {bad!r}", _set(("options", field), bad)
    yield "no outputs", _set(("outputs",), [])
    yield "input not a placeholder", _set(("inputs",), [_index(document, "variable")])
    yield "update of a placeholder", _set(("updates", 0, 0), _index(document, "placeholder"))
    yield "a field too many", _set(("extra",), 1)
    yield "nodes not a list", _set(("nodes",), {"0": 1})


def _index(document: dict, op: str) -> int:
    return [n["op"] for n in document["nodes"]].index(op)


def hostile(good: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    document, arrays = read_file(good)
    for label, change in lies(document):
        lying = copy.deepcopy(document)
        change(lying)
        yield label, write_file(folder / "hostile.dip", lying, arrays)


def every_mutation(good: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    blob = good.read_bytes()
    for label, data in [*damaged(blob), *relabeled(blob)]:
        path = folder / "damaged.dip"
        path.write_bytes(data)
        yield label, path
    yield from hostile(good, folder)


def verdict(label: str, path: Path) -> str | None:
    """None when loading `path` raised a LoadError naming it; else what went wrong."""
    try:
        S.load(path)
    except S.LoadError as exc:
        return None if str(exc).startswith(f"{path}: ") else f"{label}: unclear: {exc}"
    except Exception as exc:  # noqa: BLE001 (the point: anything else is a failure)
        return f"{label}: {type(exc).__name__}: {exc}"
    return f"{label}: loaded"


# ---- the tests ---------------------------------------------------------------------------

UNDER_A_MEMORY_LIMIT = """
import json, resource, sys, tempfile
from pathlib import Path
from tests.symbolic.test_serialize_fuzz import every_mutation, verdict
def vm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = vm_bytes() + (256 << 20)  # this much more address space: a huge array cannot fit
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
with tempfile.TemporaryDirectory() as folder:
    mutated = every_mutation(Path(sys.argv[1]), Path(folder))
    results = [verdict(label, path) for label, path in mutated]
print(json.dumps({"count": len(results), "failures": [r for r in results if r]}))
"""


def test_every_mutation_is_a_clear_error_under_a_memory_limit(good):
    """In a child process whose address space allows 256 MB more than it holds after its
    imports, with a time limit: a crash, a hang or a large allocation fails the test."""
    done = subprocess.run(
        [sys.executable, "-c", UNDER_A_MEMORY_LIMIT, str(good)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["count"] > 1000
    assert summary["failures"] == []


def test_the_good_file_loads_and_trains(good):
    step = S.load(good)
    xs = np.ones((4, 2, 3), np.float32)
    assert float(step(xs)) > float(step(xs))  # the loss goes down: the updates run


def lying_file(good: Path, folder: Path, label: str) -> Path:
    """The hostile file of `lies` called `label`."""
    document, arrays = read_file(good)
    dict(lies(document))[label](document)
    return write_file(folder / "lying.dip", document, arrays)


def damaged_file(good: Path, folder: Path, label: str) -> Path:
    """The damaged file of `damaged` or `relabeled` called `label`."""
    blob = good.read_bytes()
    path = folder / "damaged.dip"
    path.write_bytes(dict([*damaged(blob), *relabeled(blob)])[label])
    return path


@pytest.mark.parametrize(
    ("make", "label", "field", "says"),
    [
        (damaged_file, '"version":"1" -> "version":"2"', "metadata.version", "newer than"),
        (damaged_file, "truncated to 50 bytes", "container", "truncated"),
        (damaged_file, "bit 3 flipped", "container", "corrupted"),
        (damaged_file, "last bit flipped", "tensors[", "checksum"),
        (lying_file, "unknown op", ".op", "unknown op 'frobnicate'"),
        (lying_file, "huge node shape", ".shape", "above the limit"),
        (lying_file, "huge tensor shape", "tensors['variables/w'].shape", "more bytes than"),
        (lying_file, "tensor shape of the same size", "tensors['variables/w']", "disagree"),
        (lying_file, "code as a param name", ".params", "is not a parameter name"),
        (lying_file, "reference forward", ".inputs[0]", "not the index of an earlier node"),
    ],
)
def test_errors_name_the_file_the_field_and_the_problem(good, tmp_path, make, label, field, says):
    path = make(good, tmp_path, label)
    with pytest.raises(S.LoadError) as caught:
        S.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and field in caught.value.field and says in message


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    """Every place in a JSON value that another value could be put."""
    found = [path] if path else []
    if isinstance(value, dict):
        found += [p for k, v in value.items() for p in _paths(v, (*path, k))]
    elif isinstance(value, list):
        found += [p for i, v in enumerate(value) for p in _paths(v, (*path, i))]
    return found


@settings(max_examples=150)
@given(data=st.data())
def test_any_value_anywhere_loads_or_is_a_clear_error_without_a_large_allocation(
    good, tmp_path_factory, data
):
    """A random JSON value at a random place of the document (checksums recomputed): it
    loads (some values are valid there) or raises a LoadError, allocating little."""
    document, arrays = read_file(good)
    where = data.draw(st.sampled_from(_paths(document)))
    _set(where, data.draw(JSON))(document)
    path = write_file(tmp_path_factory.mktemp("any") / "any.dip", document, arrays)
    tracemalloc.start()
    try:
        problem = verdict(str(where), path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem is None or problem.endswith(": loaded"), problem
    assert peak < PEAK_BYTES


def test_text_from_the_file_never_becomes_code(tmp_path):
    """A source line and names holding newlines and code load as text: the generated plan
    quotes them in comments only, and running it runs nothing of theirs."""
    x = S.placeholder((2,), name="x")
    fn = S.compile(F.exp(x), inputs=[x])
    fn.save(tmp_path / "f.dip")
    document, arrays = read_file(tmp_path / "f.dip")
    payload = "\nraise SystemExit('ran code from the file')\n"
    for node in document["nodes"]:
        node["source"] = f"evil.py:1: x{payload}"
        node["name"] = f"x{payload}"
    write_file(tmp_path / "evil.dip", document, arrays)
    loaded = S.load(tmp_path / "evil.dip")
    np.testing.assert_array_equal(loaded(np.zeros(2, np.float32)), [1.0, 1.0])
    plan, original = ast.parse(loaded.source), ast.parse(fn.source)
    assert len(plan.body[0].body) == len(original.body[0].body)  # no statement more
    assert not any(isinstance(node, ast.Raise) for node in ast.walk(plan))
