"""ONNX: export a compiled graph (`export_onnx`), import a model as a compiled function
(`import_onnx`), run it in onnxruntime. Needs the `export` extra (onnx, onnxruntime).

    from symbolic.serialize.onnx import export_onnx, import_onnx
    export_onnx(f, "model.onnx")             # onnx.checker passes; onnxruntime runs it
    g = import_onnx("model.onnx"); g(x)      # the same numbers, from diptych's plan
"""

try:
    import onnx  # noqa: F401
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError(
        "ONNX export and import need the onnx and onnxruntime packages. "
        "Fix: pip install 'diptych[export]' (make setup installs it)."
    ) from exc

from symbolic.serialize.onnx.emitter import OnnxExportError
from symbolic.serialize.onnx.export import export_onnx, to_onnx
from symbolic.serialize.onnx.imports import apply_onnx, import_onnx
from symbolic.serialize.onnx.readers import OnnxImportError
from symbolic.serialize.onnx.runtime import onnxruntime_session, run_onnxruntime

__all__ = [
    "OnnxExportError", "OnnxImportError", "apply_onnx", "onnxruntime_session",
    "export_onnx", "import_onnx", "run_onnxruntime", "to_onnx",
]  # fmt: skip
