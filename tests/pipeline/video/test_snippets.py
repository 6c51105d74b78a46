"""Snippet plans: counts, padding, the frame -> snippet map, and the public ground truths' snippet conventions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.video.snippets import SnippetPlan, SnippetPlanError


@pytest.mark.parametrize(
    ("num_frames", "padded", "dropped", "padded_exact"),
    [(1, 1, None, 1), (15, 1, None, 1), (16, 1, 1, 2), (17, 2, 1, 2), (32, 2, 2, 3), (33, 3, 2, 3)],
)
def test_snippet_counts(num_frames: int, padded: int, dropped: int | None, padded_exact: int) -> None:
    assert SnippetPlan.build(num_frames).num_snippets == padded
    assert SnippetPlan.build(num_frames, pad_exact=True).num_snippets == padded_exact
    if dropped is None:
        with pytest.raises(SnippetPlanError, match=f"{num_frames} frames is shorter"):
            SnippetPlan.build(num_frames, pad_last=False)
    else:
        assert SnippetPlan.build(num_frames, pad_last=False).num_snippets == dropped


def _brute_force_frames(plan: SnippetPlan) -> list[set[int]]:
    """The real frames of each snippet, from the definition (every stride, clipped at the video's end)."""
    return [
        {f for f in range(i * plan.stride, i * plan.stride + plan.length) if f < plan.num_frames}
        for i in range(plan.num_snippets)
    ]


@pytest.mark.parametrize("num_frames", [1, 2, 15, 16, 17, 31, 32, 33, 100, 161])
def test_non_overlapping_map_covers_every_frame_once(num_frames: int) -> None:
    plan = SnippetPlan.build(num_frames)
    assert plan.num_snippets == math.ceil(num_frames / 16)
    members = _brute_force_frames(plan)
    counts = np.zeros(num_frames, dtype=int)
    for snippet, frames in enumerate(members):
        for frame in frames:
            counts[frame] += 1
            assert plan.frame_to_snippet[frame] == snippet
    assert np.all(counts == 1)
    for snippet in range(plan.num_snippets):
        indices = plan.frame_indices(snippet)
        assert len(indices) == 16
        assert set(indices.tolist()) == members[snippet] | ({num_frames - 1} if len(members[snippet]) < 16 else set())
        start, end = plan.snippet_frame_range(snippet)
        assert set(range(start, end)) == members[snippet]


def test_last_partial_snippet_is_padded_with_the_last_frame() -> None:
    plan = SnippetPlan.build(20)
    assert plan.frame_indices(1).tolist() == [16, 17, 18, 19] + [19] * 12


def test_dropped_partial_frames_map_to_minus_one() -> None:
    plan = SnippetPlan.build(20, pad_last=False)
    assert plan.frame_to_snippet.tolist() == [0] * 16 + [-1] * 4
    scores = plan.expand_to_frames(np.array([0.7]))
    assert np.all(scores[:16] == 0.7) and np.all(np.isnan(scores[16:]))


@pytest.mark.parametrize(("length", "stride"), [(16, 8), (16, 4), (8, 16)])
@pytest.mark.parametrize("num_frames", [5, 20, 37, 64])
@pytest.mark.parametrize("pad_last", [True, False])
def test_overlap_and_gap_map_to_latest_start(length: int, stride: int, num_frames: int, pad_last: bool) -> None:
    if not pad_last and num_frames < length:
        with pytest.raises(SnippetPlanError):
            SnippetPlan.build(num_frames, length=length, stride=stride, pad_last=False)
        return
    plan = SnippetPlan.build(num_frames, length=length, stride=stride, pad_last=pad_last)
    members = _brute_force_frames(plan)
    covered = set().union(*members)
    if pad_last and stride <= length:
        assert covered == set(range(num_frames))
    for frame in range(num_frames):
        starts = [i for i in range(plan.num_snippets) if i * stride <= frame]
        in_gap_or_snippet = frame < max((plan.num_snippets - 1) * stride + length, plan.num_snippets * stride)
        expected = max(starts) if in_gap_or_snippet else -1
        assert plan.frame_to_snippet[frame] == expected, frame


def test_expand_to_frames_repeats_each_snippet_score() -> None:
    plan = SnippetPlan.build(40)
    frames = plan.expand_to_frames(np.array([0.1, 0.5, 0.9]))
    assert frames.tolist() == [0.1] * 16 + [0.5] * 16 + [0.9] * 8
    with pytest.raises(ValueError, match="expected 3 snippet values"):
        plan.expand_to_frames(np.zeros(2))


def test_invalid_plans_raise() -> None:
    with pytest.raises(SnippetPlanError, match="at least one frame"):
        SnippetPlan.build(0)
    with pytest.raises(SnippetPlanError, match="positive"):
        SnippetPlan.build(10, stride=0)
    with pytest.raises(SnippetPlanError, match="pad_exact"):
        SnippetPlan.build(10, stride=8, pad_exact=True)
    with pytest.raises(IndexError):
        SnippetPlan.build(10).frame_indices(1)


def _split_frame_counts(path: Path) -> list[int]:
    return [int(line.rsplit(",", 1)[1]) for line in path.read_text().splitlines() if line.strip()]


def test_public_ground_truth_lengths_match_the_plan_conventions(shared_data: Path) -> None:
    """UCF-Crime RTFM gt: T = ceil(n/16) (pad_last); ShanghaiTech gt-sh2: T = floor(n/16)+1 (pad_exact)."""
    ucf = _split_frame_counts(shared_data / "ucf-crime/splits/Anomaly_Test.txt")
    ucf_gt = np.load(shared_data / "ucf-crime/gt/gt-ucf-rtfm-order-uint8.npy", mmap_mode="r")
    assert sum(16 * SnippetPlan.build(n).num_snippets for n in ucf) == ucf_gt.shape[0]
    shanghai = _split_frame_counts(shared_data / "shanghaitech/splits/test_split.txt")
    sh2 = np.load(shared_data / "shanghaitech/gt/gt-sh2.npy", mmap_mode="r")
    assert sum(16 * SnippetPlan.build(n, pad_exact=True).num_snippets for n in shanghai) == sh2.shape[0]
    assert sum(16 * SnippetPlan.build(n).num_snippets for n in shanghai) != sh2.shape[0]
