"""Discriminators: shapes at tiny width, full-size parameter counts (meta device), gradients, building."""

import pytest
import torch

from audiotok.discriminators import (
    DISCRIMINATOR_PRESETS,
    DISCRIMINATORS,
    AdversarialLoss,
    CombinedDiscriminator,
    MultiScaleDiscriminator,
    build_discriminator,
    build_discriminators,
    remove_dc_and_peak_normalize,
)

TINY = 1 / 16
SUBS = {"mpd": 5, "msd": 3, "msstft": 5, "mrd": 3, "mbstft": 3}
LAYERS = {"mpd": 5, "msd": 7, "msstft": 5, "mrd": 5, "mbstft": 25}  # feature maps per sub-discriminator


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_tiny_shapes_and_gradient(name):
    torch.manual_seed(0)
    disc = build_discriminator(name, width=TINY)
    wav = torch.randn(2, 1, 8000, requires_grad=True)
    logits, fmaps = disc(wav)
    assert len(logits) == len(fmaps) == len(disc.names) == SUBS[name]
    for out, layers in zip(logits, fmaps):
        assert out.shape[:2] == (2, 1) and out.numel() > 2
        assert len(layers) == LAYERS[name]
        assert all(f.shape[0] == 2 and torch.isfinite(f).all() for f in layers)
    sum(out.mean() for out in logits).backward()
    assert wav.grad is not None and wav.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


@pytest.mark.parametrize(
    "name,expected",
    [("mpd", 41.11e6), ("msd", 29.62e6), ("msstft", 0.47e6), ("mrd", 0.60e6), ("mbstft", 1.41e6)],
)
def test_full_size_parameter_counts(name, expected):
    with torch.device("meta"):
        disc = build_discriminator(name)
    count = sum(p.numel() for p in disc.parameters())
    assert abs(count - expected) / expected < 0.01, count


def test_msd_pools_between_scales():
    disc = MultiScaleDiscriminator(width=TINY)
    seen = []
    hooks = [d.convs[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1])) for d in disc.discriminators]
    disc(torch.randn(1, 1, 8000))
    for h in hooks:
        h.remove()
    assert seen == [8000, 4001, 2001]  # AvgPool1d(4, 2, padding 2) applied cumulatively


def test_msd_first_scale_spectral_norm_others_weight_norm():
    disc = MultiScaleDiscriminator(width=TINY)
    first, second = disc.discriminators[0].convs[0], disc.discriminators[1].convs[0]
    assert type(first.parametrizations.weight[0]).__name__ == "_SpectralNorm"
    assert type(second.parametrizations.weight[0]).__name__ == "_WeightNorm"


def test_msstft_first_conv_has_no_norm():
    disc = build_discriminator("msstft", width=TINY)
    sub = disc.discriminators[0]
    assert not hasattr(sub.convs[0], "parametrizations")
    assert all(hasattr(conv, "parametrizations") for conv in sub.convs[1:])


def test_combined_concatenates_in_order_with_names():
    combined = build_discriminators({"mpd": {"periods": (2, 3)}, "mrd": None}, width=TINY)
    assert isinstance(combined, CombinedDiscriminator)
    assert combined.names == ["mpd/mpd_2", "mpd/mpd_3", "mrd/mrd_1024", "mrd/mrd_2048", "mrd/mrd_512"]
    logits, fmaps = combined(torch.randn(2, 1, 4000))
    assert len(logits) == len(fmaps) == 5
    assert build_discriminators(["msd", "msstft"], width=TINY).names[:1] == ["msd/msd_0"]


@pytest.mark.parametrize("preset", sorted(DISCRIMINATOR_PRESETS))
def test_presets_build_and_pair_with_loss_presets(preset):
    combined = build_discriminators(preset, width=TINY)
    assert list(combined.families) == list(DISCRIMINATOR_PRESETS[preset])
    # every discriminator set has a loss policy: the one a family recipe pairs it with, else its namesake
    from audiotok.families import RECIPES

    paired = {recipe["discriminators"]: recipe["adversarial"] for _, recipe in RECIPES.items()
              if isinstance(recipe.get("discriminators"), str) and isinstance(recipe.get("adversarial"), str)}
    AdversarialLoss.preset(paired.get(preset, preset))
    logits, _ = combined(torch.randn(1, 1, 4000))
    assert len(logits) == len(combined.names)


def test_build_errors_are_helpful():
    with pytest.raises(ValueError, match="available"):
        build_discriminator("nope")
    with pytest.raises(TypeError, match="kernel_size.*accepted"):
        build_discriminator("mpd", kernel_size=5)
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        build_discriminator("mrd", width=TINY)(torch.randn(2, 8000))


def test_peak_normalize_makes_discriminator_gain_invariant():
    torch.manual_seed(0)
    wav = torch.randn(2, 1, 4000) + 0.3
    normed = remove_dc_and_peak_normalize(wav)
    assert torch.allclose(normed.mean(-1), torch.zeros(2, 1), atol=1e-6)
    assert torch.allclose(normed.abs().amax(-1), torch.full((2, 1), 0.8))
    disc = build_discriminator("mbstft", width=TINY)  # DAC default: peak_normalize=True
    a, _ = disc(wav)
    b, _ = disc(3.0 * wav)
    assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b))
