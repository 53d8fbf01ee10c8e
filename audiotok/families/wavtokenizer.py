"""WavTokenizer (Ji et al. 2024, https://github.com/jishengpeng/WavTokenizer): the family module.

24 kHz, 40 or 75 tokens/s from one 4096-entry codebook, Vocos decoder with an iSTFT head. Configs
``wavtokenizer-40`` / ``wavtokenizer-75`` (72,111,714 / 71,750,146 generator parameters used by the
forward pass; the reference also stores an unused 8.8 M SEANet decoder, which we do not build) and
their tiny twins; the recipe of ``decoder/experiment.py``; the official training YAML + ``.ckpt``.

Checkpoint format: The checkpoint's ``state_dict`` holds ``feature_extractor.encodec.encoder.*`` (EnCodec SEANet,
old-style weight norm), ``feature_extractor.encodec.quantizer.vq.layers.0._codebook.*``,
``backbone.*`` and ``head.*``; the unused EnCodec decoder
(``feature_extractor.encodec.decoder.*``) and the discriminators are dropped. The YAML decides 40
vs 75 tokens/s (``dowmsamples`` and the head's ``n_fft``/``hop_length``) and must match the
checkpoint: a mismatched pair (WavTokenizer issues #47, #61) is refused before loading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from audiotok.checkpoints.convert import (
    WEIGHT_NORM_RULES,
    CheckpointError,
    Files,
    State,
    build,
    codebook_from_encodec,
    load_converted,
    rename,
    require,
    take,
    torch_load_checkpoint,
)
from audiotok.checkpoints.formats import CheckpointFormat
from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.families.base import BenchDefaults, Family, ema_codebook, register_family, seanet


# ---- configs -------------------------------------------------------------------------------------------
def config(frame_rate: int = 75, tiny: bool = False) -> CodecConfig:
    """24 kHz, SEANet + LSTM encoder, one 4096 × 512 codebook, Vocos decoder with iSTFT head."""
    ratios, n_fft = {40: ((6, 5, 5, 4), 2400), 75: ((8, 5, 4, 2), 1280)}[frame_rate]
    hop = 24000 // frame_rate
    if tiny:
        dim, nf, lstm, cb, vdim, vff, vlayers, groups = 64, 8, 1, 256, 64, 128, 2, 8
    else:
        dim, nf, lstm, cb, vdim, vff, vlayers, groups = 512, 32, 2, 4096, 768, 2304, 12, 32
    encoder = dict(type="seanet", **seanet(dim, nf, ratios, lstm_layers=lstm))
    quantizer = dict(type="rvq", dim=dim, n_q=1, codebook_size=cb, **ema_codebook(200 if not tiny else 20))
    decoder = dict(type="vocos", input_channels=dim, dim=vdim, intermediate_dim=vff,
                   num_layers=vlayers, n_fft=n_fft, hop_length=hop, adanorm_num_embeddings=4,
                   padding="same", num_groups=groups)
    name = f"wavtokenizer-{frame_rate}" + ("-tiny" if tiny else "")
    if tiny and frame_rate == 75:
        name = "wavtokenizer-tiny"  # the registry's name for the 75 Hz tiny twin
    return CodecConfig(sample_rate=24000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name=name, family="wavtokenizer")


# ---- training recipe -----------------------------------------------------------------------------------
RECIPE: dict[str, Any] = {
    # WavTokenizer experiment.py: MPD + MRD with hinge (Vocos), mel x45 (1 scale, 100 mels), commitment
    # x1000; AdamW 2e-4, default betas, weight decay 0.01, cosine to 0 over the generator steps.
    "codec_overrides": {},
    "discriminators": "vocos",  # preset: MPD + MRD
    "discriminator_width": None,
    "adversarial": "vocos",
    "losses": {"mel_preset": "wavtokenizer", "mel": 45.0, "l1": 0.0, "commitment": 1000.0,
               "adversarial": 1.0, "feature": 1.0, "distill": 1.0, "balancer": None},
    "optim": {
        "generator": {"name": "adamw", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.01,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adamw", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.01},
        "scheduler": {"name": "cosine", "total_steps": None},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": None,
}


# ---- official checkpoint -------------------------------------------------------------------------------
# (dowmsamples, n_fft, hop_length) of the two released token rates at 24 kHz
FRAME_RATES = {40: ([6, 5, 5, 4], 2400, 600), 75: ([8, 5, 4, 2], 1280, 320)}
# What the official loader keeps (``from_pretrained0802``), minus EnCodec's unused decoder.
KEPT = ("feature_extractor.", "backbone.", "head.")
UNUSED = "feature_extractor.encodec.decoder."
ENCODER_RULES = [(r"^feature_extractor\.encodec\.encoder\.", "encoder."),
                 (r"\.conv\.conv\.", ".conv."), *WEIGHT_NORM_RULES,
                 (r"^backbone\.", "decoder.backbone."), (r"^head\.", "decoder.head.")]
CODEBOOK_PREFIX = "feature_extractor.encodec.quantizer.vq.layers."


def model_args(yaml_config: dict, where: str) -> dict[str, dict]:
    """``{"feature_extractor": ..., "backbone": ..., "head": ..., "sample_rate": ...}`` init args."""
    try:
        args = yaml_config["model"]["init_args"]
        parts = {name: args[name]["init_args"] for name in ("feature_extractor", "backbone", "head")}
    except (KeyError, TypeError):
        raise CheckpointError(f"{where} is not a WavTokenizer training config: it needs model.init_args "
                              "with feature_extractor, backbone and head (each with init_args)") from None
    return {**parts, "sample_rate": args.get("sample_rate", 24000)}


def is_wavtokenizer_yaml(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
        return "dowmsamples" in data["model"]["init_args"]["feature_extractor"]["init_args"]
    except Exception:  # any unreadable or differently shaped YAML is simply not ours
        return False


def config_from_yaml(yaml_config: dict, where: str = "config.yaml") -> CodecConfig:
    """Our :class:`CodecConfig` for a WavTokenizer YAML (40 or 75 tokens/s, sizes from the YAML)."""
    args = model_args(yaml_config, where)
    fe, backbone, head = args["feature_extractor"], args["backbone"], args["head"]
    require(fe, ("dowmsamples",), f"{where} feature_extractor")
    require(backbone, ("input_channels", "dim", "intermediate_dim", "num_layers"), f"{where} backbone")
    require(head, ("n_fft", "hop_length"), f"{where} head")
    found = (list(fe["dowmsamples"]), head["n_fft"], head["hop_length"])
    rate = next((r for r, known in FRAME_RATES.items() if list(known) == list(found)), None)
    if rate is None:
        raise CheckpointError(f"{where}: dowmsamples/n_fft/hop_length {found} match neither released "
                              f"WavTokenizer ({FRAME_RATES}); use the YAML that came with the checkpoint")
    base = config(rate)
    return base.replace(
        sample_rate=args["sample_rate"],
        encoder=dict(dimension=backbone["input_channels"]),
        quantizer=dict(dim=backbone["input_channels"], codebook_size=fe.get("vq_bins", 4096),
                       n_q=fe.get("num_quantizers", 1)),
        decoder=dict(input_channels=backbone["input_channels"], dim=backbone["dim"],
                     intermediate_dim=backbone["intermediate_dim"], num_layers=backbone["num_layers"],
                     adanorm_num_embeddings=backbone.get("adanorm_num_embeddings"),
                     padding=head.get("padding", "same")))


def read_lightning_state(path: Path, trust_checkpoint: bool = False) -> State:
    """The ``state_dict`` of a Lightning checkpoint, read weights-only; a checkpoint that pickles
    Python objects needs ``trust_checkpoint=True`` (it then runs code from the file)."""
    checkpoint = torch_load_checkpoint(path, trust_checkpoint)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return checkpoint["state_dict"]


def convert_state(state: State) -> State:
    kept = {k: v for k, v in state.items() if k.startswith(KEPT) and not k.startswith(UNUSED)}
    out = rename({k: v for k, v in kept.items() if not k.startswith(CODEBOOK_PREFIX)}, ENCODER_RULES)
    levels = take(kept, CODEBOOK_PREFIX)
    for level in sorted({k.split(".")[0] for k in levels}, key=int):
        buffers = take(levels, f"{level}._codebook.")
        for name, value in codebook_from_encodec(buffers, f"{CODEBOOK_PREFIX}{level}").items():
            out[f"quantizer.layers.{level}.codebook.{name}"] = value
    return out


def check_pair(config: CodecConfig, state: State, yaml_path: Path, ckpt_path: Path) -> None:
    """Refuse a YAML of the other token rate before a wall of shape errors."""
    head = state.get("head.out.weight")
    n_fft = config.decoder["n_fft"]
    if head is not None and head.shape[0] != n_fft + 2:
        other = next((r for r, (_, nf, _) in FRAME_RATES.items() if nf + 2 == head.shape[0]), None)
        raise CheckpointError(
            f"{yaml_path.name} describes {config.name} (iSTFT n_fft {n_fft}), but {ckpt_path.name} has a "
            f"{head.shape[0] - 2}-point head" + (f", i.e. WavTokenizer {other} tokens/s" if other else "")
            + ": use the YAML of the same token rate as the checkpoint")


def convert(yaml_path: str | Path, ckpt_path: str | Path, trust_checkpoint: bool = False) -> Codec:
    """A :class:`Codec` (eval mode, weight norm kept) from a WavTokenizer YAML + checkpoint.

    ``trust_checkpoint``: allow a ``.ckpt`` that pickles Python objects (runs code from the file).
    """
    import yaml

    yaml_path, ckpt_path = Path(yaml_path), Path(ckpt_path)
    config = config_from_yaml(yaml.safe_load(yaml_path.read_text()), str(yaml_path))
    state = read_lightning_state(ckpt_path, trust_checkpoint)
    check_pair(config, state, yaml_path, ckpt_path)
    return load_converted(build(config), convert_state(state), str(ckpt_path))


def detect(files: Files, trust_checkpoint: bool = False):
    """The converter for a WavTokenizer training YAML + ``.ckpt`` among ``files``, or None."""
    if not files.concern(lambda f: f.suffix in (".yaml", ".yml", ".ckpt")):
        return None
    configs = files.pick(lambda f: f.suffix in (".yaml", ".yml") and is_wavtokenizer_yaml(f))
    if not configs:
        return None
    checkpoints = files.pick(lambda f: f.suffix == ".ckpt")
    if not checkpoints:
        raise CheckpointError(f"{configs[0]} is a WavTokenizer training config but no .ckpt is next to "
                              "it; WavTokenizer needs both (the YAML decides 40 vs 75 tokens/s)")
    if len(configs) > 1 or len(checkpoints) > 1:
        raise CheckpointError(f"ambiguous WavTokenizer files {[f.name for f in configs + checkpoints]}: "
                              "pass exactly one YAML and one .ckpt, e.g. detect_and_convert([yaml, ckpt])")
    return lambda: convert(configs[0], checkpoints[0], trust_checkpoint=trust_checkpoint)


FAMILY = register_family(Family(
    name="wavtokenizer",
    configs={
        "wavtokenizer-40": lambda: config(40),
        "wavtokenizer-75": lambda: config(75),
        "wavtokenizer-tiny": lambda: config(75, tiny=True),
        "wavtokenizer-40-tiny": lambda: config(40, tiny=True),
    },
    recipe=RECIPE,
    formats={"wavtokenizer": CheckpointFormat("wavtokenizer", "training .yaml + Lightning .ckpt", detect)},
    bench=BenchDefaults(speed="wavtokenizer-75", reference=None, quality="wavtokenizer-tiny"),
    description="24 kHz, 40 or 75 Hz, one 4096-entry codebook, Vocos iSTFT decoder",
))
