"""The model directory: everything needed to score with a trained LANP classifier, and nothing pickled.

```
model.safetensors   classifier weights (safetensors: loading runs no code); absent for an archive without
                    anomalies, whose model is its normality bank alone
bank.safetensors    the normality bank (models.bank), when the config builds one
calibration.json    how the classifier's and the bank's evidence become one score (models.calibration)
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

import numpy as np
from pydantic import ValidationError

from lanp_vad.models.bank import NormalityBank
from lanp_vad.models.calibration import Calibration, CalibrationError
from lanp_vad.models.config import LANPConfig
from lanp_vad.models.detector import Detector, Head
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.spec import SPEC_FILE, FeatureSpec
from lanp_vad.pipeline.training.domain import FeatureStats

if TYPE_CHECKING:
    import torch

    from lanp_vad.models.classifier import LANPClassifier

MODEL_FILE = "model.safetensors"
BANK_FILE = "bank.safetensors"
CALIBRATION_FILE = "calibration.json"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MODEL_DIR_FILES = (SPEC_FILE, CONFIG_FILE, METADATA_FILE)  # and MODEL_FILE or BANK_FILE (or both)


class ModelDirError(UserError):
    """A model directory that cannot be written or read; names the directory and the file at fault."""

    kind = ErrorKind.INVALID_MODEL


@dataclass
class ModelFiles:
    """What a model directory says besides the classifier's weights: the features it takes, its settings, its
    metadata, and the numpy parts of its scoring (the normality bank, the calibration; None where it has none)."""

    spec: FeatureSpec
    config: LANPConfig
    metadata: dict[str, Any]
    bank: NormalityBank | None = None
    calibration: Calibration | None = None
    stream_calibration: Calibration | None = None
    has_classifier: bool = True

    def detector(self, head: Head | None) -> Detector:
        """What scores with this model, given its classifier as a head (torch or exported; None when it has none)."""
        return Detector(head, self.bank, self.calibration, self.stream_calibration, self.config.propagation)


@dataclass
class LoadedModel(ModelFiles):
    """A model directory in memory; ``classifier`` (None for a bank-only model) is in eval mode on the CPU."""

    classifier: LANPClassifier | None = None

    def torch_detector(self, device: str | torch.device = "cpu") -> Detector:
        """What scores with this model, its classifier in torch on ``device``."""
        import torch

        from lanp_vad.models.torch_head import TorchHead

        return self.detector(None if self.classifier is None else TorchHead(self.classifier, torch.device(device)))


def weights_files(directory: Path) -> list[Path]:
    """The files whose bytes make a model's scores: its identity (``model_sha256``)."""
    return [directory / name for name in (MODEL_FILE, BANK_FILE, CALIBRATION_FILE) if (directory / name).is_file()]


def _save_bank(bank: NormalityBank, path: Path) -> None:
    from safetensors.numpy import save

    arrays = {"mean": bank.mean, "scale": bank.scale, "entries": bank.entries, "owners": bank.owners,
              "signatures": bank.signatures, "signature_owners": bank.signature_owners}  # fmt: skip
    path.write_bytes(save({name: np.ascontiguousarray(value) for name, value in arrays.items()},
                          metadata={"format": "lanp-bank", "centred": str(bank.centred), "kind": bank.kind}))


