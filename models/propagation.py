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
from models.errors import ErrorKind, UserError

MIN_SNIPPETS = 3
DENSE_LIMIT = 16_384  # complete graphs beyond this many snippets would need > 1 GiB per video
_COSINE_EPS = 1e-12


class PropagationError(UserError):
    """A video cannot be propagated (too short, wrong shape, mixed dimensions); names the video."""

    kind = ErrorKind.INVALID_FEATURES

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


def _load_into(target: torch.Tensor, features: np.ndarray | torch.Tensor, config: PropagationConfig) -> None:
    """Copy one video's features into ``target`` (T, D) float32, standardised or shifted to near zero.

    Distances do not change under a shift, but the float32 dot products of the distance kernels are accurate
    only for vectors near zero: subtracting the mean of a few evenly spaced snippets while copying does that in
    the same pass over the data (the full mean would need two more).
    """
    length = target.shape[0]
    if config.standardize or not _needs_distances(config):
        if torch.is_tensor(features):
            target.copy_(features)
        elif target.device.type == "cpu":
            np.copyto(target.numpy(), np.asarray(features), casting="same_kind")
        else:
            target.copy_(torch.from_numpy(np.array(features, dtype=np.float32)))
        if config.standardize:
            spread = target.std(dim=0, unbiased=False)
            target -= target.mean(dim=0)
            target /= torch.where(spread > 0, spread, torch.ones_like(spread))
        return
    probes = np.unique(np.linspace(0, length - 1, min(length, 8)).round().astype(int))
    if not torch.is_tensor(features) and target.device.type == "cpu":  # straight from (memory-mapped) arrays
        centre = np.asarray(features[probes], dtype=np.float32).mean(axis=0)
        np.subtract(features, centre, out=target.numpy(), casting="same_kind")
        return
    source = features if torch.is_tensor(features) else torch.from_numpy(np.array(features, dtype=np.float32))
    source = source.to(device=target.device, dtype=torch.float32)
    torch.sub(source, source[torch.as_tensor(probes, device=target.device)].mean(dim=0), out=target)


