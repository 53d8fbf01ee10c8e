"""Parity with the reference SpeechTokenizer (PyPI ``speechtokenizer`` 1.0.1, full size, random init).

The reference model, with codebooks spread around its own latents, is saved in the official layout
(``config.json`` + ``SpeechTokenizer.pt``, old-style weight norm), loaded through ``audiotok.load``
(which converts and folds weight norm), and must give identical codes and decoded audio within 1e-4
on 3 s of speech and of noise.
"""
import json

import pytest
import torch

import audiotok
from audiotok.benchmarks import references
from audiotok.testing import spread_encodec_codebooks

try:
    SpeechTokenizer = references.speechtokenizer_class()
except ImportError as err:
    pytest.skip(f"reference package unavailable: {err}", allow_module_level=True)

pytestmark = pytest.mark.parity
SR = 16000


SIGNALS = ("speech", "noise")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Reference and our codes / audio for a batch ``[speech; noise]`` of 3 s each."""
    torch.manual_seed(1)
    wav = torch.cat([references.synthetic_speech(3.0, SR), 0.1 * torch.randn(1, 1, 3 * SR)])
    torch.manual_seed(0)
    model = SpeechTokenizer(references.SPEECHTOKENIZER_CONFIG).eval()
    references.propagate_signal(model.encoder)  # latents that vary: residuals far above float rounding
    with torch.no_grad():
        latents = model.encoder(wav)  # what model.encode quantizes; computed once, reused below

    references.propagate_signal(model.decoder)  # a fresh decoder's output barely depends on codes
    spread_encodec_codebooks(latents, [layer._codebook for layer in model.quantizer.vq.layers])
    with torch.no_grad():
        ref_codes = model.quantizer.encode(latents)  # [Q, B, F]
        ref_audio = model.decode(ref_codes)
    folder = tmp_path_factory.mktemp("speechtokenizer_official")
    (folder / "config.json").write_text(json.dumps(references.SPEECHTOKENIZER_CONFIG))
    torch.save(model.state_dict(), folder / "SpeechTokenizer.pt")
    ours = audiotok.load(folder)
    codes = ours.tokenize(list(wav), sample_rate=SR).codes
    audio = ours.detokenize(codes).audio
    return {"ref_codes": ref_codes.transpose(0, 1), "ref_audio": ref_audio, "codes": codes, "audio": audio}


def test_codebooks_have_spread_and_audio_depends_on_codes(outputs):
    for row in outputs["ref_codes"]:
        assert torch.unique(row[0]).numel() > 20 and torch.unique(row[-1]).numel() > 20
    ref_audio = outputs["ref_audio"]
    assert (ref_audio[0] - ref_audio[1]).abs().max() > 1e-2


@pytest.mark.parametrize("index, signal", enumerate(SIGNALS))
def test_identical_codes_and_audio_within_1e4(outputs, index, signal):
    ref_codes, codes = outputs["ref_codes"][index], outputs["codes"][index]
    assert codes.shape == ref_codes.shape == (8, 150)
    assert torch.equal(codes, ref_codes)
    ref_audio, audio = outputs["ref_audio"][index], outputs["audio"][index]
    assert audio.shape == ref_audio.shape == (1, 150 * 320)
    diff = (audio - ref_audio).abs().max().item()
    print(f"speechtokenizer {signal}: codes identical, audio max abs diff {diff:.2e} "
          f"(audio peak {ref_audio.abs().max().item():.3f})")
    assert diff < 1e-4
