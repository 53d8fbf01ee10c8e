"""XCodec2 parts and family: the tiny twin's contract (50 Hz, 65,536 codes, 0.8 kbps, ceil(T / 320)
frames), the w2v-BERT features against transformers' extractor, the release's position-free
attention, the double-bounded FSQ, the full-size config, training through the recipe, checkpoint
errors, ``audiotok info`` and ``tokenize-dataset --llasa-text-vocab``.
(Parity with the references and official checkpoint loading: tests/families/test_parity_xcodec2.py.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok.families import xcodec2
from audiotok.checkpoints.convert import CheckpointError
from audiotok.cli import main
from audiotok.codecs.codec import Codec
from audiotok.codecs.modules.xcodec2 import TransformerBackbone, W2vBertFeatures
from audiotok.codecs.quantizers.xcodec2_fsq import XCodec2FSQ

SR, HOP = 16000, 320


def tiny(spread: float = 10.0, seed: int = 0) -> Codec:
    """The tiny twin in eval mode, its FSQ input projection scaled so codes spread over the codebook."""
    torch.manual_seed(seed)
    codec = Codec(xcodec2.config(tiny=True)).eval()
    with torch.no_grad():
        codec.quantizer.input_proj.weight.mul_(spread)
    return codec


def test_tiny_twin_contract():
    codec = tiny()
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks, codec.codebook_size) == (16000, 50, 1, 65536)
    assert codec.bitrate == 800.0
    assert codec.num_parameters() < 1_000_000
    semantic = sum(p.numel() for p in codec.encoder.semantic_model.parameters())
    assert semantic > 0 and all(not p.requires_grad for p in codec.encoder.semantic_model.parameters())
    torch.manual_seed(1)
    wav = 0.1 * torch.randn(2, 1, 16_100)
    with torch.no_grad():
        codes = codec.encode(wav)
        assert codes.shape == (2, 1, 51) and codes.dtype == torch.long
        assert torch.unique(codes).numel() > 40 and int(codes.max()) < 65536
        assert codec.decode(codes).shape == (2, 1, 51 * HOP)
        # at an exact multiple of 320 the release encodes one padding frame more; we keep T / 320 frames
        assert codec.encode(wav[..., :16_000]).shape == (2, 1, 50)
        # one item of a batch is encoded as if alone
        assert torch.equal(codec.encode(wav[1:]), codes[1:])


def test_features_match_w2v_bert_extractor():
    from transformers import SeamlessM4TFeatureExtractor

    torch.manual_seed(0)
    wav = 0.1 * torch.randn(51 * HOP + HOP)  # a frame-padded wave: 51 frames
    ref = SeamlessM4TFeatureExtractor(padding_value=1.0)(wav.numpy(), sampling_rate=SR,
                                                         return_tensors="pt").input_features
    ours = W2vBertFeatures()(wav[None])
    assert ours.shape == ref.shape == (1, 51, 160)
    assert (ours - ref).abs().max() < 1e-4


def test_attention_has_no_time_positions_as_released():
    """The release's RoPE rotates by head index (torchtune fed [B, H, T, d]), so the transformer stack
    is permutation-equivariant over time: shuffling frames shuffles the outputs the same way."""
    torch.manual_seed(0)
    stack = TransformerBackbone(dim=32, depth=2, num_heads=2).transformers.eval()
    x = torch.randn(1, 12, 32)
    order = torch.randperm(12)
    with torch.no_grad():
        assert torch.allclose(stack(x)[:, order], stack(x[:, order]), atol=1e-5)


def test_fsq_bounds_twice_and_round_trips():
    torch.manual_seed(0)
    fsq = XCodec2FSQ(dim=16).eval()
    assert fsq.codebook_size == 4 ** 8
    x = 3 * torch.randn(2, 16, 40)
    z = fsq.input_proj(x)
    once = torch.tanh(z + np.arctanh(0.5 / 1.5015)) * 1.5015 - 0.5  # one bound, levels 4
    twice = torch.tanh(once + np.arctanh(0.5 / 1.5015)) * 1.5015 - 0.5
    basis = (4 ** torch.arange(8))[None, :, None]

    def index(bounded):  # digits 0..3, channel 0 least significant
        return ((bounded.round() + 2).long() * basis).sum(1, keepdim=True)

    codes = fsq.encode(x)
    assert torch.equal(codes, index(twice)) and not torch.equal(codes, index(once))
    out = fsq(x)
    assert torch.equal(out.codes, codes) and torch.allclose(fsq.decode(codes), out.quantized, atol=1e-6)


def test_full_size_config_builds_like_the_release():
    with torch.device("meta"):
        codec = Codec(xcodec2.config())
    assert len(codec.encoder.semantic_model.encoder.layers) == 16  # layer 16 of 24 is read
    assert codec.encoder.semantic_model.config.hidden_size == 1024
    assert codec.quantizer.input_proj.weight.shape == (8, 2048, 1)
    assert codec.decoder.head.out.weight.shape == (1282, 1024)
    assert len(codec.decoder.backbone.transformers) == 12 and codec.decoder.backbone.transformers[0].att.num_heads == 16
    assert (codec.hop_length, codec.codebook_size, codec.bitrate) == (320, 65536, 800.0)


def test_training_step_with_the_recipe():
    from audiotok.discriminators import build_discriminators
    from audiotok.training.recipes import get_recipe

    recipe = get_recipe("xcodec2")
    assert recipe["losses"]["mel"] == 15.0 and recipe["optim"]["generator"]["betas"] == [0.8, 0.9]
    discriminators = build_discriminators(recipe["discriminators"], width=1 / 16)
    codec = tiny().train()
    wav = 0.1 * torch.randn(2, 1, 6400)
    out = codec(wav)
    assert out.audio.shape == wav.shape and out.codes.shape == (2, 1, 20)
    logits, _ = discriminators(out.audio)
    assert len(logits) == 5 + 8  # MPD periods + the release's 8 spectral resolutions
    (out.audio - wav).abs().mean().add(sum(l.mean() for l in logits)).backward()
    assert codec.encoder.acoustic.conv_blocks[0].parametrizations.weight.original1.grad is not None
    assert codec.quantizer.input_proj.weight.grad is not None
    assert all(p.grad is None for p in codec.encoder.semantic_model.parameters())
    assert not codec.encoder.semantic_model.training  # frozen w2v-BERT stays in eval mode


def test_official_checkpoint_errors(tmp_path):
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "xcodec", "semantic_hidden_size": 1024,
                                                    "codec_decoder_hidden_size": 1024}))
    with pytest.raises(CheckpointError, match="no model.safetensors of the official layout"):
        xcodec2.detect_official(xcodec2.Files.at(folder))
    with pytest.raises(CheckpointError, match="not an XCodec2 checkpoint"):
        xcodec2.convert_official(folder / "x.safetensors", state={"encoder.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="no w2v-BERT tensor"):
        xcodec2.official_config({"CodecEnc.conv_blocks.0.bias": torch.zeros(4)}, where="ckpt")
    import transformers

    if hasattr(transformers, "Xcodec2Config"):  # a transformers config of another decoder is refused
        hf = transformers.Xcodec2Config().to_dict()
        assert xcodec2.hf_config(hf) == xcodec2.config()
        with pytest.raises(CheckpointError, match="rope_theta"):
            xcodec2.hf_config({**hf, "rope_parameters": {"rope_type": "default", "rope_theta": 500_000.0}})


def test_info_lists_xcodec2():
    from audiotok import info

    rows = {row["name"]: row for row in info.compute_rows(["xcodec2", "xcodec2-tiny"])}
    for name in ("xcodec2", "xcodec2-tiny"):
        row = rows[name]
        assert (row["family"], row["sample_rate"], row["frame_rate"], row["codebooks"], row["size"],
                row["bitrate"]) == ("xcodec2", "16000", "50", "1/1", "65536", "0.800")


def test_tokenize_dataset_llasa_tokens(tmp_path):
    """Llasa's preparation: xcodec2 codes offset by the Llama-3 text vocab (128,256) + 8 specials,
    framed by SPEECH_GENERATION_START / END (128,260 / 128,261)."""
    from audiotok.tokenizers import llasa_offset, unflatten_tokens
    from audiotok.tokenizers.dataset import read_shards

    model = tiny().save_pretrained(tmp_path / "xcodec2-tiny")
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        sf.write(audio / f"u{i}.wav", rng.normal(0, 0.1, 8000 + 2100 * i).astype(np.float32), SR)
        rows.append({"path": f"u{i}.wav", "text": f"utterance {i}", "speaker": "s"})
    (audio / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "shards"
    rc = main(["tokenize-dataset", str(audio / "manifest.jsonl"), "-o", str(out), "-m", str(model),
               "--llasa-text-vocab", "128256", "--bos", "128260", "--eos", "128261"])
    assert rc == 0
    offset = llasa_offset(128256)
    assert offset == 128264
    table = read_shards(out).to_pylist()
    assert [r["id"] for r in table] == ["u0", "u1", "u2"]
    codec = Codec.from_pretrained(model).eval()
    for i, row in enumerate(table):
        codes = np.asarray(row["codes"])
        frames = -(-(8000 + 2100 * i) // HOP)
        assert codes.shape == (1, frames)
        tokens = np.asarray(row["tokens"])
        assert tokens[0] == 128260 and tokens[-1] == 128261 and len(tokens) == frames + 2
        assert np.array_equal(tokens[1:-1], codes[0] + offset)
        assert ((tokens[1:-1] >= offset) & (tokens[1:-1] < offset + 65536)).all()
        assert np.array_equal(unflatten_tokens(row["tokens"], 1, 65536, offset=offset, bos=128260, eos=128261),
                              codes)
        wav, _ = sf.read(audio / f"u{i}.wav", dtype="float32")
        with torch.no_grad():
            assert np.array_equal(codec.encode(torch.from_numpy(wav)[None, None])[0].numpy(), codes)
