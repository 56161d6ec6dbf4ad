"""The `.dip` file, version 1: one safetensors file whose metadata holds the graph as JSON.

    metadata  format="diptych.graph", version="1", graph=<JSON text>, graph_sha256=<hex>
    tensors   the constants' and variables' arrays, named as the graph's tensor table says

The JSON's fields are described in docs/concepts/serialization.md. Reading checks, in this
order, before any array is read: the container (safetensors' own checks), the format and
its version, the graph text's checksum, the JSON, and each tensor's dtype, shape and
checksum against the table, so a changed byte anywhere is an error naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

FORMAT = "diptych.graph"
VERSION = 1  # bumped when a reader of the last version could misread a new file
TENSOR_DTYPES = frozenset(
    ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    + ("float16", "float32", "float64")
)  # what safetensors stores
NODE_DTYPES = TENSOR_DTYPES | {"complex64", "complex128", "object"}  # object: a control tuple
MAX_RANK = 32
MAX_NODE_BYTES = 1 << 30  # a declared value above this is refused before anything is built


class LoadError(ValueError):
    """A file `S.load` refuses: names the file, the field, what is wrong and what to do."""

    def __init__(self, path: Any, field: str, problem: str) -> None:
        self.path, self.field = str(path), field
        super().__init__(f"{path}: {field}: {problem}")


class SaveError(ValueError):
    """A graph that the format cannot hold (an unregistered op, a value of an unknown type)."""


def fail(path: Any, field: str, problem: str) -> NoReturn:
    raise LoadError(path, field, problem)


def contiguous(array: np.ndarray) -> np.ndarray:
    """`array` in C order, keeping its shape (numpy's ascontiguousarray makes a 0-d array 1-d)."""
    return np.require(array, requirements="C")


def type_text(dtype: Any, shape: tuple | None) -> str:
    """A declared value as users read it: float32[3, 4], or float32[?] (rank unknown)."""
    dims = "?" if shape is None else ", ".join("?" if d is None else str(d) for d in shape)
    return f"{dtype}[{dims}]"


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(contiguous(array).data).hexdigest()


def tensor_entry(array: np.ndarray) -> dict:
    """The tensor table's record of an array: what reading checks before trusting its bytes."""
    return {"dtype": array.dtype.name, "shape": list(array.shape), "sha256": sha256(array)}


def write_file(path: Any, document: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write the graph document and its arrays as one file, atomically (a reader never sees
    half a file: it is written beside the target, then renamed over it)."""
    from safetensors.numpy import save_file

    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "graph": text,
        "graph_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        save_file({k: contiguous(a) for k, a in arrays.items()}, temporary, metadata)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_file(path: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """The graph document and its arrays, each checked against the tensor table."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as container:
            document = _document(path, container.metadata() or {})
            names = set(container.keys())
            table = _table(path, document, names)
            for name, (dtype, shape) in table.items():
                piece = container.get_slice(name)
                if piece.get_dtype() != _safetensors_dtype(dtype) or piece.get_shape() != shape:
                    fail(
                        path,
                        f"tensors[{name!r}]",
                        "the table and the data disagree on the "
                        "dtype or shape: the file is corrupted",
                    )
            arrays = {name: container.get_tensor(name) for name in table}
    except SafetensorError as exc:
        fail(
            path,
            "container",
            f"not a readable safetensors file ({exc}): the file is "
            "truncated, corrupted, or not a diptych file",
        )
    for name, array in arrays.items():
        if sha256(array) != document["tensors"][name]["sha256"]:
            fail(
                path,
                f"tensors[{name!r}].sha256",
                "the data does not match its checksum: the file is corrupted",
            )
    return document, arrays


def _document(path: Any, metadata: dict) -> dict:
    if metadata.get("format") != FORMAT:
        fail(
            path,
            "metadata.format",
            f"not a diptych graph file (expected format {FORMAT!r}, "
            f"found {metadata.get('format')!r}). Fix: save it with f.save(path)",
        )
    version = metadata.get("version", "")
    if not (version.isascii() and version.isdigit() and len(version) < 9 and int(version) > 0):
        fail(path, "metadata.version", f"{version[:20]!r} is not a format version")
    if int(version) > VERSION:
        fail(
            path,
            "metadata.version",
            f"written in format version {int(version)}, newer than "
            f"this diptych reads ({VERSION}). Fix: load it with a newer diptych",
        )
    text = metadata.get("graph", "")
    if hashlib.sha256(text.encode()).hexdigest() != metadata.get("graph_sha256"):
        fail(path, "metadata.graph", "the graph does not match its checksum: the file is corrupted")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        fail(path, "metadata.graph", f"not valid JSON ({exc})")
    if not isinstance(document, dict):
        fail(path, "metadata.graph", f"a JSON object is wanted, not {type(document).__name__}")
    return document


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON (non-finite floats are written as {{'float': ...}})")


def _table(path: Any, document: dict, names: set[str]) -> dict[str, tuple[str, list]]:
    """The tensor table, checked: each entry's dtype and shape well-formed, its size within
    the file's, and the same names as the container holds."""
    table = document.get("tensors")
    if not isinstance(table, dict):
        fail(path, "tensors", "a JSON object (name -> dtype, shape, sha256) is wanted")
    if set(table) != names:
        extra = sorted(set(table) ^ names)[:3]
        fail(
            path,
            "tensors",
            f"the table and the data name different tensors ({extra}): the file is corrupted",
        )
    size = os.path.getsize(path)
    checked = {}
    for name, entry in table.items():
        field = f"tensors[{name!r}]"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "sha256"}:
            fail(path, field, "an object with exactly dtype, shape and sha256 is wanted")
        dtype = entry["dtype"]
        if not one_of(dtype, TENSOR_DTYPES):
            fail(path, f"{field}.dtype", f"{str(dtype)[:30]!r} is not a tensor dtype")
        shape = check_shape(path, f"{field}.shape", entry["shape"], known=True)
        if math.prod(shape) * np.dtype(dtype).itemsize > size:
            fail(path, f"{field}.shape", f"{shape} holds more bytes than the whole file")
        if not isinstance(entry["sha256"], str):
            fail(path, f"{field}.sha256", "a hex digest string is wanted")
        checked[name] = (dtype, shape)
    return checked


def one_of(name: Any, names: Any) -> bool:
    """Whether a decoded JSON value is one of `names` (a list or an object is none of them)."""
    return type(name) is str and name in names


def check_shape(path: Any, field: str, shape: Any, known: bool = False) -> list:
    """A declared shape: a list of sizes (None for unknown, unless `known`), at most
    MAX_RANK of them."""
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        fail(path, field, f"a list of at most {MAX_RANK} sizes is wanted")
    for size in shape:
        if size is None and not known:
            continue
        if type(size) is not int or size < 0:
            fail(path, field, f"{str(size)[:20]} is not a size (a non-negative integer)")
    return shape


def _safetensors_dtype(dtype: str) -> str:
    """safetensors' name of a dtype: F32, I64, U8, BOOL."""
    return "BOOL" if dtype == "bool" else f"{dtype[0].upper()}{8 * np.dtype(dtype).itemsize}"
