"""Vocos-style decoder as used by WavTokenizer: ConvNeXt backbone (+ attention "pos_net") and iSTFT head.

The decoder never upsamples in time: the backbone keeps the frame rate and the head predicts one STFT
frame per latent frame, which an inverse STFT turns into `hop_length` samples per frame.

Module and attribute names follow WavTokenizer's state dict (`backbone.embed`, `backbone.pos_net.0..5`,
`backbone.norm.{scale,shift}`, `backbone.convnext.N.{dwconv,norm,pwconv1,pwconv2,gamma}`,
`backbone.final_layer_norm`, `head.out`, `head.istft.window`), so an official checkpoint's `backbone.*`
and `head.*` entries load into `VocosDecoder` as they are.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

BandwidthId = Optional[Union[int, torch.Tensor]]

LAYER_NORM_EPS = 1e-6
GROUP_NORM_EPS = 1e-6


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine weights whose scale and shift are looked up per condition id.

    Vocos uses it for EnCodec-bandwidth conditioning; WavTokenizer keeps 4 (identical) conditions.
    """

    def __init__(self, num_embeddings: int, dim: int, eps: float = LAYER_NORM_EPS):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        """x `[B, T, D]`, cond_id scalar, `[1]` or `[B]` int64 -> `[B, T, D]`."""
        scale, shift = self.scale(cond_id), self.shift(cond_id)
        if scale.dim() == 2:  # one condition per batch item: broadcast over time
            scale, shift = scale[:, None], shift[:, None]
        return F.layer_norm(x, (self.dim,), eps=self.eps) * scale + shift


