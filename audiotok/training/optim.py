"""Optimisers and learning-rate schedules from recipe dicts (see :mod:`audiotok.training.recipes`)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = ("constant", "cosine", "exponential")


def transformer_parameter_ids(modules: Iterable[nn.Module]) -> set[int]:
    """ids of the parameters that live inside a transformer (Mimi's weight decay applies only there)."""
    from audiotok.codecs.modules.transformer import Transformer

    ids: set[int] = set()
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, Transformer):
                ids.update(id(p) for p in sub.parameters())
    return ids


def build_optimizer(spec: dict[str, Any], modules: list[nn.Module]) -> torch.optim.Optimizer:
    """An optimiser over the trainable parameters of ``modules``.

    ``spec``: ``name`` (adam|adamw), ``lr``, ``betas``, ``weight_decay``; ``transformer_weight_decay``
    (not None) puts transformer parameters in their own group with that decay (Mimi: 5e-2, rest 0).
    """
    spec = dict(spec)
    name = spec.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    transformer_decay = spec.pop("transformer_weight_decay", None)
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the optimizer has no trainable parameters")
    if transformer_decay is None:
        return OPTIMIZERS[name](params, **spec)
    in_transformer = transformer_parameter_ids(modules)
    groups = [
        {"params": [p for p in params if id(p) in in_transformer], "weight_decay": transformer_decay},
        {"params": [p for p in params if id(p) not in in_transformer],
         "weight_decay": spec.pop("weight_decay", 0.0)},
    ]
    return OPTIMIZERS[name]([g for g in groups if g["params"]], **spec)


def build_scheduler(spec: dict[str, Any], optimizer: torch.optim.Optimizer,
                    max_steps: int | None) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-generator-step schedule: ``constant``, ``cosine`` (to 0 over ``total_steps`` or the
    trainer's ``max_steps``) or ``exponential`` (``gamma`` per step)."""
    name = spec.get("name", "constant")
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(spec.get("gamma", 0.999996)))
    if name == "cosine":
        total = spec.get("total_steps") or max_steps
        if not total or total < 0:
            raise ValueError("the cosine schedule needs a length: set optim.scheduler.total_steps or "
                             "trainer.max_steps (generator steps)")
        total = int(total)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")


def adapt_optimizer_state(state: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A saved optimiser state whose hyperparameters (base ``lr``, ``betas``, ``weight_decay``) are the
    ones ``spec`` asks for; its moments and step counts are kept, and an unchanged config changes nothing. ``torch.optim.Optimizer.load_state_dict``
    would otherwise bring the checkpoint's values back over a changed config. A per-group decay
    (``transformer_weight_decay``) is left as saved."""
    groups = []
    for group in state.get("param_groups", []):
        group = dict(group)
        if "lr" in spec:  # a new base rate scales the current one (same point of the schedule)
            base, before = float(spec["lr"]), float(group.get("initial_lr", group["lr"]))
            if base != before:
                group["lr"] = group["lr"] * base / before if before > 0 else base
            group["initial_lr"] = base
        if "betas" in spec and "betas" in group:
            group["betas"] = tuple(spec["betas"])
        if "weight_decay" in spec and spec.get("transformer_weight_decay") is None:
            group["weight_decay"] = float(spec["weight_decay"])
        groups.append(group)
    return {**state, "param_groups": groups}


def adapt_scheduler_state(state: dict[str, Any], spec: dict[str, Any], lr: float | None = None) -> dict[str, Any]:
    """A saved scheduler state rewritten for the schedule ``spec`` builds (and base rate ``lr``, when
    given), keeping its step count.

    Resuming with a different ``optim.scheduler`` (say, phase 1 decayed exponentially and phase 2
    anneals with a cosine) would otherwise fail inside PyTorch (``KeyError: 'lr_lambdas'``) or carry the
    old schedule's constants over. The new schedule continues from the saved step: a cosine over
    ``total_steps`` is at ``last_epoch`` of its curve, an exponential multiplies the current rate.
    """
    name = spec.get("name", "constant")
    common = {key: state[key] for key in ("base_lrs", "last_epoch", "_step_count", "_is_initial",
                                          "_get_lr_called_within_step", "_last_lr") if key in state}
    if lr is not None and "base_lrs" in common:
        common["base_lrs"] = [float(lr)] * len(common["base_lrs"])
    if name == "exponential":
        return {**common, "gamma": float(spec.get("gamma", 0.999996))}
    return {**common, "lr_lambdas": [None] * len(state.get("base_lrs", [None]))}
