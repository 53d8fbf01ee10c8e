"""Adversarial and feature-matching losses, with the aggregation policies of the reference toolkits.

Forms (``kind``), for a logit map D(.) averaged over its elements:

* ``"lsgan"``: D: mean (1 - D(x))^2 + mean D(x̂)^2; G: mean (1 - D(x̂))^2  (HiFi-GAN, DAC, SpeechTokenizer, ESPnet)
* ``"hinge"``: D: mean relu(1 - D(x)) + mean relu(1 + D(x̂)); G: mean relu(1 - D(x̂))  (EnCodec paper, Vocos)
* ``"hinge_linear"``: D as hinge; G: -mean D(x̂)  (audiocraft's default ``hinge``)

Sub-discriminator terms are summed (``reduction="sum"``) or averaged (``"mean"``). Loss scales differ
a lot between these policies, so use one :class:`AdversarialLoss` preset with its matching weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from audiotok.registry import Registry, check_fields

KINDS = ("lsgan", "hinge", "hinge_linear")
REDUCTIONS = ("mean", "sum")


def _check(kind: str, *reductions: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown adversarial loss kind {kind!r}; use one of {KINDS}")
    for reduction in reductions:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; use one of {REDUCTIONS}")


def _reduce(terms: list[Tensor], reduction: str) -> Tensor:
    total = torch.stack(terms).sum()
    return total / len(terms) if reduction == "mean" else total


def discriminator_terms(real: Tensor, fake: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """(real term, fake term) of the discriminator loss for one sub-discriminator's logits."""
    if kind == "lsgan":
        return (1 - real).square().mean(), fake.square().mean()
    return F.relu(1 - real).mean(), F.relu(1 + fake).mean()


def discriminator_loss(real_logits: list[Tensor], fake_logits: list[Tensor], kind: str, reduction: str = "mean") -> Tensor:
    """Discriminator loss over sub-discriminators (feed ``fake`` detached from the generator)."""
    _check(kind, reduction)
    terms = [sum(discriminator_terms(r, f, kind)) for r, f in zip(real_logits, fake_logits, strict=True)]
    return _reduce(terms, reduction)


def generator_adversarial_loss(fake_logits: list[Tensor], kind: str, reduction: str = "mean") -> Tensor:
    """Generator's adversarial loss over sub-discriminators."""
    _check(kind, reduction)
    if kind == "lsgan":
        terms = [(1 - f).square().mean() for f in fake_logits]
    elif kind == "hinge":
        terms = [F.relu(1 - f).mean() for f in fake_logits]
    else:
        terms = [-f.mean() for f in fake_logits]
    return _reduce(terms, reduction)


def feature_matching_loss(
    real_fmaps: list[list[Tensor]],
    fake_fmaps: list[list[Tensor]],
    relative: bool = False,
    layer_reduction: str = "mean",
    disc_reduction: str = "mean",
    scale: float = 1.0,
    eps: float = 1e-8,
) -> Tensor:
    """L1 between real (detached) and fake feature maps, per layer ``mean |r - f|``.

    ``relative`` divides each layer's term by ``mean |r|`` (EnCodec paper / AcademiCodec). Layers are
    averaged or summed within a sub-discriminator, then sub-discriminators averaged or summed;
    ``scale`` multiplies the result (SpeechTokenizer / HiFi-GAN: 2, summed).
    """
    _check("lsgan", layer_reduction, disc_reduction)
    per_disc = []
    for real_layers, fake_layers in zip(real_fmaps, fake_fmaps, strict=True):
        layer_terms = []
        for real, fake in zip(real_layers, fake_layers, strict=True):
            real = real.detach()
            term = (real - fake).abs().mean()
            if relative:
                term = term / real.abs().mean().clamp(min=eps)
            layer_terms.append(term)
        per_disc.append(_reduce(layer_terms, layer_reduction))
    return scale * _reduce(per_disc, disc_reduction)


