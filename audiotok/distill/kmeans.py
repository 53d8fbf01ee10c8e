"""k-means units on teacher features: pseudo-label targets (SpeechTokenizer: HuBERT layer 9, fairseq
speech2unit style). k-means++ initialisation, then Lloyd iterations, in torch."""
from __future__ import annotations

import json
from pathlib import Path

import torch

METADATA_KEY = "audiotok"


class KMeansUnits:
    """Centroids ``[K, D]``; ``assign(features[B, D, T] or [D, T]) -> units [B, T] or [T]`` (int64)."""

    def __init__(self, centroids: torch.Tensor, metadata: dict | None = None) -> None:
        if centroids.dim() != 2:
            raise ValueError(f"centroids must be [K, D], got {tuple(centroids.shape)}")
        self.centroids = centroids.float()
        self.metadata = dict(metadata or {})

    @property
    def num_units(self) -> int:
        return self.centroids.shape[0]

    def assign(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest centroid (Euclidean) for every frame; time-last layout as everywhere in distill."""
        if features.shape[-2] != self.centroids.shape[1]:
            raise ValueError(
                f"features have {features.shape[-2]} dims but the centroids {self.centroids.shape[1]}; "
                "were they fitted on this teacher?"
            )
        frames = features.float().transpose(-1, -2)  # [..., T, D]
        return _nearest(frames.reshape(-1, frames.shape[-1]), self.centroids).reshape(frames.shape[:-1])

    def save(self, path: str | Path) -> Path:
        """Centroids in a safetensors file; the metadata (teacher, k, inertia...) as JSON in its header."""
        from safetensors.torch import save_file

        from audiotok.data.outputs import write_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, lambda tmp: save_file({"centroids": self.centroids.contiguous()}, str(tmp),
                                                        metadata={METADATA_KEY: json.dumps(self.metadata)}))

    @classmethod
    def load(cls, path: str | Path) -> KMeansUnits:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
            return cls(f.get_tensor("centroids"), metadata)


def _nearest(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(points, centroids)  # [N, K]
    return distances.argmin(dim=1)


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++: each new centre drawn with probability proportional to squared distance."""
    first = torch.randint(points.shape[0], (1,), generator=generator)
    centroids = [points[first[0]]]
    closest = ((points - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        probabilities = closest / closest.sum() if closest.sum() > 0 else torch.full_like(closest, 1 / len(closest))
        index = torch.multinomial(probabilities, 1, generator=generator)[0]
        centroids.append(points[index])
        closest = torch.minimum(closest, ((points - points[index]) ** 2).sum(1))
    return torch.stack(centroids)


def fit_kmeans(points: torch.Tensor, k: int, iterations: int = 50, seed: int = 0, tolerance: float = 1e-4) -> KMeansUnits:
    """Fit ``k`` centroids to ``points [N, D]``; empty clusters are re-seeded from the farthest points.

    Stops when the mean squared distance improves by less than ``tolerance`` (relative).
    """
    points = points.float()
    if points.dim() != 2 or points.shape[0] < k:
        raise ValueError(f"need at least k={k} feature frames [N, D] to fit k-means, got {tuple(points.shape)}")
    generator = torch.Generator().manual_seed(seed)
    centroids = _kmeans_plus_plus(points, k, generator)
    previous = float("inf")
    inertia = previous
    for _ in range(iterations):
        distances = torch.cdist(points, centroids)
        nearest = distances.min(dim=1)
        inertia = float((nearest.values**2).mean())
        counts = torch.bincount(nearest.indices, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, nearest.indices, points)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any():  # re-seed from the points worst served by their centre
            farthest = nearest.values.topk(int(empty.sum())).indices
            centroids[empty] = points[farthest]
        if previous - inertia <= tolerance * max(previous, 1e-12):
            break
        previous = inertia
    return KMeansUnits(centroids, {"k": k, "inertia": inertia, "frames": points.shape[0], "seed": seed})


def fit_kmeans_on_cache(
    folder: str | Path, k: int, max_frames: int = 1_000_000, iterations: int = 50, seed: int = 0
) -> KMeansUnits:
    """Fit units on the frames of a feature cache (a random subset of ``max_frames`` if larger)."""
    from audiotok.distill.cache import FeatureCache

    cache = FeatureCache(folder)
    if cache.output != "features":
        raise ValueError(f"{folder} caches {cache.output}, which are already units; k-means needs float features")
    frames = torch.cat([cache.full(path).float().T for path in cache.paths()])  # [N, D]
    if frames.shape[0] > max_frames:
        keep = torch.randperm(frames.shape[0], generator=torch.Generator().manual_seed(seed))[:max_frames]
        frames = frames[keep]
    units = fit_kmeans(frames, k, iterations=iterations, seed=seed)
    units.metadata.update(teacher=cache.index["teacher"], teacher_hash=cache.teacher_hash, cache=str(folder),
                          teacher_spec=cache.index.get("teacher_spec") or None)
    return units
