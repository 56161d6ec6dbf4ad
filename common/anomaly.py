"""Anomaly mode, one flag for both engines: inside `with detect_anomaly():` the first op that
produces NaN or inf raises an `AnomalyError` naming the op and the user's line, forward or
backward, as torch's anomaly mode does for eager code. The eager engine checks each kernel's
output as it runs (`check`); a compiled function called in anomaly mode steps its plan node by
node instead of running it, and checks each value (`symbolic.debug.call_checked`).

    with common.detect_anomaly():
        loss = model(x)            # AnomalyError: log produced -inf ... at model.py:12
        loss.backward()            # or: div, in the backward pass of sqrt (made at ...)

Slow on purpose: every value is scanned, and eagerly each value's line is remembered.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from contextvars import ContextVar
from typing import Any

import numpy as np

from common.backend import array_module, backend_of
from common.ops.core import user_line

_mode: ContextVar[bool] = ContextVar("anomaly_mode", default=False)
_outer_modes: ContextVar[tuple] = ContextVar("outer_anomaly_modes", default=())  # to restore
active = _mode.get  # () -> whether anomaly mode is on in this thread: each eager op asks

HINTS = {  # why an op makes NaN or inf, and what usually fixes it, by the op's name
    "log": "log(0) is -inf, log of a negative number NaN, and log's gradient at 0 infinite "
    "(masking with F.where does not help: 0 * inf is NaN). Fix: keep its input positive, "
    "e.g. F.log(F.clamp(x, min=1e-12))",
    "sqrt": "sqrt of a negative number is NaN, and sqrt's gradient at 0 is infinite (the norm "
    "of a zero vector). Fix: add a small epsilon under the root, e.g. F.sqrt(s + 1e-12)",
    "div": "a division by zero gives inf, and 0 / 0 NaN. Fix: keep the denominator away from "
    "zero, e.g. x / (d + 1e-12)",
    "exp": "exp overflows float32 above about 88. Fix: subtract the maximum first, as "
    "F.softmax and F.logsumexp do",
    "pow": "a negative number to a fractional power is NaN, and 0 to a negative power inf. "
    "Fix: keep the base in the power's domain",
}
GENERIC_HINT = (
    "Fix: look at the op's inputs at that line (in a compiled function: "
    "f.debug(*inputs).continue_to('file.py:LINE'), then step() and value())"
)


class AnomalyError(FloatingPointError):
    """The first op that produced NaN or inf in anomaly mode: `op` (its name) and `line` (the
    user's line that made it); in a backward pass, `backward_of` (the forward op whose
    gradient was being computed) and `line` is that forward op's line."""

    def __init__(self, message: str, op: str, line: str, backward_of: str = "") -> None:
        super().__init__(message)
        self.op, self.line, self.backward_of = op, line, backward_of


