"""Recipe presets: each family's published training set-up as one nested dict that any YAML can override.

A recipe holds every training choice that is not the codec's architecture:

* ``codec_overrides``: merged into the codec config (training-only quantizer options such as Mimi's
  ``no_quantization_rate``).
* ``discriminators`` (``{family: kwargs}``, see :func:`audiotok.discriminators.build_discriminators`),
  ``discriminator_width`` (channel multiplier; tiny recipes), ``adversarial`` (an
  :class:`~audiotok.discriminators.AdversarialLoss` preset name or its fields).
* ``losses``: ``mel`` (a :class:`~audiotok.training.losses.MultiScaleMelLoss` preset) and the weights
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

Facts come from the reference sheets (speechtokenizer.md §5, mimi.md §4, wavtokenizer.md §3).
"""
from __future__ import annotations

import copy
from typing import Any

SPEECHTOKENIZER: dict[str, Any] = {
    # SpeechTokenizer trainer: MPD + MSD + MS-STFT, least squares, FM x2 summed; mel 4 scales 45/1/1/1,
    # waveform L1 x500, commitment x10, distillation x120; Adam 1e-4 (0.9, 0.99) for G and D, cosine;
    # no clipping, no warm-up, no weight EMA.
    "codec_overrides": {},
    "discriminators": {"mpd": {}, "msd": {}, "msstft": {}},
    "discriminator_width": None,
    "adversarial": "speechtokenizer",
    "losses": {"mel_preset": "speechtokenizer", "mel": 1.0, "l1": 500.0, "commitment": 10.0,
               "adversarial": 1.0, "feature": 1.0, "distill": 120.0, "balancer": None},
    "optim": {
        "generator": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0},
        "scheduler": {"name": "cosine", "total_steps": None},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": None,
}

MIMI: dict[str, Any] = {
    # Moshi paper §3.3: adversarial-only (feature matching + adversarial, no reconstruction), MS-STFT
    # discriminator with audiocraft's hinge; AdamW 8e-4 (0.5, 0.9), weight decay 5e-2 on transformer
    # parameters only; weight EMA 0.99; quantisation applied to 50 % of sequences. Loss weights and the
    # balancer are not published: audiocraft's adv 4 / feat 4 through the balancer (unverified).
    "codec_overrides": {"quantizer": {"no_quantization_rate": 0.5}},
    "discriminators": {"msstft": {}},
    "discriminator_width": None,
    "adversarial": "encodec",
    "losses": {"mel_preset": "encodec", "mel": 0.0, "l1": 0.0, "commitment": 1.0,
               "adversarial": 4.0, "feature": 4.0, "distill": 1.0,
               "balancer": {"total_norm": 1.0, "ema_decay": 0.999, "per_batch_item": True}},
    "optim": {
        "generator": {"name": "adamw", "lr": 8e-4, "betas": [0.5, 0.9], "weight_decay": 0.0,
                      "transformer_weight_decay": 5e-2},
        "discriminator": {"name": "adamw", "lr": 8e-4, "betas": [0.5, 0.9], "weight_decay": 0.0},
        "scheduler": {"name": "constant"},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": 0.99,
}

WAVTOKENIZER: dict[str, Any] = {
    # WavTokenizer experiment.py: MPD + MRD with hinge (Vocos), mel x45 (1 scale, 100 mels), commitment
    # x1000; AdamW 2e-4, default betas, weight decay 0.01, cosine to 0 over the generator steps.
    "codec_overrides": {},
    "discriminators": {"mpd": {}, "mrd": {}},
    "discriminator_width": None,
    "adversarial": "vocos",
    "losses": {"mel_preset": "wavtokenizer", "mel": 45.0, "l1": 0.0, "commitment": 1000.0,
               "adversarial": 1.0, "feature": 1.0, "distill": 1.0, "balancer": None},
    "optim": {
        "generator": {"name": "adamw", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.01,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adamw", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.01},
        "scheduler": {"name": "cosine", "total_steps": None},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": None,
}

RECIPES: dict[str, dict[str, Any]] = {
    "speechtokenizer": SPEECHTOKENIZER,
    "mimi": MIMI,
    "wavtokenizer": WAVTOKENIZER,
}


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
                             f"{{'base': 'speechtokenizer', ...}}; presets: {sorted(RECIPES)}")
    if base not in RECIPES:
        raise ValueError(f"unknown recipe {base!r}; choose one of {sorted(RECIPES)}")
    resolved = deep_merge(deep_merge(RECIPES[base], changes), overrides)
    for source in (changes, overrides or {}):  # a discriminator set is replaced, not merged
        if source.get("discriminators") is not None:
            resolved["discriminators"] = copy.deepcopy(source["discriminators"])
    unknown = sorted(set(resolved) - set(RECIPES[base]))
    if unknown:
        raise ValueError(f"unknown recipe key(s) {unknown}; known: {sorted(RECIPES[base])}")
    for section in ("losses", "optim"):
        unknown = sorted(set(resolved[section]) - set(RECIPES[base][section]))
        if unknown:
            raise ValueError(f"unknown {section} key(s) {unknown}; known: {sorted(RECIPES[base][section])}")
    return resolved
