"""Codec assembly: the three families at full size (parameter counts, rates) and tiny (behaviour)."""
import math

import pytest
import torch

from audiotok.codecs import Codec, CodecConfig, available, build_codec, get_config
from audiotok.codecs.modules.conv import Conv1d, ConvTranspose1d
from audiotok.testing import spread_codebooks

# Reference trainable parameter counts (shared/reference; WavTokenizer: our measured figure of the
# generator actually used, the reference's 72.1 M / 71.75 M).
FULL_SIZE = {
    "speechtokenizer": (103_675_586, 16000, 320, 8, 1024),
    "mimi": (79_308_609, 24000, 1920, 32, 2048),
    "wavtokenizer-40": (72_111_714, 24000, 600, 1, 4096),
    "wavtokenizer-75": (71_750_146, 24000, 320, 1, 4096),
}
TINY = ["speechtokenizer-tiny", "mimi-tiny", "wavtokenizer-tiny", "wavtokenizer-40-tiny",
        "mimi-single-codebook-tiny"]


@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_full_size_matches_official_architecture(name):
    params, sr, hop, n_q, size = FULL_SIZE[name]
    with torch.device("meta"):
        codec = build_codec(name)
    assert abs(codec.num_parameters() - params) / params < 0.005
    assert (codec.sample_rate, codec.hop_length, codec.max_codebooks, codec.codebook_size) == (sr, hop, n_q, size)
    assert codec.frame_rate == sr / hop


def test_full_size_rates_and_bitrates():
    with torch.device("meta"):
        st, mimi, wt40 = build_codec("speechtokenizer"), build_codec("mimi"), build_codec("wavtokenizer-40")
    assert st.frame_rate == 50 and st.bitrate == 4000
    assert mimi.frame_rate == 12.5 and mimi.num_codebooks == 8 and mimi.bitrate == 1100
    mimi.set_num_codebooks(32)
    assert mimi.bitrate == 4400
    assert wt40.frame_rate == 40 and wt40.bitrate == 480


def test_speechtokenizer_state_dict_layout():
    with torch.device("meta"):
        codec = build_codec("speechtokenizer")
    keys = codec.state_dict()
    # Same module indices as the official checkpoint (only weight-norm suffixes are renamed).
    assert keys["encoder.model.0.conv.parametrizations.weight.original1"].shape == (64, 1, 7)
    assert keys["encoder.model.13.lstm.weight_ih_l1_reverse"].shape == (4096, 2048)
    assert keys["decoder.model.3.convtr.parametrizations.weight.original1"].shape == (1024, 512, 16)
    assert keys["transform.weight"].shape == (768, 1024)


@pytest.mark.parametrize("name", TINY)
def test_tiny_shapes_ranges_and_lengths(name):
    codec = build_codec(name)
    assert codec.num_parameters() < 1_000_000
    spread_codebooks(codec)
    for length in (codec.hop_length * 3, codec.hop_length * 3 + 17):
        wav = torch.randn(2, 1, length)
        with torch.no_grad():
            codes = codec.encode(wav)
            frames = math.ceil(length / codec.hop_length)
            assert codes.shape == (2, codec.num_codebooks, frames) and codes.dtype == torch.int64
            assert 0 <= codes.min() and codes.max() < codec.codebook_size
            audio = codec.decode(codes)
        assert audio.shape == (2, 1, frames * codec.hop_length)
    assert len(codes.unique()) > 1  # spread codebooks give more than one code


@pytest.mark.parametrize("name", ["speechtokenizer-tiny", "mimi-tiny", "wavtokenizer-tiny"])
def test_training_forward_reaches_encoder(name):
    codec = build_codec(name).train()
    wav = torch.randn(2, 1, codec.hop_length * 4)
    out = codec(wav)
    assert out.audio.shape == wav.shape
    loss = (out.audio - wav).abs().mean() + out.commitment_loss
    loss.backward()
    first = codec.encoder.model[0].conv
    grad = first.parametrizations.weight.original1.grad
    assert grad is not None and grad.abs().sum() > 0
    assert out.semantic.shape[-1] == out.codes.shape[-1]


def test_n_q_honoured_everywhere():
    codec = spread_codebooks(build_codec("mimi-tiny"))
    wav = torch.randn(1, 1, codec.hop_length * 4)
    with torch.no_grad():
        assert codec.encode(wav, n_q=3).shape[1] == 3
        assert codec.encode(wav, n_q=1).shape[1] == 1
        full = codec.encode(wav, n_q=8)
        assert torch.equal(codec.encode(wav, n_q=3), full[:, :3])
        assert codec.decode(full[:, :2]).shape == (1, 1, 4 * codec.hop_length)
    with pytest.raises(ValueError, match="n_q must be between 1 and 8"):
        codec.encode(wav, n_q=9)
    codec.train()
    assert codec(wav, n_q=2).codes.shape[1] == 2


