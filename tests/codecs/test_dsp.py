"""Mel filterbank (vs librosa or known values), STFT helper and MelSpectrogram."""

import math

import pytest
import torch

from audiotok.dsp import MelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz, stft


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_scale_round_trip(scale):
    freqs = torch.tensor([0.0, 100.0, 999.0, 1000.0, 4000.0, 11025.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(freqs, scale), scale), freqs, atol=1e-6)


def test_mel_scale_known_values():
    # HTK: 1000 Hz is ~1000 mel; Slaney: linear at 200/3 Hz per mel up to 1000 Hz = mel 15, then log.
    assert float(hz_to_mel(torch.tensor(1000.0), "htk")) == pytest.approx(999.9856, abs=1e-3)
    assert float(hz_to_mel(torch.tensor(1000.0), "slaney")) == pytest.approx(15.0)
    assert float(hz_to_mel(torch.tensor(200.0), "slaney")) == pytest.approx(3.0)
    assert float(hz_to_mel(torch.tensor(6400.0), "slaney")) == pytest.approx(15.0 + 27.0)


@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax,scale,norm",
    [
        (16000, 1024, 80, 0.0, None, "htk", "slaney"),  # SpeechTokenizer
        (24000, 1024, 100, 0.0, None, "htk", None),  # Vocos / WavTokenizer (torchaudio defaults)
        (24000, 512, 80, 0.0, None, "slaney", "slaney"),  # DAC (librosa defaults)
        (24000, 256, 64, 64.0, 8000.0, "htk", None),  # EnCodec msspec
        (16000, 128, 80, 0.0, None, "htk", "slaney"),  # empty filters
    ],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, scale, norm):
    librosa = pytest.importorskip("librosa", reason="librosa not installed: reference filterbank unavailable")
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale, norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=scale == "htk", norm=norm)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    assert torch.allclose(ours, torch.from_numpy(ref).float(), rtol=1e-4, atol=1e-7)


def test_mel_filterbank_slaney_norm_constant_area():
    fb = mel_filterbank(22050, 4096, 40, scale="slaney", norm=None)
    assert fb.max() == pytest.approx(1.0, abs=0.05)  # unnormalised triangles peak near 1
    with pytest.raises(ValueError, match="fmin"):
        mel_filterbank(16000, 512, 40, fmin=9000.0)


@pytest.mark.parametrize("padding,frames", [("center", 8000 // 200 + 1), ("same", 8000 // 200), ("none", (8000 - 800) // 200 + 1)])
def test_stft_shapes(padding, frames):
    spec = stft(torch.randn(2, 1, 8000), n_fft=800, hop_length=200, padding=padding)
    assert spec.shape == (2, 401, frames) and spec.is_complex()


def test_stft_normalized_by_window_norm():
    wav = torch.randn(1, 4000)
    raw = stft(wav, 512, 128, padding="none")
    norm = stft(wav, 512, 128, padding="none", normalized=True)
    expected = torch.hann_window(512).square().sum().sqrt()
    assert torch.allclose(raw / norm, torch.full_like(raw.real, float(expected)).to(raw.dtype), rtol=1e-4)


def test_mel_spectrogram_of_sine_peaks_at_its_frequency():
    sr, freq = 16000, 1000.0
    t = torch.arange(sr // 2) / sr
    wav = torch.sin(2 * math.pi * freq * t)[None, None]
    mel = MelSpectrogram(sr, 1024, 256, n_mels=80, mel_scale="htk", norm=None, log=False)
    out = mel(wav)
    assert out.shape == (1, 80, (sr // 2) // 256 + 1)
    peak_band = int(out[0, :, 5:-5].mean(-1).argmax())
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(8000.0))), 82), "htk")[1:-1]
    assert abs(float(centres[peak_band]) - freq) < 100.0
    log_mel = MelSpectrogram(sr, 1024, 256, n_mels=80, clamp_min=1e-5)(torch.zeros(1, 1, 4000))
    assert torch.allclose(log_mel, torch.full_like(log_mel, math.log(1e-5)))


def test_stft_rejects_multichannel():
    with pytest.raises(ValueError, match="mono"):
        stft(torch.randn(2, 2, 1000), 256, 64)
