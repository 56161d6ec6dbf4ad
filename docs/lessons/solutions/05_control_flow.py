"""Worked answers for lesson 5's exercises (docs/lessons/exercises/05_control_flow.py)."""

import numpy as np

from common import functional as F


def exercise_1(x):
    return F.cond(F.sum(x) > 0, lambda a: a * 2, lambda a: -a, x)


def exercise_2(x):
    count, halved = F.while_loop(
        lambda carry: F.max(F.abs(carry[1])) >= 1.0,
        lambda carry: (carry[0] + 1, carry[1] * 0.5),
        (np.array(0), x),
    )
    return count, halved


def exercise_3(xs):
    _, sums = F.scan(lambda total, x: (total + x, total + x), xs[0] * 0.0, xs)
    return sums
