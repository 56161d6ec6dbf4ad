"""What several test files share: exact comparison, a common elementwise chain, small
conversions. One copy here, imported as `from tests.helpers import ...`."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F


def assert_identical(got: Any, want: Any, what: str) -> None:
    """Same values bit for bit, and the same dtype and shape (assert_array_equal alone
    would accept 1.0 float32 for 1.0 float64)."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), what
    np.testing.assert_array_equal(got, want, err_msg=what, strict=True)


def gelu(x: Any) -> Any:
    """GELU's tanh approximation: a long elementwise chain that fusion takes whole."""
    return 0.5 * x * (1.0 + F.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def as_list(value: Any) -> list:
    """One output or several, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def is_float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"
