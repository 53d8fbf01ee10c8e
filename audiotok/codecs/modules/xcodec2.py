"""XCodec2 parts (Llasa's tokenizer, HKUST-Audio/xcodec2): the fused semantic + acoustic encoder and
the transformer "Vocos" decoder. The FSQ between them is :class:`~audiotok.codecs.quantizers.xcodec2_fsq.XCodec2FSQ`.

Encoder (``[B, 1, T] -> [B, 2048, ceil(T / 320)]``, 50 Hz at 16 kHz):

* the waveform is right-padded by ``320 - T % 320`` zeros (always at least one, as the release does);
* **semantic**: Kaldi log-mel filterbanks (80 bins, 25/10 ms, per-utterance mean/variance
  normalised, pairs of frames stacked: 160 x 50 Hz) of the padded wave with 160 more zeros on each
  side, through w2v-BERT 2.0 (``transformers.Wav2Vec2BertModel``, frozen) up to layer 16 -- only those
  16 layers are built -- then a 3-conv residual adapter (``SemanticEncoder`` in the release);
* **acoustic**: BigCodec's encoder -- weight-normed convs, residual units with anti-aliased SnakeBeta
  activations (2x up-sample, snake, 2x down-sample with Kaiser-sinc filters), strides 2·2·4·4·5;
* both ``[B, 1024, F]`` are concatenated and mixed by ``fc_prior`` (Linear 2048 -> 2048).

The semantic features are normalised per utterance, over the whole (padded) wave: the items of a batch
must have equal lengths to be encoded as if alone (``Tokenizer.tokenize`` batches only equal lengths).
The release emits ``floor(T / 320) + 1`` tokens (at an exact multiple of 320 it encodes one frame of
padding); we compute the same frames and keep ``ceil(T / 320)`` of them, the library's contract, so
the codes equal the release's except for that trailing padding token.

Decoder (``[B, 2048, F] -> [B, 1, 320 F]``): ``fc_post_a`` (Linear 2048 -> 1024), conv k7, two
GroupNorm ResNet blocks, 12 pre-RMSNorm transformer blocks (16 heads, SiLU MLP x4, no biases), two
ResNet blocks, LayerNorm, and Vocos's iSTFT head (n_fft 1280, hop 320, "same" padding).

Faithful quirk: the release applies torchtune's RoPE to ``q``/``k`` shaped ``[B, heads, T, d]``
while torchtune expects ``[B, T, heads, d]``; so the rotation angle depends on the *head index*,
not on the time step, and attention has no positional information. We reproduce this (as
transformers' ``Xcodec2Model`` does), since the released weights were trained with it.

Module names follow the release (``CodecEnc.conv_blocks`` -> ``acoustic.conv_blocks``,
``generator.backbone`` -> ``backbone``, ...), so official checkpoints load through a key map.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from .transformer import apply_rope
from .vocos import ISTFTHead, ResnetBlock

HOP_LENGTH = 320  # fixed by the release's padding and feature framing


# ---- anti-aliased SnakeBeta (BigVGAN / BigCodec) ------------------------------------------------------
def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass ``[1, 1, kernel_size]`` normalised to unit DC gain."""
    even = kernel_size % 2 == 0
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    time = torch.arange(-half, half) + 0.5 if even else torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """``[B, C, T] -> [B, C, ratio·T]``: transposed conv with a Kaiser-sinc filter, replicate padding."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio, self.kernel_size = ratio, kernel_size
        self.pad = kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, kernel_size),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = int(x.shape[1])  # (int: a constant when traced for ONNX, as the module's width is)
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.to(x.dtype).expand(channels, -1, -1),
                                            stride=self.ratio, groups=channels)
        return x[..., self.pad_left:-self.pad_right]


class DownSample1d(nn.Module):
    """``[B, C, T] -> [B, C, T / ratio]``: Kaiser-sinc low-pass at stride ``ratio``, replicate padding."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio = ratio
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, kernel_size),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = int(x.shape[1])  # (int: a constant when traced for ONNX)
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.to(x.dtype).expand(channels, -1, -1), stride=self.ratio,
                        groups=channels)