def _load_bank(path: Path, dim: int) -> NormalityBank:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            info = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
        centred, kind = info.get("centred") == "True", info.get("kind", "seeds")
        bank = NormalityBank(arrays["mean"], arrays["scale"], arrays["entries"], arrays["owners"],
                             arrays["signatures"], arrays["signature_owners"], centred, kind)  # fmt: skip
    except (SafetensorError, KeyError, OSError) as error:
        raise ModelDirError(f"{path} does not hold a normality bank: {error}") from error
    if bank.dim != dim or bank.entries.shape[1:] != (dim,) or len(bank.owners) != len(bank.entries):
        raise ModelDirError(f"{path} holds a bank of other dimensions than the {dim}-d feature spec")
    return bank


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
        elif target.is_dir() and ((target / MODEL_FILE).exists() or (target / BANK_FILE).exists()):
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
    model: LANPClassifier | None,
    spec: FeatureSpec,
    config: LANPConfig,
    metadata: dict[str, Any],
    *,
    bank: NormalityBank | None = None,
    calibration: Calibration | None = None,
    stream_calibration: Calibration | None = None,
    feature_stats: FeatureStats | None = None,
) -> Path:
    """Write a model directory atomically: the classifier (None for a bank-only model), the normality bank and
    the calibration where the model scores with them; ``metadata`` gets ``versions`` and ``created`` added, and
    ``feature_stats`` (``TrainResult.feature_stats``) lets scoring warn about footage unlike the training's."""
    target = Path(directory)
    # the parts must make a scorer
    Detector(None if model is None else _HeadSlot(), bank, calibration, stream_calibration, config.propagation)
    if model is not None and model.dim != spec.dim:
        raise ModelDirError(f"the classifier takes {model.dim}-d features but the feature spec says {spec.dim}")
    if bank is not None and bank.dim != spec.dim:
        raise ModelDirError(f"the normality bank holds {bank.dim}-d features but the feature spec says {spec.dim}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its 0700 would make the model unreadable to other users (the image's uid 10001); mkdir
    # leaves the mode to the umask.
    staged = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex}")
    staged.mkdir()
    try:
        head = config.classifier
        if model is not None:
            from safetensors.torch import save as save_safetensors

            state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
            # safetensors' save_file writes 0600 whatever the umask; its bytes written by Python follow the umask.
            (staged / MODEL_FILE).write_bytes(
                save_safetensors(state, metadata={"format": "lanp-classifier", "dim": str(model.dim)})
            )
            head = model.config
        if bank is not None:
            _save_bank(bank, staged / BANK_FILE)
        if calibration is not None:
            calibrations = {"video": calibration.to_dict(),
                            "stream": None if stream_calibration is None else stream_calibration.to_dict()}
            (staged / CALIBRATION_FILE).write_text(json.dumps(calibrations, indent=2))
        spec.save(staged)
        # The head's own settings: classifier.context=auto is saved as what training decided.
        (staged / CONFIG_FILE).write_text(config.model_copy(update={"classifier": head}).to_json())
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


class _HeadSlot:
    """Stands for a classifier head when checking that a model's parts make a scorer."""

    radius, context_window, device = 0, None, "cpu"


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
    if not missing and not any((directory / name).is_file() for name in (MODEL_FILE, BANK_FILE)):
        missing = [f"{MODEL_FILE} (or {BANK_FILE})"]
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
    bank = _load_bank(directory / BANK_FILE, spec.dim) if (directory / BANK_FILE).is_file() else None
    calibration = stream = None
    if (directory / CALIBRATION_FILE).is_file():
        try:
            record = json.loads((directory / CALIBRATION_FILE).read_text())
            calibration = Calibration.from_dict(record["video"])
            stream = None if record.get("stream") is None else Calibration.from_dict(record["stream"])
        except (json.JSONDecodeError, CalibrationError, KeyError, TypeError) as error:
            raise ModelDirError(f"{directory / CALIBRATION_FILE} is not a calibration: {error!r}") from error
    files = ModelFiles(spec, config, metadata, bank, calibration, stream, (directory / MODEL_FILE).is_file())
    try:
        files.detector(_HeadSlot() if files.has_classifier else None)
    except CalibrationError as error:
        raise ModelDirError(f"{directory}: {error}") from error
    return files


def load_model(directory: str | Path) -> LoadedModel:
    """Read a model directory (never unpickles) with its classifier, if it has one, in eval mode on the CPU
    (needs torch when it has one)."""
    files = read_model_files(directory)
    parts = {"spec": files.spec, "config": files.config, "metadata": files.metadata, "bank": files.bank,
             "calibration": files.calibration, "stream_calibration": files.stream_calibration,
             "has_classifier": files.has_classifier}  # fmt: skip
    if not files.has_classifier:
        return LoadedModel(**parts)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lanp_vad.models.classifier import LANPClassifier

    path = Path(directory) / MODEL_FILE
    classifier = LANPClassifier(files.spec.dim, files.config.classifier)
    try:
        classifier.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise ModelDirError(
            f"{path} does not hold the weights of a {files.spec.dim}-d LANP classifier: {error}"
        ) from error
    return LoadedModel(**parts, classifier=classifier.eval())