class detect_anomaly(contextlib.ContextDecorator):
    """Raise at the first NaN or inf an op produces, in this thread, in both engines
    (`with common.detect_anomaly():`, or as a decorator). The mode to restore is kept in the
    thread's context, so one instance may be entered recursively and by several threads."""

    def __enter__(self) -> detect_anomaly:
        _outer_modes.set(_outer_modes.get() + (_mode.get(),))
        _mode.set(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        *outer, previous = _outer_modes.get()
        _outer_modes.set(tuple(outer))
        _mode.set(previous)


# ---- looking at values -----------------------------------------------------------------------


def nonfinite(value: Any) -> str | None:
    """What is wrong with a value ("NaN in 2, inf in 1 of 12 values"), or None when every
    entry is finite (integers and bools always are); a tuple (a control-flow node's values)
    is looked at whole."""
    if isinstance(value, tuple):
        return next((found for found in map(nonfinite, value) if found is not None), None)
    if isinstance(value, float):
        value = np.asarray(value)  # a Python number an op took, such as float("inf")
    if getattr(getattr(value, "dtype", None), "kind", "") != "f":
        return None
    xp = array_module([value])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is counted below
        if bool(xp.isfinite(xp.sum(value))):  # a finite sum: every term was finite
            return None
    array = backend_of(value).to_host(value)
    counts = {
        "NaN": int(np.isnan(array).sum()),
        "inf": int(np.isposinf(array).sum()),
        "-inf": int(np.isneginf(array).sum()),
    }
    tally = ", ".join(f"{kind} in {n}" for kind, n in counts.items() if n)
    return f"{tally} of {array.size} values" if tally else None


# ---- the eager engine's hook -----------------------------------------------------------------

_lines: dict[int, tuple[Any, str]] = {}  # id(array) -> (a weak reference to it, user's line)


def check(op: Any, out: Any, arrays: list) -> None:
    """Called by the eager engine after each kernel while anomaly mode is on: remembers the
    user's line that made `out` (a backward pass names it), and raises `AnomalyError` if `out`
    holds NaN or inf."""
    line = user_line()
    _remember(out, line)
    found = nonfinite(out)
    if found is not None:
        raise eager_error(op, found, arrays, line)


def _remember(array: Any, line: str) -> None:
    key = id(array)
    try:
        ref = weakref.ref(array, lambda _: _lines.pop(key, None))
    except TypeError:  # a value that cannot be referenced weakly: its line is not needed
        return
    _lines[key] = (ref, line)


def line_of(array: Any) -> str:
    """The user's line that made `array` while anomaly mode was on ("" if none did)."""
    ref, line = _lines.get(id(array), (None, ""))
    return line if ref is not None and ref() is array else ""


def _running_vjp() -> tuple[Any, Any] | None:
    """(op, value) of the tape entry whose gradient the shared reverse-mode driver is
    computing now, read from its frame; None outside a backward pass."""
    from common.autodiff import backpropagate  # not at import: autodiff needs all of F

    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is backpropagate.__code__:
            return frame.f_locals.get("op"), frame.f_locals.get("value")
        frame = frame.f_back
    return None


def eager_error(op: Any, found: str, arrays: list, line: str) -> AnomalyError:
    """The error for an eager op whose output `found` describes, run at the user's `line`."""
    came_in = [
        f"input {i} ({bad})" for i, bad in enumerate(map(nonfinite, arrays)) if bad is not None
    ]
    running = _running_vjp()
    if running is None:
        return anomaly_error(op.name, found, line, came_in)
    forward_op, value = running
    forward_line = line_of(getattr(value, "data", None)) or (
        "a line not recorded: it ran before anomaly mode was on"
    )
    backward_of = getattr(forward_op, "name", "an op")
    return anomaly_error(op.name, found, forward_line, came_in, backward_of, called_at=line)


# ---- the message both engines give -----------------------------------------------------------


def anomaly_error(
    op: str, found: str, line: str, came_in: list[str], backward_of: str = "", called_at: str = ""
) -> AnomalyError:
    """The error naming `op`, what it produced (`found`) and the user's `line` (in a backward
    pass: the forward op `backward_of` and its line, and the line that called backward if
    known); `came_in` lists the inputs that already held NaN or inf: the op passed them on."""
    where = f"in the backward pass of {backward_of}, " if backward_of else ""
    made = "whose forward op was made at" if backward_of else "at"
    if came_in:
        message = (
            f"{op} got NaN or inf in {', '.join(came_in)}, {where}at {line}: no op produced "
            "it while anomaly mode was on, so the value came in that way (fed in, a weight, "
            "or computed before anomaly mode was on). Fix: check the values fed in"
        )
    else:
        hint = HINTS.get(backward_of or op, GENERIC_HINT)
        message = f"{op} produced {found} from finite inputs, {where}{made} {line}\n  {hint}"
    if called_at:
        message += f"\n  (backward was called at {called_at})"
    return AnomalyError(message, op, line, backward_of)
