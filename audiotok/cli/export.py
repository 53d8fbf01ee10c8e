"""``audiotok export onnx NAME_OR_PATH -o DIR``: write a codec's ONNX graphs (see :mod:`audiotok.export.onnx`)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="encoder.onnx + decoder.onnx + onnx.json (onnxruntime-ready)",
                              description="Export a codec to ONNX: encoder.onnx (audio [B,1,T] -> codes "
                              "[B,Q,F]), decoder.onnx (codes -> audio [B,1,F*hop]) and onnx.json. "
                              "Needs pip install 'audiotok[onnx]'.")
    onnx.add_argument("model", metavar="NAME_OR_PATH",
                      help="shipped trained name, registered architecture (random weights), saved "
                      "folder, checkpoint, official weights or hub id (as audiotok.load)")
    onnx.add_argument("-o", "--out", required=True, help="output folder")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    onnx.add_argument("--n-q", type=int, default=None,
                      help="codebooks of the graphs (default: the codec's active number)")
    onnx.add_argument("--no-streaming", action="store_true",
                      help="skip the streaming step graphs of a causal codec (encoder_step/decoder_step.onnx)")
    onnx.add_argument("--trust-checkpoint", action="store_true",
                      help="fully unpickle .pt/.ckpt files (only for files you trust)")


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from audiotok.errors import CommandError

    if args.format != "onnx":  # pragma: no cover (argparse restricts the choice)
        raise CommandError(f"unknown export format {args.format!r}")
    try:
        from audiotok.export.onnx import export_onnx
        from audiotok.tokenizers.loading import load_codec

        import onnx  # noqa: F401
    except ImportError as err:
        raise CommandError(f"ONNX export needs onnx ({err}): pip install 'audiotok[onnx]'") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"-o {out} exists and is not a folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codec = load_codec(args.model, trust_checkpoint=args.trust_checkpoint)
    except (OSError, ValueError, KeyError) as err:
        raise CommandError(f"cannot load the model {args.model}: {err}") from None
    try:
        codec.resolve_n_q(args.n_q)
    except ValueError as err:
        raise CommandError(f"--n-q {args.n_q} does not fit {args.model}: {err}") from None
    export_onnx(codec, out, opset=args.opset, n_q=args.n_q, streaming=not args.no_streaming)
    import json

    info = json.loads((out / "onnx.json").read_text())
    files = [info["encoder"]["file"]] + ([info["decoder"]["file"]] if info.get("decoder") else [])
    if info.get("streaming"):
        files += [info["streaming"]["encoder"]["file"], info["streaming"]["decoder"]["file"]]
    print(f"wrote {', '.join(files)} and onnx.json to {out} ({info['name']}: {info['sample_rate']} Hz, "
          f"hop {info['hop_length']}, {info['n_q']} × {info['codebook_size']} codes)")
    if info.get("decoder_unavailable"):
        print(f"no decoder graph: {info['decoder_unavailable']}")
    return 0
