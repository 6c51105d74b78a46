"""Normality propagation: from "the start and end of a video are normal" to a normality score z per snippet.

For each video with features X (T, D) the graph links snippet i to the snippets j of its window
(``banded``: the official rule k = min(band_k, T-1), Lw = min(2k, T), window [i - Lw/2, i + Lw/2) shifted inside
the video at the borders; otherwise all snippets). Edge weights are W_ij = F_ij * exp(-|i - j| / L) with the feature
affinity F of ``config.affinity``:

- ``gaussian``: exp(-||xi - xj||^2 / (2 sigma^2)) (the paper);
- ``rms``: exp(-sqrt(mean_k (xik - xjk)^2) / (2 sigma^2)) (the official code on UCF-Crime);
- ``cosine``: xi.xj / (|xi| |xj|) (the official code on ShanghaiTech; zero vectors count as norm 1e-12);
- ``adaptive``: exp(-||xi - xj||^2 / (2 s^2)) with s the median Euclidean distance over the video's linked pairs
  (over its distances to the seeds for ``method=direct``): scale-free, so it needs no sigma tuned to the backbone.

Then W <- W + W^T (an edge counts twice when each end lies in the other's window), the diagonal is zero, zero
degrees count as 1, S = D^-1/2 W D^-1/2, and (I - alpha S) z = y is solved for the seed indicator y by conjugate
gradient with SciPy's rules (x0 = 0; stop before an iteration when ||r|| < cg_tol * ||y||; at most cg_maxiter
iterations, None meaning SciPy's default 10 T) or exactly. ``postprocess`` clips z < 0 to 0 and sets the seeds
to max(z), as the official code does.

The batch implementation never builds a T x T matrix for banded graphs: snippet dot products are taken block by
block with matrix products (float32, on mean-centred features for the distance kernels) and kept as a band of
2 Lw - 1 diagonals; the conjugate gradient runs for all videos of a chunk at once with per-video step sizes.
Videos whose graph is complete (T <= Lw) are padded into batches of dense T x T matrices instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.config import PropagationConfig

MIN_SNIPPETS = 3
DENSE_LIMIT = 16_384  # complete graphs beyond this many snippets would need > 1 GiB per video
_COSINE_EPS = 1e-12


class PropagationError(ValueError):
    """A video cannot be propagated (too short, wrong shape, mixed dimensions); names the video."""

    def __init__(self, message: str, video_id: str):
        super().__init__(f"{video_id}: {message}")
        self.video_id = video_id


@dataclass(frozen=True)
class _Graph:
    """The window geometry of one video: window length Lw and temporal length L."""

    length: int
    window: int
    temporal_length: int

    @classmethod
    def of(cls, length: int, config: PropagationConfig) -> _Graph:
        if config.banded:
            half = min(config.band_k, length - 1)
            window = min(2 * half, length)
        else:
            window = length
        temporal = window if config.temporal_length == "window" else length
        return cls(length, window, temporal)

    @property
    def complete(self) -> bool:
        return self.window >= self.length


def window_starts(positions: torch.Tensor, length: torch.Tensor | int, window: int) -> torch.Tensor:
    """First index of each snippet's window (the official rule: centred, shifted inside the video at borders)."""
    half = window // 2
    length = torch.as_tensor(length, device=positions.device)
    centred = positions - half
    starts = torch.where(positions <= half, torch.zeros_like(positions), centred)
    return torch.where(positions >= length - half, length - window, starts)


def seed_indices(features: torch.Tensor, config: PropagationConfig, rng: np.random.Generator) -> np.ndarray:
    """The snippets labelled normal before propagation (sorted, unique)."""
    length = features.shape[0]
    reference = np.unique([0, 1, length - 2, length - 1])
    if config.seeds == "first_last":
        return np.array([0, length - 1])
    if config.seeds == "reference":
        return reference
    if config.seeds == "random":
        return np.sort(rng.choice(length, size=reference.size, replace=False))
    # data_driven: lowest local contrast = smallest mean distance to the temporal neighbours.
    steps = torch.linalg.vector_norm((features[1:] - features[:-1]).double(), dim=1)
    padded = torch.cat([steps[:1], steps, steps[-1:]])
    contrast = (padded[:-1] + padded[1:]) / 2
    order = np.argsort(contrast.cpu().numpy(), kind="stable")
    return np.sort(order[: reference.size])


