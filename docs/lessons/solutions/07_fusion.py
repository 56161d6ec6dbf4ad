"""Worked answers for lesson 7's exercises (docs/lessons/exercises/07_fusion.py)."""

import numpy as np

import symbolic as S
from common import functional as F


def exercise_1(fn):
    total = 0
    for node in fn.graph.ops:
        arrays = [a for a in node.inputs if isinstance(a, S.Node) and a.shape == node.shape]
        total += (len(arrays) + 1) * node.dtype.itemsize
    return total


def exercise_2(x):
    y = x * 0.5 + 1.0
    y = F.tanh(y) * y - 0.25
    return F.sigmoid(y * y + x) * 3.0


def exercise_3(a, b):
    bits_a = a.view(np.int32).astype(np.int64)
    bits_b = b.view(np.int32).astype(np.int64)
    return np.abs(bits_a - bits_b)
