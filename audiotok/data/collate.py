"""Batching variable-length audio: zero padding plus lengths and a padding mask.

``padding_mask`` follows the Hugging Face codec convention: ``True`` on real samples, ``False`` on
padding (``~padding_mask`` is PyTorch's ``key_padding_mask``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from audiotok.data.transforms import length_mask


def collate_audio(
    wavs: Sequence[torch.Tensor], lengths: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ``[C, T_i]`` clips into ``(batch [B, C, T_max], lengths [B], padding_mask [B, T_max])``.

    ``lengths`` overrides the valid length of clips that already carry padding (fixed-size crops).
    """
    if len(wavs) == 0:
        raise ValueError("collate_audio needs at least one clip")
    wavs = [w.unsqueeze(0) if w.dim() == 1 else w for w in wavs]
    channels = {w.shape[0] for w in wavs}
    if len(channels) != 1:
        raise ValueError(f"clips have different channel counts {sorted(channels)}; use mono=True")
    max_length = max(w.shape[-1] for w in wavs)
    batch = wavs[0].new_zeros(len(wavs), channels.pop(), max_length)
    for i, w in enumerate(wavs):
        batch[i, :, : w.shape[-1]] = w
    if lengths is None:
        lengths = [w.shape[-1] for w in wavs]
    lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
    return batch, lengths_t, length_mask(lengths_t, max_length)


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for dataset items: audio batched, other fields as lists.

    Returns ``{"audio": [B, C, T], "lengths": [B], "padding_mask": [B, T], "sample_rate": int,
    "offsets": [B] (each crop's first sample in its file), "text", "speaker", "id", "path": lists}``.
    """
    rates = {item["sample_rate"] for item in items}
    if len(rates) != 1:
        raise ValueError(f"batch mixes sample rates {sorted(rates)}; pass sample_rate= to the dataset")
    audio, lengths, mask = collate_audio([i["audio"] for i in items], [i["length"] for i in items])
    batch: dict[str, Any] = {
        "audio": audio, "lengths": lengths, "padding_mask": mask, "sample_rate": rates.pop(),
        "offsets": torch.as_tensor([item.get("offset", 0) for item in items], dtype=torch.long),
    }
    for key in ("text", "speaker", "id", "path"):
        batch[key] = [item.get(key) for item in items]
    return batch
