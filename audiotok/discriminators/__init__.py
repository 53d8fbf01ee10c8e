"""Discriminators (MPD, MSD, MS-STFT, MRD, DAC multi-band STFT) and adversarial / feature-matching losses.

Every discriminator maps ``wav[B, 1, T]`` to ``(logits, feature_maps)``, one entry per sub-discriminator.
"""

from audiotok.discriminators.base import Discriminator, remove_dc_and_peak_normalize
from audiotok.discriminators.combined import (
    DISCRIMINATOR_PRESETS,
    DISCRIMINATORS,
    CombinedDiscriminator,
    build_discriminator,
    build_discriminators,
)
from audiotok.discriminators.losses import (
    ADVERSARIAL_PRESETS,
    AdversarialLoss,
    adversarial_loss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from audiotok.discriminators.mpd import MultiPeriodDiscriminator
from audiotok.discriminators.mrd import MultiBandSTFTDiscriminator, MultiResolutionDiscriminator
from audiotok.discriminators.msd import MultiScaleDiscriminator
from audiotok.discriminators.msstft import MultiScaleSTFTDiscriminator

__all__ = [
    "ADVERSARIAL_PRESETS",
    "DISCRIMINATOR_PRESETS",
    "DISCRIMINATORS",
    "AdversarialLoss",
    "CombinedDiscriminator",
    "Discriminator",
    "MultiBandSTFTDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiResolutionDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "adversarial_loss",
    "build_discriminator",
    "build_discriminators",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "remove_dc_and_peak_normalize",
]