class SnakeBeta(nn.Module):
    """``x + sin²(x·e^α) / (e^β + 1e-9)`` per channel (log-scale ``α``, ``β`` initialised to 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha)[None, :, None]
        beta = torch.exp(self.beta)[None, :, None]
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class AntiAliasSnake(nn.Module):
    """SnakeBeta at twice the rate (up-sample, activate, down-sample); ``[B, C, T] -> [B, C, T]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = UpSample1d(2, 12)
        self.downsample = DownSample1d(2, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:
    """``nn.Conv1d`` with weight norm (parametrization, ``dim=0``), as the release builds them."""
    return parametrizations.weight_norm(nn.Conv1d(*args, **kwargs), name="weight", dim=0)


# ---- acoustic encoder (BigCodec) ---------------------------------------------------------------------
class ResidualUnit(nn.Module):
    """``x + conv1x1(snake(conv7_dilated(snake(x))))``; ``[B, C, T] -> [B, C, T]``."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            AntiAliasSnake(dim),
            wn_conv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            AntiAliasSnake(dim),
            wn_conv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class EncoderBlock(nn.Module):
    """Three dilated residual units at ``dim / 2`` channels, then a strided conv to ``dim``;
    ``[B, dim/2, T] -> [B, dim, T / stride]``."""

    def __init__(self, dim: int, stride: int, dilations: Sequence[int] = (1, 3, 9)):
        super().__init__()
        self.block = nn.Sequential(
            *(ResidualUnit(dim // 2, d) for d in dilations),
            AntiAliasSnake(dim // 2),
            wn_conv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class BigCodecEncoder(nn.Module):
    """``[B, 1, T] -> [B, hidden_dim, T / prod(ratios)]`` (the release's ``CodecEncoder_Transformer``,
    whose transformer layers are commented out: convolutions only)."""

    def __init__(self, ngf: int = 48, ratios: Sequence[int] = (2, 2, 4, 4, 5),
                 dilations: Sequence[int] = (1, 3, 9), hidden_dim: int = 1024):
        super().__init__()
        self.hop_length = math.prod(ratios)
        channels = ngf
        blocks: list[nn.Module] = [wn_conv1d(1, channels, kernel_size=7, padding=3)]
        for stride in ratios:
            channels *= 2
            blocks.append(EncoderBlock(channels, stride, dilations))
        self.conv_blocks = nn.Sequential(*blocks)
        self.conv_final_block = nn.Sequential(AntiAliasSnake(channels),
                                              wn_conv1d(channels, hidden_dim, kernel_size=3, padding=1))
        for module in self.modules():  # the release's init (trunc-normal 0.02, zero bias)
            if isinstance(module, nn.Conv1d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.conv_final_block(self.conv_blocks(wav))


class SemanticAdapter(nn.Module):
    """The release's ``SemanticEncoder``: ``h = relu(conv(x)); conv(h + conv(relu(conv(h))))``, all
    kernel 3; ``[B, C, F] -> [B, C, F]``. (Its in-place ReLU makes the skip carry ``relu(conv(x))``.)"""

    def __init__(self, channels: int):
        super().__init__()
        self.initial_conv = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.residual_blocks = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, 3, padding=1),
                                             nn.ReLU(), nn.Conv1d(channels, channels, 3, padding=1))
        self.final_conv = nn.Conv1d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.initial_conv(x))
        return self.final_conv(h + self.residual_blocks(h))


# ---- w2v-BERT 2.0 input features ---------------------------------------------------------------------
class W2vBertFeatures(nn.Module):
    """Kaldi-style log-mel filterbanks as w2v-BERT 2.0's ``SeamlessM4TFeatureExtractor`` computes them
    (float64, 25 ms Povey window / 10 ms hop / 512-point FFT, pre-emphasis 0.97, DC removal, 80 mel
    bins 20 Hz - 8 kHz, per-utterance mean/variance normalisation, frame pairs stacked);
    ``[B, L] -> [B, (1 + (L - 400) // 160) // 2, 160]``."""

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 80, stride: int = 2):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.stride = stride
        self.frame_length, self.frame_shift, self.n_fft = 400, 160, 512
        mel = mel_filter_bank(num_frequency_bins=self.n_fft // 2 + 1, num_mel_filters=num_mel_bins,
                              min_frequency=20, max_frequency=sample_rate // 2, sampling_rate=sample_rate,
                              norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)
        # float64 constants kept off the module's buffers, so .half() / .to(dtype) cannot round them
        self._mel = torch.from_numpy(mel)
        self._window = torch.hann_window(self.frame_length, periodic=False, dtype=torch.float64, device="cpu").pow(0.85)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.double() * 32768.0  # Kaldi scale: 16-bit integers
        frames = x.unfold(-1, self.frame_length, self.frame_shift)  # [B, N, 400]
        frames = frames - frames.mean(-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], -1)
        frames = frames * self._window.to(frames.device)
        power = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2)
        feats = torch.log((power @ self._mel.to(frames.device)).clamp_min(1.192092955078125e-07))
        feats = (feats - feats.mean(1, keepdim=True)) / torch.sqrt(feats.var(1, keepdim=True) + 1e-7)
        usable = feats.shape[1] - feats.shape[1] % self.stride
        feats = feats[:, :usable].reshape(feats.shape[0], usable // self.stride, -1)
        return feats.float()


# ---- the fused encoder -------------------------------------------------------------------------------
class XCodec2Encoder(nn.Module):
    """w2v-BERT 2.0 (layer ``semantic_layer``) + adapter ‖ BigCodec encoder -> ``fc_prior``;
    ``[B, 1, T] -> [B, dimension, ceil(T / 320)]`` (module doc).

    ``semantic``: ``Wav2Vec2BertConfig`` fields of the semantic model (w2v-BERT 2.0's in the full-size
    config; a tiny random one in the tiny twin); only its first ``semantic_layer`` layers are built.
    The semantic model is frozen and always in eval mode, as in the release's training.
    """

    def __init__(self, semantic: dict[str, Any], semantic_layer: int = 16, ngf: int = 48,
                 ratios: Sequence[int] = (2, 2, 4, 4, 5), dilations: Sequence[int] = (1, 3, 9),
                 acoustic_dim: int = 1024, dimension: int = 2048, sample_rate: int = 16000):
        super().__init__()
        from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

        if math.prod(ratios) != HOP_LENGTH:
            raise ValueError(f"XCodec2's framing needs prod(ratios) == {HOP_LENGTH}, got {list(ratios)}")
        config = Wav2Vec2BertConfig(**{**semantic, "num_hidden_layers": semantic_layer})
        self.features = W2vBertFeatures(sample_rate)
        self.semantic_model = Wav2Vec2BertModel(config).eval().requires_grad_(False)
        semantic_dim = config.hidden_size
        self.semantic_adapter = SemanticAdapter(semantic_dim)
        self.acoustic = BigCodecEncoder(ngf, ratios, dilations, acoustic_dim)
        self.fc_prior = nn.Linear(semantic_dim + acoustic_dim, dimension)
        self.dimension = dimension
        self.hop_length = HOP_LENGTH

    def train(self, mode: bool = True) -> "XCodec2Encoder":
        super().train(mode)
        self.semantic_model.eval()  # frozen teacher-like feature extractor: no dropout, ever
        return self

    def semantic_features(self, padded: torch.Tensor) -> torch.Tensor:
        """w2v-BERT layer output ``[B, C_sem, F]`` of the frame-padded wave ``[B, 1, 320 F]``."""
        half = self.hop_length // 2
        feats = self.features(F.pad(padded[:, 0], (half, half)))
        with torch.no_grad():
            hidden = self.semantic_model(feats.to(padded.dtype)).last_hidden_state
        return hidden.transpose(1, 2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        length = wav.shape[-1]
        padded = F.pad(wav, (0, self.hop_length - length % self.hop_length))
        semantic = self.semantic_adapter(self.semantic_features(padded))
        acoustic = self.acoustic(padded)
        fused = torch.cat([semantic, acoustic], dim=1)
        latent = self.fc_prior(fused.transpose(1, 2)).transpose(1, 2)
        return latent[..., :(length + self.hop_length - 1) // self.hop_length]  # (ceil; traces for ONNX)


# ---- the transformer decoder -------------------------------------------------------------------------
class Attention(nn.Module):
    """Non-causal MHA, fused ``c_attn`` (no bias), RoPE over the head index (module doc)."""

    def __init__(self, dim: int, num_heads: int, rope_base: float = 10_000.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.rope_base = num_heads, rope_base
        self.c_attn = nn.Linear(dim, 3 * dim, bias=False)
        self.c_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        b, t, d = x.shape
        h = self.num_heads
        q, k, v = self.c_attn(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each [B, H, T, d]
        heads = torch.arange(h, device=x.device).expand(b, h)
        # torchtune reads [B, H, T, d] as [B, S=H, heads=T, d]: the angle follows the head index
        q = apply_rope(q.transpose(1, 2), heads, self.rope_base).transpose(1, 2)
        k = apply_rope(k.transpose(1, 2), heads, self.rope_base).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim, bias=False)
        self.silu = nn.SiLU()
        self.fc2 = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.silu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """``x + attn(rms(x))`` then ``x + mlp(rms(x))``; ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.att_norm = nn.RMSNorm(dim, eps=1e-6)
        self.ffn_norm = nn.RMSNorm(dim, eps=1e-6)
        self.att = Attention(dim, num_heads)
        self.mlp = MLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.att_norm(x))
        return x + self.mlp(self.ffn_norm(x))


class TransformerBackbone(nn.Module):
    """conv k7 -> 2 ResNet blocks -> transformer blocks -> 2 ResNet blocks -> LayerNorm;
    ``[B, D, F] -> [B, D, F]`` (the release's ``VocosBackbone`` with transformers)."""

    def __init__(self, dim: int, depth: int, num_heads: int, num_groups: int = 32, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Conv1d(dim, dim, kernel_size=7, padding=3)
        self.prior_net = nn.Sequential(*(ResnetBlock(dim, dim, dropout, num_groups) for _ in range(2)))
        self.transformers = nn.Sequential(*(TransformerBlock(dim, num_heads) for _ in range(depth)))
        self.post_net = nn.Sequential(*(ResnetBlock(dim, dim, dropout, num_groups) for _ in range(2)))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prior_net(self.embed(x))
        x = self.transformers(x.transpose(1, 2)).transpose(1, 2)
        x = self.post_net(x)
        return self.final_layer_norm(x.transpose(1, 2)).transpose(1, 2)


class XCodec2Decoder(nn.Module):
    """``fc_post_a`` -> transformer backbone -> iSTFT head; ``[B, input_dim, F] -> [B, 1, F · hop]``."""

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 1024, depth: int = 12, num_heads: int = 16,
                 hop_length: int = HOP_LENGTH, num_groups: int = 32, dropout: float = 0.1):
        super().__init__()
        self.fc_post_a = nn.Linear(input_dim, hidden_dim)
        self.backbone = TransformerBackbone(hidden_dim, depth, num_heads, num_groups, dropout)
        self.head = ISTFTHead(hidden_dim, n_fft=4 * hop_length, hop_length=hop_length, padding="same")
        for module in self.backbone.modules():  # the release's init of the generator's convs
            if isinstance(module, nn.Conv1d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def hop_length(self) -> int:
        return self.head.hop_length

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.fc_post_a(latent.transpose(1, 2)).transpose(1, 2)
        return self.head(self.backbone(x)).unsqueeze(1)
