"""HuBERT / WavLM teachers through the same ``from_pretrained`` path users take, offline, on tiny
random models saved to a temporary folder; teacher specs."""
import pytest
import torch

from audiotok.distill.teacher import TeacherSpec
from audiotok.distill.teachers import build_teacher, parse_teacher, teacher_config

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny HuBERT (group norm, base-like) and WavLM (layer norm, large-like) saved with save_pretrained."""
    root = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**TINY)).save_pretrained(root / "hubert")
    wavlm_config = transformers.WavLMConfig(**TINY, num_buckets=32, feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.WavLMModel(wavlm_config).save_pretrained(root / "wavlm")
    return root


def _reference_states(folder, wav, normalize):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    audio = wav[:, 0]
    if normalize:  # what Wav2Vec2FeatureExtractor(do_normalize=True) does to one unpadded utterance
        audio = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True, unbiased=False) + 1e-7)
    with torch.no_grad():
        return model(audio, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("name,normalize", [("hubert", False), ("wavlm", True)])
def test_layer_and_avg_match_hidden_states(tiny_models, name, normalize):
    folder = tiny_models / name
    wav = torch.randn(2, 1, 8000) * 0.1
    states = _reference_states(folder, wav, normalize)
    assert len(states) == 3  # embedding output + 2 layers

    avg = build_teacher(f"{name}:{folder}@avg")
    assert avg.normalize is normalize and avg.frame_rate == 50 and avg.sample_rate == 16000 and avg.dim == 32
    features = avg(wav)
    assert features.shape == (2, 32, 24)  # floor((8000-400)/320)+1 frames, [B, D, T]
    torch.testing.assert_close(features, torch.stack(states).mean(0).transpose(1, 2), rtol=1e-4, atol=1e-5)

    for layer in (1, -1):
        chosen = build_teacher(f"{name}:{folder}@{layer}")(wav)
        torch.testing.assert_close(chosen, states[layer].transpose(1, 2), rtol=1e-4, atol=1e-5)


def test_teacher_is_frozen_and_stays_in_eval(tiny_models):
    teacher = build_teacher(f"hubert:{tiny_models / 'hubert'}@2")
    teacher.train()
    assert not teacher.training and not teacher.model.training
    assert all(not p.requires_grad for p in teacher.parameters())
    wav = torch.randn(1, 1, 4000, requires_grad=True)
    assert not teacher(wav).requires_grad


def test_padded_items_match_unpadded(tiny_models):
    teacher = build_teacher(f"wavlm:{tiny_models / 'wavlm'}@-1")
    short = torch.randn(1, 1, 6000) * 0.1
    batch = torch.cat([torch.nn.functional.pad(short, (0, 2000)), torch.randn(1, 1, 8000)])
    out = teacher(batch, lengths=torch.tensor([6000, 8000]))
    alone = teacher(short)
    frames = alone.shape[-1]
    torch.testing.assert_close(out[:1, :, :frames], alone, rtol=1e-3, atol=1e-4)
    assert out[0, :, frames:].abs().sum() == 0  # frames past the item's length are zeroed


def test_bfloat16_teacher_runs(tiny_models):
    teacher = build_teacher(f"hubert:{tiny_models / 'hubert'}@avg", dtype="bfloat16")
    assert teacher.model.dtype == torch.bfloat16
    features = teacher(torch.randn(1, 1, 4000))
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    assert teacher.config_hash() != build_teacher(f"hubert:{tiny_models / 'hubert'}@avg").config_hash()


def test_config_identifies_teacher_without_loading(tiny_models):
    folder = tiny_models / "hubert"
    built = build_teacher(f"hf:{folder}@1")
    assert built.config_dict() == teacher_config(f"hubert:{folder}@1")
    assert teacher_config(f"hubert:{folder}@1") != teacher_config(f"hubert:{folder}@avg")
    with pytest.raises(ValueError, match="holds a 'hubert' model"):
        build_teacher(f"wavlm:{folder}")
    with pytest.raises(ValueError, match="out of range"):
        build_teacher(f"hubert:{folder}@5")


def test_unreachable_hub_id_says_where_to_put_files():
    with pytest.raises(OSError, match="huggingface-cli download .* --local-dir"):
        build_teacher("wavlm:audiotok-test/no-such-model@-1")


def test_spec_parsing():
    assert TeacherSpec.parse("phones") == TeacherSpec(kind="phones")
    assert TeacherSpec.parse("wavlm:microsoft/wavlm-large@-1") == TeacherSpec("wavlm", "microsoft/wavlm-large", -1)
    assert TeacherSpec.parse("hubert:/m/hubert@base@9") == TeacherSpec("hubert", "/m/hubert@base", 9)
    assert TeacherSpec.parse("hubert:/m/hubert").layer == "avg"
    assert TeacherSpec.parse({"kind": "hubert", "source": "x", "layer": "9", "dtype": "bfloat16"}).layer == 9
    with pytest.raises(ValueError, match="bad teacher spec"):
        TeacherSpec.parse(":x")
    with pytest.raises(ValueError, match="'hubert' needs a SOURCE"):
        parse_teacher("hubert")
    with pytest.raises(ValueError, match="unknown teacher kind 'bert'; available: hf, hubert, phones, wavlm"):
        parse_teacher("bert:x")