def _prepare(features: np.ndarray | torch.Tensor, config: PropagationConfig, device: torch.device) -> torch.Tensor:
    """One video's prepared float32 features on the device (see ``_load_into``)."""
    tensor = torch.empty(tuple(features.shape), dtype=torch.float32, device=device)
    _load_into(tensor, features, config)
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
    videos: list[np.ndarray | torch.Tensor],
    graphs: list[_Graph],
    rngs: list[np.random.Generator],
    config: PropagationConfig,
    device: torch.device,
) -> list[np.ndarray]:
    """Videos with complete graphs, padded into one dense batch (n, Tmax, Tmax)."""
    count, longest, dim = len(videos), max(g.length for g in graphs), int(videos[0].shape[1])
    batch = torch.empty(count, longest, dim, dtype=torch.float32, device=device)
    seeds = []
    for index, (video, g, rng) in enumerate(zip(videos, graphs, rngs, strict=True)):
        _load_into(batch[index, : g.length], video, config)
        batch[index, g.length :] = 0
        seeds.append(seed_indices(batch[index, : g.length], config, rng))
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
    videos: list[np.ndarray | torch.Tensor],
    graphs: list[_Graph],
    rngs: list[np.random.Generator],
    config: PropagationConfig,
    device: torch.device,
) -> list[np.ndarray]:
    """Videos longer than their window (all with the same Lw = 2h), concatenated and kept as a band.

    Away from the borders a snippet links to offsets -h..h: those entries form a dense band of 2h + 1 diagonals.
    At each border the windows are shifted, so links reach up to Lw - 1: those few entries are kept as a list.
    """
    dim = int(videos[0].shape[1])
    window = graphs[0].window
    half = window // 2
    padded_lengths = [math.ceil(g.length / half) * half for g in graphs]
    offsets = np.concatenate([[0], np.cumsum(padded_lengths)]).astype(int)
    total = int(offsets[-1])
    stacked = torch.empty(total + half, dim, dtype=torch.float32, device=device)
    seeds = []
    for index, (video, g, rng) in enumerate(zip(videos, graphs, rngs, strict=True)):
        start = offsets[index]
        _load_into(stacked[start : start + g.length], video, config)
        seeds.append(seed_indices(stacked[start : start + g.length], config, rng))
    # Per-row metadata, vectorised: owner video, position in it, its length (0 on padding rows).
    padded = torch.tensor(padded_lengths + [half], device=device)
    owner = torch.arange(len(graphs) + 1, device=device).repeat_interleave(padded)
    position = torch.arange(total + half, device=device) - torch.as_tensor(offsets, device=device)[owner]
    real_lengths = torch.tensor([g.length for g in graphs] + [0], device=device)
    length_of = torch.where(position < real_lengths[owner], real_lengths[owner], 0)
    stacked[length_of == 0] = 0
    temporal_lengths = [float(g.temporal_length) for g in graphs] + [1.0]
    temporal_of = torch.tensor(temporal_lengths, dtype=torch.float64, device=device)[owner[:total]]
    owner = owner[:total]
    starts = window_starts(position, length_of, window)

    # Dot products x_i . x_{i+o} for o = 0..h from two block products per block of h rows.
    count = total // half
    rows_of_block = stacked[:total].view(count, half, dim)
    two_blocks = stacked.as_strided((count, 2 * half, dim), (half * dim, dim, 1))  # block b and b + 1
    pairs = torch.bmm(rows_of_block, two_blocks.transpose(1, 2))
    near = pairs.as_strided((count, half, half + 1), (2 * half * half, 2 * half + 1, 1)).reshape(total, -1)
    norms = torch.zeros(total + half, dtype=torch.float64, device=device)
    norms[:total] = near[:, 0]

    def following_rows(vector: torch.Tensor) -> torch.Tensor:
        """(total, h) view: row i holds vector[i + 1 .. i + h]."""
        return vector.unfold(0, half, 1)[1 : total + 1]

    gaps = torch.arange(1, half + 1, device=device)
    pos_i = position[:total, None]
    same_video = pos_i + gaps < length_of[:total, None]
    multiplicity = (same_video & (pos_i + gaps < starts[:total, None] + window)).double() + (
        same_video & (pos_i >= following_rows(starts))
    ).double()
    scale_of = None
    if config.affinity == "adaptive" and config.feature_similarity:
        squared = (norms[:total, None] + following_rows(norms) - 2 * near[:, 1:].double()).clamp_min(0)
        scales = torch.ones(total, dtype=torch.float64, device=device)
        for index, g in enumerate(graphs):
            rows = slice(offsets[index], offsets[index] + g.length)
            scales[rows] = _median_scale(squared[rows][multiplicity[rows] > 0])
        scale_of = scales
    upper = _affinity(
        near[:, 1:].double(), norms[:total, None], following_rows(norms), dim, config,
        None if scale_of is None else scale_of[:, None],
    )
    upper *= multiplicity
    if config.temporal:
        upper *= torch.exp(-gaps.double() / temporal_of[:, None])

    # Border links beyond h: rows [0, h) x columns [h, Lw) at the start, the mirror image at the end.
    # The start corner is block-aligned, so its products are in ``pairs``; the end corners are gathered.
    first_rows = torch.as_tensor(offsets[:-1], device=device)
    last_rows = first_rows + torch.tensor([g.length - window for g in graphs], device=device)
    span = torch.arange(half, device=device)
    end_rows = last_rows[:, None] + span
    end_dots = torch.bmm(stacked[end_rows], stacked[end_rows + half].transpose(1, 2))
    corner_dots = torch.stack([pairs[first_rows // half, :, half:], end_dots], dim=1).reshape(-1, half, half)
    corner_rows = torch.stack([first_rows[:, None] + span, end_rows], dim=1).reshape(-1, half)
    corner_cols = corner_rows + half
    row_grid = corner_rows[:, :, None].expand(-1, -1, half)
    col_grid = corner_cols[:, None, :].expand(-1, half, -1)
    # A video shorter than 3h has rows in both corners: the end corner leaves those to the start corner.
    is_end = (torch.arange(row_grid.shape[0], device=device) % 2 == 1)[:, None, None]
    seen = is_end & (position[row_grid] < half) & (position[col_grid] < window)
    far = (col_grid - row_grid > half) & ~seen
    rows, cols = row_grid[far], col_grid[far]
    corner_dots = corner_dots[far].double()
    lengths = length_of[rows]
    corner_multiplicity = (position[cols] < starts[rows] + window).double() + (
        position[rows] >= starts[cols]
    ).double()
    corner_scale = None if scale_of is None else scale_of[rows]
    corner_values = _affinity(corner_dots, norms[rows], norms[cols], dim, config, corner_scale)
    corner_values = corner_values * corner_multiplicity * (lengths > 0)
    if config.temporal:
        corner_values = corner_values * torch.exp(-(cols - rows).double() / temporal_of[rows])
    keep = corner_values != 0
    rows, cols, corner_values = rows[keep], cols[keep], corner_values[keep]
    rows, cols = torch.cat([rows, cols]), torch.cat([cols, rows])  # both triangles
    corner_values = torch.cat([corner_values, corner_values])

    # Band of 2h + 1 diagonals: column c holds offset c - h; the lower half is the upper one read skewed.
    width = half + 1
    with_diagonal = torch.cat([torch.zeros(total, 1, dtype=torch.float64, device=device), upper], dim=1)
    shifted = torch.cat([torch.zeros(width - 1, width, dtype=torch.float64, device=device), with_diagonal])
    lower = shifted.as_strided((total, width), (width, width - 1), width - 1)
    band = torch.cat([lower, upper], dim=1)
    degree = band.sum(dim=1).index_add_(0, rows, corner_values)
    inverse_root = torch.where(degree == 0, 1.0, degree).rsqrt()
    padded_root = torch.nn.functional.pad(inverse_root, (half, half))
    band *= inverse_root[:, None] * padded_root.unfold(0, 2 * half + 1, 1)
    corner_values = corner_values * inverse_root[rows] * inverse_root[cols]

    def matvec(vector: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(vector, (half, half))
        product = torch.einsum("ij,ij->i", band, padded.unfold(0, 2 * half + 1, 1))
        return product.index_add_(0, rows, corner_values * vector[cols])

    def dense_block(index: int) -> torch.Tensor:
        start, length = offsets[index], graphs[index].length
        local = torch.arange(length, device=device)
        columns = local[:, None] + torch.arange(2 * half + 1, device=device)[None, :] - half
        inside = (columns >= 0) & (columns < length)
        dense = torch.zeros(length, length, dtype=torch.float64, device=device)
        dense[local[:, None].expand_as(columns)[inside], columns[inside]] = band[start : start + length][inside]
        mine = (rows >= start) & (rows < start + length)
        dense[rows[mine] - start, cols[mine] - start] = corner_values[mine]
        return dense

    rhs = torch.zeros(total, dtype=torch.float64, device=device)
    for index, seed in enumerate(seeds):
        rhs[offsets[index] + torch.as_tensor(seed, device=device)] = 1.0
    real = length_of[:total] > 0
    solution = torch.zeros(total, dtype=torch.float64, device=device)
    if config.solver == "exact":
        solution[real] = _solve(matvec, rhs[real], owner[real], [g.length for g in graphs], config, dense_block)
    else:
        solution = _solve(matvec, rhs, owner, [g.length for g in graphs], config, dense_block)
    return [
        _postprocess(solution[offsets[i] : offsets[i] + g.length].cpu().numpy(), seeds[i], config)
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
    chunk_elements: int = 48_000_000,
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
            rngs = [np.random.default_rng([seed, i]) for i in group]
            outputs = solver([features[i] for i in group], [graphs[i] for i in group], rngs, config, target)
            for index, z in zip(group, outputs, strict=True):
                results[index] = z
    return [np.asarray(z, dtype=np.float64) for z in results]
