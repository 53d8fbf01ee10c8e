"""``audiotok info``: registered codecs and shipped trained tokenizers, with rates and sizes."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*",
                        help="codec names (default: all registered architectures and shipped models)")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from audiotok.codecs import Codec, available, build_codec
    from audiotok.tokenizers.pretrained import available_pretrained, pretrained_path

    table = Table(title="audiotok codecs")
    for col in ("name", "family", "sample rate", "hop", "frame rate", "codebooks", "size",
                "bitrate (kbps)", "causal", "params (M)"):
        table.add_column(col)
    for name in args.names or available() + available_pretrained():
        if name in available_pretrained():
            codec = Codec.from_pretrained(pretrained_path(name))
        else:
            with torch.device("meta"):
                codec = build_codec(name)
        table.add_row(name, codec.config.family, str(codec.sample_rate), str(codec.hop_length),
                      f"{codec.frame_rate:g}", f"{codec.num_codebooks}/{codec.max_codebooks}",
                      str(codec.codebook_size), f"{codec.bitrate / 1000:.3f}",
                      "yes" if codec.is_causal else "no", f"{codec.num_parameters() / 1e6:.2f}")
    Console().print(table)
    return 0
