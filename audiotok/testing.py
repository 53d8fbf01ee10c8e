"""Test support shared by the test suite, the parity tests and the benchmarks: random-weight codecs whose
codes mean something.

A freshly built codec sends every frame to one code per level (its codebooks are not initialised), which
proves nothing about batching, streaming or parity. These helpers fill codebooks with frames of the
latents each level actually receives, plus noise, so that codes spread over many values per level:

* :func:`spread_codebooks` — an audiotok :class:`~audiotok.codecs.Codec` (any quantizer layout: each
  codebook is filled with the frames it sees, level by level);
* :func:`spread_levels` — any residual stack given its first level's frames and an install function per
  level (reference implementations: moshi, transformers, encodec, SpeechTokenizer);
* :func:`spread_encodec_codebooks` — :func:`spread_levels` for EnCodec-layout codebooks;
* :func:`raise_layer_scale` — LayerScale raised from its tiny initial value, so a random transformer
  changes the latent.

Only torch is imported; nothing here is used by the library's runtime paths.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def spread_centers(frames: torch.Tensor, size: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """``size`` centroids ``[K, D]``: random rows of ``frames [N, D]`` plus ``noise`` times the
    per-dimension std of ``frames`` as Gaussian noise."""
    picks = frames[torch.randint(0, frames.shape[0], (size,), generator=generator)]
    return picks + noise * frames.std(dim=0, keepdim=True) * torch.randn(picks.shape, generator=generator)


@torch.no_grad()
def spread_codebooks(codec, seconds: float = 1.0, noise: float = 0.5, seed: int = 0):
    """Fill every codebook of ``codec`` (in place; returned in eval mode) with the frames it receives
    when encoding ``seconds`` of noise, plus ``noise`` times their spread, marked initialised.

    Level by level (each level sees the residual the earlier, already filled levels leave), so deep
    levels get a non-zero residual; k-means on a short noise batch would memorise it instead. A
    quantizer without codebooks (FSQ) gets its input projection rescaled instead, so that every
    channel of the projected latent has zero mean and unit spread on the noise and its digits take
    several values (a random projection leaves them all at the centre digit).
    """
    generator = torch.Generator().manual_seed(seed)
    codec.eval()
    wav = 0.3 * torch.randn(1, 1, max(codec.hop_length, int(seconds * codec.sample_rate)), generator=generator)
    latent = codec.encode_latent(wav)
    projection = getattr(codec.quantizer, "input_proj", None)
    if not list(codec.quantizer.codebooks()) and isinstance(projection, torch.nn.Conv1d):
        z = projection(latent)  # [B, C, F]
        mean, std = z.mean(dim=(0, 2)), z.std(dim=(0, 2)).clamp_min(1e-8)
        projection.weight.div_(std[:, None, None])
        if projection.bias is not None:
            projection.bias.sub_(mean).div_(std)
    for level, codebook in enumerate(codec.quantizer.codebooks()):  # level 0 first
        seen = []
        hook = codebook.register_forward_pre_hook(lambda m, inputs, seen=seen: seen.append(inputs[0].float()))
        try:
            codec.quantizer(latent, level + 1)  # eval mode: no codebook learns
        finally:
            hook.remove()
        embed = spread_centers(seen[0], codebook.embed.shape[0], noise, generator)
        codebook.embed.copy_(embed)
        codebook.embed_avg.copy_(embed)
        codebook.cluster_size.fill_(1.0)
        codebook.initialized.fill_(1.0)
    return codec


@torch.no_grad()
def raise_layer_scale(model: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Set every ``LayerScale`` (ours and moshi's) to ``scale``: at its initial 1e-4 or so a random
    transformer passes the latent through almost unchanged."""
    for module in model.modules():
        if type(module).__name__ == "LayerScale":
            module.scale.fill_(scale)
    return model


@torch.no_grad()
def spread_levels(frames: torch.Tensor, codebooks: Sequence[tuple[int, Callable[[torch.Tensor], None]]],
                  noise: float = 1.0, seed: int = 0) -> None:
    """Fill residual codebooks with frames of the actual latents plus noise.

    ``frames``: ``[N, D]`` latents the first level sees. ``codebooks``: per level, its size ``K`` and a
    function that installs centroids ``[K, D]``. Level ``i`` draws from the residual left by levels
    ``< i`` (computed here with squared-Euclidean nearest neighbours). With ``noise`` 1 (in units of
    the residual's per-dimension std) the residual shrinks by about 10 % per level, as in a trained
    RVQ; much less noise makes deep levels quantize float rounding, which no two implementations agree on.
    """
    generator = torch.Generator().manual_seed(seed)
    residual = frames.float()
    for size, install in codebooks:
        centers = spread_centers(residual, size, noise, generator)
        install(centers)
        residual = residual - centers[torch.cdist(residual, centers).argmin(dim=-1)]


@torch.no_grad()
def spread_encodec_codebooks(latents: torch.Tensor, codebooks: Sequence[torch.nn.Module], **options) -> None:
    """:func:`spread_levels` for EnCodec-layout codebooks (buffers ``embed``, ``embed_avg``,
    ``cluster_size``, ``inited``: EnCodec, SpeechTokenizer, transformers' ``EncodecModel``), spread
    around ``latents [B, D, F]`` (what the first level quantizes), marked initialised."""
    def installer(codebook):
        def install(centers):
            codebook.embed.copy_(centers)
            codebook.embed_avg.copy_(centers)
            codebook.cluster_size.fill_(1.0)
            codebook.inited.fill_(1.0)
        return install

    frames = latents.transpose(1, 2).reshape(-1, latents.shape[1])
    spread_levels(frames, [(cb.embed.shape[0], installer(cb)) for cb in codebooks], **options)
