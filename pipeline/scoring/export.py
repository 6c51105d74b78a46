"""``lanp export MODEL``: the model's backbone and classifier as ONNX files in its directory, so that scoring runs
without torch (the CPU image), and the reading of those files back.

```
backbone.onnx     the backbone of the model's feature spec: normalised clips (B, 3, L, S, S) -> features (B, D)
classifier.onnx   the classifier: features (1, T, D) or (1, crops, T, D) [and their trailing means] -> scores (1, T)
export.json       what they were made from (the spec's hash, the weights' sha256), their sha256 and the check
```
``export_model`` (needs torch) checks the exported networks against torch on the spot (random frames through the
backbone, random features through the classifier) and refuses to write an export whose scores differ by more than
``SCORE_TOLERANCE``. ``load_exported`` (no torch) refuses an export that no longer matches its model directory (a
model trained again into the same folder), naming the command that renews it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from lanp_vad.models.errors import ErrorKind, InternalError, UserError
from lanp_vad.pipeline.features.exported import ExportedExtractor
from lanp_vad.pipeline.features.sessions import INSTALL_HINTS, importable
from lanp_vad.pipeline.files import files_sha256, sha256_file
from lanp_vad.pipeline.scoring.heads import ExportedHead
from lanp_vad.pipeline.training.model_dir import ModelDirError, ModelFiles, weights_files

BACKBONE_FILE = "backbone.onnx"
CLASSIFIER_FILE = "classifier.onnx"
EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
SCORE_TOLERANCE = 1e-4
"""The most an exported score may differ from torch's (the product's promise: equal to 1e-4)."""
CHECK_SNIPPETS = 4
CHECK_LENGTH = 24
OPSET = 17


class ExportRecord(BaseModel):
    """``export.json``: what the exported files were made from and how closely they matched torch."""

    format: int
    spec_hash: str
    model_sha256: str
    backbone_sha256: str
    classifier_sha256: str | None  # None: a model without a classifier (its normality bank scores alone)
    radius: int
    context_window: int | None
    features_max_abs_diff: float
    scores_max_abs_diff: float
    versions: dict[str, str]


def _renew(model_dir: Path) -> str:
    return f"run `lanp export {model_dir}` where torch is installed ({INSTALL_HINTS['torch']})"


def load_exported(model_dir: Path, files: ModelFiles, *, runtime: str = "auto",
                  batch_size: int = 16) -> tuple[ExportedExtractor, ExportedHead | None]:
    """The exported extractor and classifier head (None for a model without a classifier) of ``model_dir`` (no
    torch), after checking that they are its own."""
    record_path = model_dir / EXPORT_FILE
    if not record_path.is_file():
        raise ModelDirError(f"{model_dir} has no exported networks, and torch is needed without them: "
                            f"{_renew(model_dir)}")
    try:
        record = ExportRecord.model_validate_json(record_path.read_text())
    except ValidationError as error:
        raise ModelDirError(f"{record_path} is not an export record of this version: {_renew(model_dir)}") from error
    stale = [name for name, recorded, actual in (
        ("feature spec", record.spec_hash, files.spec.digest()),
        ("the model's weights", record.model_sha256, files_sha256(weights_files(model_dir))),
        (BACKBONE_FILE, record.backbone_sha256, _sha256_or_none(model_dir / BACKBONE_FILE)),
        (CLASSIFIER_FILE, record.classifier_sha256, _sha256_or_none(model_dir / CLASSIFIER_FILE)),
    ) if recorded != actual]
    if record.format != EXPORT_FORMAT or stale:
        changed = ", ".join(stale) or "the export format"
        raise ModelDirError(f"{model_dir}: the exported networks do not match the model ({changed} changed since "
                            f"the export): {_renew(model_dir)}")
    runtime = "auto" if runtime == "torch" else runtime
    extractor = ExportedExtractor(files.spec, model_dir / BACKBONE_FILE, runtime=runtime, batch_size=batch_size)
    if record.classifier_sha256 is None:
        return extractor, None
    head = ExportedHead(model_dir / CLASSIFIER_FILE, radius=record.radius, context_window=record.context_window)
    return extractor, head


def _sha256_or_none(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def export_model(model_dir: str | Path, *, weights: str | None = None) -> ExportRecord:
    """Write ``backbone.onnx``, ``classifier.onnx`` and ``export.json`` into ``model_dir`` (replacing an earlier
    export), after checking them against torch. ``weights``: where the backbone's weights file lives, when it is
    not the bundled or cached pretrained one. Needs torch and onnx (``pip install 'lanp-vad[torch]'``)."""
    for module in ("torch", "onnx"):
        if not importable(module):
            raise UserError(f"lanp export needs {module}: {INSTALL_HINTS[module]}", kind=ErrorKind.MISSING_DEPENDENCY)
    from lanp_vad.models.torch_head import TorchHead
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.features.runtime import exported_model
    from lanp_vad.pipeline.training.model_dir import load_model, versions

    model_dir = Path(model_dir)
    loaded = load_model(model_dir)
    spec = loaded.spec
    extractor = FeatureExtractor.from_spec(spec, weights=weights, device="cpu", runtime="torch",
                                           what=f"model {model_dir.name}")
    classifier = loaded.classifier
    torch_head = TorchHead(classifier, extractor.device) if classifier is not None else None
    names = (BACKBONE_FILE, CLASSIFIER_FILE) if classifier is not None else (BACKBONE_FILE,)
    staged = {name: model_dir / f".{name}.{uuid.uuid4().hex}.tmp" for name in names}
    try:
        assert spec.crop_size is not None  # a spec the extractor rebuilt has its crop
        shutil.copyfile(exported_model(extractor.backbone, spec.weights, spec.frames_per_snippet, spec.crop_size),
                        staged[BACKBONE_FILE])
        exported = ExportedExtractor(spec, staged[BACKBONE_FILE], runtime="onnxruntime")
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (CHECK_SNIPPETS, spec.frames_per_snippet, 120, 160, 3), dtype=np.uint8)
        feature_diff = float(np.abs(exported.features(frames) - extractor.features(frames)).max())
        score_diff = 0.0
        if torch_head is not None:
            _export_classifier(classifier, spec.dim, spec.crops, staged[CLASSIFIER_FILE])
            exported_head = ExportedHead(staged[CLASSIFIER_FILE], radius=torch_head.radius,
                                         context_window=torch_head.context_window)
            features = rng.normal(size=(CHECK_LENGTH, *(() if spec.crops == 1 else (spec.crops,)), spec.dim))
            features = features.astype(np.float32)
            score_diff = float(np.abs(exported_head(features) - torch_head(features)).max())
        if score_diff > SCORE_TOLERANCE:
            raise InternalError(f"the exported classifier's scores differ from torch's by {score_diff:.2g} (more "
                                f"than {SCORE_TOLERANCE:g}): nothing was exported")
        record = ExportRecord(
            format=EXPORT_FORMAT, spec_hash=spec.digest(), model_sha256=files_sha256(weights_files(model_dir)),
            backbone_sha256=sha256_file(staged[BACKBONE_FILE]),
            classifier_sha256=sha256_file(staged[CLASSIFIER_FILE]) if torch_head is not None else None,
            radius=torch_head.radius if torch_head is not None else 0,
            context_window=torch_head.context_window if torch_head is not None else None,
            features_max_abs_diff=feature_diff, scores_max_abs_diff=score_diff, versions=versions(),
        )
        for name, path in staged.items():
            os.replace(path, model_dir / name)
        record_staged = model_dir / f".{EXPORT_FILE}.{uuid.uuid4().hex}.tmp"
        record_staged.write_text(json.dumps(record.model_dump(), indent=2))
        os.replace(record_staged, model_dir / EXPORT_FILE)  # last: an export is complete once its record is there
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    return record


def _export_classifier(classifier: object, dim: int, crops: int, path: Path) -> None:
    """``classifier`` as ONNX with a dynamic number of snippets; a head with the video context also takes the
    trailing means (offline scoring computes them from the whole video, a live session from its start)."""
    import torch

    module: torch.nn.Module = classifier  # type: ignore[assignment]
    context = module.config.context == "trailing_mean"  # type: ignore[union-attr]
    shape = (1, CHECK_LENGTH, dim) if crops == 1 else (1, crops, CHECK_LENGTH, dim)
    example = (torch.zeros(shape), torch.zeros(shape)) if context else (torch.zeros(shape),)
    names = ["features", "reference"][: len(example)]
    axis = len(shape) - 2
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's warnings are about shapes the export keeps dynamic
        torch.onnx.export(module, example, str(path), input_names=names, output_names=["scores"],
                          dynamic_axes={**{name: {axis: "snippets"} for name in names}, "scores": {1: "snippets"}},
                          opset_version=OPSET, dynamo=False)
