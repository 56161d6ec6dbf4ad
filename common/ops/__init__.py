"""Op declarations, one module per family; `OPS` maps every op's name to its `OpDef`."""

from common.ops.core import OPS, Aval, DTypeError, OpDef, OpError, ShapeError, aval_of

__all__ = ["OPS", "Aval", "DTypeError", "OpDef", "OpError", "ShapeError", "aval_of"]
