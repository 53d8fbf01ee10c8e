"""Parts of a units tokenizer: a self-supervised model's hidden layer as an encoder, and the decoder of a
units tokenizer without a vocoder.

* :class:`SSLLayerEncoder` (``ssl_layer``): HuBERT / WavLM / wav2vec2 (transformers, built from its config;
  the weights come with the codec) read at one layer: ``[B, 1, T] -> [B, D, F]`` with transformers' (and
  fairseq's) frame count ``F = floor((T - 400) / 320) + 1`` at 16 kHz: no padding.
* :class:`NoVocoder` (``no_vocoder``): decoding raises ``RuntimeError`` saying that no unit vocoder is
  configured; ``unavailable_reason`` is what the benchmarks report instead of resynthesis scores.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SUPPORTED_MODEL_TYPES = ("hubert", "wavlm", "wav2vec2")
NO_VOCODER = ("this units tokenizer has no unit vocoder, so units cannot be turned back into audio: "
              "units keep what is said, not the voice. Configure a vocoder when building it "
              "(audiotok.tokenizers.units.units_codec_from_kmeans(..., vocoder={'class_path': "
              "'my_pkg.UnitVocoder', 'init_args': {...}}) or `audiotok distill units --vocoder-config "
              "vocoder.json`): a decoder taking the units' centroid vectors [B, D, F] to audio [B, 1, F * hop]")


class SSLLayerEncoder(nn.Module):
    """A transformers SSL model's hidden state as a codec encoder: ``[B, 1, T] -> [B, D, F]``.

    ``model_config``: the model's transformers config as a dict (``model_type`` and the fields that
    differ from its defaults); the weights come with the codec. ``layer``: hidden state index (0 = the
    projected conv features, ``L`` = after transformer layer ``L``, ``-1`` = last) or ``"avg"`` (mean
    of all). ``normalize``: zero-mean unit-variance input per item (models trained so, e.g. HuBERT
    large; the base models are not). Items of one batch must have equal lengths (the tokenizer batches
    a non-causal codec that way), so no attention mask is needed.
    """

    def __init__(self, model_config: dict, layer: int | str = 9, normalize: bool = False,
                 sample_rate: int = 16000):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        fields = dict(model_config)
        model_type = fields.pop("model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"ssl_layer encoder: model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}")
        config = AutoConfig.for_model(model_type, **fields)
        self.model = AutoModel.from_config(config)
        self.model.eval()
        layers = config.num_hidden_layers
        if layer != "avg" and not (isinstance(layer, int) and -(layers + 1) <= layer <= layers):
            raise ValueError(f"ssl_layer encoder: layer {layer!r} is not 'avg' or a hidden state index "
                             f"in [-{layers + 1}, {layers}] of this {layers}-layer model")
        self.layer = layer
        self.normalize = normalize
        self.sample_rate = sample_rate
        self.dimension = config.hidden_size
        self.hop_length = math.prod(config.conv_stride)

    def num_frames(self, num_samples: int) -> int:
        """Frames of ``num_samples`` samples: the conv stack's ``floor((T - 400) / 320) + 1`` for HuBERT."""
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        audio = wav[:, 0].float()
        if self.normalize:
            variance = audio.var(-1, keepdim=True, unbiased=False)
            audio = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(variance + 1e-7)
        dtype = self.model.feature_extractor.conv_layers[0].conv.weight.dtype  # the tokenizer's dtype
        states = self.model(audio.to(dtype), output_hidden_states=True).hidden_states  # (L + 1) x [B, F, D]
        chosen = torch.stack(states).mean(0) if self.layer == "avg" else states[self.layer]
        return chosen.transpose(1, 2)


class NoVocoder(nn.Module):
    """The decoder of a units tokenizer without a vocoder: decoding raises ``RuntimeError`` saying so."""

    unavailable_reason = "no unit vocoder configured: units cannot be resynthesised"

    def __init__(self, hop_length: int = 320):
        super().__init__()
        self.hop_length = hop_length

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(NO_VOCODER)
