"""HuBERT k-means units as a tokenizer: built from `audiotok distill kmeans` output, saved, loaded with
``audiotok.load(folder)``; units equal the teacher's features assigned to the k-means centroids."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import audiotok
from audiotok.cli import main as audiotok_main
from audiotok.distill.cache import build_cache
from audiotok.distill.kmeans import KMeansUnits, fit_kmeans_on_cache
from audiotok.distill.teachers import build_teacher
from audiotok.codecs.modules.ssl import NO_VOCODER
from audiotok.tokenizers.units import deduplicate, expand, units_codec_from_kmeans

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
    "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip
K = 12


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny random HuBERT folder, an audio folder, a feature cache of layer 1 and k-means units on it,
    and the units tokenizer built from them by ``audiotok distill units``."""
    root = tmp_path_factory.mktemp("units")
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**TINY)).save_pretrained(root / "hubert")
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    for i, seconds in enumerate((1.0, 1.5, 2.0)):
        n = int(seconds * 16000)
        tone = np.sin(2 * np.pi * (150 + 60 * i) * t[:n] * (1 + 0.3 * np.sin(2 * np.pi * 2 * t[:n])))
        sf.write(audio / f"{i}.wav", (0.3 * tone + 0.05 * rng.standard_normal(n)).astype("float32"), 16000)
    spec = f"hubert:{root / 'hubert'}@1"
    teacher = build_teacher(spec)
    build_cache(teacher, audio, root / "cache", spec=spec, progress=False)
    fit_kmeans_on_cache(root / "cache", K, seed=0).save(root / "units.safetensors")
    assert audiotok_main(["distill", "units", "--kmeans", str(root / "units.safetensors"),
                          "--out", str(root / "tokenizer")]) == 0
    return root, teacher


def test_units_equal_teacher_features_assigned_to_centroids(built):
    root, teacher = built
    tok = audiotok.load(root / "tokenizer")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50.0, 1, K)
    assert tok.bitrate == pytest.approx(50 * np.log2(K))
    units = KMeansUnits.load(root / "units.safetensors")
    paths = sorted((root / "audio").glob("*.wav"))
    tokens = tok.tokenize(paths)  # three lengths: 1, 1.5, 2 s
    assert tokens.codes.shape[:2] == (3, 1) and tokens.codes.dtype == torch.int64
    for path, codes, n in zip(paths, tokens.codes, tokens.lengths.tolist()):
        wav = torch.from_numpy(sf.read(path, dtype="float32")[0])[None, None]
        expected = units.assign(teacher(wav))[0]  # the distill path: teacher features -> nearest centroid
        assert n == (wav.shape[-1] - 400) // 320 + 1 == expected.shape[-1]  # transformers' frame count
        assert torch.equal(codes[0, :n], expected)
    assert len(torch.unique(tokens.codes)) > 2  # not a collapsed codebook: the test can fail


def test_saved_folder_round_trips_and_records_the_teacher(built, tmp_path):
    root, _ = built
    config = json.loads((root / "tokenizer" / "config.json").read_text())
    assert config["family"] == "units" and config["encoder"]["layer"] == 1
    assert config["encoder"]["model_config"]["model_type"] == "hubert"
    tok = audiotok.load(root / "tokenizer")
    tok.save_pretrained(tmp_path / "again")
    wav = torch.randn(1, 16000) * 0.1
    assert torch.equal(audiotok.load(tmp_path / "again").tokenize(wav).codes, tok.tokenize(wav).codes)


def test_detokenize_without_vocoder_says_why(built):
    root, _ = built
    tok = audiotok.load(root / "tokenizer")
    codes = tok.tokenize(torch.randn(1, 8000) * 0.1)
    with pytest.raises(RuntimeError, match="no unit vocoder") as err:
        tok.detokenize(codes)
    assert str(err.value) == NO_VOCODER


