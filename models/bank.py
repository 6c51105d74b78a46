"""The cross-video normality bank: the normality prior of every video, made comparable across the archive.

LANP's prior says the first and last snippets of each video are normal. Within one video that prior is
propagated over the snippet graph; across videos it forms a memory bank: the standardised seed snippets of every
training video (``entries="seeds"``) or, for an archive known to hold no anomaly, every snippet
(``entries="all"``, thinned to at most ``max_entries``). A snippet's evidence of anomaly is its squared
standardised distance to the nearest bank entry of *another* video: a video never vouches for itself, and
footage that recurs across the archive is normal wherever it appears.

Standardisation uses the archive's mean and std per dimension over all its snippets. When nearly all the
feature variance lies between the videos' means (``between_video_share`` >= ``center_share``: per-video offsets
such as a camera's exposure dominate), each video is first centred on the mean of its own seed snippets, so
that the bank compares what happens in a video rather than which video it is.

A video being scored is recognised as a training video when its four seed snippets equal that video's (to
``SAME_VIDEO_TOLERANCE`` in standardised units: a re-extraction with another inference runtime still matches)
and is then kept from its own entries, so ``lanp evaluate`` on the training features measures the archive as a
leave-one-video-out bank would. Pure numpy: the bank scores in the torch-free CPU image too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lanp_vad.models.config import BankConfig
from lanp_vad.models.context import between_video_share
from lanp_vad.models.errors import ErrorKind, UserError

SAME_VIDEO_TOLERANCE = 1e-2  # mean absolute difference of the seeds, standardised units
_CHUNK = 4096  # query snippets per distance block (bounds the (queries, entries) matrix)


class BankError(UserError):
    """A bank that cannot be built or read (no videos, mixed dimensions, a wrong array); names the problem."""

    kind = ErrorKind.INVALID_FEATURES


def seed_indices(length: int) -> np.ndarray:
    """The official code's seeds {0, 1, T-2, T-1} of a video of ``length`` snippets (unique, sorted)."""
    return np.unique([0, min(1, length - 1), max(length - 2, 0), length - 1])


