"""The one typed home of extraction settings: what the user asks for, from which the feature spec is built.

``ExtractionConfig`` has two halves. The first decides what the features *mean* (backbone, weights, snippet and
transform choices; ``None`` takes the backbone's default) and resolves into a ``FeatureSpec``. The second decides
only *how* they are computed (device, inference runtime, batch size, decoder, pickle policy) and leaves the spec
unchanged. The CLI, the scorer, the batch and Ray engines all build an extractor from one of these
(``ExtractionConfig.from_spec`` rebuilds the config that made a spec), so no setting is mapped by hand twice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.runtime import Runtime
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.features.weights import RANDOM_INIT
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
        return cls.model_validate({
            "backbone": spec.backbone, "weights": weights or "pretrained", "crops": spec.crops,
            "frames_per_snippet": spec.frames_per_snippet, "crop_size": spec.crop_size, "resize": spec.resize,
            "snippet_length": spec.snippet_length, "stride": spec.stride, "pad_last": spec.pad_last,
            "fps": spec.fps, "max_side": spec.max_side, "decode_short_side": spec.decode_short_side, **how,
        })