@dataclass(frozen=True)
class AdversarialLoss:
    """One adversarial + feature-matching policy; presets reproduce the reference toolkits.

    Discriminator feature maps exclude the final logits; ``fm_include_logits`` appends them to
    feature matching (HiFi-GAN, Vocos and ESPnet do; audiocraft and DAC do not).
    """

    kind: str = "lsgan"
    reduction: str = "sum"
    fm_relative: bool = False
    fm_layer_reduction: str = "sum"
    fm_disc_reduction: str = "sum"
    fm_include_logits: bool = False
    fm_scale: float = 1.0

    def __post_init__(self):
        _check(self.kind, self.reduction, self.fm_layer_reduction, self.fm_disc_reduction)

    @classmethod
    def preset(cls, name: str) -> AdversarialLoss:
        """By name (:data:`ADVERSARIAL_PRESETS`): ``encodec``, ``encodec_paper``, ``dac``,
        ``speechtokenizer`` (= ``hifigan``), ``vocos``, ``espnet``."""
        return ADVERSARIAL_PRESETS.get(name)

    def discriminator_loss(self, real_logits: list[Tensor], fake_logits: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """D loss on ``disc(real)`` and ``disc(fake.detach())`` logits; also ``{"d_real", "d_fake"}`` for logging."""
        real_terms, fake_terms = zip(
            *(discriminator_terms(r, f, self.kind) for r, f in zip(real_logits, fake_logits, strict=True))
        )
        d_real, d_fake = _reduce(list(real_terms), self.reduction), _reduce(list(fake_terms), self.reduction)
        return d_real + d_fake, {"d_real": d_real.detach(), "d_fake": d_fake.detach()}

    def generator_losses(
        self, real: tuple[list[Tensor], list[list[Tensor]]], fake: tuple[list[Tensor], list[list[Tensor]]]
    ) -> tuple[Tensor, Tensor]:
        """(adversarial, feature matching) from the discriminator outputs on real and generated audio."""
        (real_logits, real_fmaps), (fake_logits, fake_fmaps) = real, fake
        adversarial = generator_adversarial_loss(fake_logits, self.kind, self.reduction)
        if self.fm_include_logits:
            real_fmaps = [fm + [lg] for fm, lg in zip(real_fmaps, real_logits, strict=True)]
            fake_fmaps = [fm + [lg] for fm, lg in zip(fake_fmaps, fake_logits, strict=True)]
        feature = feature_matching_loss(
            real_fmaps, fake_fmaps, self.fm_relative, self.fm_layer_reduction, self.fm_disc_reduction, self.fm_scale
        )
        return adversarial, feature


# Adversarial policies of the reference toolkits, each paired with the discriminator preset of the same
# name; the typed config of a custom policy is :class:`AdversarialLoss` itself (a recipe may give its fields).
ADVERSARIAL_PRESETS = Registry("adversarial loss preset", class_path=False)
# audiocraft: hinge with linear G term, averaged; plain L1 FM averaged over layers and discs.
ADVERSARIAL_PRESETS.register(
    "encodec", AdversarialLoss(
        kind="hinge_linear", reduction="mean", fm_relative=False,
        fm_layer_reduction="mean", fm_disc_reduction="mean", fm_include_logits=False, fm_scale=1.0))
# EnCodec paper / AcademiCodec: hinge, relative FM averaged.
ADVERSARIAL_PRESETS.register(
    "encodec_paper", AdversarialLoss(
        kind="hinge", reduction="mean", fm_relative=True,
        fm_layer_reduction="mean", fm_disc_reduction="mean", fm_include_logits=False, fm_scale=1.0))
# DAC: LSGAN summed; FM summed over layers except logits and over discs.
ADVERSARIAL_PRESETS.register(
    "dac", AdversarialLoss(
        kind="lsgan", reduction="sum", fm_relative=False,
        fm_layer_reduction="sum", fm_disc_reduction="sum", fm_include_logits=False, fm_scale=1.0))
# HiFi-GAN / HiFi-Codec / SpeechTokenizer: LSGAN summed; FM x2 summed, final outputs included.
ADVERSARIAL_PRESETS.register(
    "speechtokenizer", AdversarialLoss(
        kind="lsgan", reduction="sum", fm_relative=False,
        fm_layer_reduction="sum", fm_disc_reduction="sum", fm_include_logits=True, fm_scale=2.0))
ADVERSARIAL_PRESETS.register("hifigan", ADVERSARIAL_PRESETS.get("speechtokenizer"))
# Vocos / WavTokenizer MPD+MRD: hinge averaged; FM summed over layers, averaged over discs.
ADVERSARIAL_PRESETS.register(
    "vocos", AdversarialLoss(
        kind="hinge", reduction="mean", fm_relative=False,
        fm_layer_reduction="sum", fm_disc_reduction="mean", fm_include_logits=True, fm_scale=1.0))
# ESPnet gan_codec: LSGAN summed; FM summed over layers including final outputs.
ADVERSARIAL_PRESETS.register(
    "espnet", AdversarialLoss(
        kind="lsgan", reduction="sum", fm_relative=False,
        fm_layer_reduction="sum", fm_disc_reduction="sum", fm_include_logits=True, fm_scale=1.0))


def adversarial_loss(spec: str | dict) -> AdversarialLoss:
    """A recipe's ``adversarial`` entry: a preset name, or the fields of an :class:`AdversarialLoss`."""
    if isinstance(spec, str):
        return ADVERSARIAL_PRESETS.get(spec)
    check_fields(AdversarialLoss, AdversarialLoss, spec, "adversarial loss")
    return AdversarialLoss(**spec)
