"""WavTokenizer has no PyPI package: a checkpoint in the official Lightning layout (key names from
the reference sheet: ``feature_extractor.encodec.{encoder,quantizer,decoder}``, ``backbone``,
``head``, discriminators; old-style weight norm) and its training YAML must load strictly through
``audiotok.load``, reproduce the weights' codes and audio, and a YAML of the other token rate or a
checkpoint with a foreign key must be refused with a clear message.
"""
import re

import pytest
import torch
import yaml

import audiotok
from audiotok.codecs.families import build_codec
from audiotok.benchmarks import references
from audiotok.testing import spread_levels
from audiotok.tokenizers.convert import CheckpointError, detect_and_convert

pytestmark = pytest.mark.parity
RATES = {40: ([6, 5, 5, 4], 2400, 600), 75: ([8, 5, 4, 2], 1280, 320)}


def training_yaml(rate: int) -> dict:
    downsamples, n_fft, hop = RATES[rate]
    return {"seed_everything": 3407, "model": {"class_path": "decoder.experiment.WavTokenizer", "init_args": {
        "sample_rate": 24000,
        "feature_extractor": {"class_path": "decoder.feature_extractors.EncodecFeatures", "init_args": {
            "encodec_model": "encodec_24khz", "bandwidths": [6.6] * 4, "train_codebooks": True,
            "num_quantizers": 1, "dowmsamples": downsamples, "vq_bins": 4096, "vq_kmeans": 200}},
        "backbone": {"class_path": "decoder.models.VocosBackbone", "init_args": {
            "input_channels": 512, "dim": 768, "intermediate_dim": 2304, "num_layers": 12,
            "adanorm_num_embeddings": 4}},
        "head": {"class_path": "decoder.heads.ISTFTHead", "init_args": {
            "dim": 768, "n_fft": n_fft, "hop_length": hop, "padding": "same"}}}}}


def official_state(codec) -> dict:
    """Our codec's weights written under WavTokenizer's Lightning key names."""
    state = {}
    for key, value in codec.state_dict().items():
        if key.startswith("encoder."):
            key = re.sub(r"\.(conv|convtr)\.", r".\1.\1.", key, count=1)
            key = key.replace(".parametrizations.weight.original0", ".weight_g")
            key = key.replace(".parametrizations.weight.original1", ".weight_v")
            state["feature_extractor.encodec." + key] = value
        elif key.startswith("quantizer.layers.0.codebook."):
            name = key.rsplit(".", 1)[1].replace("initialized", "inited")
            state[f"feature_extractor.encodec.quantizer.vq.layers.0._codebook.{name}"] = value
        elif key.startswith("decoder."):
            state[key[len("decoder."):]] = value  # backbone.* and head.*
        else:
            raise AssertionError(f"unmapped key {key}")
    # stored but unused by the forward pass: EnCodec's SEANet decoder and the discriminators
    state["feature_extractor.encodec.decoder.model.0.conv.conv.weight_g"] = torch.ones(512, 1, 1)
    state["multiperioddisc.discriminators.0.convs.0.weight"] = torch.zeros(32, 1, 5, 1)
    state["dac.discriminators.0.convs.0.bias"] = torch.zeros(32)
    return state


def signal() -> torch.Tensor:
    return references.synthetic_speech(1.0, 24000)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    torch.manual_seed(0)
    codec = build_codec("wavtokenizer-75").eval()
    codebook = codec.quantizer.layers[0].codebook
    with torch.no_grad():
        latents = codec.encode_latent(signal())

    def install(centers):
        codebook.embed.copy_(centers)
        codebook.embed_avg.copy_(centers)
        codebook.cluster_size.fill_(1.0)
        codebook.initialized.fill_(1.0)

    spread_levels(latents[0].t(), [(4096, install)])
    folder = tmp_path_factory.mktemp("wavtokenizer_official")
    (folder / "wavtokenizer_smalldata_frame75_3s_nq1_code4096_dim512_kmeans200_attn.yaml").write_text(
        yaml.safe_dump(training_yaml(75)))
    checkpoint = {"state_dict": official_state(codec), "epoch": 3, "global_step": 1000,
                  "pytorch-lightning_version": "1.8.6"}
    torch.save(checkpoint, folder / "wavtokenizer_medium_speech_320_24k_v2.ckpt")
    return codec, folder


def test_loads_strictly_and_decodes(official):
    codec, folder = official
    tok = audiotok.load(folder)
    assert tok.codec.config.name == "wavtokenizer-75" and tok.frame_rate == 75
    wav = signal()
    with torch.no_grad():
        ref_codes = codec.encode(wav)
        ref_audio = codec.decode(ref_codes)
    codes = tok.tokenize(wav[0], sample_rate=24000).codes
    assert codes.shape == (1, 1, 75) and torch.equal(codes, ref_codes)
    assert torch.unique(codes).numel() > 5
    audio = tok.detokenize(codes).audio
    assert audio.shape == (1, 1, 24000) and torch.isfinite(audio).all()
    assert (audio - ref_audio).abs().max().item() < 1e-4


def test_refuses_a_yaml_of_the_other_token_rate(official, tmp_path):
    _, folder = official
    other = tmp_path / "frame40.yaml"
    other.write_text(yaml.safe_dump(training_yaml(40)))
    ckpt = next(folder.glob("*.ckpt"))
    with pytest.raises(CheckpointError, match="same token rate"):
        detect_and_convert([other, ckpt])


def test_names_unexpected_keys(official, tmp_path):
    _, folder = official
    checkpoint = torch.load(next(folder.glob("*.ckpt")), weights_only=True)
    checkpoint["state_dict"]["backbone.extra_layer.weight"] = torch.zeros(3)
    torch.save(checkpoint, tmp_path / "model.ckpt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(training_yaml(75)))
    with pytest.raises(CheckpointError, match="unexpected 1 keys.*extra_layer"):
        detect_and_convert(tmp_path)
