"""``CodecLightningModule``: one GAN training loop for every codec family, driven by a recipe.

Per batch (manual optimisation):

1. the codec runs **once**, inside :func:`~audiotok.training.shared_random.shared_rng` (quantizer
   dropout and Mimi's 50 % quantisation are drawn from ``(seed, step)``: identical on every rank,
   replayed exactly on resume); its EMA codebooks learn once per batch;
2. after ``warmup_steps`` reconstruction-only steps, and with probability ``d_update_prob`` (a shared
   draw), a **discriminator step** on real audio and the *detached* reconstruction;
3. a **generator step** on the same reconstruction: reconstruction terms, adversarial + feature matching
   (after warm-up), commitment, optional distillation; through the Balancer when the recipe has one;
4. schedulers step, the optional generator weight EMA updates.

``zero_grad`` comes right before each backward, so no step sees the other's gradients (NeMo PR 7266).

**Step counting.** Lightning counts every ``optimizer.step()`` towards ``global_step`` (issue #17958),
so a D+G batch would count twice. Here the discriminator step is taken *uncounted*
(:func:`step_uncounted`), so ``global_step``, ``trainer.max_steps``, checkpoint names,
``every_n_train_steps`` and the cosine schedule all count **generator steps**; the warm-up (no D step)
counts the same way. ``train/d_steps`` logs the discriminator updates.

**Several GPUs / nodes.** Use ``strategy: ddp_find_unused_parameters_true``: the D and G backward
passes each touch only part of the module, and Lightning's ``manual_backward`` then tells DDP which
parameters each pass used. EMA codebook statistics are all-reduced inside the quantizer, k-means and
dead-code replacements broadcast from rank 0; the shared draws keep every rank on the same graph.
Precision: ``32-true`` or ``bf16-mixed`` (``16-mixed``'s loss scaler is not wired into the Balancer).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import lightning.pytorch as pl
import torch

from audiotok.codecs.codec import Codec, CodecConfig, CodecOutput
from audiotok.discriminators import adversarial_loss, build_discriminators
from audiotok.training.distillation import build_distillation
from audiotok.training.health import HealthMonitor, shuffle_frames
from audiotok.training.init import standardize_encoder
from audiotok.training.losses import MEL_PRESETS, Balancer, MultiScaleMelLoss, waveform_l1_loss
from audiotok.training.optim import (adapt_optimizer_state, adapt_scheduler_state, build_optimizer,
                                     build_scheduler)
from audiotok.training.recipes import get_recipe
from audiotok.training.shared_random import shared_bernoulli, shared_rng
from audiotok.training.weight_ema import WeightEMA

RECONSTRUCTION_TERMS = ("mel", "l1")
BALANCED_TERMS = ("mel", "l1", "adversarial", "feature")


def resolve_codec_config(codec: str | dict[str, Any] | CodecConfig) -> CodecConfig:
    """A registered name (``audiotok.codecs.families``), a CodecConfig dict, or a CodecConfig."""
    if isinstance(codec, CodecConfig):
        return codec
    if isinstance(codec, str):
        from audiotok.codecs.families import get_config

        return get_config(codec)
    return CodecConfig.from_dict(codec)


def load_initial_codec(source: str) -> Codec:
    """The codec behind ``source`` (anything ``audiotok.load`` reads), for fine-tuning."""
    from audiotok.tokenizers.loading import load_codec

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*registered architecture: its weights are random")
        return load_codec(source)


def copy_weights(source: Codec, target: Codec, label: str) -> None:
    """Load ``source``'s weights into ``target`` (folding weight norm where ``source`` was folded);
    a config that does not fit the weights is refused with the keys and shapes that differ."""
    from audiotok.codecs.codec import load_state_strict

    state = source.state_dict()
    if any(".parametrizations." in k for k in target.state_dict()) and not any(
            ".parametrizations." in k for k in state):
        target.fold_weight_norm()  # official releases ship folded weights: train them as plain convs
    try:
        load_state_strict(target, state, source=str(label))
    except ValueError as err:
        raise ValueError(f"{err}\n  model.init_from={label!r} has the config {source.config.name!r}; "
                         "leave model.codec unset to train that architecture, or pass a codec config "
                         "with the same layout") from None


def step_uncounted(optimizer) -> None:
    """``optimizer.step()`` on a LightningOptimizer without advancing ``global_step``.

    Lightning's manual loop counts steps through the optimizer's ``_on_before_step`` /
    ``_on_after_step`` hooks (profiler + progress); they are silenced for this one call.
    """
    hooks = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = _nothing
    try:
        optimizer.step()
    finally:
        optimizer._on_before_step, optimizer._on_after_step = hooks


def _nothing() -> None:
    return None


def _split_real_fake(output: tuple[list[torch.Tensor], list[list[torch.Tensor]]]):
    """Discriminator output on ``cat([real, fake])`` → (real output, fake output)."""
    logits, fmaps = output
    real_logits, fake_logits = zip(*(t.chunk(2, dim=0) for t in logits))
    real_fmaps = [[f.chunk(2, dim=0)[0] for f in layers] for layers in fmaps]
    fake_fmaps = [[f.chunk(2, dim=0)[1] for f in layers] for layers in fmaps]
    return (list(real_logits), real_fmaps), (list(fake_logits), fake_fmaps)


class CodecLightningModule(pl.LightningModule):
    """Trains any :class:`~audiotok.codecs.Codec` with a recipe (see :mod:`audiotok.training.recipes`).

    Args:
        codec: registered codec name (``speechtokenizer``, ``mimi-tiny``, ...) or a CodecConfig dict;
            None = the config of ``init_from`` (or ``speechtokenizer-tiny`` without it).
        recipe: ``speechtokenizer`` | ``mimi`` | ``wavtokenizer``, or ``{"base": name, ...overrides}``.
        discriminators, discriminator_width, adversarial, losses, optim, warmup_steps, ema_decay,
        codec_overrides: override the recipe's entries (dicts merge; ``discriminators`` replaces).
        distill: optional distillation slot (:mod:`audiotok.training.distillation`).
        quantizer_warmup_steps: first generator steps with the quantizer bypassed (see the recipe doc).
        init_from: start from the weights of anything ``audiotok.load`` reads (a shipped name, a saved
            folder, a training checkpoint, official weights); discriminators start fresh.
        seed: seeds the rank-shared random draws (quantizer dropout, quantisation rate, D skips).
    """

    def __init__(
        self,
        codec: str | dict[str, Any] | None = None,
        recipe: str | dict[str, Any] = "speechtokenizer",
        discriminators: dict[str, dict[str, Any] | None] | None = None,
        discriminator_width: float | None = None,
        adversarial: str | dict[str, Any] | None = None,
        losses: dict[str, Any] | None = None,
        optim: dict[str, Any] | None = None,
        warmup_steps: int | None = None,
        ema_decay: float | None = None,
        codec_overrides: dict[str, Any] | None = None,
        distill: dict[str, Any] | None = None,
        quantizer_warmup_steps: int | None = None,
        init_from: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        overrides = {"discriminators": discriminators, "discriminator_width": discriminator_width,
                     "adversarial": adversarial, "losses": losses, "optim": optim, "warmup_steps": warmup_steps,
                     "ema_decay": ema_decay, "codec_overrides": codec_overrides,
                     "quantizer_warmup_steps": quantizer_warmup_steps}
        self.recipe = get_recipe(recipe, {k: v for k, v in overrides.items() if v is not None})
        self.seed = seed
        self.init_from = init_from
        initial = load_initial_codec(init_from) if init_from else None
        if codec is None:
            config = initial.config if initial is not None else resolve_codec_config("speechtokenizer-tiny")
        else:
            config = resolve_codec_config(codec)
        if self.recipe["codec_overrides"]:
            config = config.replace(**self.recipe["codec_overrides"])
        self.codec = Codec(config)
        if initial is not None:
            copy_weights(initial, self.codec, init_from)
        self.quantizer_warmup_steps = int(self.recipe["quantizer_warmup_steps"])
        if initial is not None and self.quantizer_warmup_steps:
            warnings.warn(f"init_from={init_from!r} brings trained codebooks: quantizer_warmup_steps="
                          f"{self.quantizer_warmup_steps} is ignored (it exists to initialise codebooks on a "
                          "trained latent)", stacklevel=2)
            self.quantizer_warmup_steps = 0
        self.health = HealthMonitor(self.codec.codebook_size)
        self._standardized = False
        self.discriminator = build_discriminators(self.recipe["discriminators"],
                                                  width=self.recipe["discriminator_width"])
        self.adversarial = adversarial_loss(self.recipe["adversarial"])
        self.weights = {k: float(v) for k, v in self.recipe["losses"].items()
                        if k not in ("mel_preset", "balancer")}
        self.mel_loss = MEL_PRESETS.build(self.recipe["losses"]["mel_preset"], sample_rate=config.sample_rate)
        self.mel_distance = MultiScaleMelLoss.wavtokenizer(config.sample_rate)  # fixed validation metric
        balancer = self.recipe["losses"]["balancer"]
        self.balancer = (Balancer({k: self.weights[k] for k in BALANCED_TERMS}, **balancer)
                         if balancer else None)
        self.distill, self.weights["distill"] = build_distillation(distill, self.codec, self.weights["distill"])
        self.warmup_steps = int(self.recipe["warmup_steps"])
        if self.warmup_steps > 0 and not any(self.weights[k] > 0 for k in RECONSTRUCTION_TERMS):
            raise ValueError(f"warmup_steps={self.warmup_steps} trains on reconstruction losses only, but this "
                             "recipe gives mel and l1 weight 0 (adversarial-only, like Mimi): set "
                             "warmup_steps 0 or give losses.mel a weight")
        ema = self.recipe["ema_decay"]
        self.weight_ema = WeightEMA(self.codec, ema) if ema else None
        self.d_steps = 0

    # ---- optimisers ------------------------------------------------------------------------------
    def configure_optimizers(self):
        optim = self.recipe["optim"]
        generator_modules = [self.codec] + (self.distill.trainable_modules() if self.distill else [])
        opt_g = build_optimizer(optim["generator"], generator_modules)
        opt_d = build_optimizer(optim["discriminator"], [self.discriminator])
        max_steps = self.trainer.max_steps if self._trainer is not None and self.trainer.max_steps > 0 else None
        schedulers = [build_scheduler(optim["scheduler"], opt, max_steps) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedulers

    # ---- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        wav = batch["audio"]
        step = self.global_step  # generator steps done so far
        if step == 0 and self.recipe["standardize_latent"] and self.init_from is None and not self._standardized:
            self._standardize_latent(wav)
        with shared_rng(self.seed, step, wav.device):
            out = self.codec(wav, quantize=step >= self.quantizer_warmup_steps)
        gan = step >= self.warmup_steps
        logs: dict[str, torch.Tensor | float] = {}
        if gan and shared_bernoulli(self.recipe["optim"]["d_update_prob"], self.seed, step):
            logs.update(self._discriminator_step(wav, out.audio.detach(), opt_d))
        logs.update(self._generator_step(wav, out, gan, opt_g, batch))
        sched_g.step()
        with warnings.catch_warnings():  # D's schedule follows generator steps, also when D skipped
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            sched_d.step()
        if self.weight_ema is not None:
            self.weight_ema.update(self.codec)
        logs["d_steps"] = float(self.d_steps)
        logs.update({k: float(v) for k, v in out.metrics.items()})
        logs.update(self.health.update(out.codes, out.latent))
        self.log("train/g_loss", logs.pop("g_loss"), prog_bar=True, on_step=True, on_epoch=False)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_step=True, on_epoch=False)

    def _standardize_latent(self, wav: torch.Tensor) -> None:
        """Data-dependent init of the encoder output on the first batch (:mod:`audiotok.training.init`)."""
        spreads = standardize_encoder(self.codec, wav)
        self._standardized = True
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            with torch.no_grad():  # each rank measured its own batch: all take rank 0's init
                for parameter in self.codec.parameters():
                    torch.distributed.broadcast(parameter.data, src=0)
        if self.weight_ema is not None:
            self.weight_ema.shadow.load_state_dict(self.codec.state_dict())
        self.print(f"encoder standardised on the first batch (data-dependent init): latent spread "
                   f"{spreads['spread_before']:.3f} -> {spreads['spread_after']:.3f} (std over frames / RMS)")

    def _discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, opt_d) -> dict[str, torch.Tensor]:
        real_out, fake_out = _split_real_fake(self.discriminator(torch.cat([real, fake])))
        loss, terms = self.adversarial.discriminator_loss(real_out[0], fake_out[0])
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        clip = self.recipe["optim"]["d_grad_clip"]
        if clip:
            self.clip_gradients(opt_d, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        step_uncounted(opt_d)
        self.d_steps += 1
        return {"d_loss": loss.detach(), **terms}

    def generator_terms(self, wav: torch.Tensor, out: CodecOutput, gan: bool,
                        batch: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """Every generator loss term, unweighted: mel, l1, commitment [, adversarial, feature, distill].

        ``batch`` gives distillation its per-crop cached teacher targets and valid lengths.
        """
        mel, _ = self.mel_loss(out.audio, wav)
        terms = {"mel": mel, "l1": waveform_l1_loss(out.audio, wav), "commitment": out.commitment_loss}
        if gan:
            self.discriminator.requires_grad_(False)  # G step: no discriminator gradients needed
            try:
                real_out, fake_out = _split_real_fake(self.discriminator(torch.cat([wav, out.audio])))
            finally:
                self.discriminator.requires_grad_(True)
            terms["adversarial"], terms["feature"] = self.adversarial.generator_losses(real_out, fake_out)
        if self.distill is not None:
            terms["distill"] = self.distill(out.semantic, wav, batch)
        return terms

    def _generator_step(self, wav: torch.Tensor, out: CodecOutput, gan: bool, opt_g,
                        batch: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """One backward for the whole generator loss.

        With a Balancer, the balanced terms are computed on a detached copy of the reconstruction; the
        Balancer leaves its gradient there, and ``sum(audio * grad)`` carries it into the generator in the
        same backward as the other terms (one ``manual_backward``: precision plugins and DDP see it).
        """
        proxy = out.audio.detach().requires_grad_(True) if self.balancer is not None else None
        terms = self.generator_terms(wav, out if proxy is None else dataclasses.replace(out, audio=proxy), gan, batch)
        weighted = {k: v for k, v in terms.items() if self.weights[k] > 0}
        balanced = {k: v for k, v in weighted.items() if proxy is not None and k in BALANCED_TERMS}
        loss = sum((self.weights[k] * v for k, v in weighted.items() if k not in balanced), out.audio.new_zeros(()))
        total = loss.detach()
        if balanced:
            total = total + self.balancer.backward(balanced, proxy)  # fills proxy.grad only
            loss = loss + (out.audio * proxy.grad).sum()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        clip = self.recipe["optim"]["g_grad_clip"]
        if clip:
            self.clip_gradients(opt_g, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        opt_g.step()
        logs = {k: v.detach() for k, v in terms.items()}
        if balanced:
            logs.update({f"balancer/{k}": v for k, v in self.balancer.metrics.items()})
        logs["g_loss"] = total
        return logs

    # ---- evaluation ------------------------------------------------------------------------------
    @property
    def inference_codec(self) -> Codec:
        """The codec to evaluate and export: the weight-EMA copy when enabled."""
        return self.weight_ema.shadow if self.weight_ema is not None else self.codec

    def _evaluate(self, batch: dict[str, Any], prefix: str) -> None:
        wav = batch["audio"]
        codec = self.inference_codec
        length = wav.shape[-1]
        codes = codec.encode(wav, n_q=codec.num_codebooks)
        audio = codec.decode(codes)[..., :length]
        generator = torch.Generator().manual_seed(self.seed)
        shuffled = codec.decode(shuffle_frames(codes, generator))[..., :length]
        dependence = (audio - shuffled).abs().mean() / audio.abs().mean().clamp_min(1e-9)
        self.log_dict({
            f"{prefix}/mel_distance": self.mel_distance(audio, wav)[0],
            f"{prefix}/mel_shuffled": self.mel_distance(shuffled, wav)[0],
            f"{prefix}/code_dependence": dependence,
            f"{prefix}/mel": self.mel_loss(audio, wav)[0],
            f"{prefix}/l1": waveform_l1_loss(audio, wav),
        }, on_step=False, on_epoch=True, sync_dist=True, batch_size=wav.shape[0], prog_bar=prefix == "val")

    def on_validation_epoch_end(self) -> None:
        dependence = self.trainer.callback_metrics.get("val/code_dependence")
        if dependence is not None and not self.trainer.sanity_checking:
            self.health.check_code_dependence(float(dependence), self.global_step)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # ---- checkpoints and export ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["audiotok_codec_config"] = self.codec.config.to_dict()
        checkpoint["audiotok_recipe"] = self.recipe
        checkpoint["audiotok_d_steps"] = self.d_steps
        if self.balancer is not None:
            checkpoint["audiotok_balancer"] = self.balancer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.d_steps = int(checkpoint.get("audiotok_d_steps", 0))
        # A resume may change the optimisers' settings or the schedule (phase 2 of a run): the config's
        # values apply from the saved step on; the moments and the step count stay the checkpoint's.
        optim = self.recipe["optim"]
        specs = (optim["generator"], optim["discriminator"])
        if "optimizer_states" in checkpoint:
            checkpoint["optimizer_states"] = [adapt_optimizer_state(state, spec)
                                              for state, spec in zip(checkpoint["optimizer_states"], specs)]
        if "lr_schedulers" in checkpoint:
            checkpoint["lr_schedulers"] = [adapt_scheduler_state(state, optim["scheduler"], spec.get("lr"))
                                           for state, spec in zip(checkpoint["lr_schedulers"], specs)]
        if self.balancer is not None and "audiotok_balancer" in checkpoint:
            self.balancer.load_state_dict(checkpoint["audiotok_balancer"])

    def export_tokenizer(self, directory) -> Any:
        """Write ``config.json`` + ``model.safetensors`` (EMA weights when enabled) for ``audiotok.load``."""
        return self.inference_codec.save_pretrained(directory)

