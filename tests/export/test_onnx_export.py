"""ONNX export of every codec family: onnxruntime gives the torch codes and audio (issue 12)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from audiotok.codecs.codec import Codec  # noqa: E402
from audiotok.codecs.families import get_config  # noqa: E402
from audiotok.export.onnx import export_onnx  # noqa: E402
from audiotok.export.onnx_runtime import OnnxCodec  # noqa: E402
from audiotok.testing import spread_codebooks  # noqa: E402

# every family: SpeechTokenizer, Mimi, WavTokenizer, EnCodec, XCodec2 (w2v-BERT features, FSQ, RMSNorm),
# and a mix (Mimi's parts with one codebook); units are encoder-only (test below)
FAMILIES = ["speechtokenizer-tiny", "mimi-tiny", "wavtokenizer-tiny", "encodec-tiny", "xcodec2-tiny",
            "mimi-single-codebook-tiny"]
AUDIO_TOL = 1e-4


def _codec(name: str, seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    codec = Codec(get_config(name)).eval().fold_weight_norm()
    return spread_codebooks(codec, seed=seed)


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch codec, export folder), exported once per module."""
    out = {}
    for name in FAMILIES:
        codec = _codec(name)
        out[name] = (codec, export_onnx(codec, tmp_path_factory.mktemp(name.replace("-", "_"))))
    return out


def _lengths(codec: Codec) -> list[int]:
    hop = codec.hop_length
    # a partial last frame; (for Mimi) more 25 Hz steps than the attention context of 16; and less
    # than one frame (reflect padding longer than the input in the last encoder convs)
    return [7 * hop + 123, (20 if codec.is_causal else 12) * hop, hop - 7]


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_graphs_match_torch(exported, name):
    codec, folder = exported[name]
    encoder, decoder = _session(folder / "encoder.onnx"), _session(folder / "decoder.onnx")
    generator, hop = torch.Generator().manual_seed(1), codec.hop_length
    for length in _lengths(codec):
        wav = 0.3 * torch.randn(2, 1, length, generator=generator)
        with torch.no_grad():
            codes = codec.encode(wav)
            audio = codec.decode(codes)
        onnx_codes = encoder.run(None, {"audio": wav.numpy()})[0]
        assert onnx_codes.dtype == np.int64
        assert onnx_codes.shape == tuple(codes.shape) == (2, codec.num_codebooks, codec.num_frames(length))
        if length > hop:
            assert len(np.unique(onnx_codes)) > 3  # the codebooks are really used
        np.testing.assert_array_equal(onnx_codes, codes.numpy())
        onnx_audio = decoder.run(None, {"codes": codes.numpy()})[0]
        assert onnx_audio.shape == tuple(audio.shape) == (2, 1, codes.shape[-1] * codec.hop_length)
        assert np.abs(onnx_audio - audio.numpy()).max() < AUDIO_TOL


