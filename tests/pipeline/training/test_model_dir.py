"""Model directory: safetensors + JSON round trip with identical scores, atomic saves, no unpickling."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import apply_overrides, preset
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.training.domain import STATS_FILE, fit_feature_stats
from lanp_vad.pipeline.training.model_dir import MODEL_DIR_FILES, MODEL_FILE, ModelDirError, load_model, save_model
from tests.conftest import REPO_ROOT

CONFIG = apply_overrides(preset("reference-sh"), ["classifier.hidden=16", "train.epochs=7"])
SPEC = FeatureSpec.external(dim=12, crops=10)


def _trained_like_model() -> torch.nn.Module:
    model = create_classifier(dim=12, config=CONFIG.classifier, seed=5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    return model.eval()


def test_round_trip_gives_identical_scores_and_every_switch(tmp_path: Path) -> None:
    model = _trained_like_model()
    save_model(tmp_path / "m", model, SPEC, CONFIG, {"threshold": 0.42, "training_data": {"num_videos": 3}})
    loaded = load_model(tmp_path / "m")
    features = torch.randn(2, 10, 9, 12)
    assert torch.equal(model(features), loaded.classifier(features))
    assert loaded.spec == SPEC and loaded.config == CONFIG
    assert loaded.config.propagation.affinity == "cosine" and loaded.config.train.epochs == 7
    assert loaded.metadata["threshold"] == 0.42
    assert set(loaded.metadata["versions"]) == {"lanp", "torch", "python"} and loaded.metadata["created"]
    assert sorted(path.name for path in (tmp_path / "m").iterdir()) == sorted([*MODEL_DIR_FILES, MODEL_FILE])


def test_failed_save_leaves_nothing_and_keeps_the_previous_model(tmp_path: Path) -> None:
    model = _trained_like_model()
    save_model(tmp_path / "m", model, SPEC, CONFIG, {"threshold": 0.1})
    with pytest.raises(ValueError):  # NaN is not JSON: the save fails after the weights were written
        save_model(tmp_path / "m", create_classifier(dim=12, config=CONFIG.classifier), SPEC, CONFIG,
                   {"threshold": float("nan")})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m"]  # no partial folder left behind
    assert torch.equal(load_model(tmp_path / "m").classifier.temporal.weight, model.temporal.weight)
    with pytest.raises(ValueError):
        save_model(tmp_path / "new", model, SPEC, CONFIG, {"threshold": float("inf")})
    assert not (tmp_path / "new").exists()


def test_replacing_a_model_and_refusing_other_folders(tmp_path: Path) -> None:
    save_model(tmp_path / "m", _trained_like_model(), SPEC, CONFIG, {"threshold": 0.1})
    save_model(tmp_path / "m", _trained_like_model(), SPEC, CONFIG, {"threshold": 0.9})
    assert load_model(tmp_path / "m").metadata["threshold"] == 0.9
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ModelDirError, match="not a model directory"):
        save_model(tmp_path / "photos", _trained_like_model(), SPEC, CONFIG, {})
    assert sorted(path.name for path in (tmp_path / "photos").iterdir()) == ["holiday.jpg"]
    with pytest.raises(ModelDirError, match="12-d"):
        save_model(tmp_path / "x", _trained_like_model(), FeatureSpec.external(dim=7), CONFIG, {})


def test_loading_refuses_broken_directories(tmp_path: Path) -> None:
    save_model(tmp_path / "m", _trained_like_model(), SPEC, CONFIG, {"threshold": 0.1})
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x80\x04pickled?")
    with pytest.raises(ModelDirError, match="model.safetensors"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(ModelDirError, match="missing config.json"):
        load_model(tmp_path / "m")
    save_model(tmp_path / "w", _trained_like_model(), SPEC, CONFIG, {})
    spec = json.loads((tmp_path / "w" / "feature_spec.json").read_text())
    (tmp_path / "w" / "feature_spec.json").write_text(json.dumps({**spec, "dim": 13}))
    with pytest.raises(ModelDirError, match="13-d"):
        load_model(tmp_path / "w")


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_model_directory_permissions_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """A model directory must be readable by another user (the image's uid 10001 reads a host-written model)."""
    previous = os.umask(umask)
    try:
        stats = fit_feature_stats([np.random.default_rng(0).normal(size=(40, SPEC.dim))])
        target = save_model(tmp_path / "m", _trained_like_model(), SPEC, CONFIG, {"threshold": 0.5},
                            feature_stats=stats)
        save_model(target, _trained_like_model(), SPEC, CONFIG, {"threshold": 0.5},  # the replace path too
                   feature_stats=stats)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask
    written = sorted(path.name for path in target.iterdir())
    assert set(MODEL_DIR_FILES) | {MODEL_FILE, STATS_FILE} == set(written)
    for name in written:  # every file: the container's uid 10001 reads them all (feature_stats was 0600)
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize("private", ["file", "directory"])
def test_an_unreadable_model_is_named_not_reported_missing(private: str) -> None:
    """safetensors says "No such file or directory" for a file it may not read, and a private directory raised a
    bare PermissionError: the error must say what is wrong and how to fix it."""
    with tempfile.TemporaryDirectory() as folder:  # not pytest's tmp_path: its parent is private to root
        Path(folder).chmod(0o755)
        target = save_model(Path(folder) / "m", _trained_like_model(), SPEC, CONFIG, {"threshold": 0.5})
        (target / MODEL_FILE if private == "file" else target).chmod(0o600 if private == "file" else 0o700)
        code = f"from lanp_vad.pipeline.training.model_dir import load_model; load_model({str(target)!r})"
        result = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                                 sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert "ModelDirError" in result.stderr and "cannot be read by this process (uid 65534)" in result.stderr, (
        result.stderr)
    assert (MODEL_FILE in result.stderr.splitlines()[-1]) == (private == "file")
