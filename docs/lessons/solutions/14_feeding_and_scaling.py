"""Worked answers to the exercises of lesson 14 (docs/lessons/14_feeding_and_scaling.py)."""

import tempfile
from pathlib import Path

import numpy as np

import symbolic as S
from symbolic.tracing import name_parameters


def exercise_1(module, inputs):
    name_parameters(module)
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in inputs.items()]
    loss = module(*feeds)
    step = S.compile([loss, *S.grad(loss, list(module.parameters()))], inputs=feeds)
    with tempfile.TemporaryDirectory() as folder:
        return step.save(Path(folder) / "step.dip").read_bytes()


def exercise_2(losses, grads, rows, reduction):
    scale = [r / sum(rows) if reduction == "mean" else 1.0 for r in rows]
    loss = sum(w * value for w, value in zip(scale, losses))
    return loss, [sum(w * g for w, g in zip(scale, per_param)) for per_param in zip(*grads)]


def exercise_3(f, arrays, rows):
    lowered = f.to_dask(chunks={node.name: rows for node in f.inputs})
    return [np.asarray(r) for r in lowered.compute(*arrays)]
