"""Worked answers for lesson 8's exercises (docs/lessons/exercises/08_memory_reuse.py)."""

import tracemalloc

from common import functional as F


def exercise_1(fn):
    plan = fn.graph.memory
    return len(plan.assignment), len(plan.buffers), len(plan.in_place)


def exercise_2(x):
    y = F.tanh(x * 2.0)
    y = F.exp(y) + 1.0
    return F.sum(F.sqrt(y) * 0.5)


def exercise_3(fn):
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return max(0, tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()
