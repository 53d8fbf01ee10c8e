"""What a codec family module declares (:class:`Family`), the registries it fills, and config helpers.

A family module (``audiotok/families/<name>.py``) holds every fact of one family: its named configs
(full size and tiny), its training recipe (naming discriminator, adversarial and mel presets), its
official checkpoint formats (detector + converter), the hub files of its releases, and its benchmark
defaults. It ends with ``register_family(FAMILY)``, which files each of those in the registry that the
rest of the library reads:

======================  ==========================================  =================================
what                    registry                                    read by
======================  ==========================================  =================================
the family              :data:`FAMILIES`                            ``audiotok info``, benchmarks
each named config       :data:`audiotok.codecs.families.CODECS`     ``build_codec``, ``audiotok.load``
its recipe              :data:`RECIPES`                             ``audiotok.training`` (``recipe:``)
its checkpoint formats  :data:`audiotok.checkpoints.formats.FORMATS`  ``audiotok.load``
======================  ==========================================  =================================
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audiotok.checkpoints.formats import FORMATS, CheckpointFormat
from audiotok.codecs.codec import CodecConfig
from audiotok.codecs.families import CODECS
from audiotok.registry import Registry

FAMILIES = Registry("codec family", class_path=False)
RECIPES = Registry("recipe", class_path=False)


@dataclass(frozen=True)
class BenchDefaults:
    """What the benchmarks use for a family (None: the family takes no part in that benchmark).

    ``speed``: the config timed by ``audiotok bench speed`` (full size, random weights);
    ``reference``: the installable reference implementation it is timed against (``speechtokenizer``,
    ``moshi``; None: none on PyPI); ``quality``: the tokenizer of the default quality report;
    ``streaming``: the config of ``audiotok bench streaming`` (causal families only).
    """

    speed: str | None = None
    reference: str | None = None
    quality: str | None = None
    streaming: str | None = None


@dataclass(frozen=True)
class Family:
    """One codec family; see the module doc and ``docs/architecture.md`` ("How to add a family").

    ``configs``: name -> zero-argument factory of a fresh :class:`CodecConfig` (whose ``family`` is
    ``name``); ``recipe``: the published training set-up (keys as in :mod:`audiotok.training.recipes`),
    None for families without one; ``formats``: format name -> :class:`CheckpointFormat`;
    ``hub_files``: hub repo id -> the files of it to fetch (not the whole repo).
    """

    name: str
    configs: Mapping[str, Callable[[], CodecConfig]]
    recipe: dict[str, Any] | None = None
    formats: Mapping[str, CheckpointFormat] = field(default_factory=dict)
    hub_files: Mapping[str, list[str]] = field(default_factory=dict)
    bench: BenchDefaults = BenchDefaults()
    description: str = ""


def register_family(family: Family) -> Family:
    """File ``family`` and its configs, recipe and formats in their registries (names must be new)."""
    FAMILIES.register(family.name, family)
    for name, factory in family.configs.items():
        CODECS.register(name, factory)
    if family.recipe is not None:
        RECIPES.register(family.name, family.recipe)
    for name, fmt in family.formats.items():
        FORMATS.register(name, fmt)
    return family


def hub_files() -> dict[str, list[str]]:
    """Hub repo id -> files to fetch, over every registered family."""
    return {repo: list(files) for _, family in FAMILIES.items() for repo, files in family.hub_files.items()}


# ---- config helpers shared by the family modules ------------------------------------------------------
def seanet(dimension, n_filters, ratios, *, causal=False, lstm_layers=2, bidirectional=False,
           last_kernel_size=7, true_skip=False, norm="weight_norm") -> dict[str, Any]:
    """SEANet encoder/decoder fields (EnCodec's layout; ``bidirectional`` is set by the caller)."""
    return dict(channels=1, dimension=dimension, n_filters=n_filters, n_residual_layers=1,
                ratios=list(ratios), activation="ELU", kernel_size=7,
                last_kernel_size=last_kernel_size, residual_kernel_size=3, dilation_base=2,
                causal=causal, pad_mode="constant" if causal else "reflect", compress=2,
                true_skip=true_skip, lstm_layers=lstm_layers, norm=norm)


def ema_codebook(kmeans_iters=50) -> dict[str, Any]:
    """EMA codebook fields (decay 0.99, k-means init, dead codes below 2 uses replaced)."""
    return dict(decay=0.99, epsilon=1e-5, kmeans_init=True, kmeans_iters=kmeans_iters,
                threshold_ema_dead_code=2.0)
