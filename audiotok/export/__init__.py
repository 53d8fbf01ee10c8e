"""Export codecs to other runtimes (ONNX): ``export_onnx`` and the onnxruntime-backed ``OnnxCodec``.

Nothing heavy is imported here; ``onnx``/``onnxruntime`` are needed only when exporting or running
(``pip install audiotok[onnx]``).
"""
from __future__ import annotations

__all__ = ["export_onnx", "OnnxCodec"]


def __getattr__(name):  # lazy (PEP 562): importing audiotok.export stays cheap
    if name == "export_onnx":
        from audiotok.export.onnx import export_onnx

        return export_onnx
    if name == "OnnxCodec":
        from audiotok.export.onnx_runtime import OnnxCodec

        return OnnxCodec
    raise AttributeError(f"module 'audiotok.export' has no attribute {name!r}")
