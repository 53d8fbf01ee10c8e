"""Data-dependent initialisation of the encoder (weight-norm style, Salimans & Kingma 2016).

A freshly initialised SEANet encoder is nearly *linear* on speech: at a speech level (RMS ~0.07) every
pre-activation is ~0.1-0.2, where ELU(x) ~ x. Its latent ``[B, D, F]`` is then a linear filter of the
waveform sampled once per frame: oscillating with the signal's phase, carrying almost no loudness, and
nearly constant over time next to its bias (at the tiny sizes the per-channel offset is ~40x the variation
across frames). k-means puts every code on nearly the same point, the decoder cannot read the envelope from
its input, learns the average spectrum, and the run sits collapsed for thousands of steps until the encoder
has learned to rectify (docs/training-postmortem.md).

:func:`standardize_encoder` runs the encoder once on a training batch and rescales every convolution, in
forward order, so that its output has zero mean and unit variance per channel over the batch's frames.
The ELUs then work in their non-linear range from step 0 (rectifying: the features follow the energy),
and the latent's variation over time is the largest part of it. No architecture or objective changes,
only where training starts.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from audiotok.codecs.modules.conv import torch_kernels
from audiotok.training.health import latent_spread


def _rescale_output_channels(conv: nn.Conv1d, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make ``conv``'s output ``(y - mean) / std`` per output channel by changing its weight and bias."""
    scale = 1.0 / std
    if parametrize.is_parametrized(conv, "weight"):
        g = conv.parametrizations.weight.original0  # weight norm's magnitude, [out, 1, 1]
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    else:
        conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
    if conv.bias is not None:
        conv.bias.copy_((conv.bias - mean) * scale)
    # (a conv without bias keeps its mean; only Mimi's bias-free resampling convs are like that)


@torch.no_grad()
def standardize_encoder(codec, wav: torch.Tensor, eps: float = 1e-5) -> dict[str, float]:
    """Rescale every conv of ``codec.encoder`` (and the quantizer's input projections), in forward order,
    to zero-mean unit-variance outputs on ``wav``.

    ``wav [B, 1, T]``: a training batch. Returns the latent spread before and after.
    """
    wav = codec._check_audio(wav)
    before = float(latent_spread(codec.encoder(wav)))
    done: set[int] = set()

    def hook(module: nn.Conv1d, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if id(module) in done:  # a module called twice in one forward is normalised once
            return None
        done.add(id(module))
        mean = output.mean(dim=(0, 2))
        std = output.std(dim=(0, 2)).clamp_min(eps)
        if module.bias is None:
            mean = torch.zeros_like(mean)
        _rescale_output_channels(module, mean, std)
        return (output - mean[None, :, None]) / std[None, :, None]  # what the rescaled conv now outputs

    handles = [m.register_forward_hook(hook) for m in codec.encoder.modules() if isinstance(m, nn.Conv1d)]
    # The quantizer's input projections too (FSQ's, Mimi's 64 -> 16): they decide how many codes or
    # levels the latent reaches (an FSQ projection at torch's default init rounded onto 2 of 256 codes).
    handles += [m.register_forward_hook(hook) for name, m in codec.quantizer.named_modules()
                if name.split(".")[-1] == "input_proj" and isinstance(m, nn.Conv1d)]
    try:
        # The plain kernels: the inference fast paths compute a conv without calling its module, so
        # the hooks above would never run (and the init would silently do nothing).
        with torch_kernels():
            codec.quantizer.encode(codec.encode_latent(wav))  # never changes codebook state
    finally:
        for handle in handles:
            handle.remove()
    return {"spread_before": before, "spread_after": float(latent_spread(codec.encoder(wav)))}
