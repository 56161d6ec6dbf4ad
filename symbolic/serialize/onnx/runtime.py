"""Running an exported model in onnxruntime, and timing it against diptych's plan."""

from __future__ import annotations

from typing import Any

import numpy as np


def onnxruntime_session(model: Any, threads: int = 1) -> Any:
    """An onnxruntime session on the CPU for a model (a ModelProto, bytes or a path).
    One thread by default, as diptych's timings run BLAS: a fair race on a shared machine."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3  # errors only: no notes on how it optimized the graph
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_onnxruntime(model: Any, inputs: list) -> list[np.ndarray]:
    """The model's outputs in onnxruntime, fed `inputs` in the graph's input order."""
    session = onnxruntime_session(model)
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, (np.asarray(v) for v in inputs))))
