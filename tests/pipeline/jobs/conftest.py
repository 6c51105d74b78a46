"""Fixtures shared by the batch-job tests (local and Ray engines), each built once per session, from files written
here with PyAV: the tests run on a fresh clone without ``../shared``.

A random-init classifier over fast features (x3d_xs at 64 px, 2 frames a snippet: the contract under test is the
batch job, not accuracy); an archive of six real clips in four codecs (H.264 mp4, MPEG-4 avi, VP9 webm, MJPEG avi;
lengths that end on and off a snippet boundary, two frame rates, one in a sub-folder), a truncated mp4 and a text
file named .mp4; and one uninterrupted local run over it that the other runs are compared with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.jobs.batch import run_batch
from lanp_vad.pipeline.jobs.config import BatchConfig
from lanp_vad.pipeline.video.inputs import expand_inputs
from tests.videos import write_text, write_truncated, write_video

BAD_IDS = ["bad__corrupt", "bad__notes"]
CLIPS = {  # relative path: (codec, frames, fps)
    "clips/street.mp4": ("h264", 120, 10),
    "clips/lobby.avi": ("mpeg4", 96, 10),
    "clips/gate.webm": ("vp9", 72, 10),
    "clips/yard.avi": ("mjpeg", 50, 10),
    "clips/night/entrance.mp4": ("h264", 33, 25),
    "clips/night/parking.mp4": ("h264", 64, 25),
}
GOOD_IDS = sorted(path.removesuffix(Path(path).suffix).replace("/", "__") for path in CLIPS)


def build_tiny_model(directory: Path, calibration_clip: Path) -> Path:
    """A random-init model whose threshold is the median snippet score of ``calibration_clip`` (so events exist)."""
    import torch

    from lanp_vad.models.classifier import LANPClassifier
    from lanp_vad.models.config import LANPConfig
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from lanp_vad.pipeline.training.model_dir import save_model

    torch.manual_seed(0)
    spec = FeatureExtractor(ExtractionConfig(backbone="x3d_xs", weights="random-init:0", device="cpu", crop_size=64,
                                             frames_per_snippet=2)).spec
    config = LANPConfig()
    classifier = LANPClassifier(spec.dim, config.classifier)
    save_model(directory, classifier, spec, config, {"threshold": 0.5})
    scores = Scorer.from_model_dir(directory, device="cpu").score_video(calibration_clip).snippet_scores
    save_model(directory, classifier, spec, config, {"threshold": float(np.median(scores))})
    return directory


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    for relative, (codec, frames, fps) in CLIPS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / relative, codec=codec, num_frames=frames, fps=fps)
    (root / "bad").mkdir()
    write_truncated(root / "bad" / "corrupt.mp4", root / "clips" / "street.mp4")
    write_text(root / "bad" / "notes.mp4")
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, archive: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny", archive / "clips" / "street.mp4")


@pytest.fixture(scope="session")
def reference(archive: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the local engine with two worker processes and plots."""
    out = tmp_path_factory.mktemp("reference")
    config = BatchConfig(workers=2, plots=True, device="cpu")
    report = run_batch(expand_inputs([archive]), model_dir, out, config, progress=False)
    assert report.failed == BAD_IDS and report.scored == report.total - len(BAD_IDS)
    return out
