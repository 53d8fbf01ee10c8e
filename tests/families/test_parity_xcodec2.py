"""Parity of XCodec2 with both references at random weights and small sizes (the architecture of the
release, narrower: w2v-BERT 32 wide, acoustic encoder ngf 4, decoder 128 wide with 64-wide heads as
released, 1-2 transformer layers; hop 320, FSQ [4] * 8 = 65,536 codes as released):

* the ``xcodec2`` 0.1.5 package (``HKUST-Audio/xcodec2``'s code; installed ``--no-deps``): its
  ``XCodec2Model`` hard-codes ``Wav2Vec2BertModel.from_pretrained("facebook/w2v-bert-2.0")`` and
  full-size parts in ``__init__``, so the reference is assembled from the package's own parts at small
  sizes and runs the package's own ``encode_code`` / ``decode_code``; its state dict (official key
  names) is saved as ``model.safetensors`` + ``config.json`` and as a Lightning ``.ckpt`` (with
  training-only tensors), and each loads through ``audiotok.load``;
* transformers' ``Xcodec2Model`` (``save_pretrained`` folder), fed the release's w2v-BERT features.

Weights are re-drawn at unit gain (fresh inits leave SnakeBeta at identity and the codes on one
value) and the FSQ input projection rescaled so that many different codes occur and the decoded audio depends on them. Codes must be
identical and decoded audio within 1e-4, on speech and noise, at a length that is not a multiple
of 320 and at one that is (where the release encodes one more frame, of padding: we keep the
first ``T / 320``, which must equal its first ones).
"""
import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types

import pytest
import torch
from torch import nn

import audiotok
from audiotok.benchmarks import references

pytestmark = pytest.mark.parity
SR, HOP = 16000, 320
LENGTHS = (8_100, 8_000)  # 26 frames (partial last frame); 25 frames exactly
TOLERANCE = 1e-4
SEMANTIC = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, conv_depthwise_kernel_size=7)


@pytest.fixture(scope="module")
def signals():
    torch.manual_seed(1)
    n = max(LENGTHS)
    return {"speech": references.synthetic_speech(n / SR, SR)[0, 0], "noise": 0.1 * torch.randn(n)}


def redraw(model: nn.Module, skip: str = "semantic") -> None:
    """Unit-gain random weights (norm weights near 1), then a 3x input projection of the FSQ."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if skip in name and name.startswith(skip):
                continue
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def release_features(padded: torch.Tensor) -> torch.Tensor:
    """What the release feeds w2v-BERT: ``SeamlessM4TFeatureExtractor`` (w2v-bert-2.0's settings) of the
    frame-padded wave with 160 zeros on each side; ``[T] -> [1, F, 160]``."""
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor(padding_value=1.0)
    wave = torch.nn.functional.pad(padded, (HOP // 2, HOP // 2)).numpy()
    return extractor(wave, sampling_rate=SR, return_tensors="pt").input_features


def ours(path, signals) -> dict:
    tok = audiotok.load(path)
    out = {}
    for name, wav in signals.items():
        for length in LENGTHS:
            codes = tok.tokenize(wav[:length], sample_rate=SR).codes
            out[name, length] = codes
    return {"tok": tok, "codes": out}


def check(label: str, mine: dict, ref_codes: dict, ref_decode) -> None:
    tok = mine["tok"]
    for (name, length), ref in ref_codes.items():
        codes = mine["codes"][name, length]
        frames = -(-length // HOP)
        assert ref.shape == (1, 1, length // HOP + 1)  # the release always pads at least one sample
        assert codes.shape == (1, 1, frames)
        assert torch.unique(ref).numel() > 10, "random weights must spread the codes"
        assert torch.equal(codes, ref[..., :frames]), f"{label} {name} {length}: codes differ"
        ref_audio = ref_decode(ref)
        audio = tok.detokenize(ref).audio
        assert audio.shape == ref_audio.shape == (1, 1, ref.shape[-1] * HOP)
        diff = (audio - ref_audio).abs().max().item()
        print(f"{label} {name} T={length}: {frames} codes identical, audio max abs diff {diff:.2e} "
              f"(reference peak {ref_audio.abs().max().item():.3f})")
        assert diff < TOLERANCE
    first, second = (ref_codes["speech", LENGTHS[0]], ref_codes["speech", LENGTHS[0]].roll(1, -1))
    assert (ref_decode(first) - ref_decode(second)).abs().max() > 100 * TOLERANCE, \
        "decoded audio must depend on the codes"


# ---- the xcodec2 package -------------------------------------------------------------------------------
def import_xcodec2():
    """The package's model class and parts. It imports ``torchaudio`` (unused by these parts; no build
    for our torch exists) and ``torchtune.modules`` (whose package ``__init__`` demands torchao) only
    for ``RotaryPositionalEmbeddings``: without them, a placeholder ``torchaudio`` is present during
    the import only, and torchtune's own ``position_embeddings.py`` is loaded by itself."""
    placeholder = False
    if importlib.util.find_spec("xcodec2") is None:
        raise ImportError("the reference package xcodec2 is not installed: "
                          "pip install --no-deps xcodec2==0.1.5 vector-quantize-pytorch==1.17.8 torchtune einx")
    if importlib.util.find_spec("torchaudio") is None:
        import transformers  # resolve the names xcodec2 imports before the placeholder exists

        for name in ("PreTrainedModel", "PretrainedConfig", "AutoFeatureExtractor", "Wav2Vec2BertModel"):
            getattr(transformers, name)
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"], placeholder = stub, True
    try:
        try:
            import torchtune.modules  # noqa: F401
        except ImportError:
            spec = importlib.util.find_spec("torchtune")
            if spec is None:
                raise ImportError("torchtune (RotaryPositionalEmbeddings) is not installed") from None
            root = spec.submodule_search_locations[0]
            package = types.ModuleType("torchtune")
            package.__path__ = [root]
            modules = types.ModuleType("torchtune.modules")
            modules.__path__ = [root + "/modules"]
            sys.modules.update({"torchtune": package, "torchtune.modules": modules})
            position = importlib.import_module("torchtune.modules.position_embeddings")
            modules.RotaryPositionalEmbeddings = position.RotaryPositionalEmbeddings
        from xcodec2.modeling_xcodec2 import XCodec2Model
        from xcodec2.vq.codec_decoder_vocos import CodecDecoderVocos
        from xcodec2.vq.codec_encoder import CodecEncoder_Transformer
        from xcodec2.vq.module import SemanticEncoder
    finally:
        if placeholder:
            sys.modules.pop("torchaudio", None)
    return XCodec2Model, CodecEncoder_Transformer, CodecDecoderVocos, SemanticEncoder


