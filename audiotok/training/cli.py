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

    class CodecCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{step}"})
            parser.add_lightning_class_args(ExportTokenizer, "export")

        def instantiate_trainer(self, **kwargs):
            """Add a RichProgressBar unless the config turns the bar off or brings its own."""
            trainer = self._get(self.config_init, "trainer", default={})
            callbacks = list(trainer.get("callbacks") or [])
            if trainer.get("enable_progress_bar") is not False and not any(
                    isinstance(c, ProgressBar) for c in callbacks):
                kwargs["callbacks"] = [*callbacks, RichProgressBar()]
            return super().instantiate_trainer(**kwargs)

    return CodecCLI


def run_lightning_cli(argv: list[str]) -> int:
    """Run LightningCLI on ``argv`` (e.g. ``["fit", "--config", "configs/mimi-tiny.yaml"]``); 0 on success."""
    import warnings

    from audiotok.training.data import CodecDataModule
    from audiotok.training.module import CodecLightningModule

    # `audiotok` hands its own argv over, which LightningCLI would flag as "args and sys.argv given".
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
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
