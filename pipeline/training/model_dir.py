"""The model directory: everything needed to score with a trained LANP classifier, and nothing pickled.

```
model.safetensors   classifier weights (safetensors: loading runs no code)
feature_spec.json   the features the model was trained on (pipeline.features.spec.FeatureSpec)
config.json         every switch of the method (models.config.LANPConfig)
metadata.json       training data summary, pseudo-label stats, default threshold, metrics, versions, time
feature_stats.safetensors   optional: statistics of the training features (pipeline.training.domain)
backbone.onnx classifier.onnx export.json   optional: the networks exported by ``lanp export`` (scoring without torch)
```
``read_model_files`` reads and checks everything but the weights without torch; ``load_model`` adds the classifier
(torch). Saving writes into a temporary sibling folder and renames it into place, so a failed or killed save
leaves either the previous model or nothing, never a half-written directory.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lanp_vad.models.config import LANPConfig
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.spec import SPEC_FILE, FeatureSpec
from lanp_vad.pipeline.training.domain import FeatureStats

if TYPE_CHECKING:
    from lanp_vad.models.classifier import LANPClassifier

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MODEL_DIR_FILES = (MODEL_FILE, SPEC_FILE, CONFIG_FILE, METADATA_FILE)


class ModelDirError(UserError):
    """A model directory that cannot be written or read; names the directory and the file at fault."""

    kind = ErrorKind.INVALID_MODEL


@dataclass
class ModelFiles:
    """What a model directory says besides its weights: the features it takes, its settings, its metadata."""

    spec: FeatureSpec
    config: LANPConfig
    metadata: dict[str, Any]


@dataclass
class LoadedModel(ModelFiles):
    """A model directory in memory; ``classifier`` is in eval mode on the CPU."""

    classifier: LANPClassifier


def versions() -> dict[str, str]:
    """Versions of the software that made a model (recorded in metadata.json)."""
    import torch

    try:
        lanp = package_metadata.version("lanp-vad")
    except package_metadata.PackageNotFoundError:
        lanp = "unknown"
    return {"lanp": lanp, "torch": torch.__version__, "python": platform.python_version()}


def _replace_directory(staged: Path, target: Path) -> None:
    """Move a finished staging folder to ``target``; an existing model directory there is replaced."""
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        elif target.is_dir() and (target / MODEL_FILE).exists():
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, retired / target.name)
            os.replace(staged, target)
            shutil.rmtree(retired, ignore_errors=True)
            return
        else:
            raise ModelDirError(f"{target} exists and is not a model directory; refusing to overwrite it")
    os.replace(staged, target)


def save_model(
    directory: str | Path,
    model: LANPClassifier,
    spec: FeatureSpec,
    config: LANPConfig,
    metadata: dict[str, Any],
    *,
    feature_stats: FeatureStats | None = None,
) -> Path:
    """Write a model directory atomically; ``metadata`` gets ``versions`` and ``created`` added, and
    ``feature_stats`` (``TrainResult.feature_stats``) lets scoring warn about footage unlike the training's."""
    from safetensors.torch import save as save_safetensors

    target = Path(directory)
    if model.dim != spec.dim:
        raise ModelDirError(f"the classifier takes {model.dim}-d features but the feature spec says {spec.dim}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its 0700 would make the model unreadable to other users (the image's uid 10001); mkdir
    # leaves the mode to the umask.
    staged = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex}")
    staged.mkdir()
    try:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
        # safetensors' save_file writes 0600 whatever the umask; its bytes written by Python follow the umask.
        (staged / MODEL_FILE).write_bytes(
            save_safetensors(state, metadata={"format": "lanp-classifier", "dim": str(model.dim)})
        )
        spec.save(staged)
        # The head's own settings: classifier.context=auto is saved as what training decided.
        (staged / CONFIG_FILE).write_text(config.model_copy(update={"classifier": model.config}).to_json())
        record = {
            **metadata,
            "versions": versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (staged / METADATA_FILE).write_text(json.dumps(record, indent=2, allow_nan=False))
        if feature_stats is not None:
            feature_stats.save(staged)
        _replace_directory(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target


def read_model_files(directory: str | Path) -> ModelFiles:
    """Read and check a model directory's files, all but the weights' values (no torch, never unpickles)."""
    directory = Path(directory)
    # safetensors reports an unreadable file as "No such file or directory": name the real cause.
    fix = f"make the model directory readable, e.g. chmod -R a+rX {directory}"
    try:
        missing = [name for name in MODEL_DIR_FILES if not (directory / name).is_file()]
        unreadable = [] if missing else [
            path.name for path in sorted(directory.iterdir()) if path.is_file() and not os.access(path, os.R_OK)
        ]
    except PermissionError as error:
        raise ModelDirError(f"{directory} cannot be read by this process (uid {os.getuid()}): {fix}") from error
    if missing:
        raise ModelDirError(f"{directory} is not a model directory: missing {', '.join(missing)}")
    if unreadable:
        raise ModelDirError(
            f"{directory}: {', '.join(unreadable)} cannot be read by this process (uid {os.getuid()}): {fix}"
        )
    try:
        spec = FeatureSpec.load(directory)
    except ValidationError as error:
        raise ModelDirError(f"{directory / SPEC_FILE} is not a valid feature spec: {error}") from error
    try:
        config = LANPConfig.from_json((directory / CONFIG_FILE).read_text())
    except ValidationError as error:
        raise ModelDirError(f"{directory / CONFIG_FILE} is not a valid LANP config: {error}") from error
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text())
    except json.JSONDecodeError as error:
        raise ModelDirError(f"{directory / METADATA_FILE} is not JSON: {error}") from error
    return ModelFiles(spec, config, metadata)


def load_model(directory: str | Path) -> LoadedModel:
    """Read a model directory (never unpickles) into an eval-mode classifier on the CPU (needs torch)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lanp_vad.models.classifier import LANPClassifier

    files = read_model_files(directory)
    path = Path(directory) / MODEL_FILE
    classifier = LANPClassifier(files.spec.dim, files.config.classifier)
    try:
        classifier.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise ModelDirError(
            f"{path} does not hold the weights of a {files.spec.dim}-d LANP classifier: {error}"
        ) from error
    return LoadedModel(files.spec, files.config, files.metadata, classifier.eval())
