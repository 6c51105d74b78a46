"""Normality propagation: from "the start and end of a video are normal" to a normality score z per snippet.

For each video with features X (T, D) the graph links snippet i to the snippets j of its window
(``banded``: the official rule k = min(band_k, T-1), Lw = min(2k, T), window [i - Lw/2, i + Lw/2) shifted inside
the video at the borders; otherwise all snippets). Edge weights are W_ij = F_ij * exp(-|i - j| / L) with the feature
affinity F of ``config.affinity``:

- ``gaussian``: exp(-||xi - xj||^2 / (2 sigma^2)) (the paper);
- ``rms``: exp(-sqrt(mean_k (xik - xjk)^2) / (2 sigma^2)) (the official code on UCF-Crime);
- ``cosine``: max(xi.xj / (|xi| |xj|), 0) (the official code on ShanghaiTech, whose ReLU features never give a
  negative cosine; zero vectors count as norm 1e-12). Negative cosines (centred or standardised features) are
  clamped: a negative weight can make a degree negative and z NaN;
- ``adaptive``: exp(-||xi - xj||^2 / (2 s^2)) with s the median Euclidean distance over the video's linked pairs
  (over its distances to the seeds for ``method=direct``): scale-free, so it needs no sigma tuned to the backbone.

Then W <- W + W^T (an edge counts twice when each end lies in the other's window), the diagonal is zero, zero
degrees count as 1, S = D^-1/2 W D^-1/2, and (I - alpha S) z = y is solved for the seed indicator y by conjugate
gradient with SciPy's rules (x0 = 0; stop before an iteration when ||r|| < cg_tol * ||y||; at most cg_maxiter
iterations, None meaning SciPy's default 10 T) or exactly. ``postprocess`` clips z < 0 to 0 and sets the seeds
to max(z), as the official code does.

A video whose feature affinities are all zero (a Gaussian that underflows at the features' scale, all-zero
features under cosine) has no graph, and z would be the seed indicator itself. Such a video is propagated on
the temporal graph alone instead, with a warning, and ``propagate_videos`` names it.

``null_normality(T)`` is that temporal-only propagation for a featureless video of length T: what z looks like
when nothing but position matters. It depends on T and the graph settings only and is cached per T; the
length-neutral video scores of ``models.pseudo_labels`` compare z with it.

The work is split over ``models.graph`` (window geometry, affinities), ``models.prior`` (seeds, post-
processing), ``models.solvers`` (batched CG) and ``models.propagation_batches`` (the dense and banded kernels).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig
from lanp_vad.models.errors import ErrorKind, InternalError, UserError
from lanp_vad.models.graph import Graph, affinity, median_scale, prepare
from lanp_vad.models.prior import postprocess, prior_vector, seed_indices
from lanp_vad.models.propagation_batches import BandedSystem, banded_system, propagate_complete

log = logging.getLogger(__name__)

MIN_SNIPPETS = 3
DENSE_LIMIT = 16_384  # complete graphs beyond this many snippets would need > 1 GiB per video


class PropagationError(UserError):
    """A video cannot be propagated (too short, wrong shape, mixed dimensions); names the video."""

    kind = ErrorKind.INVALID_FEATURES

    def __init__(self, message: str, video_id: str):
        super().__init__(f"{video_id}: {message}")
        self.video_id = video_id


def _propagate_direct(video: torch.Tensor, seeds: np.ndarray, config: PropagationConfig) -> np.ndarray:
    """Table 3's ``direct`` ablation: mean affinity (feature x temporal) of each snippet to the seeds."""
    length, dim = video.shape
    seed_tensor = torch.as_tensor(seeds, device=video.device)
    dots = (video @ video[seed_tensor].T).double()
    norms = (video * video).sum(dim=1).double()
    scale = None
    if config.affinity == "adaptive":
        scale = median_scale((norms[:, None] + norms[seed_tensor][None, :] - 2 * dots).reshape(-1))
    weights = affinity(dots, norms[:, None], norms[seed_tensor][None, :], dim, config, scale)
    if config.temporal:
        graph = Graph.of(length, config)
        gaps = (torch.arange(length, device=video.device)[:, None] - seed_tensor[None, :]).abs().double()
        weights = weights * torch.exp(-gaps / graph.temporal_length)
    return postprocess(weights.mean(dim=1).cpu().numpy(), seeds, config)


def _inputs(
    group: list[int],
    features: Sequence[np.ndarray | torch.Tensor],
    graphs: list[Graph],
    seed: int,
) -> tuple[list, list[Graph], list[np.random.Generator]]:
    """A kernel's first arguments for the videos ``group``: features, graphs and the seeds' random generators."""
    return [features[i] for i in group], [graphs[i] for i in group], [np.random.default_rng([seed, i]) for i in group]


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


@dataclass(frozen=True)
class Propagation:
    """z per video (float64, (T,)), the indices of the videos that had no feature graph (W = 0), and the
    right-hand side y each was propagated from (the seed indicator, or the given prior)."""

    z: list[np.ndarray]
    featureless: list[int]
    prior: list[np.ndarray]


