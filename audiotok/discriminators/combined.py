"""Several discriminator families behind one module, built from names or a config dict."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput
from audiotok.discriminators.mpd import MultiPeriodDiscriminator
from audiotok.discriminators.mrd import MultiBandSTFTDiscriminator, MultiResolutionDiscriminator
from audiotok.discriminators.msd import MultiScaleDiscriminator
from audiotok.discriminators.msstft import MultiScaleSTFTDiscriminator

DISCRIMINATORS: dict[str, type[Discriminator]] = {
    "mpd": MultiPeriodDiscriminator,
    "msd": MultiScaleDiscriminator,
    "msstft": MultiScaleSTFTDiscriminator,
    "mrd": MultiResolutionDiscriminator,
    "mbstft": MultiBandSTFTDiscriminator,
}

# Discriminator sets of the reference recipes; pair each with ``AdversarialLoss.preset(same name)``.
# WavTokenizer trains against both "vocos" (hinge) and "dac" (LSGAN) sets, each with its own loss.
DISCRIMINATOR_PRESETS: dict[str, dict[str, dict]] = {
    "encodec": {"msstft": {"negative_slope": 0.3}},  # audiocraft config; Mimi's baseline too
    "speechtokenizer": {"mpd": {}, "msd": {}, "msstft": {}},  # HiFi-Codec set
    "dac": {"mpd": {"peak_normalize": True}, "mbstft": {"peak_normalize": True}},
    "vocos": {"mpd": {}, "mrd": {}},
}


class CombinedDiscriminator(Discriminator):
    """Concatenates the sub-discriminator outputs of named families, in insertion order.

    ``names`` gives ``"family/sub"`` for each entry of the concatenated logits and feature maps.
    """

    def __init__(self, discriminators: Mapping[str, Discriminator]):
        super().__init__(peak_normalize=False)
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator")
        self.families = nn.ModuleDict(dict(discriminators))

    @property
    def names(self) -> list[str]:
        return [f"{family}/{sub}" for family, disc in self.families.items() for sub in disc.names]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        logits, feature_maps = [], []
        for disc in self.families.values():
            family_logits, family_fmaps = disc(wav)
            logits += family_logits
            feature_maps += family_fmaps
        return logits, feature_maps


def build_discriminator(name: str, **kwargs) -> Discriminator:
    """One registered discriminator (``mpd``, ``msd``, ``msstft``, ``mrd``, ``mbstft``) from kwargs."""
    if name not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {name!r}; available: {sorted(DISCRIMINATORS)}")
    cls = DISCRIMINATORS[name]
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(f"discriminator {name!r} got unknown option(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(**kwargs)


def build_discriminators(
    spec: str | Sequence[str] | Mapping[str, Mapping | None], width: float | None = None
) -> CombinedDiscriminator:
    """Build a :class:`CombinedDiscriminator` from ``["mpd", "msd"]``, ``{"mpd": {...}, "mrd": None}``
    or a preset name from :data:`DISCRIMINATOR_PRESETS` (``"dac"``, ``"speechtokenizer"``, ...).

    ``width``, if given, is the default channel multiplier of every family (tiny models: e.g. 1/16);
    a family's own ``width`` kwarg wins.
    """
    if isinstance(spec, str):
        spec = DISCRIMINATOR_PRESETS.get(spec, [spec])
    items = spec.items() if isinstance(spec, Mapping) else ((name, None) for name in spec)
    families = {}
    for name, kwargs in items:
        kwargs = dict(kwargs or {})
        if width is not None:
            kwargs.setdefault("width", width)
        families[name] = build_discriminator(name, **kwargs)
    return CombinedDiscriminator(families)
