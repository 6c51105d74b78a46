"""The batched propagation kernels: complete graphs as padded dense batches, longer videos as bands.

The banded kernel never builds a T x T matrix: snippet dot products are taken block by block with matrix products
(float32, on mean-centred features for the distance kernels) and kept as a band of 2 Lw - 1 diagonals
(``BandedSystem``); the conjugate gradient runs for all videos of one or several chunks at once with per-video
step sizes. Videos whose graph is complete (T <= Lw) are padded into batches of dense T x T matrices instead.
Each gives z per video, whether its feature graph was empty (W = 0) and the right-hand side y it solved for;
``priors`` replaces the config's y (one vector per video).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig
from lanp_vad.models.errors import InternalError
from lanp_vad.models.graph import Graph, affinity, load_into, median_scale, window_starts
from lanp_vad.models.prior import postprocess, prior_vector, seed_indices
from lanp_vad.models.solvers import segment_sum, solve


def _prior(
    features: torch.Tensor, seeds: np.ndarray, config: PropagationConfig, priors: list[np.ndarray] | None, index: int
) -> torch.Tensor:
    """The right-hand side y of one video: the given prior, else the config's (``prior_vector``)."""
    if priors is None:
        return prior_vector(features, seeds, config)
    return torch.as_tensor(np.asarray(priors[index], dtype=np.float64), device=features.device)


def _load_video(
    target: torch.Tensor, video: np.ndarray | torch.Tensor, rng: np.random.Generator, config: PropagationConfig,
    priors: list[np.ndarray] | None, index: int,
) -> tuple[np.ndarray, torch.Tensor]:
    """One video's prepared features copied into ``target`` (``load_into``), then its seeds and right-hand side."""
    load_into(target, video, config)
    seeds = seed_indices(target, config, rng)
    return seeds, _prior(target, seeds, config, priors, index)


def propagate_complete(
    videos: list[np.ndarray | torch.Tensor],
    graphs: list[Graph],
    rngs: list[np.random.Generator],
    config: PropagationConfig,
    device: torch.device,
    priors: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[bool], list[np.ndarray]]:
    """Videos with complete graphs, padded into one dense batch (n, Tmax, Tmax); z and whether W = 0, per video."""
    count, longest, dim = len(videos), max(g.length for g in graphs), int(videos[0].shape[1])
    batch = torch.empty(count, longest, dim, dtype=torch.float32, device=device)
    seeds, ys = [], []
    for index, (video, g, rng) in enumerate(zip(videos, graphs, rngs, strict=True)):
        seed, y = _load_video(batch[index, : g.length], video, rng, config, priors, index)
        batch[index, g.length :] = 0
        seeds.append(seed)
        ys.append(y)
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
        scale = torch.stack([median_scale(squared[v][upper[v]]) for v in range(count)])[:, None, None]
    weights = affinity(dots.double(), norms[:, :, None].double(), norms[:, None, :].double(), dim, config, scale)
    if config.temporal:
        temporal_length = torch.tensor([g.temporal_length for g in graphs], device=device, dtype=torch.float64)
        gaps = (positions[:, None] - positions[None, :]).abs().double()
        weights = weights * torch.exp(-gaps[None] / temporal_length[:, None, None])
    weights = torch.where(linked, 2 * weights, 0.0)  # each edge lies in both windows: W + W^T doubles it
    degree = weights.sum(dim=2)
    empty = (degree.sum(dim=1) == 0).tolist()
    inverse_root = torch.where(degree == 0, 1.0, degree).rsqrt()
    normalised = inverse_root[:, :, None] * weights * inverse_root[:, None, :]
    rhs = torch.zeros(count, longest, dtype=torch.float64, device=device)
    for index, (y, g) in enumerate(zip(ys, graphs, strict=True)):
        rhs[index, : g.length] = y
    segments = torch.arange(count, device=device).repeat_interleave(longest)
    solution = solve(
        lambda p: torch.bmm(normalised, p.view(count, longest, 1)).view(-1),
        rhs.view(-1),
        segments,
        [g.length for g in graphs],
        config,
        lambda v: normalised[v],
    ).view(count, longest)
    return [
        postprocess(solution[index, : g.length].cpu().numpy(), seeds[index], config)
        for index, g in enumerate(graphs)
    ], empty, [y.cpu().numpy() for y in ys]


