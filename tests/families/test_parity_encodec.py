"""Parity with EnCodec 24 kHz: the ``encodec`` 0.1.1 package and transformers' ``EncodecModel``.

Both references are full size at random weights: encoder and decoder convs rescaled (a fresh SEANet's
latent barely varies, so 32 residual levels end in float rounding, and its output barely depends on the
codes), codebooks spread around the reference's own latents. Each is saved in its official layout (the package's
``encodec_24khz-d7cc33bc.th`` state dict; transformers' ``config.json`` + ``model.safetensors``, with
the hub's ``weight_g``/``weight_v`` names and with the names transformers 5 writes), loaded through
``audiotok.load``, and must give identical codes and decoded audio within 1e-4, at 24 kbps (32
codebooks) and at the bandwidths the references take (1.5 / 6 kbps).
"""
import functools
import json

import pytest
import torch

import audiotok
from audiotok.benchmarks import references
from audiotok.families.encodec import TARGET_BANDWIDTHS, bandwidth_for_n_q, n_q_for_bandwidth
from audiotok.testing import spread_encodec_codebooks

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_thread")]  # LSTMs crawl on two busy threads
SR, HOP = 24000, 320


@functools.lru_cache(maxsize=1)
def batch() -> torch.Tensor:
    """``[2, 1, T]``: 1 s of speech and of noise, T not a multiple of the hop (a partial last frame)."""
    generator = torch.Generator().manual_seed(1)
    length = SR + 123
    return torch.cat([references.synthetic_speech(length / SR, SR)[..., :length],
                      0.1 * torch.randn(1, 1, length, generator=generator)])