def test_units_without_a_vocoder_export_the_encoder_only(tmp_path, capsys):
    """A units tokenizer that cannot decode still tokenizes through ONNX Runtime: the encoder graph is
    written (the CLI says there is no decoder and why), codes equal torch's, and detokenizing refuses
    with the reason."""
    import audiotok
    from audiotok.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_tok = audiotok.load("hubert-units-tiny")
    torch_tok.save_pretrained(tmp_path / "saved")
    assert main(["export", "onnx", str(tmp_path / "saved"), "-o", str(tmp_path / "onnx")]) == 0
    assert "no decoder graph: no unit vocoder" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["encoder.onnx", "onnx.json"]
    meta = json.loads((tmp_path / "onnx" / "onnx.json").read_text())
    assert meta["decoder"] is None and "vocoder" in meta["decoder_unavailable"]
    onnx_tok = audiotok.load(tmp_path / "onnx", backend="onnxruntime")
    x = 0.3 * np.random.default_rng(7).standard_normal(3 * 16000 // 2).astype(np.float32)
    tokens = onnx_tok.tokenize(x, sample_rate=16000)
    assert torch.equal(tokens.codes, torch_tok.tokenize(x, sample_rate=16000).codes)
    assert len(torch.unique(tokens.codes)) > 3
    with pytest.raises(RuntimeError, match="no decoder graph: no unit vocoder"):
        onnx_tok.detokenize(tokens)


def test_export_leaves_an_unfolded_codec_working(tmp_path):
    """The export folds weight norm on its own copy; the user's codec keeps its parametrizations and
    its outputs."""
    torch.manual_seed(0)
    codec = spread_codebooks(Codec(get_config("wavtokenizer-tiny")))
    wav = 0.3 * torch.randn(1, 1, 5 * codec.hop_length, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        codes = codec.encode(wav)
    export_onnx(codec, tmp_path / "onnx", streaming=False)
    with torch.no_grad():
        assert torch.equal(codec.encode(wav), codes)
    np.testing.assert_array_equal(_session(tmp_path / "onnx" / "encoder.onnx").run(None, {"audio": wav.numpy()})[0],
                                  codes.numpy())


def test_graphs_with_external_tensors_get_one_data_file_each(tmp_path, monkeypatch):
    """Weights over protobuf's 2 GB come out of torch as one file per tensor; each graph's are gathered
    into ``<graph>.onnx.data`` (no name clashes between graphs), and ONNX Runtime runs the result.
    (Stands in for a > 2 GB model: torch's export is made to write its tensors externally.)"""
    import onnx

    real_export = torch.onnx.export

    def export_with_external_tensors(module, args, f, **options):
        real_export(module, args, f, **options)
        onnx.save_model(onnx.load(f), f, save_as_external_data=True, all_tensors_to_one_file=False,
                        size_threshold=0)

    monkeypatch.setattr(torch.onnx, "export", export_with_external_tensors)
    codec = _codec("wavtokenizer-tiny", seed=5)
    export_onnx(codec, tmp_path / "onnx", streaming=False)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "decoder.onnx", "decoder.onnx.data", "encoder.onnx", "encoder.onnx.data", "onnx.json"]
    from audiotok.data.outputs import new_file_mode

    assert (tmp_path / "onnx" / "encoder.onnx.data").stat().st_mode & 0o777 == new_file_mode()
    wav = 0.3 * torch.randn(1, 1, 5 * codec.hop_length, generator=torch.Generator().manual_seed(2))
    onnx_codec = OnnxCodec(tmp_path / "onnx", num_threads=1)
    with torch.no_grad():
        codes = codec.encode(wav)
        assert torch.equal(onnx_codec.encode(wav), codes)
        assert (onnx_codec.decode(codes) - codec.decode(codes)).abs().max() < AUDIO_TOL


def test_a_failed_export_over_an_old_one_leaves_no_loadable_mix(tmp_path, monkeypatch):
    """Re-exporting into a folder that holds an export: if the new export fails after its encoder
    graph, the folder is not loadable (no onnx.json describing old and new graphs together)."""
    from audiotok.export import onnx as onnx_export

    export_onnx(_codec("wavtokenizer-tiny", seed=6), tmp_path / "onnx", streaming=False)
    real = onnx_export._write_graph

    def fail_on_the_decoder(module, args, path, **options):
        if path.name == "decoder.onnx":
            raise RuntimeError("disk full")
        return real(module, args, path, **options)

    monkeypatch.setattr(onnx_export, "_write_graph", fail_on_the_decoder)
    with pytest.raises(RuntimeError, match="disk full"):
        export_onnx(_codec("wavtokenizer-tiny", seed=7), tmp_path / "onnx", streaming=False)
    assert not (tmp_path / "onnx" / "onnx.json").exists()
    with pytest.raises(FileNotFoundError, match="not an exported ONNX codec folder"):
        OnnxCodec(tmp_path / "onnx")


def test_onnx_json_describes_the_graphs(exported):
    codec, folder = exported["mimi-tiny"]
    meta = json.loads((folder / "onnx.json").read_text())
    assert meta["sample_rate"] == codec.sample_rate == 24000
    assert meta["hop_length"] == codec.hop_length
    assert meta["n_q"] == codec.num_codebooks == 8
    assert meta["codebook_size"] == codec.codebook_size
    assert meta["causal"] is True
    assert meta["codec_config"]["name"] == "mimi-tiny"


def test_cli_writes_the_graphs(tmp_path):
    from audiotok.cli import main

    codec = _codec("wavtokenizer-tiny", seed=3)
    codec.save_pretrained(tmp_path / "saved")
    assert main(["export", "onnx", str(tmp_path / "saved"), "-o", str(tmp_path / "onnx")]) == 0
    for name in ("encoder.onnx", "decoder.onnx", "onnx.json"):
        assert (tmp_path / "onnx" / name).is_file(), name
    wav = 0.3 * torch.randn(1, 1, 5 * codec.hop_length, generator=torch.Generator().manual_seed(2))
    onnx_codes = _session(tmp_path / "onnx" / "encoder.onnx").run(None, {"audio": wav.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_array_equal(onnx_codes, codec.encode(wav).numpy())


def test_cli_bad_model_is_one_error_line(tmp_path, capsys):
    from audiotok.cli import main

    assert main(["export", "onnx", str(tmp_path / "missing"), "-o", str(tmp_path / "onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot load the model")


@pytest.mark.parametrize("name", ["mimi-tiny", "speechtokenizer-tiny"])
def test_load_with_onnxruntime_backend_matches_torch(tmp_path, monkeypatch, name):
    import audiotok

    monkeypatch.setenv("AUDIOTOK_ONNX_CACHE", str(tmp_path / "cache"))
    _codec(name, seed=4).save_pretrained(tmp_path / "saved")
    hop = Codec(get_config(name)).hop_length
    rng = np.random.default_rng(5)
    items = [0.3 * rng.standard_normal(9 * hop + 50).astype(np.float32),
             0.3 * rng.standard_normal(6 * hop).astype(np.float32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_tok = audiotok.load(tmp_path / "saved")
        onnx_tok = audiotok.load(tmp_path / "saved", backend="onnxruntime")
    assert isinstance(onnx_tok.codec, OnnxCodec)
    assert (onnx_tok.sample_rate, onnx_tok.hop_length, onnx_tok.num_codebooks, onnx_tok.codebook_size) == (
        torch_tok.sample_rate, torch_tok.hop_length, torch_tok.num_codebooks, torch_tok.codebook_size)
    ours, theirs = onnx_tok.tokenize(items), torch_tok.tokenize(items)
    assert torch.equal(ours.codes, theirs.codes) and torch.equal(ours.lengths, theirs.lengths)
    audio_ours, audio_theirs = onnx_tok.detokenize(theirs), torch_tok.detokenize(theirs)
    assert torch.equal(audio_ours.lengths, audio_theirs.lengths)
    assert (audio_ours.audio - audio_theirs.audio).abs().max() < AUDIO_TOL
    # fewer codebooks than exported: a prefix of the codes
    assert torch.equal(onnx_tok.tokenize(items, n_q=1).codes, torch_tok.tokenize(items, n_q=1).codes)
    # the export is cached (keyed by the weights) and an exported folder loads directly
    cached = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1
    again = audiotok.load(cached[0], backend="onnxruntime")
    assert torch.equal(again.tokenize(items).codes, theirs.codes)


def test_an_exported_folder_loads_and_runs_from_the_cli_without_a_backend_flag(exported, tmp_path):
    """An ONNX folder can only mean ONNX Runtime: ``audiotok.load(folder)`` picks it (an explicit torch
    backend is refused with what to do), and ``tokenize`` / ``detokenize`` / ``stream`` take the folder
    as their model."""
    import soundfile as sf

    import audiotok
    from audiotok.cli import main

    codec, folder = exported["mimi-tiny"]
    assert isinstance(audiotok.load(folder).codec, OnnxCodec)
    with pytest.raises(ValueError, match="is an ONNX export"):
        audiotok.load(folder, backend="torch")
    hop = codec.hop_length
    wav = (0.3 * np.random.default_rng(8).standard_normal(9 * hop)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, codec.sample_rate, subtype="FLOAT")
    with torch.no_grad():
        expected = codec.encode(torch.from_numpy(wav)[None, None])
    assert main(["tokenize", str(tmp_path / "a.wav"), "-o", str(tmp_path / "codes"), "-m", str(folder)]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "codes" / "a.npy"), expected[0].numpy())
    assert main(["detokenize", str(tmp_path / "codes"), "-o", str(tmp_path / "wavs"), "-m", str(folder)]) == 0
    with torch.no_grad():
        decoded = codec.decode(expected)[0, 0].numpy()
    assert np.abs(sf.read(tmp_path / "wavs" / "a.wav", dtype="float32")[0] - decoded).max() < 1e-4
    assert main(["stream", str(tmp_path / "a.wav"), str(tmp_path / "streamed.wav"), "--codec", str(folder)]) == 0
    assert np.abs(sf.read(tmp_path / "streamed.wav", dtype="float32")[0] - decoded).max() < 1e-4
    # the graphs decode exactly the exported codebooks: fewer is one error line, before any audio
    assert main(["stream", str(tmp_path / "a.wav"), str(tmp_path / "fewer.wav"), "--codec", str(folder),
                 "--n-q", "4"]) == 2
    assert not (tmp_path / "fewer.wav").exists()
    np.save(tmp_path / "four_levels.npy", expected[0, :4].numpy())
    assert main(["detokenize", str(tmp_path / "four_levels.npy"), "-o", str(tmp_path / "w4"), "-m", str(folder)]) == 1
    assert not (tmp_path / "w4" / "four_levels.wav").exists()


def test_ray_engine_ships_an_onnx_tokenizer_to_its_workers(exported):
    """The Ray engine sends the model through the object store as bytes: an ONNX tokenizer goes as its
    exported files (it has no torch weights to save) and comes back running the same graphs."""
    pytest.importorskip("pyarrow")
    from audiotok.tokenizers.dataset_ray import pack_tokenizer, unpack_tokenizer
    from audiotok.tokenizers.tokenizer import Tokenizer

    codec, folder = exported["wavtokenizer-tiny"]
    packed = pack_tokenizer(Tokenizer(OnnxCodec(folder)))
    assert packed["onnx"] and {"encoder.onnx", "decoder.onnx", "onnx.json"} <= set(packed["files"])
    rebuilt = unpack_tokenizer(packed)
    assert isinstance(rebuilt.codec, OnnxCodec)
    wav = 0.3 * torch.randn(1, 4 * codec.hop_length, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.equal(rebuilt.tokenize(wav, sample_rate=codec.sample_rate).codes, codec.encode(wav[None]))


def test_quality_bench_reports_prefixes_onnx_cannot_decode_as_missing(exported, tmp_path):
    """The quality benchmark resynthesises codebook prefixes; ONNX graphs decode exactly the exported
    number, so a shorter prefix is reported missing with the reason (it raised mid-benchmark), and the
    whole set is decoded as usual."""
    from audiotok.benchmarks.protocol import tokenizer_identity
    from audiotok.benchmarks.quality import no_decoder_reason
    from audiotok.tokenizers.tokenizer import Tokenizer

    _, folder = exported["mimi-tiny"]
    tok = Tokenizer(OnnxCodec(folder))
    assert "decode exactly 8 codebooks, got 1" in no_decoder_reason(tok, 1)
    assert no_decoder_reason(tok, 8) is None
    # the audio cache key of an ONNX tokenizer comes from its files
    assert tokenizer_identity("x", tok) == tokenizer_identity("x", Tokenizer(OnnxCodec(folder)))
    other = exported["wavtokenizer-tiny"][1]
    assert tokenizer_identity("x", tok) != tokenizer_identity("x", Tokenizer(OnnxCodec(other)))


def test_an_onnx_tokenizer_saves_a_copy_of_its_export(exported, tmp_path):
    """``Tokenizer.save_pretrained`` on the ONNX backend copies the export (onnx.json last), and the copy
    loads and tokenizes the same; a tokenizer over a temporary export (random weights) says what to do."""
    import audiotok

    codec, folder = exported["wavtokenizer-tiny"]
    tok = audiotok.load(folder)
    saved = tok.save_pretrained(tmp_path / "copy")
    assert sorted(p.name for p in saved.iterdir()) == sorted(p.name for p in folder.iterdir())
    wav = 0.3 * torch.randn(1, 3 * codec.hop_length, generator=torch.Generator().manual_seed(10))
    assert torch.equal(audiotok.load(saved).tokenize(wav, sample_rate=codec.sample_rate).codes,
                       tok.tokenize(wav, sample_rate=codec.sample_rate).codes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        temporary = audiotok.load("wavtokenizer-tiny", backend="onnxruntime")
    with pytest.raises(FileNotFoundError, match="audiotok export onnx NAME -o DIR"):
        temporary.save_pretrained(tmp_path / "nothing")


def test_unknown_backend_is_refused():
    import audiotok

    with pytest.raises(ValueError, match="backend"):
        audiotok.load("mimi-tiny", backend="tensorrt")


def test_streaming_step_graphs_match_offline(exported):
    """Mimi's step graphs (state as inputs/outputs), fed uneven whole-frame chunks, give the offline codes."""
    codec, folder = exported["mimi-tiny"]
    meta = json.loads((folder / "onnx.json").read_text())["streaming"]
    assert (folder / meta["encoder"]["file"]).is_file() and (folder / meta["decoder"]["file"]).is_file()
    onnx_codec = OnnxCodec(folder, num_threads=1)
    hop = codec.hop_length
    wav = 0.3 * torch.randn(2, 1, 19 * hop, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        codes, audio = codec.encode(wav), codec.decode(codec.encode(wav))
    pieces, sound = [], []
    with onnx_codec.streaming(2):
        for start, stop in [(0, 1), (1, 3), (3, 4), (4, 12), (12, 19)]:
            pieces.append(onnx_codec.encode_step(wav[..., start * hop: stop * hop]))
            sound.append(onnx_codec.decode_step(pieces[-1]))
    assert not onnx_codec.is_streaming
    assert torch.equal(torch.cat(pieces, -1), codes)
    assert (torch.cat(sound, -1) - audio).abs().max() < AUDIO_TOL
    # resetting one stream restarts it (its state rows zeroed) and leaves the other going
    with onnx_codec.streaming(2):
        first = onnx_codec.encode_step(wav[..., :4 * hop])
        onnx_codec.reset_streaming(torch.tensor([False, True]))
        second = onnx_codec.encode_step(wav[..., 4 * hop: 8 * hop])
    assert torch.equal(torch.cat([first, second], -1)[0], codes[0, :, :8])
    with torch.no_grad():
        restarted = codec.encode(wav[1:, :, 4 * hop: 8 * hop])
    assert torch.equal(second[1:], restarted)
    # the Tokenizer chunks long causal audio through them
    from audiotok.tokenizers.tokenizer import Tokenizer

    tok = Tokenizer(onnx_codec, chunk_seconds=5 * hop / codec.sample_rate)
    tokens = tok.tokenize(wav[0, 0].numpy())
    assert torch.equal(tokens.codes, codes[:1])
    assert (tok.detokenize(tokens).audio - audio[:1]).abs().max() < AUDIO_TOL