def release_model():
    """The package's XCodec2Model at small sizes: its parts, its encode_code / decode_code."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    XCodec2Model, CodecEncoder, CodecDecoderVocos, SemanticEncoder = import_xcodec2()

    class Release(nn.Module):
        device = torch.device("cpu")
        encode_code = XCodec2Model.encode_code
        decode_code = XCodec2Model.decode_code

    torch.manual_seed(0)
    model = Release()
    # 17 layers: the release reads hidden_states[16], so the converter must drop the last one
    model.semantic_model = Wav2Vec2BertModel(Wav2Vec2BertConfig(
        **SEMANTIC, num_hidden_layers=17, output_hidden_states=True))
    model.feature_extractor = SeamlessM4TFeatureExtractor(padding_value=1.0)  # w2v-bert-2.0's settings
    model.SemanticEncoder_module = SemanticEncoder(32, 32, 32)
    model.CodecEnc = CodecEncoder(ngf=4, hidden_dim=128)
    model.generator = CodecDecoderVocos(hidden_dim=128, depth=2, heads=2, pos_meb_dim=64, vq_dim=160)
    model.fc_prior = nn.Linear(160, 160)
    model.fc_post_a = nn.Linear(160, 128)
    redraw(model, skip="semantic_model")
    with torch.no_grad():
        model.generator.quantizer.project_in.weight.mul_(3)
    return model.eval()


def release_codes(model, signals) -> dict:
    with torch.no_grad():
        return {(name, n): model.encode_code(wav[:n][None]) for name, wav in signals.items() for n in LENGTHS}


def test_xcodec2_package_checkpoints(signals, tmp_path):
    try:
        model = release_model()
    except ImportError as err:
        pytest.skip(f"reference package xcodec2 unavailable: {err}")
    from safetensors.torch import save_file

    ref = release_codes(model, signals)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}

    def decode(codes):
        with torch.no_grad():
            return model.decode_code(codes)

    folder = tmp_path / "hub"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({  # HKUST-Audio/xcodec2's config.json, at our size
        "architectures": ["XCodec2Model"], "model_type": "xcodec", "semantic_hidden_size": 32,
        "codec_encoder_hidden_size": 1024, "codec_decoder_hidden_size": 1024, "use_vocos": True}))
    check("xcodec2 package (model.safetensors)", ours(folder, signals), ref, decode)

    # the training checkpoint: Lightning state_dict with training-only parts, old-style weight norm
    ckpt = {k.replace(".parametrizations.weight.original0", ".weight_g")
             .replace(".parametrizations.weight.original1", ".weight_v"): v for k, v in state.items()}
    ckpt.update({"discriminator.discriminators.0.convs.0.weight": torch.zeros(4, 1, 5, 1),
                 "spec_discriminator.discriminators.0.layers.0.weight": torch.zeros(4, 1, 5, 3),
                 "fc_post_s.weight": torch.zeros(32, 160), "SemanticDecoder_module.initial_conv.weight":
                 torch.zeros(32, 32, 3)})
    path = tmp_path / "ckpt" / "epoch=4-step=1400000.ckpt"
    path.parent.mkdir()
    torch.save({"state_dict": ckpt, "global_step": 1_400_000}, path)
    speech = {key: codes for key, codes in ref.items() if key[0] == "speech"}  # the layout, not the signals
    check("xcodec2 package (Lightning ckpt)", ours(path, {"speech": signals["speech"]}), speech, decode)

    from audiotok.checkpoints.convert import CheckpointError
    from audiotok.families import xcodec2

    with pytest.raises(CheckpointError, match="semantic_hidden_size 1024, the weights have 32"):
        xcodec2.official_config(state, {"model_type": "xcodec", "semantic_hidden_size": 1024})
    missing = {k: v for k, v in state.items() if k != "generator.backbone.embed.weight"}
    with pytest.raises(CheckpointError, match=r"missing 1 keys.*decoder\.backbone\.embed\.weight"):
        xcodec2.convert_official(path, state=missing)


# ---- transformers' Xcodec2Model --------------------------------------------------------------------------
def test_transformers_checkpoint(signals, tmp_path):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Xcodec2Model"):
        pytest.skip(f"transformers {transformers.__version__} has no Xcodec2Model")
    torch.manual_seed(0)
    config = transformers.Xcodec2Config(
        hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64, encoder_hidden_size=4, quantization_dim=160,
        semantic_model_config=dict(model_type="wav2vec2-bert", num_hidden_layers=2, **SEMANTIC))
    model = transformers.Xcodec2Model(config).eval()
    redraw(model, skip="semantic_encoder")
    with torch.no_grad():  # here a smaller FSQ input spreads the codes more (less saturation)
        model.quantizer.project_in.weight.mul_(0.3)
    ref = {}
    for name, wav in signals.items():
        for n in LENGTHS:
            # the release's padding (Xcodec2FeatureExtractor does the same; it needs torchaudio)
            padded = torch.nn.functional.pad(wav[:n], (0, HOP - n % HOP))
            with torch.no_grad():
                ref[name, n] = model.encode(padded[None, None], release_features(padded)).audio_codes

    def decode(codes):
        with torch.no_grad():
            return model.decode(codes).audio_values

    model.save_pretrained(tmp_path)
    check("transformers Xcodec2Model", ours(tmp_path, signals), ref, decode)


# ---- full size: the configs are the release's --------------------------------------------------------
def same_layout(converted: dict, codec) -> None:
    own = codec.state_dict()
    assert set(converted) == set(own), (sorted(set(converted) ^ set(own))[:5])
    wrong = [k for k in own if tuple(converted[k].shape) != tuple(own[k].shape)]
    assert not wrong, wrong[:5]


def test_full_size_matches_the_release_layout():
    """The release's full-size parts (w2v-BERT 2.0's 24 layers on the meta device) convert onto our
    ``xcodec2`` config exactly: same config read back from the shapes, same keys and shapes, and the
    same 242,243,866 trainable codec parameters."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    from audiotok.codecs.codec import Codec
    from audiotok.families import xcodec2

    try:
        _, CodecEncoder, CodecDecoderVocos, SemanticEncoder = import_xcodec2()
    except ImportError as err:
        pytest.skip(f"reference package xcodec2 unavailable: {err}")
    parts = {"CodecEnc": CodecEncoder(), "generator": CodecDecoderVocos(),  # FSQ buffers need a real device
             "SemanticEncoder_module": SemanticEncoder(1024, 1024, 1024),
             "fc_prior": nn.Linear(2048, 2048), "fc_post_a": nn.Linear(2048, 1024)}
    with torch.device("meta"):
        parts["semantic_model"] = Wav2Vec2BertModel(Wav2Vec2BertConfig())  # w2v-bert-2.0's defaults
        codec = Codec(xcodec2.config())
    state = {f"{name}.{k}": v for name, part in parts.items() for k, v in part.state_dict().items()}
    assert xcodec2.official_config(state) == xcodec2.config()
    same_layout(xcodec2.convert_official_state(state, xcodec2.config()), codec)
    release = sum(p.numel() for name, part in parts.items() if name != "semantic_model" for p in part.parameters())
    assert codec.num_parameters() == release == 242_243_866


def test_full_size_matches_the_transformers_layout():
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Xcodec2Model"):
        pytest.skip(f"transformers {transformers.__version__} has no Xcodec2Model")
    from audiotok.codecs.codec import Codec
    from audiotok.families import xcodec2

    config = transformers.Xcodec2Config()
    with torch.device("meta"):
        model = transformers.Xcodec2Model(config)
        codec = Codec(xcodec2.config())
    ours = xcodec2.hf_config(config.to_dict())
    assert ours == xcodec2.config()
    same_layout(xcodec2.convert_hf_state(model.state_dict(), ours), codec)
