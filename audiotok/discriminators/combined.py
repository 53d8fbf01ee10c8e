"""Several discriminator families behind one module, built from names or a config dict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput
from audiotok.discriminators.mpd import MultiPeriodDiscriminator
from audiotok.discriminators.mrd import MultiBandSTFTDiscriminator, MultiResolutionDiscriminator
from audiotok.discriminators.msd import MultiScaleDiscriminator
from audiotok.discriminators.msstft import MultiScaleSTFTDiscriminator
from audiotok.registry import Registry

DISCRIMINATORS = Registry("discriminator")
DISCRIMINATORS.register("mpd", MultiPeriodDiscriminator)
DISCRIMINATORS.register("msd", MultiScaleDiscriminator)
DISCRIMINATORS.register("msstft", MultiScaleSTFTDiscriminator)
DISCRIMINATORS.register("mrd", MultiResolutionDiscriminator)
DISCRIMINATORS.register("mbstft", MultiBandSTFTDiscriminator)

# Discriminator sets of the reference recipes (``{discriminator: fields}``); a recipe names one, and
# pairs it with ``AdversarialLoss.preset(same name)``. The one home of these facts.
DISCRIMINATOR_PRESETS = Registry("discriminator preset", class_path=False)
# audiocraft's compression solver (config/solver/compression/default.yaml: msstftd with LeakyReLU 0.3),
# which Mimi's training follows (Moshi paper, section 3.3: "the exact parameters in the AudioCraft repo").
DISCRIMINATOR_PRESETS.register("encodec", {"msstft": {"negative_slope": 0.3}})
# HiFi-Codec / SpeechTokenizer: MPD + MSD + MS-STFT with the class default LeakyReLU 0.2.
DISCRIMINATOR_PRESETS.register("speechtokenizer", {"mpd": {}, "msd": {}, "msstft": {}})
DISCRIMINATOR_PRESETS.register("dac", {"mpd": {"peak_normalize": True}, "mbstft": {"peak_normalize": True}})
# Vocos / WavTokenizer: MPD + MRD (WavTokenizer also trains against the "dac" set, with its own loss).
DISCRIMINATOR_PRESETS.register("vocos", {"mpd": {}, "mrd": {}})
# XCodec2 (X-Codec-2.0 / BigCodec trainer): HiFi-GAN MPD + a spectral discriminator at the README's FFT sizes
# 78 ... 2296 "tailored for the transformer decoder"; hops n/4 (the release's are not published); our MRD
# stands in for its ParallelWaveGAN-style SpecDiscriminator (2-D convs on STFT magnitudes too).
DISCRIMINATOR_PRESETS.register("xcodec2", {"mpd": {}, "mrd": {"resolutions": [
    [n, n // 4, n] for n in (78, 126, 206, 334, 542, 876, 1418, 2296)]}})


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
    """One registered discriminator (``mpd``, ``msd``, ``msstft``, ``mrd``, ``mbstft``) from its fields
    (checked: an unknown one raises naming the accepted fields)."""
    return DISCRIMINATORS.build({"type": name, **kwargs})


def build_discriminators(
    spec: str | Sequence[str] | Mapping[str, Mapping | None], width: float | None = None
) -> CombinedDiscriminator:
    """Build a :class:`CombinedDiscriminator` from ``["mpd", "msd"]``, ``{"mpd": {...}, "mrd": None}``
    or a preset name from :data:`DISCRIMINATOR_PRESETS` (``"dac"``, ``"speechtokenizer"``, ...).

    ``width``, if given, is the default channel multiplier of every family (tiny models: e.g. 1/16);
    a family's own ``width`` kwarg wins.
    """
    if isinstance(spec, str):
        spec = DISCRIMINATOR_PRESETS.get(spec) if spec in DISCRIMINATOR_PRESETS else [spec]
    items = spec.items() if isinstance(spec, Mapping) else ((name, None) for name in spec)
    families = {}
    for name, kwargs in items:
        kwargs = dict(kwargs or {})
        if width is not None:
            kwargs.setdefault("width", width)
        families[name] = build_discriminator(name, **kwargs)
    return CombinedDiscriminator(families)
