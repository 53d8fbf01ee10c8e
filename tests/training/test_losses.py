"""Adversarial / feature-matching losses against hand computations; reconstruction losses; Balancer."""

import math

import pytest
import torch

from audiotok.discriminators import (
    AdversarialLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from audiotok.training.losses import (
    Balancer,
    MelScale,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    multi_resolution_stft_distance,
    waveform_l1_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")


REAL = [torch.tensor([0.5, 2.0]), torch.tensor([[-1.0, 0.0, 1.5]])]
FAKE = [torch.tensor([-0.5, 0.25]), torch.tensor([[0.5, -2.0, 1.0]])]


def test_lsgan_losses_by_hand():
    d0 = ((0.5**2 + 1.0**2) / 2) + ((0.25 + 0.0625) / 2)
    d1 = ((4.0 + 1.0 + 0.25) / 3) + ((0.25 + 4.0 + 1.0) / 3)
    assert float(discriminator_loss(REAL, FAKE, "lsgan", "sum")) == pytest.approx(d0 + d1)
    assert float(discriminator_loss(REAL, FAKE, "lsgan", "mean")) == pytest.approx((d0 + d1) / 2)
    g0, g1 = (2.25 + 0.5625) / 2, (0.25 + 9.0 + 0.0) / 3
    assert float(generator_adversarial_loss(FAKE, "lsgan", "sum")) == pytest.approx(g0 + g1)


def test_hinge_losses_by_hand():
    # D: relu(1 - real) and relu(1 + fake)
    d0 = (0.5 + 0.0) / 2 + (0.5 + 1.25) / 2
    d1 = (2.0 + 1.0 + 0.0) / 3 + (1.5 + 0.0 + 2.0) / 3
    assert float(discriminator_loss(REAL, FAKE, "hinge", "mean")) == pytest.approx((d0 + d1) / 2)
    assert float(discriminator_loss(REAL, FAKE, "hinge_linear", "sum")) == pytest.approx(d0 + d1)
    # G hinge: relu(1 - fake); G hinge_linear: -fake
    g0, g1 = (1.5 + 0.75) / 2, (0.5 + 3.0 + 0.0) / 3
    assert float(generator_adversarial_loss(FAKE, "hinge", "mean")) == pytest.approx((g0 + g1) / 2)
    lin = (-(-0.125) + -(-0.5 / 3)) / 2
    assert float(generator_adversarial_loss(FAKE, "hinge_linear", "mean")) == pytest.approx(lin)
    with pytest.raises(ValueError, match="lsgan"):
        discriminator_loss(REAL, FAKE, "wgan")


def test_feature_matching_by_hand():
    real = [[torch.tensor([1.0, -1.0]), torch.tensor([2.0])], [torch.tensor([4.0, 0.0])]]
    fake = [[torch.tensor([0.0, -1.0]), torch.tensor([1.0])], [torch.tensor([1.0, 1.0])]]
    # per-layer mean |r - f|: disc 0: 0.5, 1.0; disc 1: 2.0
    assert float(feature_matching_loss(real, fake)) == pytest.approx(((0.5 + 1.0) / 2 + 2.0) / 2)
    assert float(feature_matching_loss(real, fake, layer_reduction="sum", disc_reduction="sum", scale=2.0)) == pytest.approx(
        2 * (0.5 + 1.0 + 2.0)
    )
    # relative: divide by mean |real| per layer: 0.5/1, 1/2, 2/2
    assert float(feature_matching_loss(real, fake, relative=True)) == pytest.approx(((0.5 + 0.5) / 2 + 1.0) / 2)


def test_feature_matching_gradient_reaches_fake_only():
    real = [[torch.ones(3, requires_grad=True)]]
    fake = [[torch.zeros(3, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and fake[0][0].grad.abs().sum() > 0


def test_adversarial_loss_presets():
    st = AdversarialLoss.preset("speechtokenizer")
    real_fmaps = [[torch.zeros(2)], [torch.zeros(3)]]
    fake_fmaps = [[torch.ones(2)], [torch.ones(3)]]
    adv, fm = st.generator_losses((REAL, real_fmaps), (FAKE, fake_fmaps))
    assert float(adv) == pytest.approx(float(generator_adversarial_loss(FAKE, "lsgan", "sum")))
    # x2, summed over layers (feature map + appended logits) and discriminators
    logit_terms = (1.0 + 1.75) / 2 + (1.5 + 2.0 + 0.5) / 3
    assert float(fm) == pytest.approx(2 * (1.0 + 1.0 + logit_terms))
    loss, logs = AdversarialLoss.preset("encodec").discriminator_loss(REAL, FAKE)
    assert float(loss) == pytest.approx(float(discriminator_loss(REAL, FAKE, "hinge", "mean")))
    assert set(logs) == {"d_real", "d_fake"}
    with pytest.raises(ValueError, match="available"):
        AdversarialLoss.preset("nope")


@pytest.mark.parametrize("preset", ["speechtokenizer", "wavtokenizer", "encodec", "dac"])
def test_mel_loss_zero_for_identical_and_grows_with_noise(preset):
    torch.manual_seed(0)
    sr = 16000 if preset == "speechtokenizer" else 24000
    loss_fn = getattr(MultiScaleMelLoss, preset)(sr)
    t = torch.arange(8000) / sr
    clean = (0.5 * torch.sin(2 * math.pi * 220 * t) + 0.05 * torch.randn(8000))[None, None].repeat(2, 1, 1)
    zero, _ = loss_fn(clean, clean)
    assert float(zero) == 0.0
    noise = torch.randn_like(clean)
    small, terms = loss_fn(clean + 0.01 * noise, clean)
    large, _ = loss_fn(clean + 0.1 * noise, clean)
    assert 0 < float(small) < float(large)
    assert len(terms) == len(loss_fn.scales)


def test_mel_loss_weights_and_l2_term():
    torch.manual_seed(0)
    x, y = torch.randn(1, 1, 4000), torch.randn(1, 1, 4000)
    single = MultiScaleMelLoss(16000, [MelScale(512, 128, 512, 40, 3.0)])
    total, terms = single(x, y)
    assert float(total) == pytest.approx(3.0 * float(terms["mel_512"]))
    with_l2, _ = MultiScaleMelLoss(16000, [MelScale(512, 128, 512, 40, 3.0)], log_l2=1.0)(x, y)
    assert float(with_l2) > float(total)
    st = MultiScaleMelLoss.speechtokenizer()
    assert [(s.n_fft, s.hop_length, s.n_mels, s.weight) for s in st.scales] == [
        (1024, 240, 80, 45), (512, 120, 80, 1), (256, 60, 80, 1), (128, 30, 80, 1)
    ]
    assert [s.n_fft for s in MultiScaleMelLoss.dac().scales] == [2**i for i in range(5, 12)]


def test_mel_loss_gradient_flows():
    pred = torch.randn(1, 1, 4000, requires_grad=True)
    loss, _ = MultiScaleMelLoss.speechtokenizer()(pred, torch.randn(1, 1, 4000))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_waveform_l1_cuts_to_shorter():
    assert float(waveform_l1_loss(torch.ones(1, 1, 10), torch.zeros(1, 1, 7))) == 1.0


def test_mr_stft_distance():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6000)
    same = multi_resolution_stft_distance(x, x)
    assert float(same["spectral_convergence"]) == 0.0 and float(same["log_magnitude"]) == 0.0
    loss_fn = MultiResolutionSTFTLoss()
    small, _ = loss_fn(x + 0.01 * torch.randn_like(x), x)
    large, terms = loss_fn(x + 0.3 * torch.randn_like(x), x)
    assert 0 < float(small) < float(large)
    assert set(terms) == {"spectral_convergence", "log_magnitude"}


def test_balancer_gives_gradient_shares_by_weight():
    torch.manual_seed(0)
    output = torch.randn(1, 1, 20, requires_grad=True)
    losses = {
        "small": 0.001 * output[..., :10].abs().sum(),  # tiny scale
        "big": 1000.0 * output[..., 10:].square().sum(),  # huge scale
    }
    balancer = Balancer({"small": 1.0, "big": 3.0}, total_norm=1.0, per_batch_item=False)
    effective = balancer.backward(losses, output)
    grad_small = output.grad[..., :10].norm()
    grad_big = output.grad[..., 10:].norm()
    assert float(grad_big / grad_small) == pytest.approx(3.0, rel=1e-4)
    assert float(grad_small + grad_big) == pytest.approx(1.0, rel=1e-4)  # weights / sum(w) * total_norm
    assert torch.isfinite(effective) and set(balancer.metrics) == {"ratio_small", "ratio_big"}


def test_balancer_ema_and_errors():
    balancer = Balancer({"a": 1.0}, ema_decay=0.5)
    for scale in (1.0, 3.0):
        out = torch.ones(2, 1, 4, requires_grad=True)
        balancer.backward({"a": scale * out.sum()}, out)
    # per-item grad norm 2*scale: EMA (bias-corrected) of 2 and 6 with decay 0.5 = (0.5*2 + 6) / 1.5
    state = balancer.state_dict()
    assert state["ema_sum"]["a"] / state["ema_count"]["a"] == pytest.approx((0.5 * 2 + 6) / 1.5)
    with pytest.raises(KeyError, match="no weight"):
        balancer.backward({"b": out.sum()}, out)
