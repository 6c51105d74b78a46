"""Inference runtimes: the exported backbones give torch's features on real frames, the export cache is reused and
invalidated by other weights, and a missing runtime falls back (auto) or fails with the install command."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lanp_vad.models.backbones import build_backbone
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.archive import extract_archive
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.featureset import MANIFEST_FILE
from lanp_vad.pipeline.features.runtime import choose_runtime
from tests.videos import write_video

EXPORTED = ("onnxruntime", "openvino")
# Small inputs keep the exports quick: EfficientNet-Lite0 (real weights) on 2 frames at 96 px, X3D-XS at 64 px.
SETTINGS = {
    "efficientnet_lite0": ExtractionConfig(device="cpu", frames_per_snippet=2, crop_size=96, batch_size=4),
    "x3d_xs": ExtractionConfig(backbone="x3d_xs", weights="random-init:0", device="cpu", frames_per_snippet=4,
                               crop_size=64, batch_size=4),
}


def _require(runtime: str) -> None:
    pytest.importorskip(runtime, reason=f"{runtime} is not installed (an optional extra)")
    pytest.importorskip("onnx", reason="onnx is not installed (the export needs it)")


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("runtime", EXPORTED)
@pytest.mark.parametrize("backbone", sorted(SETTINGS))
def test_exported_runtimes_give_torchs_features_on_real_ped2_frames(runtime: str, backbone: str,
                                                                    shared_data: Path) -> None:
    _require(runtime)
    video = shared_data / "ucsd-ped2" / "videos" / "test" / "01.mp4"
    reference = FeatureExtractor(SETTINGS[backbone].model_copy(update={"runtime": "torch"}))
    exported = FeatureExtractor(SETTINGS[backbone].model_copy(update={"runtime": runtime}))
    assert exported.runtime == runtime and exported.spec == reference.spec  # the runtime is spec-neutral
    reader, plan = reference.decode.open(video)
    with reader:
        _, snippets = next(reference.decode.iter_chunks(reader, plan, 6))
    expected, actual = reference.features(snippets), exported.features(snippets)
    assert actual.shape == expected.shape == (6, reference.spec.dim)
    assert _relative_error(actual, expected) < 1e-4
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def _export_files(cache: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (cache / "onnx").glob("*.onnx")}


def test_the_export_is_reused_and_other_weights_get_their_own(tmp_path: Path, export_cache_dir: Path) -> None:
    _require("onnxruntime")
    weights = tmp_path / "x3d.pt"
    torch.save({"model_state": build_backbone("x3d_xs", seed=1).network.state_dict()}, weights)
    config = SETTINGS["x3d_xs"].model_copy(update={"weights": str(weights), "runtime": "onnxruntime"})
    clip = torch.randint(0, 256, (2, 4, 72, 96, 3), dtype=torch.uint8)  # 2 snippets of the 4 frames fed on
    before = _export_files(export_cache_dir)

    first = FeatureExtractor(config)
    exported = {name: mtime for name, mtime in _export_files(export_cache_dir).items() if name not in before}
    assert len(exported) == 1, "the first use exports the backbone"
    second = FeatureExtractor(config)
    assert {name: _export_files(export_cache_dir)[name] for name in exported} == exported  # reused, not rewritten
    assert len(_export_files(export_cache_dir)) == len(before) + 1
    np.testing.assert_allclose(second.features(clip), first.features(clip), rtol=1e-6, atol=1e-7)

    torch.save({"model_state": build_backbone("x3d_xs", seed=2).network.state_dict()}, weights)  # new weights
    changed = FeatureExtractor(config)
    assert len(_export_files(export_cache_dir)) == len(before) + 2, "changed weights must not reuse the old export"
    assert changed.spec.weights != first.spec.weights
    eager = FeatureExtractor(config.model_copy(update={"runtime": "torch"}))
    np.testing.assert_allclose(changed.features(clip), eager.features(clip), rtol=1e-4, atol=1e-5)


def test_a_runtime_asked_for_by_name_must_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the package were not installed
    with pytest.raises(UserError, match=r"pip install 'lanp-vad\[openvino\]'") as error:
        choose_runtime("openvino", torch.device("cpu"))
    assert error.value.kind == ErrorKind.MISSING_DEPENDENCY
    with pytest.raises(UserError, match="unknown runtime 'tensorrt'"):
        choose_runtime("tensorrt", torch.device("cpu"))


def test_auto_is_torch_on_cuda_and_falls_back_to_torch_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert choose_runtime("auto", torch.device("cuda")) == "torch"
    for runtime in EXPORTED:
        monkeypatch.setitem(sys.modules, runtime, None)
    with caplog.at_level(logging.WARNING, logger="lanp_vad.pipeline.features.extractor"):
        extractor = FeatureExtractor(SETTINGS["efficientnet_lite0"])
    assert extractor.runtime == "torch"
    assert "not installed" in caplog.text and "pip install" in caplog.text


def test_the_runtime_is_recorded_in_the_manifest(tmp_path: Path) -> None:
    _require("onnxruntime")
    video = write_video(tmp_path / "clip.mp4", num_frames=20, width=64, height=48)
    extractor = FeatureExtractor(SETTINGS["efficientnet_lite0"].model_copy(update={"runtime": "onnxruntime"}))
    report = extract_archive([video], tmp_path / "features", extractor, workers=1, progress=False)
    assert report.extracted == ["clip"]
    [record] = [json.loads(line) for line in (tmp_path / "features" / MANIFEST_FILE).read_text().splitlines()]
    assert record["runtime"] == "onnxruntime" and record["status"] == "ok"


def test_a_batch_larger_than_one_call_is_run_in_parts_with_the_same_features() -> None:
    _require("onnxruntime")
    config = SETTINGS["efficientnet_lite0"]
    snippets = torch.randint(0, 256, (40, 2, 72, 96, 3), dtype=torch.uint8)  # 80 frames: two calls of 64 frames
    exported = FeatureExtractor(config.model_copy(update={"runtime": "onnxruntime", "batch_size": 40}))
    eager = FeatureExtractor(config.model_copy(update={"runtime": "torch", "batch_size": 40}))
    expected = eager.features(snippets)
    assert _relative_error(exported.features(snippets), expected) < 1e-4
