"""Figures of a report as PNG bytes (matplotlib, Agg backend, imported only here)."""
from __future__ import annotations

import io

import numpy as np

QUALITY_AXES = (("stoi", "STOI ↑"), ("pesq_wb", "PESQ-WB ↑"), ("mel_distance", "mel distance ↓"),
                ("wer", "resynthesis WER ↓"), ("speaker_sim", "speaker similarity ↑"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def bitrate_vs_quality(report: dict) -> bytes:
    """One panel per quality metric: each tokenizer's codebook prefixes as a line over bitrate,
    the originals' value (ground truth) as a dashed line; one colour per tokenizer throughout."""
    plt = _pyplot()
    wanted = [(k, t) for k, t in QUALITY_AXES if any(r.get(k) is not None for r in report["rows"] if "bitrate" in r)]
    wanted = wanted or [("stoi", "STOI ↑")]
    cols = min(3, len(wanted))
    rows = -(-len(wanted) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    names = list(dict.fromkeys(r["tokenizer"] for r in report["rows"] if "bitrate" in r))
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    for ax, (key, title) in zip(axes.flat, wanted):
        for name in names:
            pts = sorted((r["bitrate"] / 1000, r[key]) for r in report["rows"]
                         if r["tokenizer"] == name and r.get(key) is not None and "bitrate" in r)
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colors[name], label=name)
        truth = next((r.get(key) for r in report["rows"] if r["tokenizer"] == "ground truth"), None)
        if truth is not None:
            ax.axhline(truth, color="gray", linestyle="--", linewidth=1, label="ground truth")
        ax.set_xscale("log")
        ax.set_xlabel("bitrate (kbps)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(wanted):]:
        ax.axis("off")
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    random_names = sorted({r["tokenizer"] for r in report["rows"] if r.get("random_weights")})
    if random_names:
        fig.suptitle(f"random (untrained) weights: {', '.join(random_names)}", fontsize=9, color="firebrick")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def codebook_usage_plot(report: dict) -> bytes:
    """Per-codebook perplexity as a share of the codebook size, one group of bars per tokenizer."""
    plt = _pyplot()
    usage = report["usage"]
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / max(len(usage), 1)
    for k, (name, rows) in enumerate(usage.items()):
        sizes = next((r["codebook_size"] for r in report["rows"] if r["tokenizer"] == name and "codebook_size" in r), None)
        values = [u["perplexity"] / sizes if sizes else u["normalized_entropy"] for u in rows]
        ax.bar(np.arange(len(values)) + k * width, values, width, label=name)
    ax.set_xlabel("codebook")
    ax.set_ylabel("perplexity / codebook size")
    ax.set_title("codebook usage (test split)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def spectrograms(named_audio: list[tuple[str, np.ndarray]], sample_rate: int) -> bytes:
    """Log-magnitude spectrograms stacked vertically, one per (label, ``[T]`` audio)."""
    import torch

    from audiotok.dsp import stft

    plt = _pyplot()
    fig, axes = plt.subplots(len(named_audio), 1, figsize=(7, 1.6 * len(named_audio)), squeeze=False)
    for ax, (label, audio) in zip(axes[:, 0], named_audio):
        spec = stft(torch.as_tensor(audio, dtype=torch.float32)[None, None], 512, 128, 512).abs()[0]
        ax.imshow((20 * spec.clamp(min=1e-5).log10()).numpy(), origin="lower", aspect="auto", cmap="magma",
                  vmin=-100, vmax=20, extent=(0, len(audio) / sample_rate, 0, sample_rate / 2000))
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    return _png(fig)
