"""Reading checkpoint files safely: ``torch.load`` weights-only with errors that name the file and the
problem, safetensors errors, and state dicts from either format.

PyTorch files (``.pt``, ``.pth``, ``.ckpt``) are read with ``torch.load(weights_only=True)``: tensors,
plain containers and numbers only, plus the harmless value types in :data:`SAFE_GLOBALS`. Unpickling
anything else can run code hidden in the file, so it needs an explicit ``trust_checkpoint=True``.
"""
from __future__ import annotations

import contextlib
import pathlib
import pickle
import re
from pathlib import Path

import torch

from audiotok.errors import CheckpointError

State = dict[str, torch.Tensor]

# Globals a weights-only load may construct besides tensors, containers and numbers. Checkpoints of
# `audiotok fit` (Lightning 2.x: state_dict, loops, callbacks, optimizer and scheduler states,
# hyper-parameters, our codec config and recipe as plain dicts) need none of them; paths are listed
# because hyper-parameters may hold one, and building a path runs no code.
SAFE_GLOBALS: tuple = (pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath,
                       pathlib.PureWindowsPath)
TRUST_ADVICE = ("pass trust_checkpoint=True only if you trust this file (unpickling it can run any code "
                "hidden in it)")


def unreadable_safetensors(path: Path, err: Exception) -> CheckpointError:
    """The error for a ``.safetensors`` file that safetensors cannot open (truncated, not safetensors)."""
    size = path.stat().st_size if path.exists() else 0
    return CheckpointError(f"{path}: not a readable safetensors file ({err}; {size} bytes); it is probably "
                           "truncated or corrupt: download or copy it again")


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
PICKLE_PROTO = 0x80  # a pickle (torch.save's legacy format) starts with PROTO


def torch_load_checkpoint(path: str | Path, trust_checkpoint: bool = False):
    """``torch.load`` a ``.pt``/``.pth``/``.ckpt`` on the CPU, weights-only unless ``trust_checkpoint``.

    Raises :class:`CheckpointError` naming the file and the problem: empty, truncated or not a
    PyTorch file at all, or (weights-only) pickling Python objects, with the globals it asked for.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes): the download or copy did not finish; fetch "
                              "it again")
    is_zip = head == ZIP_MAGIC
    if not is_zip and head[0] != PICKLE_PROTO:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with bytes {head!r}, neither "
                              "torch.save's zip archive nor a pickle); it is corrupt or another format")
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with (allow(list(SAFE_GLOBALS)) if allow and not trust_checkpoint else contextlib.nullcontext()):
            return torch.load(str(path), map_location="cpu", weights_only=not trust_checkpoint, mmap=is_zip)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        if not trust_checkpoint and found:
            raise CheckpointError(
                f"{path} pickles Python objects ({', '.join(found)}), which a weights-only load refuses; "
                f"{TRUST_ADVICE}") from None
        if not trust_checkpoint and "Weights only load failed" in text:
            raise CheckpointError(
                f"{path} could not be read as weights only ({_last_line(text)}): it is corrupt, or it "
                f"pickles Python objects; {TRUST_ADVICE}") from None
        raise CheckpointError(f"{path} is corrupt (unpickling failed: {_last_line(text)}); fetch it "
                              "again") from None
    except (RuntimeError, EOFError, OSError) as err:
        what = "zip archive" if is_zip else "pickle"
        raise CheckpointError(f"{path} is truncated or corrupt (reading its {what} failed: "
                              f"{_last_line(str(err)) or type(err).__name__}); download or copy it "
                              "again") from None
    except (ValueError, LookupError, TypeError, AttributeError) as err:  # garbage opcodes, missing classes
        raise CheckpointError(f"{path}: unpickling failed ({type(err).__name__}: {_last_line(str(err))}); the "
                              "file is corrupt or was written by code this environment lacks") from None


def _last_line(text: str) -> str:
    """The informative part of a torch error: its first sentence, or the WeightsUnpickler reason."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else ""
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            reason = (line.split("WeightsUnpickler error:", 1)[1].strip()
                      or (lines[i + 1] if i + 1 < len(lines) else ""))
            break
    return reason.split(". ")[0].rstrip(".")[:200]


def read_state(path: str | Path, trust_checkpoint: bool = False) -> State:
    """Tensors of a ``.safetensors`` file or a torch-saved state dict (weights only: no code is
    unpickled unless ``trust_checkpoint``); :class:`CheckpointError` naming a bad file."""
    path = Path(path)
    if path.suffix in (".safetensors", ".sft", ".sfts"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:
            if type(err).__name__ == "SafetensorError":
                raise unreadable_safetensors(path, err) from None
            raise
    state = torch_load_checkpoint(path, trust_checkpoint)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state