def _affinity(
    dots: torch.Tensor,
    norms_i: torch.Tensor,
    norms_j: torch.Tensor,
    dim: int,
    config: PropagationConfig,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feature affinity from dot products and squared norms (broadcasting); ``scale`` for ``adaptive``."""
    if not config.feature_similarity:
        return torch.ones_like(dots)
    if config.affinity == "cosine":
        denominator = (norms_i.clamp_min(0).sqrt() * norms_j.clamp_min(0).sqrt()).clamp_min(_COSINE_EPS)
        return dots / denominator
    squared = (norms_i + norms_j - 2 * dots).clamp_min(0)
    two_sigma_sq = 2 * config.sigma**2
    if config.affinity == "gaussian":
        return torch.exp(-squared / two_sigma_sq)
    if config.affinity == "rms":
        return torch.exp(-(squared / dim).sqrt() / two_sigma_sq)
    assert scale is not None
    return torch.exp(-squared / (2 * scale**2))


def _needs_distances(config: PropagationConfig) -> bool:
    return config.feature_similarity and config.affinity != "cosine"


def _median_scale(distances_sq: torch.Tensor) -> torch.Tensor:
    """The adaptive bandwidth: median Euclidean distance (1 when all distances vanish)."""
    if distances_sq.numel() == 0:
        return torch.ones((), dtype=distances_sq.dtype, device=distances_sq.device)
    median = distances_sq.clamp_min(0).median().sqrt()
    return torch.where(median > 0, median, torch.ones_like(median))


def _prepare(features: np.ndarray | torch.Tensor, config: PropagationConfig, device: torch.device) -> torch.Tensor:
    """float32 features on the device, standardised and/or mean-centred (distances are invariant to centring)."""
    if torch.is_tensor(features):
        tensor = features.to(device=device, dtype=torch.float32)
    else:  # a copy: arrays may be read-only memory maps
        tensor = torch.tensor(np.asarray(features, dtype=np.float32), device=device)
    if config.standardize:
        spread = tensor.std(dim=0, unbiased=False)
        tensor = (tensor - tensor.mean(dim=0)) / torch.where(spread > 0, spread, torch.ones_like(spread))
    elif _needs_distances(config):
        tensor = tensor - tensor.mean(dim=0)
    return tensor


def _segment_sum(values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
    return torch.zeros(count, dtype=values.dtype, device=values.device).index_add_(0, segments, values)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    segments: torch.Tensor,
    count: int,
    *,
    rtol: float,
    maxiter: torch.Tensor,
) -> torch.Tensor:
    """CG for a block-diagonal SPD system, one independent solve per segment, with SciPy's stopping rule.

    ``matvec`` must not mix segments. Each segment starts at x = 0, stops before an iteration once
    ||r|| < rtol * ||b|| and after at most its own ``maxiter`` iterations, exactly like ``scipy.sparse.linalg.cg``.
    """
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    atol = rtol * _segment_sum(rhs * rhs, segments, count).sqrt()
    direction = torch.zeros_like(rhs)
    rho_previous = torch.ones(count, dtype=rhs.dtype, device=rhs.device)
    active = torch.ones(count, dtype=torch.bool, device=rhs.device)
    for iteration in range(int(maxiter.max())):
        rho = _segment_sum(residual * residual, segments, count)
        active &= (rho.sqrt() >= atol) & (iteration < maxiter)
        if not bool(active.any()):
            break
        beta = torch.where(active & (iteration > 0), rho / rho_previous.where(rho_previous > 0, 1.0), 0.0)
        direction = residual + beta[segments] * direction
        product = matvec(direction)
        curvature = _segment_sum(direction * product, segments, count)
        step = torch.where(active, rho / curvature.where(curvature != 0, 1.0), 0.0)
        solution += step[segments] * direction
        residual -= step[segments] * product
        rho_previous = torch.where(active, rho, rho_previous)
    return solution


def _solve(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    segments: torch.Tensor,
    lengths: list[int],
    config: PropagationConfig,
    dense_blocks: Callable[[int], torch.Tensor],
) -> torch.Tensor:
    """Solve (I - alpha S) z = y for every segment, by CG or exactly (``dense_blocks(v)`` gives S of video v).

    ``lengths`` are the videos' true lengths (SciPy's default iteration cap is 10 T).
    """
    if config.solver == "exact":
        parts = []
        for index in range(len(lengths)):
            block = dense_blocks(index).double()
            system = torch.eye(block.shape[0], dtype=torch.float64, device=block.device) - config.alpha * block
            parts.append(torch.linalg.solve(system, rhs[segments == index].double()))
        return torch.cat(parts)
    lengths_tensor = torch.tensor(lengths, device=rhs.device)
    maxiter = lengths_tensor * 10 if config.cg_maxiter is None else torch.full_like(lengths_tensor, config.cg_maxiter)
    return conjugate_gradient(
        lambda p: p - config.alpha * matvec(p), rhs, segments, len(lengths), rtol=config.cg_tol, maxiter=maxiter
    )


def _postprocess(z: np.ndarray, seeds: np.ndarray, config: PropagationConfig) -> np.ndarray:
    if config.postprocess:
        z = np.maximum(z, 0.0)
        z[seeds] = z.max()
    return z


def _propagate_complete(
    videos: list[torch.Tensor], graphs: list[_Graph], seeds: list[np.ndarray], config: PropagationConfig
) -> list[np.ndarray]:
    """Videos with complete graphs, padded into one dense batch (n, Tmax, Tmax)."""
    device = videos[0].device
    count, longest, dim = len(videos), max(g.length for g in graphs), videos[0].shape[1]
    batch = torch.zeros(count, longest, dim, dtype=torch.float32, device=device)
    for index, video in enumerate(videos):
        batch[index, : video.shape[0]] = video
    lengths = torch.tensor([g.length for g in graphs], device=device)
    positions = torch.arange(longest, device=device)
    valid = positions[None, :] < lengths[:, None]
    dots = torch.bmm(batch, batch.transpose(1, 2))
    norms = torch.diagonal(dots, dim1=1, dim2=2)
    linked = valid[:, :, None] & valid[:, None, :] & (positions[:, None] != positions[None, :])
    scale = None
    if config.affinity == "adaptive" and config.feature_similarity:
        squared = (norms[:, :, None] + norms[:, None, :] - 2 * dots).double()
        upper = linked & (positions[:, None] < positions[None, :])
        scale = torch.stack([_median_scale(squared[v][upper[v]]) for v in range(count)])[:, None, None]
    weights = _affinity(dots.double(), norms[:, :, None].double(), norms[:, None, :].double(), dim, config, scale)
    if config.temporal:
        temporal_length = torch.tensor([g.temporal_length for g in graphs], device=device, dtype=torch.float64)
        gaps = (positions[:, None] - positions[None, :]).abs().double()
        weights = weights * torch.exp(-gaps[None] / temporal_length[:, None, None])
    weights = torch.where(linked, 2 * weights, 0.0)  # each edge lies in both windows: W + W^T doubles it
    degree = weights.sum(dim=2)
    inverse_root = torch.where(degree == 0, 1.0, degree).rsqrt()
    normalised = inverse_root[:, :, None] * weights * inverse_root[:, None, :]
    rhs = torch.zeros(count, longest, dtype=torch.float64, device=device)
    for index, seed in enumerate(seeds):
        rhs[index, torch.as_tensor(seed, device=device)] = 1.0
    segments = torch.arange(count, device=device).repeat_interleave(longest)
    solution = _solve(
        lambda p: torch.bmm(normalised, p.view(count, longest, 1)).view(-1),
        rhs.view(-1),
        segments,
        [g.length for g in graphs],
        config,
        lambda v: normalised[v],
    ).view(count, longest)
    return [
        _postprocess(solution[index, : g.length].cpu().numpy(), seeds[index], config)
        for index, g in enumerate(graphs)
    ]


def _propagate_banded(
    videos: list[torch.Tensor], graphs: list[_Graph], seeds: list[np.ndarray], config: PropagationConfig
) -> list[np.ndarray]:
    """Videos longer than their window (all with the same Lw = 2h), concatenated and kept as a band."""
    device, dim = videos[0].device, videos[0].shape[1]
    window = graphs[0].window
    half = window // 2
    padded_lengths = [math.ceil(g.length / half) * half for g in graphs]
    offsets = np.concatenate([[0], np.cumsum(padded_lengths)])
    total = int(offsets[-1])
    stacked = torch.zeros(total + half, dim, dtype=torch.float32, device=device)
    owner = torch.full((total + window,), -1, dtype=torch.long, device=device)
    position = torch.zeros(total + window, dtype=torch.long, device=device)
    for index, (video, g) in enumerate(zip(videos, graphs, strict=True)):
        start = int(offsets[index])
        stacked[start : start + g.length] = video
        owner[start : start + g.length] = index
        position[start : start + g.length] = torch.arange(g.length, device=device)
    lengths = torch.tensor([g.length for g in graphs], device=device)
    temporal_lengths = torch.tensor([g.temporal_length for g in graphs], device=device, dtype=torch.float64)

    # Dot products x_i . x_{i+o} for o = 0..h from two block products per block of h rows.
    blocks = stacked.view(-1, half, dim)
    current = torch.bmm(blocks[:-1], blocks[:-1].transpose(1, 2))
    following = torch.bmm(blocks[:-1], blocks[1:].transpose(1, 2))
    pairs = torch.cat([current, following], dim=2).contiguous()
    near = pairs.as_strided((total // half, half, half + 1), (2 * half * half, 2 * half + 1, 1)).reshape(total, -1)
    norms = torch.zeros(total + window, dtype=torch.float32, device=device)
    norms[:total] = near[:, 0]

    rows = torch.arange(total, device=device)
    band = torch.zeros(total, window, dtype=torch.float64, device=device)
    pieces: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = [
        (rows[:, None].expand(-1, half), torch.arange(1, half + 1, device=device).expand(total, -1), near[:, 1:])
    ]
    # Corners: at each border the window is shifted, so links reach past h (up to Lw - 1).
    corner_rows, corner_cols = [], []
    for index, g in enumerate(graphs):
        start = int(offsets[index])
        for first in (start, start + g.length - window):
            corner_rows.append(torch.arange(first, first + half, device=device))
            corner_cols.append(torch.arange(first + half, first + window, device=device))
    row_index, col_index = torch.stack(corner_rows), torch.stack(corner_cols)
    corner_dots = torch.bmm(stacked[row_index], stacked[col_index].transpose(1, 2))
    row_grid = row_index[:, :, None].expand_as(corner_dots)
    gap = col_index[:, None, :] - row_index[:, :, None]
    far = gap > half
    pieces.append((row_grid[far], gap[far], corner_dots[far]))

    row_all = torch.cat([p[0].reshape(-1) for p in pieces])
    gap_all = torch.cat([p[1].reshape(-1) for p in pieces])
    dots_all = torch.cat([p[2].reshape(-1) for p in pieces]).double()
    col_all = row_all + gap_all
    video_of = owner[row_all]
    same = (video_of >= 0) & (owner[col_all] == video_of)
    row_all, gap_all, col_all, dots_all, video_of = (
        t[same] for t in (row_all, gap_all, col_all, dots_all, video_of)
    )
    pos_i, pos_j = position[row_all], position[col_all]
    length_of = lengths[video_of]
    start_i = window_starts(pos_i, length_of, window)
    start_j = window_starts(pos_j, length_of, window)
    multiplicity = ((pos_j >= start_i) & (pos_j < start_i + window)).double() + (
        (pos_i >= start_j) & (pos_i < start_j + window)
    ).double()
    norms_i, norms_j = norms[row_all].double(), norms[col_all].double()
    scale = None
    if config.affinity == "adaptive" and config.feature_similarity:
        squared = (norms_i + norms_j - 2 * dots_all)[multiplicity > 0]
        owners = video_of[multiplicity > 0]
        scale = torch.stack([_median_scale(squared[owners == v]) for v in range(len(graphs))])[video_of]
    weights = _affinity(dots_all, norms_i, norms_j, dim, config, scale) * multiplicity
    if config.temporal:
        weights = weights * torch.exp(-gap_all.double() / temporal_lengths[video_of])
    band[row_all, gap_all] = weights

    # Full symmetric band: column c holds offset c - (Lw - 1); the lower half is the upper one read skewed.
    shifted = torch.cat([torch.zeros(window - 1, window, dtype=band.dtype, device=device), band])
    lower = shifted.as_strided((total, window), (window, window - 1), window - 1)
    symmetric = torch.cat([lower, band[:, 1:]], dim=1)
    degree = symmetric.sum(dim=1)
    inverse_root = torch.where(degree == 0, 1.0, degree).rsqrt()
    padded_root = torch.nn.functional.pad(inverse_root, (window - 1, window - 1))
    normalised = symmetric * inverse_root[:, None] * padded_root.unfold(0, 2 * window - 1, 1)

    def matvec(vector: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(vector, (window - 1, window - 1))
        return (normalised * padded.unfold(0, 2 * window - 1, 1)).sum(dim=1)

    def dense_block(index: int) -> torch.Tensor:
        start, length = int(offsets[index]), graphs[index].length
        local = torch.arange(length, device=device)
        columns = local[:, None] + torch.arange(2 * window - 1, device=device)[None, :] - (window - 1)
        keep = (columns >= 0) & (columns < length)
        dense = torch.zeros(length, length, dtype=torch.float64, device=device)
        dense[local[:, None].expand_as(columns)[keep], columns[keep]] = normalised[start : start + length][keep]
        return dense

    rhs = torch.zeros(total, dtype=torch.float64, device=device)
    for index, seed in enumerate(seeds):
        rhs[int(offsets[index]) + torch.as_tensor(seed, device=device)] = 1.0
    segments = owner[:total].clamp_min(0)
    if config.solver == "exact":
        kept = owner[:total] >= 0
        solution = torch.zeros(total, dtype=torch.float64, device=device)
        solution[kept] = _solve(matvec, rhs[kept], segments[kept], [g.length for g in graphs], config, dense_block)
    else:
        solution = _solve(matvec, rhs, segments, [g.length for g in graphs], config, dense_block)
    return [
        _postprocess(solution[int(offsets[i]) : int(offsets[i]) + g.length].cpu().numpy(), seeds[i], config)
        for i, g in enumerate(graphs)
    ]


def _propagate_direct(video: torch.Tensor, seeds: np.ndarray, config: PropagationConfig) -> np.ndarray:
    """Table 3's ``direct`` ablation: mean affinity (feature x temporal) of each snippet to the seeds."""
    length, dim = video.shape
    seed_tensor = torch.as_tensor(seeds, device=video.device)
    dots = (video @ video[seed_tensor].T).double()
    norms = (video * video).sum(dim=1).double()
    scale = None
    if config.affinity == "adaptive":
        scale = _median_scale((norms[:, None] + norms[seed_tensor][None, :] - 2 * dots).reshape(-1))
    weights = _affinity(dots, norms[:, None], norms[seed_tensor][None, :], dim, config, scale)
    if config.temporal:
        graph = _Graph.of(length, config)
        gaps = (torch.arange(length, device=video.device)[:, None] - seed_tensor[None, :]).abs().double()
        weights = weights * torch.exp(-gaps / graph.temporal_length)
    return _postprocess(weights.mean(dim=1).cpu().numpy(), seeds, config)


