"""Vocos-style decoder (WavTokenizer): shapes, exact sizes, state-dict names, iSTFT inversion, gradients."""

import pytest
import torch
import torch.nn.functional as F

from audiotok.codecs.modules.vocos import (
    AttnBlock,
    ISTFTHead,
    InverseSTFT,
    ResnetBlock,
    VocosBackbone,
    VocosDecoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(input_channels=16, dim=32, intermediate_dim=64, num_layers=2, n_fft=64, hop_length=16, num_groups=8)


def tiny_decoder(**overrides) -> VocosDecoder:
    torch.manual_seed(0)
    return VocosDecoder(**{**TINY, "adanorm_num_embeddings": 4, **overrides})


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("frames", [1, 2, 5, 17])
def test_same_padding_gives_frames_times_hop_samples(frames):
    decoder = tiny_decoder().eval()
    with torch.no_grad():
        wav = decoder(torch.randn(3, 16, frames))
    assert wav.shape == (3, 1, frames * 16)
    assert torch.isfinite(wav).all()


def test_center_padding_gives_frames_minus_one_times_hop_samples():
    decoder = tiny_decoder(padding="center").eval()
    with torch.no_grad():
        wav = decoder(torch.randn(2, 16, 9))
    assert wav.shape == (2, 1, 8 * 16)


def test_full_size_parameter_counts_match_wavtokenizer():
    # Parameter counts do not depend on values, so build on the meta device (no memory, no init cost).
    with torch.device("meta"):
        backbone = VocosBackbone(512, 768, 2304, 12, layer_scale_init_value=1 / 12, adanorm_num_embeddings=4)
        head_40hz = ISTFTHead(768, n_fft=2400, hop_length=600)
        head_75hz = ISTFTHead(768, n_fft=1280, hop_length=320)
    assert num_params(backbone) == 61_961_472
    assert num_params(backbone.convnext) == 42_660_864
    assert all(num_params(block) == 3_555_072 for block in backbone.convnext)
    assert num_params(backbone.pos_net) == 16_539_648
    assert num_params(backbone.pos_net[2]) == 2_363_904
    assert num_params(backbone.embed) == 2_753_280
    assert num_params(head_40hz) == 1_847_138
    assert num_params(head_75hz) == 985_858


def test_state_dict_keys_follow_wavtokenizer():
    resnet = [f"{n}.{p}" for n in ("norm1", "conv1", "norm2", "conv2") for p in ("weight", "bias")]
    attention = [f"{n}.{p}" for n in ("norm", "q", "k", "v", "proj_out") for p in ("weight", "bias")]
    convnext = ["gamma", "dwconv.weight", "dwconv.bias", "norm.scale.weight", "norm.shift.weight",
                "pwconv1.weight", "pwconv1.bias", "pwconv2.weight", "pwconv2.bias"]
    expected = (
        ["backbone.embed.weight", "backbone.embed.bias", "backbone.norm.scale.weight", "backbone.norm.shift.weight"]
        + [f"backbone.convnext.{i}.{k}" for i in range(2) for k in convnext]
        + ["backbone.final_layer_norm.weight", "backbone.final_layer_norm.bias"]
        + [f"backbone.pos_net.{i}.{k}" for i in (0, 1) for k in resnet]
        + [f"backbone.pos_net.2.{k}" for k in attention]
        + [f"backbone.pos_net.{i}.{k}" for i in (3, 4) for k in resnet]
        + ["backbone.pos_net.5.weight", "backbone.pos_net.5.bias", "head.out.weight", "head.out.bias",
           "head.istft.window"]
    )
    assert list(tiny_decoder().state_dict()) == expected


def test_layer_norm_variant_without_adanorm_or_pos_net():
    decoder = tiny_decoder(adanorm_num_embeddings=None, use_pos_net=False).eval()
    keys = decoder.state_dict().keys()
    assert "backbone.norm.weight" in keys and not any("pos_net" in k for k in keys)
    with torch.no_grad():
        assert decoder(torch.randn(1, 16, 4)).shape == (1, 1, 64)


def reflect_padded_stft(signal: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """The analysis that "same" padding inverts: reflect-pad (n_fft - hop)/2 per side, no centering."""
    pad = (n_fft - hop) // 2
    padded = F.pad(signal[:, None], (pad, pad), mode="reflect")[:, 0]
    return torch.stft(padded, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True)


def test_head_inverts_a_known_stft_through_log_magnitude_and_phase():
    n_fft, hop, frames = 64, 16, 40
    torch.manual_seed(0)
    signal = 0.5 * torch.randn(2, frames * hop).clamp(-2, 2)
    spec = reflect_padded_stft(signal, n_fft, hop)  # [B, n_fft/2+1, F]
    assert spec.shape[-1] == frames and spec.abs().max() < ISTFTHead.MAX_MAGNITUDE
    features = torch.cat([spec.abs().clamp_min(1e-12).log(), spec.angle()], dim=1)  # [B, n_fft+2, F]
    head = ISTFTHead(n_fft + 2, n_fft, hop)
    with torch.no_grad():  # identity projection: the head's input is its own log-magnitude/phase
        head.out.weight.copy_(torch.eye(n_fft + 2))
        head.out.bias.zero_()
        recovered = head(features)
    assert recovered.shape == signal.shape
    interior = slice(n_fft, -n_fft)
    assert (recovered[:, interior] - signal[:, interior]).abs().max() < 1e-4
    assert (recovered - signal).abs().max() < 1e-4  # edges too: the envelope stays well above zero


@pytest.mark.parametrize("n_fft,hop", [(2400, 600), (1280, 320)])
def test_inverse_stft_recovers_signal_at_wavtokenizer_sizes(n_fft, hop):
    torch.manual_seed(1)
    signal = torch.randn(1, 20 * hop)
    recovered = InverseSTFT(n_fft, hop)(reflect_padded_stft(signal, n_fft, hop))
    assert recovered.shape == signal.shape
    assert (recovered[:, n_fft:-n_fft] - signal[:, n_fft:-n_fft]).abs().max() < 1e-4
    assert (recovered - signal).abs().max() < 1e-4


def test_center_mode_inverts_centered_stft():
    n_fft, hop = 64, 16
    signal = torch.randn(1, 20 * hop)
    spec = torch.stft(signal, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)
    recovered = InverseSTFT(n_fft, hop, padding="center")(spec)
    assert (recovered - signal).abs().max() < 1e-4


def test_attention_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    block = AttnBlock(16, num_groups=4).eval()
    x = torch.randn(2, 16, 11)
    h = block.norm(x)
    q, k, v = block.q(h), block.k(h), block.v(h)
    weights = torch.softmax(q.transpose(1, 2) @ k / 16**0.5, dim=-1)  # [B, T_q, T_k]
    expected = x + block.proj_out(v @ weights.transpose(1, 2))
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_resnet_block_changes_channels_through_nin_shortcut():
    block = ResnetBlock(16, 32, num_groups=8).eval()
    assert block.nin_shortcut is not None and block(torch.randn(1, 16, 5)).shape == (1, 32, 5)
    assert ResnetBlock(16, num_groups=8).nin_shortcut is None


def test_bandwidth_id_selects_the_adaptive_norm_condition():
    decoder = tiny_decoder().eval()
    with torch.no_grad():
        decoder.backbone.norm.shift.weight[2].fill_(1.0)
        latent = torch.randn(2, 16, 6)
        default, zero, two = decoder(latent), decoder(latent, 0), decoder(latent, torch.tensor([2]))
        per_item = decoder(latent, torch.tensor([0, 2]))
    assert torch.equal(default, zero) and not torch.allclose(zero, two)
    assert torch.allclose(per_item[0], zero[0], atol=1e-6) and torch.allclose(per_item[1], two[1], atol=1e-6)
    with pytest.raises(ValueError, match="bandwidth_id"):
        decoder(latent, 4)


def test_bad_configuration_and_inputs_raise_helpful_errors():
    with pytest.raises(ValueError, match="num_groups"):
        VocosBackbone(16, 30, 64, 2, num_groups=8)
    with pytest.raises(ValueError, match="even"):
        InverseSTFT(64, 15)
    with pytest.raises(ValueError, match="padding"):
        InverseSTFT(64, 16, padding="valid")
    with pytest.raises(ValueError, match=r"\[B, 16, F\]"):
        tiny_decoder()(torch.randn(1, 8, 4))


def test_gradients_reach_every_parameter():
    decoder = tiny_decoder().train()
    decoder(torch.randn(2, 16, 8), torch.tensor([1])).square().mean().backward()
    for name, param in decoder.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_tiny_decoder_fits_a_target_waveform():
    decoder = tiny_decoder().train()
    torch.manual_seed(0)
    latent, target = torch.randn(2, 16, 8), 0.1 * torch.randn(2, 1, 8 * 16)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = (decoder(latent) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
