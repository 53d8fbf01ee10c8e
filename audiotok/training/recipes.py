"""Recipe presets: each family's published training set-up as one nested dict that any YAML can override.

A recipe holds every training choice that is not the codec's architecture:

* ``codec_overrides``: merged into the codec config (training-only quantizer options such as Mimi's
  ``no_quantization_rate``).
* ``discriminators`` (a preset name of :data:`audiotok.discriminators.DISCRIMINATOR_PRESETS`, or
  ``{discriminator: fields}``, see :func:`audiotok.discriminators.build_discriminators`),
  ``discriminator_width`` (channel multiplier; tiny recipes), ``adversarial`` (an
  :class:`~audiotok.discriminators.AdversarialLoss` preset name or its fields).
* ``losses``: ``mel_preset`` (a name in :data:`audiotok.training.losses.MEL_PRESETS`) and the weights
  ``mel``, ``l1``, ``commitment``, ``adversarial``, ``feature``, ``distill``; ``balancer`` (None, or
  :class:`~audiotok.training.losses.Balancer` options: its weights are then the mel/l1/adversarial/feature
  weights as gradient fractions).
* ``optim``: ``generator`` / ``discriminator`` optimiser (``name`` adam|adamw, ``lr``, ``betas``,
  ``weight_decay``, ``transformer_weight_decay``: a separate decay for transformer parameters), a
  ``scheduler`` (``name`` constant|cosine|exponential, ``gamma``, ``total_steps``: None = the
  trainer's ``max_steps``), ``d_grad_clip`` / ``g_grad_clip`` (norm; None = off) and
  ``d_update_prob`` (probability of a discriminator step per batch).
* ``warmup_steps`` (reconstruction-only generator steps before the GAN starts) and ``ema_decay``
  (generator weight EMA; None = off).
* ``quantizer_warmup_steps``: generator steps with the quantizer bypassed (the decoder gets the
  continuous latent); the codebooks initialise by k-means on the first quantized batch, i.e. on a
  trained encoder's latent instead of an untrained one's near-constant frames. Not in the papers
  (0 in the presets); the tiny CPU recipes under ``configs/`` set it (docs/training-postmortem.md).
* ``standardize_latent``: on the first batch of a run from scratch, rescale the encoder's last conv so
  the latent has zero mean and unit variance per channel (:mod:`audiotok.training.init`). Not in the
  papers either; an initialisation only (no effect on a resumed or ``init_from`` run).

The recipes themselves live in their family modules (``RECIPE`` in :mod:`audiotok.families.speechtokenizer`,
:mod:`~audiotok.families.mimi`, :mod:`~audiotok.families.wavtokenizer`), each citing its source (the
SpeechTokenizer repository's trainer, the Moshi paper and audiocraft's compression config, WavTokenizer's
``decoder/experiment.py``); they name discriminator, adversarial and mel presets rather than copying them.
This module resolves a recipe name plus overrides and checks the keys.
"""
from __future__ import annotations

import copy
from typing import Any

from audiotok.families import RECIPES  # name -> recipe dict, registered by each family module


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in, recursively for nested dicts."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_recipe(recipe: str | dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolve a recipe: a preset name, or a dict (``{"base": name, ...}`` overrides that preset)."""
    if isinstance(recipe, str):
        base, changes = recipe, {}
    else:
        changes = dict(recipe)
        base = changes.pop("base", None)
        if base is None:
            raise ValueError("a recipe dict needs a 'base' preset to override, e.g. "
                             f"{{'base': 'speechtokenizer', ...}}; presets: {RECIPES.names()}")
    preset = RECIPES.get(base)  # unknown name: an error listing the recipes
    resolved = deep_merge(deep_merge(preset, changes), overrides)
    for source in (changes, overrides or {}):  # a discriminator set is replaced, not merged
        if source.get("discriminators") is not None:
            resolved["discriminators"] = copy.deepcopy(source["discriminators"])
    unknown = sorted(set(resolved) - set(preset))
    if unknown:
        raise ValueError(f"unknown recipe key(s) {unknown}; known: {sorted(preset)}")
    for section in ("losses", "optim"):
        unknown = sorted(set(resolved[section]) - set(preset[section]))
        if unknown:
            raise ValueError(f"unknown {section} key(s) {unknown}; known: {sorted(preset[section])}")
    return resolved