@dataclass(frozen=True)
class NormalityBank:
    """Standardised bank entries, who they came from, and how to map new features into the bank's space."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    entries: np.ndarray  # (N, D) float32, standardised (and centred per video when ``centred``)
    owners: np.ndarray  # (N,) int32: the training video each entry came from
    signatures: np.ndarray  # (V, 4, D) float32: each training video's standardised seeds, to recognise it
    signature_owners: np.ndarray  # (V,) int32: the recording (owner id) of each signature
    centred: bool
    kind: str  # "seeds" or "all"

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def standardise(self, video: np.ndarray) -> np.ndarray:
        """(T, D) features in the bank's space (centred on the video's own seeds when the bank is centred)."""
        array = (np.asarray(video, dtype=np.float64) - self.mean) / self.scale
        if self.centred:
            array = array - array[seed_indices(len(array))].mean(axis=0)
        return array

    def owners_of(self, standardised: np.ndarray) -> np.ndarray:
        """Training videos whose seeds equal this video's (usually none or one): their entries are excluded."""
        seeds = standardised[seed_indices(len(standardised))]
        if len(seeds) != self.signatures.shape[1]:
            return np.zeros(0, dtype=np.int64)
        gaps = np.abs(self.signatures - seeds[None].astype(np.float32)).mean(axis=(1, 2))
        return np.unique(self.signature_owners[gaps < SAME_VIDEO_TOLERANCE])

    def distances(self, video: np.ndarray, *, exclude: Sequence[int] | None = None) -> np.ndarray:
        """Squared distance of every snippet of ``video`` (T, D) to its nearest bank entry of another video.

        ``exclude``: training videos whose entries do not count (None: the videos recognised by their seeds).
        """
        array = np.asarray(video)
        if array.ndim == 3:  # crops: the bank compares crop-averaged features, as it was built from
            array = array.mean(axis=1)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise BankError(f"features of shape {array.shape} do not match the bank's dimension {self.dim}")
        query = self.standardise(array)
        left_out = self.owners_of(query) if exclude is None else np.asarray(list(exclude), dtype=np.int64)
        keep = ~np.isin(self.owners, left_out)
        entries = self.entries[keep]
        if len(entries) == 0:
            raise BankError("the bank holds no entry of another video to compare with")
        entry_norms = np.einsum("nd,nd->n", entries, entries, dtype=np.float64)
        result = np.empty(len(query))
        for start in range(0, len(query), _CHUNK):
            block = query[start : start + _CHUNK].astype(np.float32)
            squared = np.einsum("td,td->t", block, block, dtype=np.float64)[:, None] + entry_norms[None, :]
            squared -= 2.0 * (block @ entries.T)
            result[start : start + _CHUNK] = np.maximum(squared.min(axis=1), 0.0)
        return result

    def without(self, drop: np.ndarray) -> NormalityBank:
        """The bank without the entries marked in ``drop`` (e.g. seeds the trained classifier finds abnormal)."""
        keep = ~np.asarray(drop, dtype=bool)
        return replace(self, entries=self.entries[keep], owners=self.owners[keep])

    def archive_distances(
        self, videos: Sequence[np.ndarray], groups: Sequence[int] | np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Leave-one-video-out distances of the training videos themselves (each excludes its own recording's
        entries: ``groups`` as given to ``build_bank``)."""
        group_of = np.arange(len(videos)) if groups is None else np.asarray(groups)
        return [self.distances(video, exclude=[int(group_of[index])]) for index, video in enumerate(videos)]


def build_bank(
    videos: Sequence[np.ndarray],
    config: BankConfig,
    *,
    entries: str = "seeds",
    groups: Sequence[int] | np.ndarray | None = None,
) -> NormalityBank:
    """The bank of crop-averaged (T, D) training videos: standardisation, centring choice, entries, signatures.

    ``groups``: the recording each video was cut from (pseudo-videos of one recording share footage, so they
    never vouch for each other); None: every video is its own.
    """
    if len(videos) < 2:
        raise BankError(f"a normality bank needs at least 2 videos (none vouches for itself), got {len(videos)}")
    dims = {np.asarray(video).shape[-1] for video in videos}
    if len(dims) != 1:
        raise BankError(f"the videos' feature dimensions differ: {sorted(dims)}")
    arrays = [np.asarray(video, dtype=np.float64) for video in videos]
    stacked = np.concatenate(arrays)
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    centred = config.center_share < 1 and between_video_share(arrays) >= config.center_share
    empty = np.zeros(0, np.int32)
    draft = NormalityBank(mean, scale, np.zeros((0, len(mean)), np.float32), empty,
                          np.zeros((0, 4, len(mean)), np.float32), empty, centred, entries)  # fmt: skip
    standardised = [draft.standardise(array) for array in arrays]
    if entries == "seeds":
        rows = [seed_indices(len(array)) for array in standardised]
    else:
        total = sum(len(array) for array in standardised)
        step = max(1, -(-total // config.max_entries))
        rows = [np.arange(0, len(array), step) for array in standardised]
    bank_entries = np.concatenate([array[index] for array, index in zip(standardised, rows, strict=True)])
    group_of = (np.arange(len(videos)) if groups is None else np.asarray(groups)).astype(np.int32)
    owners = np.concatenate([np.full(len(index), group_of[number]) for number, index in enumerate(rows)])
    signatures = np.stack([
        array[seed_indices(len(array))] if len(array) >= 4 else np.full((4, len(mean)), np.nan)
        for array in standardised
    ]).astype(np.float32)  # fmt: skip
    return NormalityBank(mean, scale, bank_entries.astype(np.float32), owners.astype(np.int32), signatures,
                         group_of, centred, entries)  # fmt: skip


ANOMALY_EVIDENCE_RATIO = 1.1
"""An archive holds anomalies when the 99th percentile of its non-seed snippets' bank distances exceeds that of
its seed snippets by this factor. Under the prior the seeds are normal, so in an archive without anomalies the
other snippets are no further from the bank than the seeds are (measured: 0.68-0.90 on normal-only Ped2 archives,
1.34-4.3 on archives with 3-40 % abnormal frames)."""
MIN_CHECK_SNIPPETS = (8, 20)  # seeds, other snippets: below either the check cannot tell, and answers "mixed"


@dataclass(frozen=True)
class ArchiveCheck:
    """Whether an archive holds anomalies, the statistic that says so, and the rule."""

    holds_anomalies: bool
    ratio: float | None

    def describe(self) -> str:
        if self.ratio is None:
            return "too few snippets to tell: treated as an archive that may hold anomalies"
        verdict = "holds anomalies" if self.holds_anomalies else "holds no anomaly"
        return (
            f"{verdict}: the 99th percentile of the non-seed snippets' distance to the other videos' seeds is "
            f"{self.ratio:.2f}x the seeds' own (anomalies from {ANOMALY_EVIDENCE_RATIO}x)"
        )


def check_archive(distances: Sequence[np.ndarray]) -> ArchiveCheck:
    """Does the archive hold anomalies? From each video's leave-one-video-out seed-bank distances (see
    ``ANOMALY_EVIDENCE_RATIO``)."""
    seeds = np.concatenate([values[seed_indices(len(values))] for values in distances])
    others = np.concatenate([np.delete(values, seed_indices(len(values))) for values in distances])
    if seeds.size < MIN_CHECK_SNIPPETS[0] or others.size < MIN_CHECK_SNIPPETS[1]:
        return ArchiveCheck(True, None)
    ratio = float(np.quantile(others, 0.99) / max(np.quantile(seeds, 0.99), 1e-12))
    return ArchiveCheck(ratio >= ANOMALY_EVIDENCE_RATIO, ratio)
