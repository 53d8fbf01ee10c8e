"""Audio I/O, transforms, collate, text normalisation and WER (audiotok.data)."""
import math
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok.data import (
    AudioError,
    collate_audio,
    crop_or_pad,
    from_array,
    load_audio,
    normalize_loudness,
    normalize_text,
    number_to_words,
    resample,
    to_mono,
    word_error_rate,
)


def tone(sr=16000, seconds=0.5, freq=440.0, channels=1, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([mono * (c + 1) / channels for c in range(channels)], axis=1)  # [T, C]


def wav_header_file(path, sample_rate, n_samples=100):
    """A hand-made 16-bit mono WAV, so any sample rate can be put in the header."""
    data = b"\x00\x00" * n_samples
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize(
    "suffix,subtype",
    [(".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "PCM_32"), (".wav", "FLOAT"),
     (".flac", "PCM_16"), (".ogg", None), (".mp3", None)],
)
def test_formats_and_pcm_types_read_as_float32(tmp_path, suffix, subtype):
    path = tmp_path / f"a{suffix}"
    sf.write(path, tone(), 16000, subtype=subtype)
    wav, sr = load_audio(path)
    assert sr == 16000 and wav.dtype == torch.float32 and wav.shape[0] == 1
    # lossy codecs may add a little padding; the level must survive within codec tolerance
    assert abs(wav.shape[1] - 8000) < 2500
    assert 0.3 < wav.abs().max() < 0.7


def test_int_pcm_scaled_to_unit_range(tmp_path):
    path = tmp_path / "int.wav"
    sf.write(path, np.array([[32767], [-32768], [0]], dtype=np.int16), 8000, subtype="PCM_16")
    wav, _ = load_audio(path)
    assert wav[0, 0] == pytest.approx(1.0, abs=1e-4) and wav[0, 1] == -1.0 and wav[0, 2] == 0.0


def test_multichannel_downmix_and_keep(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, tone(channels=2), 16000, subtype="FLOAT")
    mono, _ = load_audio(path)
    both, _ = load_audio(path, mono=False)
    assert both.shape[0] == 2 and mono.shape[0] == 1
    assert torch.allclose(mono[0], both.mean(0))
    assert torch.allclose(to_mono(both), mono)
    assert to_mono(torch.zeros(5)).shape == (1, 5)


@pytest.mark.parametrize("orig,new", [(44100, 16000), (16000, 24000), (22050, 24000), (8000, 16000)])
def test_resample_on_load_keeps_duration_and_pitch(tmp_path, orig, new):
    path = tmp_path / "t.wav"
    sf.write(path, tone(sr=orig, seconds=1.0, freq=440), orig, subtype="FLOAT")
    wav, sr = load_audio(path, sample_rate=new)
    assert sr == new and abs(wav.shape[-1] - new) <= 1
    spectrum = torch.fft.rfft(wav[0]).abs()
    peak_hz = spectrum.argmax().item() * new / wav.shape[-1]
    assert abs(peak_hz - 440) < 3


def test_resample_tensor_shapes():
    x = torch.randn(2, 3, 1600)
    y = resample(x, 16000, 8000)
    assert y.shape == (2, 3, 800) and y.dtype == torch.float32
    assert resample(x, 16000, 16000) is x


def test_in_memory_bytes_and_arrays():
    buf = __import__("io").BytesIO()
    sf.write(buf, tone(), 16000, format="WAV")
    wav, sr = load_audio(buf.getvalue(), sample_rate=8000)
    assert sr == 8000 and wav.shape == (1, 4000)
    wav, sr = from_array(np.zeros((2, 100)), 16000)
    assert wav.shape == (1, 100)
    with pytest.raises(AudioError, match="NaN/Inf"):
        from_array(np.full(10, np.nan), 16000, name="row 3")


# ---- bad input: every case gives an AudioError naming the file and the problem ------------------

def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.flac"
    path.write_bytes(b"this is not audio at all" * 20)
    with pytest.raises(AudioError, match=r"corrupt\.flac: cannot decode audio"):
        load_audio(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(), 16000)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(AudioError, match="cut.wav"):
        load_audio(path)


def test_zero_length(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: zero-length"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples(tmp_path, bad):
    data = tone()
    data[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 NaN/Inf samples"):
        load_audio(path)


@pytest.mark.parametrize("rate", [10, 999, 2_000_000])
def test_absurd_sample_rates(tmp_path, rate):
    path = wav_header_file(tmp_path / f"sr{rate}.wav", rate)
    with pytest.raises(AudioError, match=rf"sr{rate}\.wav: absurd sample rate {rate} Hz"):
        load_audio(path)


def test_audio_error_is_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_audio(tmp_path / "missing.ogg")


# ---- transforms and collate ---------------------------------------------------------------------

def test_crop_or_pad():
    wav = torch.arange(10.0)[None]
    seg, valid = crop_or_pad(wav, 4, random=False)
    assert seg.tolist() == [[0, 1, 2, 3]] and valid == 4
    gen = torch.Generator().manual_seed(0)
    starts = {int(crop_or_pad(wav, 4, generator=gen)[0][0, 0]) for _ in range(50)}
    assert starts <= set(range(7)) and len(starts) > 3  # random offsets, always in range
    seg, valid = crop_or_pad(wav[:, :3], 5)
    assert seg.tolist() == [[0, 1, 2, 0, 0]] and valid == 3


def test_collate_audio_pads_with_lengths_and_mask():
    batch, lengths, mask = collate_audio([torch.ones(1, 3), torch.ones(1, 5), torch.ones(1, 1)])
    assert batch.shape == (3, 1, 5) and lengths.tolist() == [3, 5, 1]
    assert mask.dtype == torch.bool and mask.shape == (3, 5)
    assert mask.sum(1).tolist() == [3, 5, 1]
    assert torch.equal(batch[:, 0] != 0, mask)  # padding is zeros, mask marks real samples
    _, lengths, mask = collate_audio([torch.ones(1, 4), torch.ones(1, 4)], lengths=[2, 4])
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    with pytest.raises(ValueError, match="channel counts"):
        collate_audio([torch.ones(1, 3), torch.ones(2, 3)])


def test_normalize_loudness():
    quiet = torch.from_numpy(tone(amp=0.01)[:, 0])[None]
    out = normalize_loudness(quiet, target_dbfs=-20.0)
    rms_db = 20 * math.log10(out.pow(2).mean().sqrt().item())
    assert rms_db == pytest.approx(-20.0, abs=0.01)
    loud = normalize_loudness(quiet, target_dbfs=0.0, max_peak=0.9)
    assert loud.abs().max().item() == pytest.approx(0.9, abs=1e-4)  # peak limited
    assert torch.equal(normalize_loudness(torch.zeros(1, 10)), torch.zeros(1, 10))


# ---- text -------------------------------------------------------------------------------------

def test_number_to_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(42) == "forty two"
    assert number_to_words(100) == "one hundred"
    assert number_to_words(1905) == "one thousand nine hundred five"
    assert number_to_words(2_000_017) == "two million seventeen"


def test_normalize_text():
    assert normalize_text("Mr. Smith bought 12 eggs, 3.5 kg & more!") == (
        "mr smith bought twelve eggs three point five kg and more"
    )
    assert normalize_text("  It's   'quoted' -- well-known 1,200 café ") == (
        "it's quoted well known one thousand two hundred cafe"
    )


def test_word_error_rate():
    assert word_error_rate(["the cat sat"], ["The cat, sat!"]) == 0.0
    assert word_error_rate(["the cat sat"], ["the bat sat down"]) == pytest.approx(2 / 3)
    assert word_error_rate(["a b", "c d e f"], ["a", "c d e f"]) == pytest.approx(1 / 6)
    assert word_error_rate(["twelve dogs"], ["12 dogs"]) == 0.0
