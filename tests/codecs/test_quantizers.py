"""Quantizers: codebook learning rules, RVQ / split RVQ / FSQ behaviour, official-config sizes."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.nn.functional as F

from audiotok.codecs.quantizers import (
    FSQ,
    EuclideanCodebook,
    ResidualVQ,
    SplitResidualVQ,
    VectorQuantizer,
    build_quantizer,
    codebook_state_from_moshi,
)
from audiotok.codecs.quantizers import codebook as codebook_module

pytestmark = pytest.mark.usefixtures("one_thread")

DIM, K, FRAMES, BATCH = 16, 32, 40, 4


def small_rvq(**kw) -> ResidualVQ:
    defaults = dict(dim=DIM, n_q=4, codebook_size=K, kmeans_iters=5)
    return ResidualVQ(**{**defaults, **kw})


def latents(seed: int = 0, batch: int = BATCH, dim: int = DIM) -> torch.Tensor:
    return torch.randn(batch, dim, FRAMES, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- codebook


def test_nearest_code_is_euclidean_argmin_with_ties_to_lowest_index():
    embed = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [10.0, 10.0]])
    x = torch.tensor([[0.9, 0.1], [0.2, 0.0], [9.0, 9.5], [0.5, 0.0]])
    assert codebook_module.nearest_code(x, embed).tolist() == [1, 0, 3, 0]


def test_kmeans_init_only_on_first_training_forward(monkeypatch):
    calls = []
    real_kmeans = codebook_module.kmeans
    monkeypatch.setattr(codebook_module, "kmeans", lambda *a: calls.append(1) or real_kmeans(*a))
    codebook = EuclideanCodebook(DIM, K, kmeans_iters=3)
    frames = torch.randn(200, DIM)

    codebook.eval()
    _, codes = codebook(frames)
    assert calls == [] and codebook.initialized.item() == 0.0
    assert torch.all(codebook.embed == 0) and torch.all(codes == 0)  # un-initialised: current (zero) embed

    codebook.train()
    with torch.no_grad():  # a discriminator-style no-grad pass does not learn either
        codebook(frames)
    assert calls == [] and codebook.initialized.item() == 0.0

    codebook(frames)
    assert calls == [1] and codebook.initialized.item() == 1.0
    codebook(frames)
    assert calls == [1]


def test_ema_updates_in_training_only_with_grad_or_explicit_flag():
    torch.manual_seed(0)
    codebook = EuclideanCodebook(DIM, K, kmeans_init=False, threshold_ema_dead_code=0)
    frames = torch.randn(100, DIM)

    before = codebook.embed.clone()
    codebook.eval()
    codebook(frames)
    assert torch.equal(codebook.embed, before)

    codebook.train()
    with torch.no_grad():
        codebook(frames)
    assert torch.equal(codebook.embed, before)

    codebook.update_ema = True  # explicit flag overrides the no-grad rule
    with torch.no_grad():
        codebook(frames)
    assert not torch.equal(codebook.embed, before)

    codebook.update_ema = False
    after = codebook.embed.clone()
    codebook(frames)
    assert torch.equal(codebook.embed, after)

    codebook.update_ema = None
    codebook(frames)
    assert not torch.equal(codebook.embed, after)


def test_ema_math_matches_laplace_smoothed_moving_average():
    codebook = EuclideanCodebook(2, 2, kmeans_init=False, decay=0.5, epsilon=0.0, threshold_ema_dead_code=0)
    codebook.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    codebook.embed_avg.copy_(codebook.embed)
    codebook.train()
    frames = torch.tensor([[1.0, 1.0], [3.0, 1.0], [9.0, 9.0]])
    quantized, codes = codebook(frames)
    assert codes.tolist() == [0, 0, 1]
    assert torch.equal(quantized[2], torch.tensor([10.0, 10.0]))  # lookup uses the pre-update centroids
    assert torch.allclose(codebook.cluster_size, torch.tensor([1.5, 1.0]))
    # embed_avg = 0.5 * old + 0.5 * sums ; embed = embed_avg / cluster_size
    assert torch.allclose(codebook.embed[0], torch.tensor([2.0, 1.0]) / 1.5)
    assert torch.allclose(codebook.embed[1], torch.tensor([9.5, 9.5]) / 1.0)


def test_dead_code_replacement_sticks():
    torch.manual_seed(0)
    threshold = 2.0
    codebook = EuclideanCodebook(DIM, 8, kmeans_init=False, threshold_ema_dead_code=threshold)
    frames = torch.randn(400, DIM)
    codebook.embed.copy_(frames[:8])
    codebook.embed_avg.copy_(frames[:8] * 50)
    codebook.cluster_size.fill_(50.0)
    far = torch.full((DIM,), 1e3)
    codebook.embed[3] = far
    codebook.embed_avg[3] = far * 0.5
    codebook.cluster_size[3] = 0.5

    codebook.train()
    _, codes = codebook(frames)
    assert not torch.any(codes == 3)  # nothing chose the far code in this batch
    new = codebook.embed[3]
    assert not torch.allclose(new, far)
    assert torch.any(torch.all(frames == new, dim=1))  # it is now a frame of the batch
    usage = threshold / 0.99 ** 100  # one EMA time constant of grace
    assert codebook.cluster_size[3].item() == pytest.approx(usage)
    assert torch.allclose(codebook.embed_avg[3], new * usage)
    assert codebook.last_replaced >= 1

    codebook.eval()
    assert codebook.quantize(new[None]).item() == 3  # and it is used from now on


def test_a_replaced_code_survives_its_grace_period_unused():
    """Reset to exactly the threshold, an unused code died again one step later (half a small codebook
    was re-drawn every step); now it lives `dead_code_grace_steps` steps, then is replaced."""
    codebook = EuclideanCodebook(2, 4, kmeans_init=False, threshold_ema_dead_code=2.0, dead_code_grace_steps=5)
    used = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0]])
    codebook.embed.copy_(torch.cat([used, torch.tensor([[1e3, 1e3]])]))
    codebook.embed_avg.copy_(codebook.embed * 50)
    codebook.cluster_size.copy_(torch.tensor([50.0, 50.0, 50.0, 0.0]))
    codebook.train()
    codebook(torch.full((8, 2), 5.0))  # code 3 is dead: it becomes (5, 5), a frame of this batch
    assert torch.equal(codebook.embed[3], torch.tensor([5.0, 5.0]))
    batch = used.repeat(30, 1)  # from now on nothing chooses code 3
    for _ in range(5):
        codebook(batch)
        assert torch.allclose(codebook.embed[3], torch.tensor([5.0, 5.0]))  # kept through the grace period
    codebook(batch)
    assert not torch.allclose(codebook.embed[3], torch.tensor([5.0, 5.0]))  # then dead, re-drawn from the batch


def test_codebook_stats_helpers():
    codebook = EuclideanCodebook(4, 4, kmeans_init=False, threshold_ema_dead_code=2.0)
    codebook.cluster_size.copy_(torch.tensor([5.0, 5.0, 1.0, 0.0]))
    assert codebook.dead_codes == 2
    probs = torch.tensor([5.0, 5.0, 1.0]) / 11
    assert codebook.perplexity == pytest.approx(torch.exp(-(probs * probs.log()).sum()).item(), rel=1e-5)
    assert codebook.usage_histogram(torch.tensor([0, 0, 3])).tolist() == [2.0, 0.0, 0.0, 1.0]


def test_moshi_codebook_state_decodes_to_moshi_vectors():
    torch.manual_seed(0)
    usage = torch.rand(16) * 3
    usage[:3] = 0.0  # moshi clamps these to epsilon
    moshi_state = {"_initialized": torch.tensor([1.0]), "cluster_usage": usage, "embedding_sum": torch.randn(16, 8)}
    codebook = EuclideanCodebook(8, 16)
    codebook.load_state_dict(codebook_state_from_moshi(moshi_state))
    expected = moshi_state["embedding_sum"] / usage.clamp(min=1e-5)[:, None]
    codes = torch.arange(16)
    assert torch.equal(codebook.dequantize(codes), expected)
    assert codebook.is_initialized


# --------------------------------------------------------------------------- VQ / RVQ


def test_rvq_shapes_and_code_ranges_train_and_eval():
    rvq = small_rvq()
    x = latents()
    for mode in (True, False):
        rvq.train(mode)
        out = rvq(x)
        assert out.quantized.shape == x.shape and out.first_level.shape == x.shape
        assert out.codes.shape == (BATCH, 4, FRAMES) and out.codes.dtype == torch.int64
        assert 0 <= out.codes.min() and out.codes.max() < K
        assert out.commitment_loss.dim() == 0
        assert all(isinstance(v, float) for v in out.metrics.values())
    assert rvq.num_codebooks == 4 and rvq.codebook_size == K and rvq.dim == DIM


def test_decode_of_encode_equals_forward_in_eval():
    rvq = small_rvq(codebook_dim=8)
    rvq.train()
    rvq(latents(1))
    rvq.eval()
    x = latents(2)
    out = rvq(x)
    codes = rvq.encode(x)
    assert torch.equal(codes, out.codes)
    assert torch.equal(rvq.decode(codes), out.quantized)
    assert torch.equal(rvq.decode(codes[:, :1]), out.first_level)


@pytest.mark.parametrize("training", [True, False])
def test_n_q_honoured_in_forward_encode_decode(training):
    rvq = small_rvq()
    rvq.train()
    rvq(latents(1))  # initialise every level
    untouched = rvq.layers[2].codebook.embed.clone()
    rvq.train(training)
    x = latents(2)
    out = rvq(x, n_q=2)
    assert out.codes.shape == (BATCH, 2, FRAMES)
    assert torch.equal(rvq.layers[2].codebook.embed, untouched)  # levels beyond n_q neither run nor learn
    assert rvq.encode(x, n_q=3).shape == (BATCH, 3, FRAMES)
    rvq.eval()
    codes = rvq.encode(x)
    partial = rvq.decode(codes[:, :2])
    expected = rvq.layers[0].decode(codes[:, 0]) + rvq.layers[1].decode(codes[:, 1])
    assert torch.allclose(partial, expected)
    with pytest.raises(ValueError, match="n_q=5"):
        rvq(x, n_q=5)
    with pytest.raises(ValueError, match="Q <= 4"):
        rvq.decode(torch.zeros(1, 5, 3, dtype=torch.long))


def test_straight_through_gradient_is_exact():
    rvq = small_rvq()
    rvq.train()
    x = latents().requires_grad_()
    upstream = torch.randn_like(x)
    rvq(x).quantized.backward(upstream)
    assert torch.equal(x.grad, upstream)

    projected = small_rvq(codebook_dim=8)
    projected.train()
    x = latents().requires_grad_()
    out = projected(x)
    (out.quantized.sum() + out.first_level.sum()).backward()
    assert x.grad.abs().sum() > 0
    assert projected.input_proj.weight.grad.abs().sum() > 0
    assert projected.output_proj.weight.grad.abs().sum() > 0


def test_commitment_loss_mean_and_sum_over_levels():
    x = latents()
    mean_rvq = small_rvq(kmeans_init=False, update_ema=False)
    sum_rvq = small_rvq(kmeans_init=False, update_ema=False, commitment_reduction="sum")
    sum_rvq.load_state_dict(mean_rvq.state_dict())
    mean_rvq.train(), sum_rvq.train()
    residual, per_level = x, []
    for layer in mean_rvq.layers:
        q = layer.decode(layer.encode(residual))
        per_level.append(F.mse_loss(residual, q))
        residual = residual - q
    expected = torch.stack(per_level)
    assert torch.allclose(mean_rvq(x).commitment_loss, expected.mean(), rtol=1e-5)
    assert torch.allclose(sum_rvq(x).commitment_loss, expected.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="commitment_reduction"):
        small_rvq(commitment_reduction="max")


def test_per_item_quantizer_dropout():
    torch.manual_seed(3)
    n_q, batch = 6, 16
    rvq = small_rvq(n_q=n_q, quantizer_dropout=True, kmeans_init=False, update_ema=False)
    rvq.train()
    x = latents(batch=batch)
    out = rvq(x)
    kept = out.kept_levels
    assert kept.shape == (batch,) and kept.min() >= 1 and kept.max() <= n_q
    assert len(set(kept.tolist())) > 1  # items in one batch draw different numbers of levels
    assert out.codes.shape == (batch, n_q, FRAMES)  # dropped levels still return their real codes
    assert torch.equal(out.codes, rvq.encode(x))
    for b in range(batch):
        expected = rvq.decode(out.codes[b : b + 1, : kept[b]])
        assert torch.allclose(out.quantized[b : b + 1], expected, atol=1e-5)
    assert out.metrics["levels"] == pytest.approx(kept.float().mean().item())

    rvq.eval()
    assert rvq(x).kept_levels is None  # no dropout at inference

    none_dropped = small_rvq(n_q=n_q, quantizer_dropout=True, quantizer_dropout_rate=0.0, kmeans_init=False)
    none_dropped.train()
    assert torch.all(none_dropped(x).kept_levels == n_q)


def test_staggered_kmeans_init_one_level_per_step():
    rvq = small_rvq(n_q=3, stagger_kmeans_init=True)
    rvq.train()
    flags = []
    for seed in range(3):
        rvq(latents(seed))
        flags.append([layer.codebook.is_initialized for layer in rvq.layers])
    assert flags == [[True, False, False], [True, True, False], [True, True, True]]

    eager = small_rvq(n_q=3)
    eager.train()
    eager(latents(0))
    assert all(layer.codebook.is_initialized for layer in eager.layers)


def test_seeded_training_is_deterministic():
    def run():
        torch.manual_seed(7)
        rvq = small_rvq(quantizer_dropout=True)
        rvq.train()
        outs = [rvq(latents(seed)) for seed in range(3)]
        return outs[-1], rvq.state_dict()

    (out_a, state_a), (out_b, state_b) = run(), run()
    assert torch.equal(out_a.codes, out_b.codes) and torch.equal(out_a.quantized, out_b.quantized)
    assert torch.equal(out_a.kept_levels, out_b.kept_levels)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_vector_quantizer_projection_and_commitment():
    vq = VectorQuantizer(DIM, K, codebook_dim=8, commitment_weight=0.25, kmeans_iters=3)
    assert vq.input_proj.weight.shape == (8, DIM, 1) and vq.input_proj.bias is None
    vq.train()
    x = latents()
    level = vq(x)
    assert level.quantized.shape == x.shape and level.codes.shape == (BATCH, FRAMES)
    assert level.commitment.shape == (BATCH,)
    forced = VectorQuantizer(DIM, K, force_projection=True)
    assert forced.input_proj.weight.shape == (DIM, DIM, 1)
    assert isinstance(VectorQuantizer(DIM, K).input_proj, torch.nn.Identity)


def test_no_quantization_rate_passes_latent_through():
    rvq = small_rvq(no_quantization_rate=1.0)
    rvq.train()
    x = latents()
    assert torch.equal(rvq(x).quantized, x)
    rvq.eval()
    assert not torch.equal(rvq(x).quantized, x)


# --------------------------------------------------------------------------- split RVQ


def test_split_rvq_parallel_sum_and_semantic_only():
    split = SplitResidualVQ(dim=DIM, n_q=4, codebook_size=K, codebook_dim=8, kmeans_iters=3, stagger_kmeans_init=False)
    split.train()
    split(latents(1))
    split.eval()
    x = latents(2)
    out = split(x)
    semantic, acoustic = split.semantic(x), split.acoustic(x)
    assert out.codes.shape == (BATCH, 4, FRAMES)
    assert torch.equal(out.quantized, semantic.quantized + acoustic.quantized)
    assert torch.equal(out.codes, torch.cat([semantic.codes, acoustic.codes], dim=1))
    assert torch.equal(out.first_level, semantic.quantized)
    # the acoustic RVQ quantizes the same latent, not the semantic residual
    assert torch.equal(out.codes[:, 1:], split.acoustic.encode(x))
    assert torch.equal(split.decode(split.encode(x)), out.quantized)

    for training in (True, False):
        split.train(training)
        acoustic_before = split.acoustic.layers[0].codebook.embed.clone()
        one = split(x, n_q=1)
        assert one.codes.shape == (BATCH, 1, FRAMES)
        assert torch.equal(split.acoustic.layers[0].codebook.embed, acoustic_before)
        assert split.encode(x, n_q=2).shape == (BATCH, 2, FRAMES)
    split.eval()
    assert torch.equal(split(x, n_q=1).quantized, split.semantic(x).quantized)
    assert torch.equal(split.decode(split.encode(x, n_q=1)), split.semantic(x).quantized)
    with pytest.raises(ValueError, match="n_q_semantic"):
        SplitResidualVQ(dim=DIM, n_q=1, codebook_size=K)


def test_split_rvq_dropout_only_on_acoustic():
    torch.manual_seed(0)
    split = SplitResidualVQ(dim=DIM, n_q=6, codebook_size=K, quantizer_dropout=True, kmeans_init=False)
    split.train()
    out = split(latents(batch=16))
    assert out.kept_levels.min() >= 2 and out.kept_levels.max() <= 6
    assert len(set(out.kept_levels.tolist())) > 1


# --------------------------------------------------------------------------- FSQ


def test_fsq_round_trip_and_interface():
    fsq = FSQ(DIM, levels=[8, 5, 5, 5])
    assert fsq.codebook_size == 1000 and fsq.num_codebooks == 1
    x = latents() * 3
    fsq.eval()
    out = fsq(x)
    assert out.codes.shape == (BATCH, 1, FRAMES) and out.codes.dtype == torch.int64
    assert 0 <= out.codes.min() and out.codes.max() < 1000
    z = fsq.input_proj(x)
    assert out.commitment_loss.item() == pytest.approx(float(torch.relu(z.abs() - 2.0).pow(2).mean()))
    assert torch.equal(fsq.encode(x), out.codes)
    assert torch.equal(fsq.decode(out.codes), out.quantized)
    all_vectors = fsq.decode(torch.arange(1000).view(1, 1, 1000))
    assert torch.unique(all_vectors.round(decimals=5), dim=2).shape[2] == 1000  # every code is distinct

    fsq.train()
    x = x.requires_grad_()
    fsq(x).quantized.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="n_q"):
        fsq(x, n_q=2)


def test_fsq_range_penalty_is_zero_in_range_and_pulls_a_saturating_latent_back():
    """In tanh's responsive range the penalty is exactly zero (training equals plain FSQ); beyond it, its
    gradient points back inward, strongly enough to win over a saturated tanh's constant push (the collapse
    it prevents: docs/training-postmortem.md)."""
    fsq = FSQ(4, levels=[8, 5, 5, 5])
    inside = torch.linspace(-2, 2, 50).expand(1, 4, 50)
    assert fsq.range_penalty(inside).item() == 0.0
    z = torch.tensor([[[30.0], [-30.0], [1.0], [0.5]]], requires_grad=True)
    fsq.range_penalty(z).backward()
    assert z.grad[0, 0, 0] > 0 and z.grad[0, 1, 0] < 0 and z.grad[0, 2:].abs().sum() == 0
    bounded = z.detach().requires_grad_()
    fsq._bound(bounded).sum().backward()  # what reaches a saturated latent from the reconstruction side
    assert bounded.grad[0, 0, 0] < 1e-6 < z.grad[0, 0, 0]


def test_fsq_digits_round_trip_through_codes():
    fsq = FSQ(4, levels=[8, 5, 5, 5])
    codes = torch.arange(1000).view(1, 1, 1000)
    centered = (codes // fsq.basis[None, :, None]) % fsq.levels[None, :, None] - fsq._half_width()
    assert torch.equal(fsq._codes_from_digits(centered), codes)


# --------------------------------------------------------------------------- builder and official configs


def test_build_quantizer():
    assert isinstance(build_quantizer("rvq", dim=8, n_q=2, codebook_size=4), ResidualVQ)
    assert isinstance(build_quantizer("split_rvq", dim=8, n_q=2, codebook_size=4), SplitResidualVQ)
    assert isinstance(build_quantizer("fsq", dim=8, levels=[3, 3]), FSQ)
    with pytest.raises(ValueError, match="unknown quantizer 'lfq'; available: fsq, rvq, split_rvq"):
        build_quantizer("lfq", dim=8)
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['codebook_sise'\]; accepted: .*'codebook_size'"):
        build_quantizer("rvq", dim=8, n_q=2, codebook_sise=4)


def count(module: torch.nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def test_speechtokenizer_quantizer_sizes():
    rvq = ResidualVQ(dim=1024, n_q=8, codebook_size=1024)
    params, buffers = count(rvq)
    assert params == 0
    assert buffers == 8 * (1024 * 1024 + 1024 * 1024 + 1024 + 1) == 16_785_416
    keys = set(rvq.state_dict())
    names = ("initialized", "cluster_size", "embed", "embed_avg")
    assert {f"layers.{i}.codebook.{name}" for i in range(8) for name in names} == keys


def test_mimi_quantizer_sizes():
    split = SplitResidualVQ(dim=512, n_q=32, codebook_size=2048, codebook_dim=256)
    params, _ = count(split)
    assert params == 4 * 131_072 == 524_288
    assert split.semantic.input_proj.weight.shape == (256, 512, 1)
    assert split.acoustic.output_proj.weight.shape == (512, 256, 1)
    codebooks = split.codebooks()
    assert len(codebooks) == 32 and all(c.embed.shape == (2048, 256) for c in codebooks)


def test_wavtokenizer_single_codebook():
    vq = ResidualVQ(dim=512, n_q=1, codebook_size=4096)
    assert count(vq)[0] == 0 and vq.num_codebooks == 1
    assert vq.layers[0].codebook.embed.shape == (4096, 512)


# --------------------------------------------------------------------------- distributed


def _distributed_worker(rank: int, world_size: int, init_file: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different data and different random draws on each rank
    states = {}
    for threshold in (0.0, 3.0):  # 0: only the EMA all-reduce keeps ranks equal; 3: replacements too
        rvq = small_rvq(n_q=2, threshold_ema_dead_code=threshold)
        rvq.train()
        for _ in range(3):
            rvq(torch.randn(2, DIM, FRAMES))
        states[threshold] = rvq.state_dict()
    torch.save(states, os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # spawns two processes (about 2 s idle, more on a loaded machine)
def test_distributed_ranks_stay_identical():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_distributed_worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        states0 = torch.load(os.path.join(tmp, "rank0.pt"))
        states1 = torch.load(os.path.join(tmp, "rank1.pt"))
    for threshold, state0 in states0.items():
        assert state0["layers.1.codebook.initialized"].item() == 1.0
        for key in state0:
            assert torch.equal(state0[key], states1[threshold][key]), (threshold, key)
