"""Fixtures shared by the batch-job tests (local and Ray engines), each built once per session.

A random-init classifier over fast features (x3d_xs at 64 px, 2 frames a snippet: the contract under test is the
batch job, not accuracy), an archive folder of 2 Ped2 clips, the 7 CCTV clips, a truncated mp4 and a text file
named .mp4, and one uninterrupted local run over it that the other runs are compared with. Registered in
tests/pipeline/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.jobs.batch import run_batch
from pipeline.video.inputs import expand_inputs
from tests.videos import write_text, write_truncated

PED2_CLIPS = ("01", "02")
BAD_IDS = ["bad__corrupt", "bad__notes"]

def _build_model(directory: Path, shared_data: Path) -> Path:
    import torch

    from models.classifier import LANPClassifier
    from models.config import LANPConfig
    from pipeline.features.config import ExtractionConfig
    from pipeline.features.extractor import FeatureExtractor
    from pipeline.scoring.scorer import Scorer
    from pipeline.training.model_dir import save_model

    torch.manual_seed(0)
    spec = FeatureExtractor(ExtractionConfig(backbone="x3d_xs", weights="random-init:0", device="cpu", crop_size=64,
                                             frames_per_snippet=2)).spec
    config = LANPConfig()
    classifier = LANPClassifier(spec.dim, config.classifier)
    save_model(directory, classifier, spec, config, {"threshold": 0.5})
    scores = Scorer.from_model_dir(directory, device="cpu").score_video(
        shared_data / "cctv-clips" / "Dava__Dava1_0.mp4"
    ).snippet_scores
    save_model(directory, classifier, spec, config, {"threshold": float(np.median(scores))})
    return directory


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The tiny model; its threshold is the median snippet score of one CCTV clip, so some events exist."""
    return _build_model(tmp_path_factory.mktemp("model") / "tiny", shared_data)


def _build_archive(root: Path, shared_data: Path) -> Path:
    (root / "ped2").mkdir()
    for clip in PED2_CLIPS:
        (root / "ped2" / f"{clip}.mp4").symlink_to(shared_data / "ucsd-ped2" / "videos" / "test" / f"{clip}.mp4")
    (root / "cctv").symlink_to(shared_data / "cctv-clips")
    (root / "bad").mkdir()
    write_truncated(root / "bad" / "corrupt.mp4", shared_data / "ucsd-ped2" / "videos" / "test" / "03.mp4")
    write_text(root / "bad" / "notes.mp4")
    return root


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return _build_archive(tmp_path_factory.mktemp("archive"), shared_data)


def _build_reference(archive: Path, model_dir: Path, out: Path) -> Path:
    report = run_batch(expand_inputs([archive]), model_dir, out, workers=2, plots=True, device="cpu",
                       progress=False)
    assert report.failed == BAD_IDS and report.scored == report.total - 2
    return out


@pytest.fixture(scope="session")
def reference(archive: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the local engine with two worker processes and plots."""
    return _build_reference(archive, model_dir, tmp_path_factory.mktemp("reference"))
