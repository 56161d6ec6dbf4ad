"""Op params and literals as JSON, both ways, on one screen.

Plain JSON holds None, bools, ints, finite floats and strings; a JSON array is a tuple (axes,
shapes, index templates). Every other value is an object with one tag:

    {"float": "inf"}   inf, -inf or nan          {"list": [...]}      a list
    {"slice": [start, stop, step]}                {"ellipsis": null}   ...
    {"scalar": ["float64", 0.5]}  a numpy scalar  {"dtype": "int64"}   a numpy dtype
    {"body": {"inputs": [3, 4], "outputs": [9]}}  a control-flow body (node indices)

Decoding builds values from these tags only: no name in a file is ever looked up as code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from symbolic.control import Body
from symbolic.serialize.format import NODE_DTYPES, SaveError, one_of

MAX_DEPTH = 16  # tuples in tuples: index templates and control ops' out_avals need 3
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
SCALAR_DTYPES = NODE_DTYPES - {"object"}


def encode(value: Any, where: str, body: Callable[[Body], dict]) -> Any:
    """`value` as JSON; `body` encodes a control-flow body. A SaveError names `where`."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if type(value) is tuple:
        return [encode(v, where, body) for v in value]
    if type(value) is list:
        return {"list": [encode(v, where, body) for v in value]}
    if type(value) is slice:
        return {"slice": [encode(v, where, body) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": None}
    if isinstance(value, np.generic) and value.dtype.name in SCALAR_DTYPES:
        return {"scalar": [value.dtype.name, encode(value.item(), where, body)]}
    if isinstance(value, np.dtype) and value.name in NODE_DTYPES:
        return {"dtype": value.name}
    if isinstance(value, Body):
        return {"body": body(value)}
    raise SaveError(
        f"{where}: a {type(value).__name__} ({str(value)[:40]}) has no form in a .dip file. "
        "Fix: pass the op numbers, tuples or arrays (as inputs) instead."
    )


def decode(
    data: Any,
    field: str,
    fail: Callable[[str, str], NoReturn],
    body: Callable[[Any, str], Body],
    depth: int = 0,
) -> Any:
    """The value `data` encodes; `fail(field, problem)` raises for anything else."""
    if depth > MAX_DEPTH:
        fail(field, f"values nest deeper than {MAX_DEPTH} levels")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return tuple(decode(v, f"{field}[{i}]", fail, body, depth + 1) for i, v in enumerate(data))
    if type(data) is not dict or len(data) != 1:
        fail(field, f"{str(data)[:40]} is not a value (see docs/concepts/serialization.md)")
    (tag, inner), where = next(iter(data.items())), f"{field}.{next(iter(data))}"
    if tag == "float" and one_of(inner, NON_FINITE):
        return NON_FINITE[inner]
    if tag == "list" and type(inner) is list:
        return list(decode(inner, where, fail, body, depth + 1))
    if tag == "slice" and type(inner) is list and len(inner) == 3:
        parts = decode(inner, where, fail, body, depth + 1)
        if all(p is None or type(p) is int for p in parts):
            return slice(*parts)
    if tag == "ellipsis" and inner is None:
        return Ellipsis
    if (
        tag == "scalar"
        and type(inner) is list
        and len(inner) == 2
        and one_of(inner[0], SCALAR_DTYPES)
    ):
        return _scalar(inner[0], decode(inner[1], where, fail, body, depth + 1), where, fail)
    if tag == "dtype" and one_of(inner, NODE_DTYPES):
        return np.dtype(inner)
    if tag == "body":
        return body(inner, where)
    fail(where, f"{str(inner)[:40]} is not what a {tag!r} value holds")


def _scalar(dtype: str, value: Any, field: str, fail: Callable[[str, str], NoReturn]) -> Any:
    if type(value) not in (bool, int, float):
        fail(field, f"a {dtype} scalar holds a number, not {str(value)[:40]}")
    try:
        with np.errstate(over="raise", invalid="raise"):
            return np.dtype(dtype).type(value)
    except (OverflowError, FloatingPointError, ValueError, TypeError):
        fail(field, f"{value!r} does not fit a {dtype}")
