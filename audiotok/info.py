"""The table behind ``audiotok info`` (:mod:`audiotok.cli.info` prints it): registered codec architectures
and shipped trained tokenizers, with rates, sizes and whether their weights are trained.

Fast: the table is computed once (building each architecture on the ``meta`` device, loading the tiny
shipped models) and cached in ``$AUDIOTOK_CACHE`` (default ``~/.cache/audiotok``) under a key that
hashes the codec source files and the shipped models, so a later listing reads the cache without
importing torch and any change to an architecture or a shipped model recomputes it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PRETRAINED_ROOT = PACKAGE / "assets" / "pretrained"  # as audiotok.tokenizers.pretrained (not imported: slow)
CACHE_VERSION = 1
COLUMNS = (  # (key, header)
    ("name", "name"), ("weights", "weights"), ("family", "family"), ("sample_rate", "rate Hz"),
    ("hop", "hop"), ("frame_rate", "frames/s"), ("codebooks", "codebooks"), ("size", "size"),
    ("bitrate", "kbps"), ("causal", "causal"), ("params", "params M"),
)
TRAINED, RANDOM = "trained", "random"
NOTE = (f"weights: {TRAINED} = a small model trained on the built-in corpus, shipped with the package; "
        f"{RANDOM} = a registered architecture: audiotok.load(name) builds it with fresh random weights "
        "(for shapes and tests; train it or load official weights for real codes). codebooks: used by "
        "default / available; size: codes per codebook.")


def shipped_names() -> list[str]:
    """Shipped trained tokenizers: folders with config.json + model.safetensors (see
    :func:`audiotok.tokenizers.pretrained.available_pretrained`)."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(f.name for f in PRETRAINED_ROOT.iterdir()
                  if f.is_dir() and (f / "config.json").is_file() and (f / "model.safetensors").is_file())


def cache_key() -> str:
    """SHA-256 over everything the table depends on: codec sources, the family modules (the configs),
    and the shipped models."""
    from audiotok import __version__

    digest = hashlib.sha256(f"v{CACHE_VERSION} audiotok {__version__}\n".encode())
    sources = [*(PACKAGE / "codecs").rglob("*.py"), *(PACKAGE / "families").rglob("*.py"),
               *PACKAGE.glob("registry.py")]
    for path in sorted(sources):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    for name in shipped_names():
        folder = PRETRAINED_ROOT / name
        weights = (folder / "model.safetensors").stat()
        digest.update(f"{name}\0{weights.st_size}\0{weights.st_mtime_ns}\0".encode())
        digest.update((folder / "config.json").read_bytes())
    return digest.hexdigest()


def cache_file(key: str) -> Path:
    root = Path(os.environ.get("AUDIOTOK_CACHE") or Path.home() / ".cache" / "audiotok")
    return root / f"info-{key[:20]}.json"


def describe(codec, name: str, trained: bool) -> dict:
    return {"name": name, "weights": TRAINED if trained else RANDOM, "family": codec.config.family,
            "sample_rate": str(codec.sample_rate), "hop": str(codec.hop_length),
            "frame_rate": f"{codec.frame_rate:g}", "codebooks": f"{codec.num_codebooks}/{codec.max_codebooks}",
            "size": str(codec.codebook_size), "bitrate": f"{codec.bitrate / 1000:.3f}",
            "causal": "yes" if codec.is_causal else "no", "params": f"{codec.num_parameters() / 1e6:.2f}"}


def compute_rows(names: list[str] | None) -> list[dict]:
    """The slow path: build each codec (registered ones on the meta device: no memory, no init)."""
    import torch

    from audiotok.errors import CommandError
    from audiotok.codecs import Codec, available, build_codec

    shipped, registered = shipped_names(), available()
    rows = []
    for name in names or registered + shipped:
        if name in shipped:
            rows.append(describe(Codec.from_pretrained(PRETRAINED_ROOT / name), name, trained=True))
        elif name in registered:
            with torch.device("meta"):
                rows.append(describe(build_codec(name), name, trained=False))
        else:
            raise CommandError(f"{name!r} is not a registered codec or a shipped trained tokenizer; "
                               f"`audiotok info` lists them: {', '.join(registered + shipped)}")
    return rows


def codec_rows(names: list[str] | None = None) -> list[dict]:
    """Rows of the table for ``names`` (default: every registered and shipped name), from the cache
    when it is current; the cache is (re)written after computing the full table."""
    path = cache_file(cache_key())
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        table = {row["name"]: row for row in json.loads(path.read_text())["rows"]}
        if not names:
            return list(table.values())
        if all(n in table for n in names):
            return [table[n] for n in names]
    if names:
        return compute_rows(names)
    rows = compute_rows(None)
    with contextlib.suppress(OSError):  # no writable cache: just slower next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"rows": rows}, indent=1))
        os.replace(tmp, path)
    return rows


def plain_table(rows: list[dict]) -> str:
    """Aligned text columns, nothing cut or wrapped (for pipes, files and ``--plain``)."""
    header = [h for _, h in COLUMNS]
    body = [[row[k] for k, _ in COLUMNS] for row in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *body]]
    return "\n".join(lines)


def rich_table(rows: list[dict]):
    """A rich ``Table`` of ``rows`` with :data:`NOTE` as its caption; nothing wraps or is cut (check the
    terminal's width first: :func:`audiotok.cli.info.run`)."""
    from rich import box
    from rich.table import Table

    table = Table(title="audiotok codecs", caption=NOTE, caption_justify="left", box=box.SIMPLE_HEAD)
    for key, header in COLUMNS:
        table.add_column(header, no_wrap=True, justify="left" if key in ("name", "weights", "family") else "right")
    for row in rows:
        table.add_row(*[row[k] for k, _ in COLUMNS])
    return table