def _chunks(order: list[int], sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive groups of ``order`` whose summed size stays within ``budget`` (a big item goes alone)."""
    groups: list[list[int]] = [[]]
    used = 0
    for index in order:
        if groups[-1] and used + sizes[index] > budget:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += sizes[index]
    return [group for group in groups if group]


def propagate(
    features: Sequence[np.ndarray | torch.Tensor],
    config: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    video_ids: Sequence[str] | None = None,
    chunk_elements: int = 8_000_000,
) -> list[np.ndarray]:
    """Normality z (float64, shape (T,)) for each video's (T, D) features, computed in memory-bounded batches.

    ``seed`` drives the ``random`` seeds ablation; ``video_ids`` name videos in errors; ``chunk_elements`` bounds
    the graph entries held at once (about 16 bytes each). Raises PropagationError for T < 3 or bad shapes.
    """
    names = list(video_ids) if video_ids is not None else [f"video #{i}" for i in range(len(features))]
    if len(names) != len(features):
        raise ValueError(f"{len(names)} video ids for {len(features)} videos")
    target = torch.device(device) if device is not None else torch.device("cpu")
    dim: int | None = None
    for name, video in zip(names, features, strict=True):
        shape = tuple(video.shape)
        if len(shape) != 2:
            raise PropagationError(f"features must be (T, D) (average crops first), got shape {shape}", name)
        if shape[0] < MIN_SNIPPETS:
            raise PropagationError(
                f"{shape[0]} snippet(s): propagation needs at least {MIN_SNIPPETS} (the seeds are the first and "
                "last snippets)",
                name,
            )
        if dim is not None and shape[1] != dim:
            raise PropagationError(f"feature dimension {shape[1]} differs from {dim} of the other videos", name)
        dim = shape[1]
    graphs = [_Graph.of(int(video.shape[0]), config) for video in features]
    if config.method == "propagate":
        for name, graph in zip(names, graphs, strict=True):
            if graph.complete and graph.length > DENSE_LIMIT:
                raise PropagationError(
                    f"{graph.length} snippets on a complete graph need {graph.length**2 * 8 / 2**30:.1f} GiB; "
                    "use propagation.banded=true",
                    name,
                )
    results: list[np.ndarray | None] = [None] * len(features)
    with torch.no_grad():
        if config.method == "direct":
            for index, video in enumerate(features):
                prepared = _prepare(video, config, target)
                rng = np.random.default_rng([seed, index])
                results[index] = _propagate_direct(prepared, seed_indices(prepared, config, rng), config)
            return [np.asarray(z, dtype=np.float64) for z in results]
        complete = sorted((i for i, g in enumerate(graphs) if g.complete), key=lambda i: graphs[i].length)
        banded = sorted((i for i, g in enumerate(graphs) if not g.complete), key=lambda i: graphs[i].length)
        work: list[tuple[Callable[..., list[np.ndarray]], list[int]]] = []
        dense_sizes = [g.length * (g.length + dim) for g in graphs]
        band_sizes = [g.length * (2 * g.window + dim // 4) for g in graphs]
        # Dense batches pad to the longest member, so bound count * longest^2 by sorting on length.
        work += [(_propagate_complete, group) for group in _chunks(complete, dense_sizes, chunk_elements)]
        work += [(_propagate_banded, group) for group in _chunks(banded, band_sizes, chunk_elements)]
        for solver, group in work:
            videos = [_prepare(features[i], config, target) for i in group]
            seeds = [
                seed_indices(video, config, np.random.default_rng([seed, i]))
                for i, video in zip(group, videos, strict=True)
            ]
            for index, z in zip(group, solver(videos, [graphs[i] for i in group], seeds, config), strict=True):
                results[index] = z
    return [np.asarray(z, dtype=np.float64) for z in results]
