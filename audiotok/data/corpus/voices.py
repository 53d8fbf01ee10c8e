"""The corpus speakers: flite and espeak-ng voices with pitch/rate variants, and how to run them.

A speaker is a (engine, voice, variant, pitch, rate) combination. flite's ``int_f0_target_mean``
moves the pitch of awb, slt and kal16 (rms ignores it, so its variant differs by rate only);
``duration_stretch`` > 1 speaks slower. espeak-ng takes ``-p`` pitch (0-99) and ``-s`` words/min.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

INSTALL_HINT = "apt-get install -y flite espeak-ng"


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker. ``pitch``: Hz for flite (None = voice default), 0-99 for espeak-ng;
    ``rate``: duration stretch for flite, words per minute for espeak-ng."""

    speaker: str
    engine: str  # "flite" or "espeak-ng"
    voice: str
    pitch: float | None = None
    rate: float | None = None
    held_out: bool = False  # only in the test split (an unseen speaker)

    def command(self, text: str, out_wav: Path) -> list[str]:
        """The command line that writes ``text`` spoken by this voice to ``out_wav``."""
        if self.engine == "flite":
            cmd = ["flite", "-voice", self.voice]
            if self.pitch is not None:
                cmd += ["--setf", f"int_f0_target_mean={self.pitch:g}"]
            if self.rate is not None:
                cmd += ["--setf", f"duration_stretch={self.rate:g}"]
            return cmd + ["-t", text, "-o", str(out_wav)]
        cmd = ["espeak-ng", "-v", self.voice, "-w", str(out_wav)]
        if self.pitch is not None:
            cmd += ["-p", f"{int(self.pitch)}"]
        if self.rate is not None:
            cmd += ["-s", f"{int(self.rate)}"]
        return cmd + ["--", text]

    def settings(self) -> dict:
        return asdict(self)


VOICES: tuple[Voice, ...] = (
    Voice("flite-awb", "flite", "awb"),
    Voice("flite-awb-high", "flite", "awb", pitch=160, rate=1.1),
    Voice("flite-rms", "flite", "rms"),
    Voice("flite-rms-fast", "flite", "rms", rate=0.88, held_out=True),
    Voice("flite-slt", "flite", "slt"),
    Voice("flite-slt-high", "flite", "slt", pitch=210, rate=0.95),
    Voice("flite-kal16", "flite", "kal16"),
    Voice("flite-kal16-high", "flite", "kal16", pitch=135, rate=1.1),
    Voice("espeak-us", "espeak-ng", "en-us"),
    Voice("espeak-us-f2", "espeak-ng", "en-us+f2", pitch=65, rate=150),
    Voice("espeak-rp-m3", "espeak-ng", "en-gb-x-rp+m3", pitch=40, rate=160),
    Voice("espeak-gb-f4", "espeak-ng", "en+f4", pitch=70, rate=165),
    Voice("espeak-scotland-m7", "espeak-ng", "en-gb-scotland+m7", pitch=45, rate=155),
    Voice("espeak-nyc-m2", "espeak-ng", "en-us-nyc+m2", pitch=35, rate=170),
    Voice("espeak-caribbean-f1", "espeak-ng", "en-029+f1", pitch=60, rate=150, held_out=True),
    Voice("espeak-midlands-f3", "espeak-ng", "en-gb-x-gbcwmd+f3", pitch=55, rate=145,
          held_out=True),
)


def check_engines(voices=VOICES) -> None:
    """Raise ``RuntimeError`` naming each missing synthesiser and the install command."""
    needed = sorted({v.engine for v in voices})
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the speech corpus needs {' and '.join(missing)}, which is not installed (not on PATH). "
            f"Install it with: sudo {INSTALL_HINT}"
        )


def synthesize(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``; return ``(samples [T] float32, sample_rate)``."""
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="audiotok-tts-") as tmp:
        out = Path(tmp) / "out.wav"
        try:
            subprocess.run(voice.command(text, out), check=True, capture_output=True, timeout=120)
        except FileNotFoundError:
            check_engines([voice])
            raise
        except subprocess.CalledProcessError as err:
            raise RuntimeError(
                f"{voice.engine} failed for speaker {voice.speaker} "
                f"({err.stderr.decode(errors='replace').strip() or err}); is the voice "
                f"{voice.voice!r} installed? ({INSTALL_HINT})"
            ) from err
        samples, sample_rate = sf.read(str(out), dtype="float32", always_2d=True)
    return samples.mean(axis=1), sample_rate
