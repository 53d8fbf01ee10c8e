"""Euclidean codebook learned by exponential moving averages (EnCodec-style), with k-means init and
dead-code replacement that actually sticks.

Buffers use the EnCodec / SpeechTokenizer / WavTokenizer layout so their checkpoints load by renaming
`inited -> initialized`:

* `initialized` `[1]` float 0/1 (one element, the same shape as the official checkpoints' flag),
* `cluster_size` `[K]`: EMA of how many frames per batch chose each code,
* `embed_avg` `[K, D]`: EMA of the sum of those frames,
* `embed` `[K, D]`: the centroids actually used, `embed_avg / smoothed(cluster_size)`.

When the codebook learns (all of k-means init, EMA update, dead-code replacement): only in training
mode, and only if `update_ema` is True, or `update_ema` is None (the default) and grad is enabled.
So a GAN discriminator step that runs the generator under `torch.no_grad()` in train mode does not
update the codebooks a second time per batch (WavTokenizer's double update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributed, nn


def code_usage(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Histogram of code indices: `[K]` float counts."""
    return torch.bincount(codes.reshape(-1), minlength=codebook_size).float()


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a usage histogram: 1 = collapse, K = uniform use of K codes."""
    probs = counts / counts.sum().clamp_min(1e-12)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return entropy.exp()


def _is_distributed() -> bool:
    return distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1


def _average_across_ranks(*tensors: torch.Tensor) -> None:
    if _is_distributed():
        for tensor in tensors:
            distributed.all_reduce(tensor, op=distributed.ReduceOp.SUM)
            tensor /= distributed.get_world_size()


def _broadcast_from_rank0(*tensors: torch.Tensor) -> None:
    if _is_distributed():
        for tensor in tensors:
            distributed.broadcast(tensor, src=0)


def _sample_frames(frames: torch.Tensor, num: int) -> torch.Tensor:
    """`num` random rows of `frames` (without replacement when there are enough)."""
    n = frames.shape[0]
    if n >= num:
        index = torch.randperm(n, device=frames.device)[:num]
    else:
        index = torch.randint(0, n, (num,), device=frames.device)
    return frames[index]


def nearest_code(x: torch.Tensor, embed: torch.Tensor, embed_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest row of `embed` [K, D] for each row of `x` [N, D] (squared Euclidean,
    ties to the lowest index). ||x||^2 is dropped: it does not change the argmin. `embed_norms` [K]:
    `embed.pow(2).sum(-1)` if already known."""
    if embed_norms is None:
        embed_norms = embed.pow(2).sum(-1)
    distances = embed_norms[None, :] - 2 * x @ embed.t()
    return distances.argmin(dim=-1)