def test_cli_detokenize_refuses_in_one_line(built, tmp_path, capsys):
    root, _ = built
    wavs = str(root / "audio" / "0.wav")
    assert audiotok_main(["tokenize", "-m", str(root / "tokenizer"), "-o", str(tmp_path / "codes"), wavs]) == 0
    capsys.readouterr()
    assert audiotok_main(["detokenize", "-m", str(root / "tokenizer"), str(tmp_path / "codes"),
                          "-o", str(tmp_path / "audio")]) == 2
    err = capsys.readouterr().err
    assert "cannot detokenize: no unit vocoder configured" in err and "Traceback" not in err


def test_onnx_export_writes_the_encoder_only_and_says_why(built, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    root, _ = built
    assert audiotok_main(["export", "onnx", str(root / "tokenizer"), "-o", str(tmp_path / "onnx")]) == 0
    assert "no decoder graph: no unit vocoder configured" in capsys.readouterr().out
    assert not (tmp_path / "onnx" / "decoder.onnx").exists()
    x = torch.randn(1, 16000) * 0.1
    onnx_codes = audiotok.load(tmp_path / "onnx", backend="onnxruntime").tokenize(x, sample_rate=16000).codes
    assert torch.equal(onnx_codes, audiotok.load(root / "tokenizer").tokenize(x, sample_rate=16000).codes)


def test_configured_vocoder_decodes(built):
    root, _ = built
    vocoder = {"type": "seanet", "dimension": 16, "n_filters": 4, "ratios": [8, 5, 4, 2], "lstm_layers": 0}
    codec = units_codec_from_kmeans(root / "units.safetensors", vocoder=vocoder)
    tok = audiotok.Tokenizer(codec)
    tokens = tok.tokenize(torch.randn(1, 16000) * 0.1)
    audio = tok.detokenize(tokens.codes).audio
    assert audio.shape == (1, 1, tokens.codes.shape[-1] * 320) and torch.isfinite(audio).all()


def test_other_teacher_layer_is_refused(built):
    root, _ = built
    with pytest.raises(ValueError, match="fitted on teacher layer 1"):
        units_codec_from_kmeans(root / "units.safetensors", teacher=f"hubert:{root / 'hubert'}@2")


def test_deduplicated_units_keep_durations():
    from audiotok.tokenizers.tokenizer import TokenizedAudio

    codes = torch.tensor([[[3, 3, 5, 5, 5, 3, 7, 0]], [[1, 1, 1, 2, 0, 0, 0, 0]]])
    tokens = TokenizedAudio(codes=codes, lengths=torch.tensor([7, 4]), num_samples=torch.tensor([2640, 1360]),
                            sample_rate=16000, frame_rate=50.0)
    dedup = deduplicate(tokens)
    assert dedup.codes.tolist() == [[[3, 5, 3, 7]], [[1, 2, 0, 0]]]
    assert dedup.lengths.tolist() == [4, 2] and dedup.durations.tolist() == [[2, 3, 1, 1], [3, 1, 0, 0]]
    assert dedup.durations.sum(-1).tolist() == dedup.frames.tolist() == [7, 4]
    assert torch.equal(expand(dedup), torch.tensor([[[3, 3, 5, 5, 5, 3, 7]], [[1, 1, 1, 2, 0, 0, 0]]]))


def test_distill_units_errors_are_one_line(built, tmp_path, capsys):
    root, _ = built
    bare = KMeansUnits(torch.randn(K, 16)).save(tmp_path / "bare.safetensors")  # no teacher recorded
    assert audiotok_main(["distill", "units", "--kmeans", str(bare), "--out", str(tmp_path / "t")]) == 2
    assert "does not record its teacher spec" in capsys.readouterr().err
    # an existing folder is kept unless --overwrite
    assert audiotok_main(["distill", "units", "--kmeans", str(root / "units.safetensors"),
                          "--out", str(root / "tokenizer")]) == 2
    assert "pass overwrite" in capsys.readouterr().err
    assert audiotok_main(["distill", "units", "--kmeans", str(root / "units.safetensors"),
                          "--out", str(root / "tokenizer"), "--overwrite"]) == 0
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # no temporary folders left
