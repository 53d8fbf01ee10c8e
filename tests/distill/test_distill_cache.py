"""Teacher feature cache (round trip, exact crops, stale refusal) and k-means units."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok.cli import main as audiotok_main
from audiotok.distill.align import num_frames, sample_to_frame
from audiotok.distill.cache import FeatureCache, StaleCacheError, build_cache
from audiotok.distill.kmeans import KMeansUnits, fit_kmeans
from audiotok.distill.teachers import build_teacher

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
    "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny HuBERT folder and an audio folder (two 16 kHz files and one 24 kHz file)."""
    root = tmp_path_factory.mktemp("distill_cache")
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**TINY)).save_pretrained(root / "hubert")
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for name, seconds, rate in (("a", 1.5, 16000), ("b", 2.0, 16000), ("c", 1.0, 24000)):
        sf.write(audio / f"{name}.wav", (0.1 * rng.standard_normal(int(seconds * rate))).astype("float32"), rate)
    teacher = build_teacher(f"hubert:{root / 'hubert'}@avg")
    cache = build_cache(teacher, audio, root / "cache", progress=False)
    return root, teacher, cache


def test_round_trip_stores_whole_utterances_without_batch_dim(setup):
    root, teacher, cache = setup
    assert len(cache) == 3 and cache.frame_rate == 50 and cache.dim == 16
    from safetensors import safe_open

    with safe_open(str(next((root / "cache").glob("shard-*.safetensors"))), "pt") as shard:
        assert all(len(shard.get_slice(k).get_shape()) == 2 for k in shard.keys())  # noqa: SIM118 - safe_open, not a dict  # [D, T], never [1, T, D]
    from audiotok.data import load_audio

    for name in ("a", "b", "c"):
        path = root / "audio" / f"{name}.wav"
        wav, _ = load_audio(path, 16000)  # the 24 kHz file is resampled to the teacher's rate
        torch.testing.assert_close(cache.full(path), teacher(wav[None])[0])
    assert cache.full(root / "audio" / "b.wav").shape == (16, (32000 - 400) // 320 + 1)


@pytest.mark.parametrize("sample_rate", [16000, 24000, 44100])
def test_crop_equals_slice_at_converted_offset(setup, sample_rate):
    root, _, cache = setup
    path = root / "audio" / "b.wav"  # 2 s: 99 teacher frames
    full = cache.full(path)
    rng = np.random.default_rng(sample_rate)
    for _ in range(20):
        num_samples = int(rng.integers(sample_rate // 10, sample_rate))
        start = int(rng.integers(0, 2 * sample_rate - num_samples))
        crop = cache.get(path, start, num_samples, sample_rate)
        first = sample_to_frame(start, sample_rate, 50)
        count = num_frames(num_samples, sample_rate, 50)
        assert crop.shape == (16, count)
        available = min(count, full.shape[-1] - first)
        torch.testing.assert_close(crop[:, :available], full[:, first : first + available])
        assert torch.equal(crop[:, available:], full[:, -1:].expand(-1, count - available))  # edge repeat
    # a 24 kHz crop starting at 1 s starts exactly at teacher frame 50
    if sample_rate == 24000:
        torch.testing.assert_close(cache.get(path, 24000, 12000, 24000), full[:, 50:75])


def test_changed_file_and_other_teacher_are_refused(setup, tmp_path):
    root, teacher, _ = setup
    audio = tmp_path / "audio"
    audio.mkdir()
    wav_path = audio / "x.wav"
    sf.write(wav_path, np.zeros(8000, "float32") + 0.01, 16000)
    cache = build_cache(teacher, audio, tmp_path / "cache", progress=False)
    FeatureCache(tmp_path / "cache", teacher=f"hubert:{root / 'hubert'}@avg").get(wav_path, 0, 1600, 16000)

    with pytest.raises(StaleCacheError, match="rebuild"):
        FeatureCache(tmp_path / "cache", teacher=f"hubert:{root / 'hubert'}@1")
    with pytest.raises(StaleCacheError, match="--overwrite"):
        build_cache(build_teacher(f"hubert:{root / 'hubert'}@1"), audio, tmp_path / "cache", progress=False)

    sf.write(wav_path, np.zeros(9600, "float32"), 16000)  # the file changes after caching
    with pytest.raises(StaleCacheError, match="changed"):
        cache.get(wav_path, 0, 1600, 16000)
    with pytest.raises(KeyError, match="not in the feature cache"):
        cache.get(tmp_path / "other.wav", 0, 1600, 16000)

    refreshed = build_cache(teacher, audio, tmp_path / "cache", progress=False)  # recomputes only x.wav
    assert refreshed.full(wav_path).shape[-1] == (9600 - 400) // 320 + 1


def test_kmeans_recovers_separated_clusters_and_round_trips(tmp_path):
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [-5.0, -5.0, 0]])
    truth = torch.randint(0, 4, (400,))
    points = centres[truth] + 0.3 * torch.randn(400, 3)
    units = fit_kmeans(points, 4, seed=1)
    assigned = units.assign(points.T)  # [D, T] -> [T]
    for cluster in range(4):  # every true cluster maps to a single unit
        assert assigned[truth == cluster].unique().numel() == 1
    assert assigned.unique().numel() == 4
    assert units.assign(points.T[None].repeat(2, 1, 1)).shape == (2, 400)  # [B, D, T] -> [B, T]

    units.metadata["teacher"] = {"kind": "test"}
    loaded = KMeansUnits.load(units.save(tmp_path / "units.safetensors"))
    torch.testing.assert_close(loaded.centroids, units.centroids)
    assert loaded.metadata["teacher"] == {"kind": "test"} and loaded.metadata["k"] == 4
    with pytest.raises(ValueError, match="dims"):
        loaded.assign(torch.randn(5, 10))


def test_cli_kmeans_on_cache(setup, tmp_path, capsys):
    root, _, cache = setup
    out = tmp_path / "units.safetensors"
    assert audiotok_main(["distill", "kmeans", "--cache", str(root / "cache"), "--k", "8", "--out", str(out)]) == 0
    units = KMeansUnits.load(out)
    assert units.centroids.shape == (8, 16) and units.metadata["teacher_hash"] == cache.teacher_hash
    frames = units.assign(cache.full(root / "audio" / "a.wav"))
    assert frames.shape == (cache.full(root / "audio" / "a.wav").shape[-1],) and frames.max() < 8
    assert "8 units fitted" in capsys.readouterr().out


def test_cli_cache_reports_bad_teacher(tmp_path, capsys):
    code = audiotok_main(["distill", "cache", "--teacher", "bert:x", "--data", str(tmp_path), "--out", str(tmp_path / "c")])
    assert code == 2 and "unknown teacher kind" in capsys.readouterr().err


def test_index_records_teacher_and_rates(setup):
    root, teacher, _ = setup
    index = json.loads((root / "cache" / "index.json").read_text())
    assert index["teacher"] == teacher.config_dict() and index["frame_rate"] == "50"
    assert all(entry["frames"] > 0 for entry in index["files"].values())