class ConvNeXtBlock(nn.Module):
    """1-D ConvNeXt block: depthwise conv k7, (Ada)LayerNorm, pointwise MLP with GELU, layer scale, residual."""

    def __init__(
        self,
        dim: int,
        intermediate_dim: int,
        layer_scale_init: Optional[float],
        adanorm_num_embeddings: Optional[int] = None,
    ):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        if adanorm_num_embeddings:
            self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        else:
            self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        if layer_scale_init is not None and layer_scale_init > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        else:
            self.gamma = None

    def forward(self, x: torch.Tensor, cond_id: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`[B, D, T] -> [B, D, T]`; `cond_id` is required when the norm is adaptive."""
        h = self.dwconv(x).transpose(1, 2)
        h = self.norm(h, cond_id) if isinstance(self.norm, AdaLayerNorm) else self.norm(h)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.transpose(1, 2)


def group_norm(channels: int, num_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm as in the VQGAN blocks WavTokenizer copied (eps 1e-6, affine)."""
    if channels % num_groups:
        raise ValueError(
            f"GroupNorm needs num_groups ({num_groups}) to divide the channel count ({channels}); "
            "pass a num_groups that divides dim."
        )
    return nn.GroupNorm(num_groups, channels, eps=GROUP_NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, Conv k3) twice, dropout before the second conv.

    A 1x1 `nin_shortcut` maps the residual when the channel count changes.
    """

    def __init__(
        self, in_channels: int, out_channels: Optional[int] = None, dropout: float = 0.1, num_groups: int = 32
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size=3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv1d(in_channels, out_channels, kernel_size=1)
        else:
            self.nin_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C_in, T] -> [B, C_out, T]`."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head, non-causal self-attention over the whole sequence, with 1x1-conv projections.

    No positional encoding: the surrounding convolutions provide position information.
    """

    def __init__(self, channels: int, num_groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, num_groups)
        self.q = nn.Conv1d(channels, channels, kernel_size=1)
        self.k = nn.Conv1d(channels, channels, kernel_size=1)
        self.v = nn.Conv1d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, T] -> [B, C, T]`."""
        h = self.norm(x)
        # [B, C, T] -> [B, 1 head, T, C]; default scale is C ** -0.5 as in the reference.
        q, k, v = (proj(h).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2)
        return x + self.proj_out(h)


def build_pos_net(dim: int, dropout: float = 0.1, num_groups: int = 32) -> nn.Sequential:
    """WavTokenizer's `pos_net`: 2 ResnetBlocks, attention, 2 ResnetBlocks, GroupNorm (indices 0..5)."""
    return nn.Sequential(
        ResnetBlock(dim, dim, dropout, num_groups),
        ResnetBlock(dim, dim, dropout, num_groups),
        AttnBlock(dim, num_groups),
        ResnetBlock(dim, dim, dropout, num_groups),
        ResnetBlock(dim, dim, dropout, num_groups),
        group_norm(dim, num_groups),
    )


class VocosBackbone(nn.Module):
    """embed conv k7 -> pos_net -> (Ada)LayerNorm -> ConvNeXt x num_layers -> LayerNorm; `[B, C, F] -> [B, dim, F]`.

    `layer_scale_init_value` defaults to `1 / num_layers`. With `adanorm_num_embeddings` set, the
    norms are conditioned on `bandwidth_id` (default 0, what WavTokenizer uses at inference).
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: Optional[float] = None,
        adanorm_num_embeddings: Optional[int] = None,
        use_pos_net: bool = True,
        num_groups: int = 32,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.input_channels = input_channels
        self.dim = dim
        self.adanorm_num_embeddings = adanorm_num_embeddings
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        if adanorm_num_embeddings:
            self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        else:
            self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        layer_scale = layer_scale_init_value or 1 / num_layers
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, layer_scale, adanorm_num_embeddings) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        # Trunc-normal init as in Vocos; WavTokenizer builds pos_net after this, so it keeps torch defaults.
        self.apply(_init_vocos_weights)
        self.pos_net = build_pos_net(dim, dropout, num_groups) if use_pos_net else None

    def _condition(self, bandwidth_id: BandwidthId, device: torch.device) -> Optional[torch.Tensor]:
        if not self.adanorm_num_embeddings:
            return None
        if bandwidth_id is None:
            bandwidth_id = 0
        cond = torch.as_tensor(bandwidth_id, dtype=torch.long, device=device)
        if cond.numel() and (cond.min() < 0 or cond.max() >= self.adanorm_num_embeddings):
            raise ValueError(
                f"bandwidth_id must lie in [0, {self.adanorm_num_embeddings}), got {cond.tolist()}; "
                "pass an index into the backbone's adanorm embeddings."
            )
        return cond

    def forward(self, x: torch.Tensor, bandwidth_id: BandwidthId = None) -> torch.Tensor:
        """x `[B, input_channels, F]`, bandwidth_id int / `[1]` / `[B]` -> `[B, dim, F]`."""
        if x.dim() != 3 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"VocosBackbone expects latents [B, {self.input_channels}, F], got {list(x.shape)}."
            )
        cond = self._condition(bandwidth_id, x.device)
        x = self.embed(x)
        if self.pos_net is not None:
            x = self.pos_net(x)
        h = x.transpose(1, 2)
        h = self.norm(h, cond) if cond is not None else self.norm(h)
        x = h.transpose(1, 2)
        for block in self.convnext:
            x = block(x, cond)
        return self.final_layer_norm(x.transpose(1, 2)).transpose(1, 2)


def _init_vocos_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


class InverseSTFT(nn.Module):
    """Inverse STFT with a Hann window of length n_fft; `[B, n_fft//2+1, F]` complex -> `[B, T]`.

    "same": overlap-add of windowed inverse FFTs (via `fold`), divided by the summed squared window,
    then `(n_fft - hop) / 2` samples trimmed on each side, so T = F * hop. It inverts an STFT of the
    signal reflect-padded by that amount on both sides (`center=False`), like Vocos's feature
    extractors. torch.istft refuses this padding because the window envelope is zero at the edges.
    "center": `torch.istft(center=True)`, T = (F - 1) * hop.
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"padding must be 'same' or 'center', got {padding!r}.")
        if padding == "same" and (n_fft - hop_length) % 2:
            raise ValueError(
                f"'same' padding trims (n_fft - hop_length) / 2 samples per side, which needs an even "
                f"difference; got n_fft={n_fft}, hop_length={hop_length}."
            )
        if not 0 < hop_length <= n_fft:
            raise ValueError(f"hop_length must be in (0, n_fft={n_fft}], got {hop_length}.")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.padding = padding
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 3 or spec.shape[1] != self.n_fft // 2 + 1 or not spec.is_complex():
            raise ValueError(
                f"InverseSTFT expects a complex spectrum [B, {self.n_fft // 2 + 1}, F], "
                f"got {spec.dtype} {list(spec.shape)}."
            )
        window = self.window.to(spec.real.dtype)  # a half-precision model keeps its window in half
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, window, center=True)
        num_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec, self.n_fft, dim=1) * window[None, :, None]  # [B, n_fft, F]
        signal = self._overlap_add(frames)  # [B, L]
        envelope = self._overlap_add(window.square()[None, :, None].expand(1, -1, num_frames))[0]
        pad = (self.n_fft - self.hop_length) // 2
        length = num_frames * self.hop_length
        signal, envelope = signal[:, pad : pad + length], envelope[pad : pad + length]
        return signal / envelope

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, n_fft, F]` frames -> `[B, (F - 1) * hop + n_fft]` summed at hop spacing."""
        size = (frames.shape[-1] - 1) * self.hop_length + self.n_fft
        out = F.fold(frames, output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        return out[:, 0, 0]


class ISTFTHead(nn.Module):
    """Linear to log-magnitude and phase of n_fft/2+1 bins each, then inverse STFT; `[B, dim, F] -> [B, T]`.

    Magnitude is exp(log-magnitude) clipped at 1e2 (guards against blow-ups early in training).
    """

    MAX_MAGNITUDE = 1e2

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = InverseSTFT(n_fft, hop_length, padding)

    @property
    def hop_length(self) -> int:
        return self.istft.hop_length

    def spectrum(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Complex spectrum mag * (cos p + i sin p) from `[B, N, F]` log-magnitude and phase."""
        magnitude = torch.exp(log_magnitude).clamp(max=self.MAX_MAGNITUDE)
        return torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_magnitude, phase = self.out(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=1)
        # The FFT runs in float32 (CPU FFTs take no half types; exp/cos/sin of a half would lose the
        # spectrum's detail anyway), and the audio goes back in the model's dtype.
        spectrum = self.spectrum(log_magnitude.float(), phase.float())
        return self.istft(spectrum).to(x.dtype)


class VocosDecoder(nn.Module):
    """Backbone + iSTFT head: latents `[B, C, F]` -> waveform `[B, 1, F * hop]` ("same" padding).

    Its state dict has exactly WavTokenizer's `backbone.*` and `head.*` keys.
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        n_fft: int,
        hop_length: int,
        layer_scale_init_value: Optional[float] = None,
        adanorm_num_embeddings: Optional[int] = None,
        padding: str = "same",
        use_pos_net: bool = True,
        num_groups: int = 32,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.backbone = VocosBackbone(
            input_channels,
            dim,
            intermediate_dim,
            num_layers,
            layer_scale_init_value=layer_scale_init_value,
            adanorm_num_embeddings=adanorm_num_embeddings,
            use_pos_net=use_pos_net,
            num_groups=num_groups,
            dropout=dropout,
        )
        self.head = ISTFTHead(dim, n_fft, hop_length, padding)

    @property
    def hop_length(self) -> int:
        return self.head.hop_length

    def forward(self, latent: torch.Tensor, bandwidth_id: BandwidthId = None) -> torch.Tensor:
        return self.head(self.backbone(latent, bandwidth_id)).unsqueeze(1)