def kmeans(frames: torch.Tensor, num_clusters: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on `frames` [N, D] -> (centroids [K, D], cluster sizes [K]).
    Empty clusters are re-seeded with random frames."""
    centroids = _sample_frames(frames, num_clusters)
    sizes = torch.zeros(num_clusters, device=frames.device)
    for _ in range(iters):
        assignment = nearest_code(frames, centroids)
        sizes = code_usage(assignment, num_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, frames)
        empty = sizes == 0
        means = sums / sizes.clamp_min(1)[:, None]
        centroids = torch.where(empty[:, None], _sample_frames(frames, num_clusters), means)
    return centroids, sizes


class EuclideanCodebook(nn.Module):
    """K codes of dimension D, nearest-neighbour lookup, learned by EMA (no gradient, no parameters).

    Training step, in order: k-means init on the first learning batch; lookup (the returned vectors are
    the centroids before this step's update); EMA of counts and sums (averaged across ranks when
    torch.distributed is initialised), Laplace-smoothed recompute of `embed`; then codes with
    `cluster_size < threshold_ema_dead_code` get a random frame of the batch as `embed`, a usage of
    `threshold / decay**dead_code_grace_steps` as `cluster_size` and that frame times this usage as
    `embed_avg`, so the new code survives the call (upstream EnCodec/WavTokenizer replace before the EMA
    recompute, which undoes it) and, unused, the next `dead_code_grace_steps` steps. Without that grace
    a code reset to exactly the threshold is dead again one decay later unless it wins >= threshold frames
    in every batch: at a small batch (8 x 1 s at 75 Hz = 600 frames for 256 codes) about half the codebook
    was re-drawn at every step, and the decoder could not learn what a code means. k-means results and
    replacements are broadcast from rank 0, so all ranks stay identical.
    An un-initialised codebook used in eval just uses its current (zero) `embed`.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
        update_ema: bool | None = None,
        dead_code_grace_steps: int | None = None,
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay} (codecs use 0.99).")
        self.dim = dim
        self.codebook_size = codebook_size
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        self.update_ema = update_ema
        # A replaced code starts with usage threshold / decay**grace: unused, it survives `grace` steps
        # (default one EMA time constant, 1 / (1 - decay) = 100 steps at 0.99) before it is dead again.
        self.dead_code_grace_steps = (round(1.0 / (1.0 - decay)) if dead_code_grace_steps is None
                                      else int(dead_code_grace_steps))
        if kmeans_init:
            embed = torch.zeros(codebook_size, dim)
        else:
            embed = nn.init.kaiming_uniform_(torch.empty(codebook_size, dim))
        # Without k-means, counts start at 1 so embed_avg / cluster_size == embed from the first update
        # (with the default threshold 2 every unused code is then replaced by a batch frame at once).
        self.register_buffer("initialized", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size) if kmeans_init else torch.ones(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.last_replaced = 0  # codes replaced by the latest learning step (for metrics)

    @property
    def is_initialized(self) -> bool:
        return bool(self.initialized.item())

    def learns(self) -> bool:
        """Whether a forward call now may change the codebook (see the module docstring)."""
        if not self.training:
            return False
        return torch.is_grad_enabled() if self.update_ema is None else bool(self.update_ema)

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] -> nearest code indices [N] int64 (computed in float32)."""
        return nearest_code(x.float(), self.embed.float(), self._embed_norms())

    def _embed_norms(self) -> torch.Tensor | None:
        """``embed.pow(2).sum(-1)`` [K] in float32, kept until ``embed`` changes (its version counter moves)."""
        embed = self.embed
        try:
            key = (id(embed), embed.data_ptr(), embed._version, embed.dtype)
        except RuntimeError:  # an inference-mode tensor tracks no version: do not cache
            return None
        cached = self.__dict__.get("_norms_cache")
        if cached is None or cached[0] != key:
            cached = (key, embed.float().pow(2).sum(-1))
            self.__dict__["_norms_cache"] = cached
        return cached[1]

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices [...] -> vectors [..., D]."""
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor, allow_init: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, D] -> (quantized [N, D], codes [N]). Learns when `learns()`; `allow_init=False` skips
        k-means (and then all learning) while the codebook is still un-initialised."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"EuclideanCodebook expects [N, {self.dim}] frames, got {tuple(x.shape)}.")
        frames = x.detach().float()
        self.last_replaced = 0
        learning = self.learns()
        if learning and not self.is_initialized:
            if allow_init:
                self._kmeans_init(frames)
            else:
                learning = False
        codes = self.quantize(frames)
        quantized = self.dequantize(codes).to(x.dtype)
        if learning:
            self._ema_update(frames, codes)
            self._replace_dead_codes(frames)
        return quantized, codes

    @torch.no_grad()
    def _kmeans_init(self, frames: torch.Tensor) -> None:
        if not _is_distributed() or distributed.get_rank() == 0:
            centroids, sizes = kmeans(frames, self.codebook_size, self.kmeans_iters)
            self.embed.copy_(centroids)
            self.embed_avg.copy_(centroids * sizes[:, None])
            self.cluster_size.copy_(sizes)
            self.initialized.fill_(1.0)
        _broadcast_from_rank0(self.embed, self.embed_avg, self.cluster_size, self.initialized)

    @torch.no_grad()
    def _ema_update(self, frames: torch.Tensor, codes: torch.Tensor) -> None:
        counts = code_usage(codes, self.codebook_size)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, codes, frames)
        _average_across_ranks(counts, sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def _replace_dead_codes(self, frames: torch.Tensor) -> None:
        threshold = self.threshold_ema_dead_code
        if threshold <= 0:
            return
        dead = self.cluster_size < threshold  # identical on all ranks: the statistics are synced
        self.last_replaced = int(dead.sum())
        if self.last_replaced == 0:
            return
        new_codes = _sample_frames(frames, self.codebook_size)
        usage = threshold / self.decay ** self.dead_code_grace_steps if self.decay > 0 else threshold
        self.embed.copy_(torch.where(dead[:, None], new_codes, self.embed))
        self.embed_avg.copy_(torch.where(dead[:, None], new_codes * usage, self.embed_avg))
        self.cluster_size.masked_fill_(dead, usage)
        _broadcast_from_rank0(self.embed, self.embed_avg, self.cluster_size)

    @property
    def perplexity(self) -> float:
        """Perplexity of the EMA usage `cluster_size`."""
        return float(perplexity(self.cluster_size))

    @property
    def dead_codes(self) -> int:
        """Codes whose EMA usage is below the dead-code threshold."""
        return int((self.cluster_size < self.threshold_ema_dead_code).sum())

    def usage_histogram(self, codes: torch.Tensor) -> torch.Tensor:
        """Histogram `[K]` of the given codes of this codebook."""
        return code_usage(codes, self.codebook_size)


def codebook_state_from_moshi(state: dict[str, torch.Tensor], epsilon: float = 1e-5) -> dict[str, torch.Tensor]:
    """Convert one moshi (Mimi) codebook's buffers into ours.

    moshi keys `_initialized` [1], `cluster_usage` [K], `embedding_sum` [K, D]; moshi decodes with
    `embedding_sum / cluster_usage.clamp(min=epsilon)[:, None]` (epsilon 1e-5), so `embed` is exactly
    that, `embed_avg` is `embedding_sum` and `cluster_size` is `cluster_usage`.
    """
    usage = state["cluster_usage"].float()
    embedding_sum = state["embedding_sum"].float()
    return {
        "initialized": state["_initialized"].float().reshape(1),
        "cluster_size": usage.clone(),
        "embed": embedding_sum / usage.clamp(min=epsilon)[:, None],
        "embed_avg": embedding_sum.clone(),
    }