def propagate(
    features: Sequence[np.ndarray | torch.Tensor],
    config: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    video_ids: Sequence[str] | None = None,
    chunk_elements: int = 48_000_000,
    priors: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Normality z (float64, shape (T,)) for each video's (T, D) features; see ``propagate_videos``."""
    return propagate_videos(
        features, config, device=device, seed=seed, video_ids=video_ids, chunk_elements=chunk_elements,
        priors=priors,
    ).z  # fmt: skip


def _check_videos(names: list[str], features: Sequence[np.ndarray | torch.Tensor]) -> int:
    """The common feature dimension; PropagationError naming the first video of bad shape or length."""
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
    if dim is None:
        raise PropagationError("no videos to propagate", "feature set")
    return dim


def propagate_videos(
    features: Sequence[np.ndarray | torch.Tensor],
    config: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    video_ids: Sequence[str] | None = None,
    chunk_elements: int = 48_000_000,
    priors: Sequence[np.ndarray] | None = None,
) -> Propagation:
    """Normality z for each video's (T, D) features, computed in memory-bounded batches.

    ``seed`` drives the ``random`` seeds ablation; ``video_ids`` name videos in errors and warnings;
    ``chunk_elements`` bounds the graph entries held at once (about 16 bytes each). Raises PropagationError for
    T < 3 or bad shapes. A video with no feature graph (W = 0) is propagated on the temporal graph alone, with a
    warning, and listed in ``featureless``. ``priors`` (one (T,) vector per video) replaces the right-hand side,
    the seed indicator: the same graph then smooths any per-snippet values (the bank evidence of the pseudo labels),
    post-processed as ``config.postprocess`` says.
    """
    names = list(video_ids) if video_ids is not None else [f"video #{i}" for i in range(len(features))]
    if len(names) != len(features):
        raise InternalError(f"{len(names)} video ids for {len(features)} videos")
    target = torch.device(device) if device is not None else torch.device("cpu")
    dim = _check_videos(names, features)
    if priors is not None and (len(priors) != len(features) or config.method == "direct"):
        raise InternalError("priors need one vector per video and method=propagate")
    if priors is not None:
        for name, video, prior in zip(names, features, priors, strict=True):
            if np.shape(prior) != (video.shape[0],):
                raise InternalError(f"{name}: a prior of shape {np.shape(prior)} for {video.shape[0]} snippets")
    graphs = [Graph.of(int(video.shape[0]), config) for video in features]
    if config.method == "propagate":
        for name, graph in zip(names, graphs, strict=True):
            if graph.complete and graph.length > DENSE_LIMIT:
                raise PropagationError(
                    f"{graph.length} snippets on a complete graph need {graph.length**2 * 8 / 2**30:.1f} GiB; "
                    "use propagation.banded=true",
                    name,
                )
    results: list[np.ndarray | None] = [None] * len(features)
    rhs: list[np.ndarray | None] = [None] * len(features)
    featureless: list[int] = []
    with torch.no_grad():
        if config.method == "direct":
            for index, video in enumerate(features):
                prepared = prepare(video, config, target)
                seeds = seed_indices(prepared, config, np.random.default_rng([seed, index]))
                results[index] = _propagate_direct(prepared, seeds, config)
                rhs[index] = prior_vector(prepared, seeds).cpu().numpy()
            return Propagation([np.asarray(z, dtype=np.float64) for z in results], [], rhs)
        complete = sorted((i for i, g in enumerate(graphs) if g.complete), key=lambda i: graphs[i].length)
        banded = sorted((i for i, g in enumerate(graphs) if not g.complete), key=lambda i: graphs[i].length)
        dense_sizes = [g.length * (g.length + dim) for g in graphs]
        band_sizes = [g.length * (2 * g.window + dim // 4) for g in graphs]
        # Dense batches pad to the longest member, so bound count * longest^2 by sorting on length.
        outputs: list[tuple[list[int], list[np.ndarray], list[bool], list[np.ndarray]]] = []
        for group in _chunks(complete, dense_sizes, chunk_elements):
            given = None if priors is None else [priors[i] for i in group]
            outputs.append((group, *propagate_complete(*_inputs(group, features, graphs, seed), config, target,
                                                       given)))
        # The banded chunks are built one at a time (their features are the big part) and, for CG, solved
        # together: one conjugate gradient over every chunk's band (see BandedSystem).
        systems, members = [], []
        for group in _chunks(banded, band_sizes, chunk_elements):
            given = None if priors is None else [priors[i] for i in group]
            system = banded_system(*_inputs(group, features, graphs, seed), config, target, given)
            if config.solver == "exact":
                outputs.append((group, system.solve(config), system.empty, system.priors))
            else:
                systems.append(system)
                members += group
        if systems:
            joined = BandedSystem.join(systems)
            systems.clear()  # the joined copy is all that is kept
            outputs.append((members, joined.solve(config), joined.empty, joined.priors))
        for group, zs, empty, ys in outputs:
            for index, z, no_graph, y in zip(group, zs, empty, ys, strict=True):
                results[index], rhs[index] = z, y
                if no_graph and config.feature_similarity:
                    featureless.append(index)
    if featureless:
        featureless.sort()
        log.warning(
            "%d video(s) have no feature graph (every feature affinity is 0: %s%s); propagated on the temporal "
            "graph alone", len(featureless), ", ".join(names[i] for i in featureless[:5]),
            ", ..." if len(featureless) > 5 else "",
        )  # fmt: skip
        temporal = config.model_copy(update={"feature_similarity": False})
        redone = propagate(
            [features[i] for i in featureless], temporal, device=target, seed=seed,
            priors=None if priors is None else [priors[i] for i in featureless],
        )  # fmt: skip
        for index, z in zip(featureless, redone, strict=True):
            results[index] = z
    return Propagation([np.asarray(z, dtype=np.float64) for z in results], featureless, rhs)