@torch.no_grad()
def propagate_parametrized(module: torch.nn.Module, gain: float = 1.2, bias_scale: float = 0.1) -> None:
    """:func:`references.propagate_signal` for parametrization-style weight norm (transformers 5)."""
    for conv in module.modules():
        if isinstance(conv, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            conv.parametrizations.weight.original0.fill_(gain)
            if conv.bias is not None:
                conv.bias.mul_(bias_scale)


def ours(path, wav: torch.Tensor, n_qs) -> dict:
    """``{n_q: (codes, audio)}`` of our tokenizer loaded from ``path`` (official layout)."""
    tok = audiotok.load(path)
    out = {}
    for n_q in n_qs:
        codes = tok.tokenize(list(wav), sample_rate=SR, n_q=n_q).codes
        out[n_q] = (codes, tok.detokenize(codes).audio)
    return out


def check(name: str, ref_codes, ref_audio, codes, audio, n_q: int) -> None:
    frames = -(-batch().shape[-1] // HOP)
    assert codes.shape == ref_codes.shape == (2, n_q, frames)
    assert torch.equal(codes, ref_codes)
    assert audio.shape == ref_audio.shape == (2, 1, frames * HOP)
    diff = (audio - ref_audio).abs().max().item()
    print(f"{name} n_q={n_q}: codes identical, audio max abs diff {diff:.2e} "
          f"(peak {ref_audio.abs().max().item():.3f})")
    assert diff < 1e-4


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The reference package model (spread, propagated) and its state dict saved as the release file."""
    try:
        EncodecModel = references.encodec_package()
    except ImportError as err:
        pytest.skip(f"encodec package unavailable: {err}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = EncodecModel.encodec_model_24khz(pretrained=False).eval()
    references.propagate_signal(model.encoder)  # latents that vary: deep residuals far above rounding
    references.propagate_signal(model.decoder)
    with torch.no_grad():
        codebooks = [layer._codebook for layer in model.quantizer.vq.layers]
        spread_encodec_codebooks(model.encoder(batch()), codebooks)
    path = tmp_path_factory.mktemp("encodec_package") / "encodec_24khz-d7cc33bc.th"
    torch.save(model.state_dict(), path)
    return model, path


def test_package_identical_codes_and_audio(package):
    model, path = package
    wav = batch()
    mine = ours(path, wav, [n_q_for_bandwidth(kbps) for kbps in (24.0, 6.0)])
    for kbps in (24.0, 6.0):
        model.set_target_bandwidth(kbps)
        with torch.no_grad():
            (ref_codes, scale), = model.encode(wav)
            ref_audio = model.decode([(ref_codes, scale)])
        n_q = n_q_for_bandwidth(kbps)
        check(f"encodec package {kbps} kbps", ref_codes, ref_audio, *mine[n_q], n_q)
        for row in ref_codes:  # the test is not vacuous: codes vary, and audio depends on them
            assert torch.unique(row[0]).numel() > 20 and torch.unique(row[-1]).numel() > 20
        assert (ref_audio[0] - ref_audio[1]).abs().max() > 1e-2


@pytest.fixture(scope="module")
def hf_model():
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    torch.manual_seed(2)
    model = transformers.EncodecModel(transformers.EncodecConfig()).eval()
    propagate_parametrized(model.encoder)
    propagate_parametrized(model.decoder)
    with torch.no_grad():
        codebooks = [layer.codebook for layer in model.quantizer.layers]
        spread_encodec_codebooks(model.encoder(batch()), codebooks)
    return model


@pytest.mark.parametrize("layout", ["save_pretrained", "weight_g_v"])
def test_transformers_identical_codes_and_audio(hf_model, tmp_path, layout):
    from safetensors.torch import load_file, save_file

    hf_model.save_pretrained(tmp_path)
    if layout == "weight_g_v":  # the hub file's names (saved with torch.nn.utils.weight_norm)
        state = load_file(str(tmp_path / "model.safetensors"))
        state = {k.replace("parametrizations.weight.original0", "weight_g")
                  .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
        save_file(state, str(tmp_path / "model.safetensors"))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "encodec"
    wav = batch()
    kbps_list = (TARGET_BANDWIDTHS[0], TARGET_BANDWIDTHS[-1])
    mine = ours(tmp_path, wav, [n_q_for_bandwidth(kbps) for kbps in kbps_list])
    for kbps in kbps_list:
        with torch.no_grad():
            encoded = hf_model.encode(wav, bandwidth=kbps)
            ref_audio = hf_model.decode(encoded.audio_codes, encoded.audio_scales).audio_values
        n_q = n_q_for_bandwidth(kbps)
        check(f"transformers ({layout}) {kbps} kbps", encoded.audio_codes[0], ref_audio, *mine[n_q], n_q)


def test_bandwidth_mapping():
    assert [n_q_for_bandwidth(b) for b in TARGET_BANDWIDTHS] == [2, 4, 8, 16, 32]
    assert bandwidth_for_n_q(8) == 6.0
    with pytest.raises(ValueError, match="1 to 32"):
        n_q_for_bandwidth(48.0)
    with pytest.raises(ValueError, match="0.75 kbps each"):
        n_q_for_bandwidth(0.5)


def test_48khz_and_foreign_files_are_refused_clearly(tmp_path):
    from audiotok.errors import CheckpointError
    from audiotok.families.encodec import config_from_hf

    with pytest.raises(CheckpointError, match="48 kHz .* not supported"):
        config_from_hf({"model_type": "encodec", "sampling_rate": 48000, "hidden_size": 128, "num_filters": 32,
                        "upsampling_ratios": [8, 5, 4, 2], "codebook_size": 1024, "audio_channels": 2,
                        "norm_type": "time_group_norm", "chunk_length_s": 1.0, "normalize": True,
                        "target_bandwidths": [3.0, 6.0, 12.0, 24.0]})
    path = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save({"decoder.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an EnCodec state dict"):
        audiotok.load(path)


def test_named_configs_and_tiny_twin():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # registered names warn that their weights are random
        full, tiny = audiotok.load("encodec-24khz"), audiotok.load("encodec-tiny")
    from audiotok.codecs.families import build_codec

    assert build_codec("encodec-24khz").num_parameters() == 14_851_810  # = the encodec package's model
    assert (full.frame_rate, full.num_codebooks, full.codec.max_codebooks, full.bitrate) == (75.0, 8, 32, 6000.0)
    assert tiny.codec.num_parameters() < 1_000_000
    def layers(codec):  # the SEANet layer sequence: the twin has the same structure, narrower
        keys = [k for k in codec.state_dict() if k.startswith(("encoder.", "decoder."))]
        return sorted({".".join(k.split(".")[:3]) for k in keys})
    assert layers(tiny.codec) == layers(full.codec)
    wav = torch.randn(1, SR + 50) * 0.1
    tokens = tiny.tokenize(wav)
    assert tokens.codes.shape == (1, 8, 76) and tiny.bitrate == 4800.0
    assert tiny.detokenize(tokens).audio.shape == (1, 1, SR + 50)
    assert full.tokenize(wav, n_q=n_q_for_bandwidth(24.0)).codes.shape == (1, 32, 76)
