"""Semantic distillation: teachers, losses, alignment, feature cache, k-means units.

Layout convention: features ``[B, D, T]`` (time last), labels ``[B, T]``. Importing this package is
cheap; transformers and pocketsphinx load only when a teacher that needs them is built.

    from audiotok.distill import build_teacher, DistillationHead, FeatureCache
    teacher = build_teacher("hubert:/models/hubert-base-ls960@avg")   # or "phones" (offline)
    head = DistillationHead(1024, 768, kind="d_axis")                 # SpeechTokenizer
    loss = head(codec_output.semantic, teacher_features)
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Teacher": "teacher", "TeacherSpec": "teacher",
    "TEACHERS": "teachers", "TeacherKind": "teachers", "build_teacher": "teachers", "teacher_config": "teachers",
    "HFTeacher": "hf_teacher",
    "PhoneTeacher": "phone_teacher", "PHONES": "phone_teacher", "one_hot_phones": "phone_teacher",
    "d_axis_loss": "losses", "t_axis_loss": "losses", "pseudo_label_loss": "losses", "mimi_cosine_loss": "losses",
    "DistillationHead": "head",
    "align_to_codec": "align", "align_labels_to_codec": "align", "sample_to_frame": "align",
    "frame_to_sample": "align", "num_frames": "align",
    "FeatureCache": "cache", "StaleCacheError": "cache", "build_cache": "cache",
    "KMeansUnits": "kmeans", "fit_kmeans": "kmeans", "fit_kmeans_on_cache": "kmeans",
}  # fmt: skip
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'audiotok.distill' has no attribute {name!r}")
    return getattr(importlib.import_module(f"audiotok.distill.{_EXPORTS[name]}"), name)
