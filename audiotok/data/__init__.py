"""Audio data: file I/O, transforms, datasets, batching, and the offline speech corpus.

Quick use::

    from audiotok.data import build_dataset, collate_items
    from audiotok.data.corpus import ensure_corpus

    ds = build_dataset(ensure_corpus("tiny"), split="train", sample_rate=24000, segment_length=24000)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate_items)
"""
from audiotok.data.audio_io import AudioError, from_array, load_audio, save_audio
from audiotok.data.collate import collate_audio, collate_items
from audiotok.data.datasets import (
    AudioDataset,
    AudioFolderDataset,
    AudioSkipWarning,
    HFAudioDataset,
    ItemsDataset,
    LibriSpeechDataset,
    ManifestDataset,
    build_dataset,
)
from audiotok.data.sources import AudioItem, read_manifest, write_manifest
from audiotok.data.text import normalize_text, number_to_words
from audiotok.data.transforms import crop_or_pad, length_mask, normalize_loudness, resample, to_mono
from audiotok.data.wer import word_error_rate

__all__ = [
    "AudioDataset",
    "AudioError",
    "AudioFolderDataset",
    "AudioItem",
    "AudioSkipWarning",
    "HFAudioDataset",
    "ItemsDataset",
    "LibriSpeechDataset",
    "ManifestDataset",
    "build_dataset",
    "collate_audio",
    "collate_items",
    "crop_or_pad",
    "from_array",
    "length_mask",
    "load_audio",
    "normalize_loudness",
    "normalize_text",
    "number_to_words",
    "read_manifest",
    "resample",
    "save_audio",
    "to_mono",
    "word_error_rate",
    "write_manifest",
]
