"""Teacher kinds (:data:`TEACHERS`) and the factories ``build_teacher`` / ``teacher_config``.

A kind is registered with a :class:`TeacherKind`: how to build a teacher from a parsed
:class:`~audiotok.distill.teacher.TeacherSpec`, and how to describe it (its ``config_dict``) without
loading weights. Register your own with ``TEACHERS.register("mykind", TeacherKind(build, config))``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from audiotok.distill.hf_teacher import HFTeacher, hf_teacher_config
from audiotok.distill.phone_teacher import PhoneTeacher, phone_teacher_config
from audiotok.distill.teacher import Teacher, TeacherSpec
from audiotok.registry import Registry


@dataclass(frozen=True)
class TeacherKind:
    """``build(spec) -> Teacher``; ``config(spec) -> dict`` (the teacher's ``config_dict``, no weights
    loaded); ``needs_source``: whether a spec must name a folder or hub id."""

    build: Callable[[TeacherSpec], Teacher]
    config: Callable[[TeacherSpec], dict]
    needs_source: bool = True


def _hf(spec: TeacherSpec) -> Teacher:
    return HFTeacher(spec.source, layer=spec.layer, dtype=spec.dtype, kind=spec.kind)


TEACHERS = Registry("teacher kind", class_path=False)
for _kind in ("hubert", "wavlm", "hf"):  # hf: HuBERT or WavLM, whichever the model's config says
    TEACHERS.register(_kind, TeacherKind(_hf, hf_teacher_config))
TEACHERS.register("phones", TeacherKind(lambda spec: PhoneTeacher(), lambda spec: phone_teacher_config(),
                                        needs_source=False))
del _kind


def parse_teacher(spec: str | dict | TeacherSpec) -> tuple[TeacherSpec, TeacherKind]:
    """The parsed spec and its registered kind; ``ValueError`` naming the kinds or the missing source."""
    parsed = TeacherSpec.parse(spec)
    kind = TEACHERS.get(parsed.kind)
    if kind.needs_source and not parsed.source:
        raise ValueError(f"teacher kind {parsed.kind!r} needs a SOURCE (folder or hub id): "
                         f"'{parsed.kind}:SOURCE[@LAYER]'")
    return parsed, kind


def teacher_config(spec: str | dict | TeacherSpec) -> dict:
    """The ``config_dict`` a teacher built from ``spec`` would have, without loading its weights."""
    parsed, kind = parse_teacher(spec)
    return kind.config(parsed)


def build_teacher(spec: str | dict | TeacherSpec, **overrides) -> Teacher:
    """Build a frozen teacher from a spec; ``overrides`` replace spec fields (e.g. ``dtype="bfloat16"``)."""
    parsed = TeacherSpec.parse(spec)
    if overrides:
        parsed = TeacherSpec.parse({**parsed.__dict__, **overrides})
    parsed, kind = parse_teacher(parsed)
    return kind.build(parsed)
