"""Random draws that change the computation graph, made identical on every rank.

Quantizer dropout, Mimi's 50 % quantisation and discriminator skips decide which layers run. Under
DDP a rank running different layers skips their collectives (EMA codebook all-reduce, dead-code
broadcast) and deadlocks, so these draws come from a seed shared by all ranks: ``seed`` mixed with the
generator step. The codec forward runs inside :func:`shared_rng`, which forks the global RNG (the
draws inside do not disturb the data pipeline's RNG, and a resumed run replays them exactly).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_STEP_STRIDE = 1_000_003  # a prime: (seed, step) pairs map to distinct seeds for any realistic run


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """One 63-bit seed per (run seed, generator step, stream); the same on every rank."""
    return (seed * _STEP_STRIDE * 7 + step * 7 + stream) % (2**63 - 1)


@contextlib.contextmanager
def shared_rng(seed: int, step: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with the global RNG (CPU and ``device``'s) seeded by ``(seed, step)``; restore it after."""
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(step_seed(seed, step))
        yield


def shared_bernoulli(probability: float, seed: int, step: int, stream: int = 1) -> bool:
    """``True`` with ``probability``, drawn from a dedicated generator: every rank gets the same answer."""
    if probability >= 1.0:
        return True
    if probability <= 0.0:
        return False
    generator = torch.Generator().manual_seed(step_seed(seed, step, stream))
    return bool(torch.rand((), generator=generator) < probability)
