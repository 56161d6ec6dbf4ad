"""`F`: the functional API. Every op works on eager tensors, symbols, parameters and arrays.

    from common import functional as F
    F.tanh(x @ w).sum()       # eager tensors: runs now; symbols: builds a graph node

The functions live next to their op declarations in `common/ops/`; this module gathers them.
"""

from common.control import *
from common.ops.elementwise import *
from common.ops.indexing import *
from common.ops.linalg import *
from common.ops.nn import *
from common.ops.reduction import *
from common.ops.shape import *
from common.ops.unary import *
