"""Shared output of every benchmark: a rich table on the terminal and a JSON file on disk.

Each benchmark builds a list of row dicts and calls :func:`emit`. Machine facts (CPU, threads,
torch version) go into the JSON so numbers can be compared only where they are comparable.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def emit(title: str, rows: Sequence[dict[str, Any]], out: str | Path | None,
         columns: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> dict:
    """Print ``rows`` as a table titled ``title`` and, if ``out`` is given, write them as JSON."""
    from rich.console import Console
    from rich.table import Table

    columns = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    Console().print(table)
    result = {"title": title, "machine": machine_info(), "rows": list(rows), **(extra or {})}
    if out is not None:
        from audiotok.data.outputs import write_atomic

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=2, default=str)
        write_atomic(out, lambda tmp: tmp.write_text(text))
        Console().print(f"wrote {out}")
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
