"""The one typed home of extraction settings: what the user asks for, from which the feature spec is built.

``ExtractionConfig`` has two halves. The first decides what the features *mean* (backbone, weights, snippet and
transform choices; ``None`` takes the backbone's default) and resolves into a ``FeatureSpec``. The second decides
only *how* they are computed (device, inference runtime, batch size, decoder, pickle policy) and leaves the spec
unchanged. The CLI, the scorer, the batch and Ray engines all build an extractor from one of these
(``ExtractionConfig.from_spec`` rebuilds the config that made a spec). A setting has one name everywhere: the
config field, the ``FeatureSpec`` field and the ``lanp extract`` flag (``crop_size``, ``--crop-size``), so the
mapping between config and spec goes by name (``SPEC_SETTINGS``), never by a hand-written list. Settings that
contradict each other are errors, never clamped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.sessions import Runtime
from lanp_vad.pipeline.features.spec import RANDOM_INIT, SPEC_FILE, FeatureSpec
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

Decoder = Literal["auto", "decord", "pyav"]


class ExtractionConfig(BaseModel):
    """Everything an extractor is built from; the first group of fields decides the ``FeatureSpec``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # what the features mean (recorded in the feature spec)
    backbone: str = "efficientnet_lite0"
    weights: str = Field("pretrained", description="pretrained, a checkpoint path, or random-init:SEED")
    crops: Literal[1, 10] = 1
    frames_per_snippet: int | None = Field(None, ge=1, description="frames of each snippet fed to the backbone")
    crop_size: int | None = Field(None, ge=1)
    resize: int | None = Field(None, ge=1, description="short side before cropping (default: the backbone's ratio)")
    snippet_length: int = Field(SNIPPET_LENGTH, ge=1)
    stride: int = Field(SNIPPET_LENGTH, ge=1)
    pad_last: bool = True
    fps: float | None = Field(None, gt=0, description="resample videos to this frame rate first")
    max_side: int | None = Field(None, ge=1, description="downscale frames whose longer side exceeds this")
    decode_short_side: int | Literal["auto"] | None = Field(
        "auto", description="frames scaled while decoding to at most this short side (auto: the resize)")
    # how they are computed (spec-neutral)
    device: str = "auto"
    runtime: Runtime = Field("auto", description="torch, onnxruntime or openvino; auto: the fastest for the device")
    batch_size: int = Field(16, ge=1, description="snippets per forward pass")
    decoder: Decoder = "pyav"
    allow_pickle: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ExtractionConfig:
        """Settings that cannot hold together are refused, naming both (never silently clamped)."""
        if self.frames_per_snippet is not None and self.frames_per_snippet > self.snippet_length:
            raise ValueError(f"frames_per_snippet {self.frames_per_snippet} exceeds snippet_length "
                             f"{self.snippet_length}: a snippet has only that many frames to sample")
        if self.crop_size is not None and self.resize is not None and self.crop_size > self.resize:
            raise ValueError(f"crop_size {self.crop_size} exceeds resize {self.resize} (the short side it is "
                             "cropped from)")
        return self

    @classmethod
    def like_model(cls, model_dir: str | Path, **how: object) -> ExtractionConfig:
        """The config that makes the features a model directory was trained on (its ``feature_spec.json``), so
        that the model can read them: ``lanp extract --like`` and ``api.extract(like=...)``."""
        path = Path(model_dir) / SPEC_FILE
        if not path.is_file():
            raise UserError(f"{model_dir} is not a model directory (no {SPEC_FILE})", kind=ErrorKind.INVALID_MODEL)
        return cls.from_spec(FeatureSpec.load(Path(model_dir)), **how)

    @classmethod
    def from_spec(cls, spec: FeatureSpec, *, weights: str | None = None, **how: object) -> ExtractionConfig:
        """The config that makes ``spec``'s features; ``weights`` says where its weights file lives (default: the
        pretrained file; seeded random weights are rebuilt from the spec). ``how``: device, batch_size, ..."""
        if spec.weights == "external":
            raise UserError(
                f"{spec.describe()} describes external features (made elsewhere): this project cannot extract them "
                "from videos", kind=ErrorKind.SPEC_MISMATCH,
            )
        if spec.weights.startswith(RANDOM_INIT):
            weights = spec.weights
        settings = {name: getattr(spec, name) for name in SPEC_SETTINGS}
        return cls.model_validate({**settings, "weights": weights or "pretrained", **how})


SPEC_SETTINGS = tuple(name for name in ExtractionConfig.model_fields if name in FeatureSpec.model_fields
                      and name != "weights")
"""The settings that a config and a spec share by name (the spec records the weights' identity, not where they
are, so ``weights`` maps apart)."""