MIN_ROWS_PER_BLOCK = 8
"""Smaller blocks waste fewer products but make matrix products too thin to run at full speed."""


def _rows_per_block(half: int) -> int:
    """Rows per block of the band's products: the largest divisor of h up to h / 2 (a block of q rows computes
    q (q + h) products of which q (h + 1) are needed: 1.5x the need at q = h / 2 against 2x at q = h), or h
    itself when no divisor of at least ``MIN_ROWS_PER_BLOCK`` exists."""
    divisors = [q for q in range(MIN_ROWS_PER_BLOCK, half // 2 + 1) if half % q == 0]
    return max(divisors) if divisors else half


@dataclass
class BandedSystem:
    """The banded systems of one or more chunks of videos, ready for the solver: S as a band of 2h + 1 diagonals
    (row i, column c: offset c - h) plus the border links beyond h as a list, the right-hand side, each row's video
    (``owner``) and each video's first row. Systems of several chunks join into one (``join``), so that the
    conjugate gradient runs once over all of them instead of once per chunk: its few dozen operations per
    iteration then work on long vectors, rather than each chunk paying them again."""

    half: int
    band: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    corner_values: torch.Tensor
    rhs: torch.Tensor
    owner: torch.Tensor
    real: torch.Tensor
    offsets: np.ndarray
    lengths: list[int]
    seeds: list[np.ndarray]
    priors: list[np.ndarray]
    empty: list[bool]

    @classmethod
    def join(cls, systems: list[BandedSystem]) -> BandedSystem:
        """One system of ``systems`` one after the other (rows, columns and owners shifted; their bands touch only
        through zeros: no entry reaches outside its own video)."""
        if len(systems) == 1:
            return systems[0]
        if len({system.half for system in systems}) > 1:
            raise InternalError("banded systems of different windows cannot share one band")
        row_shift = np.cumsum([0] + [system.band.shape[0] for system in systems[:-1]])
        video_shift = np.cumsum([0] + [len(system.lengths) for system in systems[:-1]])
        return cls(
            half=systems[0].half,
            band=torch.cat([system.band for system in systems]),
            rows=torch.cat([system.rows + int(shift) for system, shift in zip(systems, row_shift, strict=True)]),
            cols=torch.cat([system.cols + int(shift) for system, shift in zip(systems, row_shift, strict=True)]),
            corner_values=torch.cat([system.corner_values for system in systems]),
            rhs=torch.cat([system.rhs for system in systems]),
            owner=torch.cat([system.owner + int(shift) for system, shift in zip(systems, video_shift, strict=True)]),
            real=torch.cat([system.real for system in systems]),
            offsets=np.concatenate(
                [system.offsets[:-1] + shift for system, shift in zip(systems, row_shift, strict=True)]
                + [[row_shift[-1] + systems[-1].offsets[-1]]]
            ),
            lengths=[length for system in systems for length in system.lengths],
            seeds=[seed for system in systems for seed in system.seeds],
            priors=[prior for system in systems for prior in system.priors],
            empty=[empty for system in systems for empty in system.empty],
        )

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        half = self.half
        padded = torch.nn.functional.pad(vector, (half, half))
        product = torch.einsum("ij,ij->i", self.band, padded.unfold(0, 2 * half + 1, 1))
        return product.index_add_(0, self.rows, self.corner_values * vector[self.cols])

    def dense_block(self, index: int) -> torch.Tensor:
        """S of video ``index`` as a dense matrix (the exact solver)."""
        half, device = self.half, self.band.device
        start, length = int(self.offsets[index]), self.lengths[index]
        local = torch.arange(length, device=device)
        columns = local[:, None] + torch.arange(2 * half + 1, device=device)[None, :] - half
        inside = (columns >= 0) & (columns < length)
        dense = torch.zeros(length, length, dtype=torch.float64, device=device)
        dense[local[:, None].expand_as(columns)[inside], columns[inside]] = self.band[start : start + length][inside]
        mine = (self.rows >= start) & (self.rows < start + length)
        dense[self.rows[mine] - start, self.cols[mine] - start] = self.corner_values[mine]
        return dense

    def solve(self, config: PropagationConfig) -> list[np.ndarray]:
        """z of every video (post-processed)."""
        if config.solver == "exact":
            solution = torch.zeros_like(self.rhs)
            solution[self.real] = solve(self.matvec, self.rhs[self.real], self.owner[self.real], self.lengths,
                                        config, self.dense_block)
        else:
            solution = solve(self.matvec, self.rhs, self.owner, self.lengths, config, self.dense_block)
        values = solution.cpu().numpy()
        return [
            postprocess(values[self.offsets[i] : self.offsets[i] + length].copy(), self.seeds[i], config)
            for i, length in enumerate(self.lengths)
        ]


@dataclass(frozen=True)
class _Rows:
    """The row layout of a chunk's stacked videos (each padded to a multiple of h, then h zero rows): per row its
    video (``owner``, ``total`` rows), its position in that video, the video's length (0 on padding rows), the
    first position of its window and its video's temporal length."""

    dim: int
    half: int
    window: int
    total: int
    offsets: np.ndarray
    owner: torch.Tensor
    position: torch.Tensor
    length_of: torch.Tensor
    starts: torch.Tensor
    temporal_of: torch.Tensor

    def following(self, vector: torch.Tensor) -> torch.Tensor:
        """(total, h) view: row i holds vector[i + 1 .. i + h]."""
        return vector.unfold(0, self.half, 1)[1 : self.total + 1]


def _stack_videos(
    videos: list[np.ndarray | torch.Tensor],
    graphs: list[Graph],
    rngs: list[np.random.Generator],
    config: PropagationConfig,
    device: torch.device,
    priors: list[np.ndarray] | None,
) -> tuple[torch.Tensor, _Rows, list[np.ndarray], list[torch.Tensor]]:
    """Step 1: the videos' prepared features one after the other (``load_into``), zero on padding rows; the row
    layout; each video's seeds and right-hand side."""
    dim = int(videos[0].shape[1])
    window = graphs[0].window
    half = window // 2
    padded_lengths = [math.ceil(g.length / half) * half for g in graphs]
    offsets = np.concatenate([[0], np.cumsum(padded_lengths)]).astype(int)
    total = int(offsets[-1])
    stacked = torch.empty(total + half, dim, dtype=torch.float32, device=device)
    seeds, ys = [], []
    for index, (video, g, rng) in enumerate(zip(videos, graphs, rngs, strict=True)):
        seed, y = _load_video(stacked[offsets[index] : offsets[index] + g.length], video, rng, config, priors, index)
        seeds.append(seed)
        ys.append(y)
    padded = torch.tensor(padded_lengths + [half], device=device)
    owner = torch.arange(len(graphs) + 1, device=device).repeat_interleave(padded)
    position = torch.arange(total + half, device=device) - torch.as_tensor(offsets, device=device)[owner]
    real_lengths = torch.tensor([g.length for g in graphs] + [0], device=device)
    length_of = torch.where(position < real_lengths[owner], real_lengths[owner], 0)
    stacked[length_of == 0] = 0
    temporal_lengths = [float(g.temporal_length) for g in graphs] + [1.0]
    temporal_of = torch.tensor(temporal_lengths, dtype=torch.float64, device=device)[owner[:total]]
    layout = _Rows(dim=dim, half=half, window=window, total=total, offsets=offsets, owner=owner[:total],
                   position=position, length_of=length_of, starts=window_starts(position, length_of, window),
                   temporal_of=temporal_of)
    return stacked, layout, seeds, ys


def _near_products(stacked: torch.Tensor, layout: _Rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 2: the dot products x_i . x_{i+o} for o = 0..h, (total, h + 1), and the squared norms (float64, with
    h zero rows at the end). Each block of q rows is multiplied by the q + h rows from its first on: row a of a
    block needs columns a..a + h of its q + h, so q < h wastes fewer products than q = h (half of them)."""
    half, total, dim = layout.half, layout.total, layout.dim
    rows_per_block = _rows_per_block(half)
    count = total // rows_per_block
    blocks = stacked[:total].view(count, rows_per_block, dim)
    reach = stacked.as_strided((count, rows_per_block + half, dim), (rows_per_block * dim, dim, 1))
    pairs = torch.bmm(blocks, reach.transpose(1, 2))
    near = pairs.as_strided(
        (count, rows_per_block, half + 1), (rows_per_block * (rows_per_block + half), rows_per_block + half + 1, 1)
    ).reshape(total, -1)
    del pairs
    norms = torch.zeros(total + half, dtype=torch.float64, device=stacked.device)
    norms[:total] = near[:, 0]
    return near, norms


def _upper_band(near: torch.Tensor, norms: torch.Tensor, layout: _Rows, graphs: list[Graph],
                config: PropagationConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step 3: W_{i, i+o} for o = 1..h, counted once per window that holds the pair (W + W^T), times the temporal
    factor; with each row's ``adaptive`` bandwidth (the median distance over its video's linked pairs; else None)."""
    half, total, device = layout.half, layout.total, near.device
    gaps = torch.arange(1, half + 1, device=device)
    pos_i = layout.position[:total, None]
    same_video = pos_i + gaps < layout.length_of[:total, None]
    multiplicity = (same_video & (pos_i + gaps < layout.starts[:total, None] + layout.window)).double() + (
        same_video & (pos_i >= layout.following(layout.starts))
    ).double()
    scale_of = None
    if config.affinity == "adaptive" and config.feature_similarity:
        squared = (norms[:total, None] + layout.following(norms) - 2 * near[:, 1:].double()).clamp_min(0)
        scale_of = torch.ones(total, dtype=torch.float64, device=device)
        for index, g in enumerate(graphs):
            rows = slice(layout.offsets[index], layout.offsets[index] + g.length)
            scale_of[rows] = median_scale(squared[rows][multiplicity[rows] > 0])
    upper = affinity(
        near[:, 1:].double(), norms[:total, None], layout.following(norms), layout.dim, config,
        None if scale_of is None else scale_of[:, None],
    )
    upper *= multiplicity
    if config.temporal:
        shared = {g.temporal_length for g in graphs}
        if len(shared) == 1:  # one temporal length (L = the window, the default): one factor per offset
            upper *= torch.exp(-gaps.double() / shared.pop())
        else:
            upper *= torch.exp(-gaps.double() / layout.temporal_of[:, None])
    return upper, scale_of


def _border_links(stacked: torch.Tensor, norms: torch.Tensor, layout: _Rows, graphs: list[Graph],
                  config: PropagationConfig, scale_of: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 4: the links beyond h at each border, where the windows are shifted (rows [0, h) x columns [h, Lw) at
    the start, the mirror image at the end), as (rows, columns, W) of both triangles, zeros left out."""
    half, window, device, position = layout.half, layout.window, stacked.device, layout.position
    first_rows = torch.as_tensor(layout.offsets[:-1], device=device)
    last_rows = first_rows + torch.tensor([g.length - window for g in graphs], device=device)
    span = torch.arange(half, device=device)
    corner_rows = torch.stack([first_rows[:, None] + span, last_rows[:, None] + span], dim=1).reshape(-1, half)
    corner_cols = corner_rows + half
    corner_dots = torch.bmm(stacked[corner_rows], stacked[corner_cols].transpose(1, 2))
    row_grid = corner_rows[:, :, None].expand(-1, -1, half)
    col_grid = corner_cols[:, None, :].expand(-1, half, -1)
    # A video shorter than 3h has rows in both corners: the end corner leaves those to the start corner.
    is_end = (torch.arange(row_grid.shape[0], device=device) % 2 == 1)[:, None, None]
    seen = is_end & (position[row_grid] < half) & (position[col_grid] < window)
    far = (col_grid - row_grid > half) & ~seen
    rows, cols = row_grid[far], col_grid[far]
    corner_dots = corner_dots[far].double()
    lengths = layout.length_of[rows]
    corner_multiplicity = (position[cols] < layout.starts[rows] + window).double() + (
        position[rows] >= layout.starts[cols]
    ).double()
    corner_scale = None if scale_of is None else scale_of[rows]
    values = affinity(corner_dots, norms[rows], norms[cols], layout.dim, config, corner_scale)
    values = values * corner_multiplicity * (lengths > 0)
    if config.temporal:
        values = values * torch.exp(-(cols - rows).double() / layout.temporal_of[rows])
    keep = values != 0
    rows, cols, values = rows[keep], cols[keep], values[keep]
    return torch.cat([rows, cols]), torch.cat([cols, rows]), torch.cat([values, values])


def _normalised_band(upper: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, corner_values: torch.Tensor,
                     layout: _Rows, videos: int) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """Step 5: S = D^-1/2 W D^-1/2 as a band of 2h + 1 diagonals (column c holds offset c - h; the lower half is
    the upper one read skewed) plus the border values; whether each video's W is empty (zero degrees count as 1)."""
    total, width, device = layout.total, layout.half + 1, upper.device
    with_diagonal = torch.cat([torch.zeros(total, 1, dtype=torch.float64, device=device), upper], dim=1)
    shifted = torch.cat([torch.zeros(width - 1, width, dtype=torch.float64, device=device), with_diagonal])
    lower = shifted.as_strided((total, width), (width, width - 1), width - 1)
    band = torch.cat([lower, upper], dim=1)
    degree = band.sum(dim=1).index_add_(0, rows, corner_values)
    empty = (segment_sum(degree, layout.owner, videos) == 0).tolist()
    inverse_root = torch.where(degree == 0, 1.0, degree).rsqrt()
    padded_root = torch.nn.functional.pad(inverse_root, (layout.half, layout.half))
    band *= inverse_root[:, None] * padded_root.unfold(0, 2 * layout.half + 1, 1)
    return band, corner_values * inverse_root[rows] * inverse_root[cols], empty


def banded_system(
    videos: list[np.ndarray | torch.Tensor],
    graphs: list[Graph],
    rngs: list[np.random.Generator],
    config: PropagationConfig,
    device: torch.device,
    priors: list[np.ndarray] | None = None,
) -> BandedSystem:
    """The banded system of videos longer than their window (all with the same Lw = 2h), concatenated.

    Away from the borders a snippet links to offsets -h..h: those entries form a dense band of 2h + 1 diagonals.
    At each border the windows are shifted, so links reach up to Lw - 1: those few entries are kept as a list.
    Built in five steps: stack the videos, take the near dot products, weigh the upper band, add the border
    links, normalise.
    """
    stacked, layout, seeds, ys = _stack_videos(videos, graphs, rngs, config, device, priors)
    near, norms = _near_products(stacked, layout)
    upper, scale_of = _upper_band(near, norms, layout, graphs, config)
    rows, cols, corner_values = _border_links(stacked, norms, layout, graphs, config, scale_of)
    band, corner_values, empty = _normalised_band(upper, rows, cols, corner_values, layout, len(graphs))
    rhs = torch.zeros(layout.total, dtype=torch.float64, device=device)
    for index, (y, g) in enumerate(zip(ys, graphs, strict=True)):
        rhs[layout.offsets[index] : layout.offsets[index] + g.length] = y
    return BandedSystem(
        half=layout.half, band=band, rows=rows, cols=cols, corner_values=corner_values, rhs=rhs, owner=layout.owner,
        real=layout.length_of[: layout.total] > 0, offsets=layout.offsets, lengths=[g.length for g in graphs],
        seeds=seeds, priors=[y.cpu().numpy() for y in ys], empty=empty,
    )
