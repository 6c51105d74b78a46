"""The feature spec: everything that decides what a feature vector means.

Stored with every feature set (``feature_spec.json``) and every trained model; scoring refuses a model whose spec
differs from the extractor's, since a classifier trained on one backbone's features is meaningless on another's.
Its settings have the names of ``ExtractionConfig``'s fields and of the ``lanp extract`` flags; ``decode_settings``
is the one mapping to the decoder's settings. A stored spec loads only when it is a complete spec of this version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.video.decode import Backend
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH
from lanp_vad.pipeline.video.worker import DecodeSettings

SPEC_FILE = "feature_spec.json"
RANDOM_INIT = "random-init"
"""The weights identity of seeded random weights: ``random-init:SEED``."""


class SpecMismatchError(UserError):
    """A model and an extractor (or two feature sets) disagree on what their features mean."""

    kind = ErrorKind.SPEC_MISMATCH


class FeatureSpec(BaseModel):
    """How snippet features were made. ``weights`` is ``name:sha256``, ``random-init:SEED`` or ``external``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: str
    weights: str
    dim: int = Field(ge=1)
    snippet_length: int = Field(SNIPPET_LENGTH, ge=1)
    stride: int = Field(SNIPPET_LENGTH, ge=1)
    frames_per_snippet: int = Field(SNIPPET_LENGTH, ge=1, description="frames fed to the backbone per snippet")
    pad_last: bool = Field(True, description="last partial snippet padded with its last frame (else dropped)")
    resize: int | None = Field(None, description="short-side resize before cropping")
    crop_size: int | None = None
    crops: Literal[1, 10] = 1
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    layer: str = "pooled"
    fps: float | None = Field(None, description="resampled frame rate; None keeps the source rate")
    max_side: int | None = Field(None, description="frames downscaled so no side exceeds this before resizing")
    decode_short_side: int | None = Field(
        None,
        description="frames scaled down while decoding (FFmpeg bilinear) so the short side is at most this, before "
        "the resize; None: decoded at full size",
    )

    @classmethod
    def external(cls, dim: int, crops: Literal[1, 10] = 1, name: str = "external") -> FeatureSpec:
        """The spec of features made elsewhere (published RTFM / LANP feature files)."""
        return cls(backbone=name, weights="external", dim=dim, crops=crops)

    def digest(self) -> str:
        """A short stable hash of the spec, written beside every stored feature file."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.backbone} ({self.weights}, {self.dim}-d, {self.crops} crop(s), spec {self.digest()})"

    def check_compatible(self, other: FeatureSpec, *, what: str = "model", other_what: str = "extractor") -> None:
        """Raise SpecMismatchError naming both specs unless the two describe the same features."""
        if self != other:
            differing = [
                name
                for name in type(self).model_fields
                if getattr(self, name) != getattr(other, name)
            ]
            raise SpecMismatchError(
                f"the {what} was trained on features {self.describe()} but the {other_what} makes "
                f"{other.describe()}; they differ in {', '.join(differing)}"
            )

    def decode_settings(self, backend: Backend = "pyav") -> DecodeSettings:
        """How videos are decoded for these features (``backend`` is the decoder, which changes nothing in them)."""
        return DecodeSettings(
            snippet_length=self.snippet_length, stride=self.stride, pad_last=self.pad_last,
            frames_per_snippet=self.frames_per_snippet, target_fps=self.fps, max_side=self.max_side,
            max_short_side=self.decode_short_side, backend=backend,
        )

    def save(self, directory: Path) -> Path:
        path = Path(directory) / SPEC_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> FeatureSpec:
        """The spec stored in ``directory``: every setting must be there (a spec of another version of lanp-vad,
        which lacks some, is refused naming them rather than completed with guesses); pydantic's
        ``ValidationError`` for values that are not a spec's."""
        path = Path(directory) / SPEC_FILE
        spec = cls.model_validate_json(path.read_text())
        missing = sorted(set(cls.model_fields) - spec.model_fields_set)
        if missing:
            raise UserError(f"{path} is not a complete feature spec of this version of lanp-vad (it lacks "
                            f"{', '.join(missing)}): extract its features (and train its model) again",
                            kind=ErrorKind.INVALID_FEATURES)
        return spec
