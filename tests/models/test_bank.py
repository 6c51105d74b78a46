"""The normality bank, the seed-bank baseline, and the check that tells archives with and without anomalies apart."""

from __future__ import annotations

import numpy as np
import pytest

from lanp_vad.models.bank import ANOMALY_EVIDENCE_RATIO, BankError, build_bank, check_archive, seed_indices
from lanp_vad.models.baselines.seed_bank import seed_bank_scores
from lanp_vad.models.config import BankConfig

CONFIG = BankConfig(enabled=True)


def _archive(videos: int = 12, length: int = 30, dim: int = 8, *, abnormal: tuple[int, ...] = (), seed: int = 0):
    """Videos of normal footage (a few recurring states plus noise); ``abnormal`` videos hold one run of a state
    no other video shows, in their middle."""
    rng = np.random.default_rng(seed)
    states = rng.normal(0, 3, size=(4, dim))
    archive = []
    for index in range(videos):
        video = states[rng.integers(0, 4, size=length)] + rng.normal(0, 0.3, size=(length, dim))
        if index in abnormal:
            video[12:16] = rng.normal(0, 3, size=dim) + 8.0 + rng.normal(0, 0.3, size=(4, dim))
        archive.append(video.astype(np.float32))
    return archive


def test_the_seed_bank_baseline_on_a_hand_made_archive() -> None:
    """Three one-dimensional videos: the answer is worked out by hand."""
    a = np.array([[0.0], [0.0], [5.0], [0.0], [0.0]], dtype=np.float32)
    b = np.array([[1.0], [1.0], [1.0], [1.0], [1.0]], dtype=np.float32)
    c = np.array([[2.0], [2.0], [2.0], [2.0], [2.0]], dtype=np.float32)
    scores = seed_bank_scores([a, b, c])
    stacked = np.concatenate([a, b, c])
    mean, std = stacked.mean(), stacked.std() + 1e-6
    # a's seeds are 0; its middle snippet 5 is nearest to c's seeds (2): ((5 - 2) / std)^2
    assert scores[0][2] == pytest.approx(((5 - 2) / std) ** 2, rel=1e-6)
    assert scores[0][0] == pytest.approx(((0 - 1) / std) ** 2, rel=1e-6)  # nearest other video: b
    assert scores[1] == pytest.approx(np.full(5, ((1 - 0) / std) ** 2), rel=1e-6)  # a and c are both one away
    assert mean == pytest.approx(1.0 + 1.0 / 3)
    # a video never vouches for itself: with only its own seeds at 0, a's middle would score 0 otherwise
    all_bank = seed_bank_scores([a, b, c], bank="all")
    assert all_bank[0][0] > 0


def test_the_bank_finds_a_run_no_other_video_shows_and_never_vouches_for_itself() -> None:
    archive = _archive(abnormal=(3,))
    bank = build_bank(archive, CONFIG)
    distances = bank.archive_distances(archive)
    assert int(np.argmax(distances[3])) in range(12, 16)
    assert distances[3][12:16].min() > 5 * max(float(np.median(d)) for d in distances)
    # the same video scored from outside is recognised by its seeds and kept from its own entries
    assert np.allclose(bank.distances(archive[3]), distances[3])
    assert not np.allclose(bank.distances(archive[3], exclude=[]), distances[3])


def test_the_bank_centres_videos_when_their_offsets_dominate() -> None:
    archive = [video + 50.0 * index for index, video in enumerate(_archive(abnormal=(2,)))]
    bank = build_bank(archive, CONFIG)
    assert bank.centred
    assert int(np.argmax(bank.archive_distances(archive)[2])) in range(12, 16)
    assert not build_bank(archive, BankConfig(enabled=True, center_share=1.0)).centred


def test_an_all_snippet_bank_stays_below_its_size_cap() -> None:
    archive = _archive(videos=20, length=50)
    bank = build_bank(archive, BankConfig(enabled=True, max_entries=100), entries="all")
    assert 50 <= len(bank.entries) <= 100 and set(bank.owners) == set(range(20))


def _footage(videos: int, *, abnormal: tuple[int, ...] = (), seed: int = 0) -> list[np.ndarray]:
    """A camera's footage: each video a stretch of a slow walk through the scene's states (people moving through
    the same place) with sensor noise; ``abnormal`` videos hold a run of 5 snippets far off the scene."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(3, 16))
    archive = []
    for index in range(videos):
        walk = np.cumsum(rng.normal(0, 0.15, size=(40, 3)), axis=0) + rng.normal(0, 1, 3)
        video = np.tanh(walk) @ basis + rng.normal(0, 0.05, size=(40, 16))
        if index in abnormal:
            video[15:20] += 3 * rng.normal(0, 1, 16)
        archive.append(video.astype(np.float32))
    return archive


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_archive_check_tells_normal_only_archives_from_those_with_anomalies(seed: int) -> None:
    normal = _footage(30, seed=seed)
    check = check_archive(build_bank(normal, CONFIG).archive_distances(normal))
    assert not check.holds_anomalies, check.describe()
    mixed = _footage(30, abnormal=(3, 11, 19), seed=seed)  # 3 of 30 videos, 1.3 % of the snippets
    check = check_archive(build_bank(mixed, CONFIG).archive_distances(mixed))
    assert check.holds_anomalies and check.ratio > 5 * ANOMALY_EVIDENCE_RATIO, check.describe()


def test_too_small_an_archive_is_not_declared_normal_only() -> None:
    tiny = _archive(videos=2, length=6)
    assert check_archive(build_bank(tiny, CONFIG).archive_distances(tiny)).holds_anomalies


def test_bad_banks_are_refused_with_a_reason() -> None:
    with pytest.raises(BankError, match="at least 2 videos"):
        build_bank(_archive(videos=1), CONFIG)
    with pytest.raises(BankError, match="dimensions differ"):
        build_bank([np.zeros((5, 3)), np.zeros((5, 4))], CONFIG)
    bank = build_bank(_archive(), CONFIG)
    with pytest.raises(BankError, match="dimension"):
        bank.distances(np.zeros((5, 3)))
    assert list(seed_indices(2)) == [0, 1] and list(seed_indices(9)) == [0, 1, 7, 8]
