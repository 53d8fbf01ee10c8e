"""``audiotok fit|validate|test|predict``: LightningCLI over :class:`CodecLightningModule` and
:class:`CodecDataModule`, with defaults that suit a CPU or a single GPU.

Defaults (any config or ``--trainer.*`` flag overrides them): accelerator auto, CSV logger, no
sanity validation, atomic checkpoint writes (:class:`AtomicCheckpointIO`), ``use_distributed_sampler:
false`` (the data module shards by rank itself) and a RichProgressBar (unless ``enable_progress_bar:
false``). Always-on callbacks with their own config sections: ``checkpoint`` (a ModelCheckpoint,
``save_last`` on) and ``export`` (writes ``<log_dir>/tokenizer`` at the end of fit).
``trainer.max_steps`` counts generator steps.
"""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

TRAINER_DEFAULTS = {
    "accelerator": "auto",
    "num_sanity_val_steps": 0,
    "use_distributed_sampler": False,
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
               "init_args": {"save_dir": "runs", "name": "audiotok"}},
    "plugins": [{"class_path": "audiotok.training.checkpointing.AtomicCheckpointIO"}],
}


def build_cli_class():
    from lightning.pytorch.callbacks import (
        ModelCheckpoint,
        ProgressBar,
        RichProgressBar,
    )
    from lightning.pytorch.cli import LightningCLI

    from audiotok.training.checkpointing import ExportTokenizer

    class StepProgressBar(RichProgressBar):
        """Rich bar that says "Epoch 3 (max_steps 30000)" instead of "Epoch 3/-2" for step-limited runs."""

        def _get_train_description(self, current_epoch: int) -> str:
            trainer = self.trainer
            description = f"Epoch {current_epoch}"
            if trainer.max_epochs is not None and trainer.max_epochs > 0:
                description += f"/{trainer.max_epochs - 1}"
            if trainer.max_steps and trainer.max_steps > 0:
                description += f" (max_steps {trainer.max_steps})"
            return description

    class CodecCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{step}"})
            parser.add_lightning_class_args(ExportTokenizer, "export")

        def _parse_ckpt_path(self) -> None:
            """Resume with the model settings you give, and say where they differ from the checkpoint's.

            LightningCLI would overwrite the config's ``model`` section with the checkpoint's
            hyperparameters, silently undoing a changed schedule or loss weight (a second training
            phase). Here the config wins and every difference is printed; the weights, optimiser and
            step still come from the checkpoint.
            """
            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if not ckpt_path or not Path(ckpt_path).is_file():
                return
            import torch

            saved = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
            current = self.config[subcommand].get("model")
            current = current.as_dict() if hasattr(current, "as_dict") else dict(current or {})
            changed = settings_differences(
                {k: v for k, v in saved.items() if not k.startswith("_")},
                {k: v for k, v in current.items() if not k.startswith("_")})
            if changed:
                lines = "\n".join(f"    model.{key}: {now!r}  (checkpoint: {before!r})" for key, before, now in changed)
                print(f"resuming {ckpt_path} with model settings that differ from the checkpoint's; "
                      f"the run continues with the config's:\n{lines}", file=sys.stderr, flush=True)

        def instantiate_trainer(self, **kwargs):
            """Add a RichProgressBar unless the config turns the bar off or brings its own."""
            trainer = self._get(self.config_init, "trainer", default={})
            callbacks = list(trainer.get("callbacks") or [])
            if trainer.get("enable_progress_bar") is not False and not any(
                    isinstance(c, ProgressBar) for c in callbacks):
                kwargs["callbacks"] = [*callbacks, StepProgressBar()]
            return super().instantiate_trainer(**kwargs)

    return CodecCLI


class _Unset:
    def __repr__(self) -> str:
        return "unset"


UNSET = _Unset()


def settings_differences(before: Any, now: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, before, now)`` for every leaf where two nested settings dicts differ; a key only
    one side has is ``UNSET`` on the other (a section set on one side only is compared key by key)."""
    if isinstance(before, dict) or isinstance(now, dict):
        if not isinstance(before, dict) and before in (None, UNSET):
            before = {}
        if not isinstance(now, dict) and now in (None, UNSET):
            now = {}
    if isinstance(before, dict) and isinstance(now, dict):
        found = []
        for key in sorted(set(before) | set(now), key=str):
            found += settings_differences(before.get(key, UNSET), now.get(key, UNSET), f"{prefix}{key}.")
        return found
    if isinstance(before, (list, tuple)) and isinstance(now, (list, tuple)):
        before, now = list(before), list(now)
    if {type(before), type(now)} <= {type(None), _Unset}:
        return []  # unset on one side, None on the other: the same setting
    return [] if before == now else [(prefix.rstrip("."), before, now)]


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Silence Lightning's messages that do not apply to our training module.

    * the manual-optimisation checkpoint warning (a 13-line code sample about a ``saved_models``
      attribute): our checkpoints are taken after the generator step on purpose, and resume exactly;
    * a deprecation warning raised inside Lightning itself, and the LitLogger advertisement;
    * "modules in eval mode at the start of training": the weight-EMA shadow copy, by design.
    """
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    # the weight-EMA copy stays in eval mode on purpose (its BatchNorm-free forward is never trained)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())


def run_lightning_cli(argv: list[str]) -> int:
    """Run LightningCLI on ``argv`` (e.g. ``["fit", "--config", "configs/mimi-tiny.yaml"]``); 0 on success."""
    from audiotok.training.data import CodecDataModule
    from audiotok.training.module import CodecLightningModule

    # `audiotok` hands its own argv over, which LightningCLI would flag as "args and sys.argv given".
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    quiet_lightning()
    build_cli_class()(
        CodecLightningModule,
        CodecDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        args=argv,
    )
    return 0
