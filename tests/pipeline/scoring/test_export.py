"""``lanp export``: the exported pipeline (numpy transform, ONNX backbone and classifier) scores real clips as the
torch pipeline does (max abs diff <= 1e-4), and ``lanp score`` uses it in a process where torch cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import ClassifierConfig, LANPConfig
from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.features.array_transforms import ArraySnippetTransform
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.transforms import SnippetTransform
from lanp_vad.pipeline.scoring.config import ScoringConfig
from lanp_vad.pipeline.scoring.export import EXPORT_FILE, SCORE_TOLERANCE, export_model
from lanp_vad.pipeline.scoring.scorer import Scorer
from lanp_vad.pipeline.training.model_dir import ModelDirError, save_model
from tests.conftest import REPO_ROOT

CLIPS = ("cctv-clips/Dava__Dava1_0.mp4", "cctv-clips/Normal__Dozdi2_0.mp4", "ucsd-ped2/videos/test/01.mp4")
# A process in which torch (and everything built on it) cannot be imported, as in the CPU image.
WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "pytorchvideo", "onnx", "sklearn", "scipy"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
from lanp_vad.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _model(directory: Path, extraction: ExtractionConfig, seed: int = 5, **head: object) -> Path:
    spec = FeatureExtractor(extraction).spec
    config = LANPConfig(classifier=ClassifierConfig(hidden=64, dropout=0.0, **head))
    classifier = create_classifier(dim=spec.dim, config=config.classifier, seed=seed)
    with torch.no_grad():  # an untrained head scores every snippet near 0.5: spread its scores over [0, 1]
        classifier.output.weight.mul_(40.0)
    return save_model(directory, classifier, spec, config, {"threshold": 0.5})


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the default feature spec (EfficientNet-Lite0, 16 frames per snippet, 224 px), exported."""
    model = _model(tmp_path_factory.mktemp("export") / "default", ExtractionConfig(device="cpu"),
                   context="trailing_mean", context_window=3)
    export_model(model)
    return model


def _without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=600)


def test_the_numpy_transform_is_torchs(shared_data: Path) -> None:
    """Resize (antialiased bilinear), crops and normalisation in numpy equal the torch transform on real frames."""
    from lanp_vad.pipeline.video import open_video

    with open_video(shared_data / CLIPS[0]) as reader:
        frames = reader.read_frames(np.arange(32)).reshape(2, 16, *reader.read_frames([0]).shape[1:])
    for resize, crop, crops in ((256, 224, 1), (182, 160, 10), (300, 64, 1)):
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        expected = SnippetTransform(resize, crop, crops, mean, std)(torch.from_numpy(frames)).numpy()
        np.testing.assert_allclose(ArraySnippetTransform(resize, crop, crops, mean, std)(frames), expected, atol=2e-6)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_scores_equal_torchs_on_real_clips(default_model: Path, shared_data: Path, runtime: str) -> None:
    config = ScoringConfig(decode_timeout_s=None, threshold=0.5)
    with (Scorer.from_model_dir(default_model, device="cpu", runtime="torch", config=config) as torch_scorer,
          Scorer.from_model_dir(default_model, exported=True, runtime=runtime, config=config) as exported):
        assert exported.identity["runtime"] == runtime and exported.device == "cpu"
        for clip in CLIPS:
            reference, scored = torch_scorer.score_video(shared_data / clip), exported.score_video(shared_data / clip)
            assert scored.num_snippets == reference.num_snippets >= 3
            difference = float(np.abs(scored.snippet_scores - reference.snippet_scores).max())
            assert difference <= SCORE_TOLERANCE, (clip, difference)
            assert np.ptp(reference.snippet_scores) > 0.05  # the scores vary: the check has teeth


def test_lanp_score_without_torch_uses_the_export(default_model: Path, shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / CLIPS[2]
    done = _without_torch("score", str(clip), "--model", str(default_model))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    with Scorer.from_model_dir(default_model, device="cpu", runtime="torch") as torch_scorer:
        reference = torch_scorer.score_video(clip)
    assert document["model"]["runtime"] in ("openvino", "onnxruntime")
    assert np.abs(np.asarray(document["frame_scores"]) - reference.frame_scores).max() <= SCORE_TOLERANCE
    served = _without_torch("serve", "--help")  # the service's modules import without torch too
    assert served.returncode == 0, served.stderr
    training = _without_torch("train", "--features", str(tmp_path), "--out", str(tmp_path / "model"))
    assert training.returncode == 2 and "pip install 'lanp-vad[torch]'" in training.stderr, training.stderr
    assert "Traceback" not in training.stderr


def test_a_default_preset_model_scores_without_torch_as_with_it(tmp_path: Path) -> None:
    """Classifier, normality bank and calibration on the exported networks, torch not importable (the CPU image),
    give torch's scores, which are not the classifier's alone."""
    from tests.service.tiny_model import make_detector_model
    from tests.videos import write_video

    model = make_detector_model(tmp_path / "detector")
    export_model(model)
    clip = write_video(tmp_path / "clip.mp4", num_frames=120, width=96, height=64, fps=25)
    done = _without_torch("score", str(clip), "--model", str(model))
    assert done.returncode == 0, done.stderr
    with Scorer.from_model_dir(model, device="cpu", runtime="torch") as torch_scorer:
        reference = torch_scorer.score_video(clip)
        classifier_alone = torch_scorer.head.head(torch_scorer.extractor.extract_video(clip).features)
    scores = np.asarray(json.loads(done.stdout)["snippet_scores"])
    assert np.abs(scores - reference.snippet_scores).max() <= SCORE_TOLERANCE
    assert np.abs(reference.snippet_scores - classifier_alone).max() > 0.1  # the bank and calibration took part


def test_an_export_is_required_without_torch_and_refused_once_stale(tmp_path: Path, shared_data: Path) -> None:
    extraction = ExtractionConfig(device="cpu", frames_per_snippet=1, crop_size=64)
    model = _model(tmp_path / "model", extraction)
    done = _without_torch("score", str(shared_data / CLIPS[0]), "--model", str(model))
    assert done.returncode == 2 and "lanp export" in done.stderr and "lanp-vad[torch]" in done.stderr, done.stderr
    export_model(model)
    exported = {path.name: path.read_bytes() for path in model.iterdir() if path.suffix in (".onnx", ".json")}
    _model(model, extraction, seed=6)  # trained again into the same folder: its export is gone with the old model
    with pytest.raises(ModelDirError, match="has no exported networks"):
        Scorer.from_model_dir(model, exported=True)
    for name, content in exported.items():  # the old export copied in beside the new weights
        (model / name).write_bytes(content)
    assert (model / EXPORT_FILE).is_file()
    with pytest.raises(ModelDirError, match="the model's weights changed") as error:
        Scorer.from_model_dir(model, exported=True)
    assert error.value.kind == ErrorKind.INVALID_MODEL and "lanp export" in str(error.value)
