"""Worked answers for lesson 6's exercises (docs/lessons/exercises/06_the_compile_step.py)."""

import symbolic as S
from common import functional as F
from symbolic.passes import pass_names


def exercise_1(fn):
    return {stage.stage: len(stage.changes) for stage in fn.report.stages[1:]}


def exercise_2(outputs, inputs):
    full = len(S.compile(outputs, inputs=inputs, optimize=2).graph.ops)
    return {
        name
        for name in pass_names()
        if len(S.compile(outputs, inputs=inputs, optimize=2, disable=[name]).graph.ops) > full
    }


def exercise_3(x):
    half = S.constant(1.0) * S.constant(0.5)
    return F.exp(x * half) + F.exp(x * half) * 1.0