def test_decode_rejects_bad_codes():
    codec = build_codec("wavtokenizer-tiny").eval()
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 256\)"):
        codec.decode(torch.full((1, 1, 3), 256))
    with pytest.raises(ValueError, match=r"\[B, Q, F\]"):
        codec.decode(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        codec.encode(torch.zeros(1, 100))


def test_config_round_trip(tmp_path):
    for name in available():
        config = get_config(name)
        for suffix in (".json", ".yaml"):
            path = tmp_path / f"{name}{suffix}"
            config.save(path)
            assert CodecConfig.load(path) == config
    with pytest.raises(ValueError, match="unknown CodecConfig fields"):
        CodecConfig.from_dict({**get_config("mimi-tiny").to_dict(), "bogus": 1})


def test_save_load_and_fold(tmp_path):
    codec = spread_codebooks(build_codec("speechtokenizer-tiny"))
    wav = torch.randn(1, 1, 3200)
    with torch.no_grad():
        codes = codec.encode(wav)
        audio = codec.decode(codes)
    codec.save_pretrained(tmp_path / "saved")
    loaded = Codec.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.equal(loaded.encode(wav), codes)
        loaded.fold_weight_norm()
        assert not any("parametrizations" in k for k in loaded.state_dict())
        assert torch.allclose(loaded.decode(codes), audio, atol=1e-5)


def test_folding_a_copy_leaves_the_original_as_it_was():
    """Deep copies of weight-normed modules share torch's generated class; folding the copy (as the
    ONNX export and an EMA export do) used to delete ``weight`` from that class and break the
    original."""
    import copy

    codec = spread_codebooks(build_codec("mimi-tiny"))
    wav = torch.randn(1, 1, 4 * codec.hop_length, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes, audio = codec.encode(wav), codec.decode(codec.encode(wav))
        folded = copy.deepcopy(codec).fold_weight_norm()
        assert not any("parametrizations" in k for k in folded.state_dict())
        assert any("parametrizations" in k for k in codec.state_dict())
        assert torch.equal(codec.encode(wav), codes) and torch.equal(codec.decode(codes), audio)
        assert torch.equal(folded.encode(wav), codes)


def test_mismatched_checkpoint_is_explained(tmp_path):
    build_codec("mimi-tiny").save_pretrained(tmp_path / "m")
    other = get_config("mimi-tiny").replace(quantizer={"codebook_size": 128})
    other.save(tmp_path / "m" / "config.json")
    with pytest.raises(ValueError, match="does not match the model's architecture"):
        Codec.from_pretrained(tmp_path / "m")


def test_seeded_determinism():
    def run():
        torch.manual_seed(123)
        codec = build_codec("mimi-tiny").train()
        torch.manual_seed(7)
        return codec(torch.randn(2, 1, 3840))
    a, b = run(), run()
    assert torch.equal(a.codes, b.codes) and torch.equal(a.audio, b.audio)


def test_parts_mix_across_families():
    """A Mimi-style causal streaming codec with WavTokenizer's single codebook is a config change."""
    mix = spread_codebooks(build_codec("mimi-single-codebook-tiny"))
    assert mix.is_causal and mix.max_codebooks == 1 and mix.frame_rate == 12.5
    wav = torch.randn(1, 1, mix.hop_length * 6)
    with torch.no_grad():
        offline = mix.encode(wav)
        with mix.streaming(1):
            steps = [mix.encode_step(wav[..., i * mix.hop_length:(i + 1) * mix.hop_length])
                     for i in range(6)]
    assert torch.equal(torch.cat(steps, -1), offline)
    # And a SpeechTokenizer encoder feeding a Vocos decoder:
    st = get_config("speechtokenizer-tiny")
    vocos = get_config("wavtokenizer-tiny").decoder
    mixed = st.replace(decoder={**vocos, "input_channels": st.encoder["dimension"]}, sample_rate=16000)
    codec = build_codec(mixed).eval()
    assert codec.decode(torch.zeros(1, 8, 5, dtype=torch.long)).shape == (1, 1, 5 * 320)


def test_non_causal_codec_refuses_to_stream():
    codec = build_codec("speechtokenizer-tiny")
    with pytest.raises(RuntimeError, match="cannot stream exactly"):
        with codec.streaming(1):
            pass


def test_conv_padding_modes():
    x = torch.randn(1, 2, 25)
    causal = Conv1d(2, 3, 4, stride=2, causal=True, pad_mode="constant", norm="none")
    y = causal(x)
    assert y.shape[-1] == math.ceil(25 / 2)
    # Causality: changing the future never changes the past.
    x2 = x.clone()
    x2[..., 20:] = 0
    assert torch.allclose(causal(x2)[..., :9], y[..., :9])
    noncausal = Conv1d(2, 3, 7, causal=False, norm="weight_norm")
    assert noncausal(torch.randn(1, 2, 3)).shape[-1] == 3  # reflect pad on inputs shorter than the kernel
    up = ConvTranspose1d(3, 2, 8, stride=4, causal=True, norm="none")
    assert up(torch.randn(1, 3, 5)).shape[-1] == 20
