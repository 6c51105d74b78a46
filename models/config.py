"""Typed configuration of every switch of the LANP method.

Every field is saved in a model directory's ``config.json``. ``default`` is the product's preset: the official
recipe with a length-neutral video score, two-stage snippet ranking and the settings that let any archive of two
or more videos train.
The others name the behaviours worth reproducing: ``paper`` (the text of the ECCV 2024 paper) and ``reference`` /
``reference-sh`` (what the official code does on UCF-Crime / ShanghaiTech). ``apply_overrides`` turns
``key=value`` strings (dotted paths) into a new config.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lanp_vad.models.errors import ErrorKind, UserError


class ConfigError(UserError):
    """A setting, preset name or ``--set`` override that is not valid; says which and why."""

    kind = ErrorKind.INVALID_CONFIG


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PropagationConfig(_Section):
    """Normality propagation over the temporally-modulated similarity graph of one video."""

    seeds: Literal["first_last", "reference", "random", "data_driven"] = Field(
        "reference",
        description=(
            "first_last: snippets {0, T-1} (paper); reference: {0, 1, T-2, T-1} (code); ablations (Table 2): "
            "random: as many random snippets as reference; data_driven: the snippets of lowest local contrast"
        ),
    )
    method: Literal["propagate", "direct"] = Field(
        "propagate", description="direct: similarity to the seeds instead of propagation (Table 3 ablation)"
    )
    feature_similarity: bool = Field(True, description="use the feature affinity F (False: T only, Table 3)")
    standardize: bool = Field(False, description="standardise each video's features per dimension first")
    affinity: Literal["gaussian", "rms", "cosine", "adaptive"] = Field(
        "rms",
        description=(
            "gaussian: exp(-||xi-xj||^2 / (2 sigma^2)) (paper); rms: exp(-rms(xi-xj) / (2 sigma^2)) (code, UCF); "
            "cosine: max(cos(xi, xj), 0) (code, ShanghaiTech; negative cosines, e.g. of standardised features, "
            "would give negative degrees and NaN z); adaptive: exp(-d^2 / (2 s^2)) with s the median "
            "in-window distance of the video (scale-free)"
        ),
    )
    sigma: float = Field(0.1, gt=0)
    temporal: bool = Field(True, description="modulate by exp(-|i-j| / L)")
    temporal_length: Literal["video", "window"] = Field(
        "window", description="L = T (paper) or L = the window length Lw (code)"
    )
    banded: bool = Field(True, description="link each snippet to a window of Lw = min(2k, T) snippets (code)")
    band_k: int = Field(50, ge=1)
    alpha: float = Field(0.99, gt=0, lt=1)
    solver: Literal["cg", "exact"] = "cg"
    cg_tol: float = Field(1e-6, gt=0)
    cg_maxiter: int | None = Field(10, ge=1, description="None: iterate to tolerance; 10 in the official code")
    postprocess: bool = Field(True, description="clip z < 0 to 0 and set the seeds to max(z) (code)")


class PseudoLabelConfig(_Section):
    """Turning propagated normality z into video and snippet pseudo labels."""

    video_score: Literal["std", "decorrelation"] = Field(
        "std",
        description=(
            "how abnormal a video looks from its z: std: std(z) (code; shrinks as 1/T, so mostly a length "
            "detector); decorrelation: 1 - corr(z, z_null) with z_null the temporal-only propagation of the same "
            "length (length-neutral; see models.video_scores)"
        ),
    )
    abnormal_fraction: float | Literal["auto"] = Field(
        0.5,
        description="share of videos taken as abnormal (by std(z)); code: 0.5 UCF, 64/238 SH; auto: estimated",
    )
    snippet_ratio: float = Field(0.4, gt=0, lt=1, description="r: share of lowest-z snippets labelled abnormal")
    confident_normal_ratio: float = Field(
        0.1, gt=0, le=1, description="h: share of pseudo-normal videos that form the normal list"
    )
    min_confident_normal: int = Field(
        0, ge=0, description="at least this many confident normals (0: int(h * normals) as the code, maybe none)"
    )

    def model_post_init(self, __context: Any) -> None:
        fraction = self.abnormal_fraction
        if fraction != "auto" and not 0 < fraction < 1:
            raise ConfigError("abnormal_fraction must be in (0, 1) or 'auto'")


class ReweightConfig(_Section):
    """Loss re-weighting by the distance of each snippet to the normal list."""

    enabled: bool = True
    distance: Literal["cosine", "rms"] = Field("cosine", description="code: cosine on UCF, RMS on ShanghaiTech")
    normal_features: Literal["sampled", "all"] = Field(
        "sampled", description="mean over the 32 sampled snippets (code) or over all snippets of a video"
    )


class ClassifierConfig(_Section):
    """The temporal head: Conv1d(D, hidden, k) -> Linear(hidden, hidden) -> Linear(hidden, 1) -> sigmoid."""

    hidden: int = Field(512, ge=1)
    kernel_size: int = Field(3, ge=1)
    dropout: float = Field(0.7, ge=0, lt=1)
    context: Literal["none", "trailing_mean", "auto"] = Field(
        "none",
        description=(
            "none: the head sees each snippet's features (code); trailing_mean: [x_t, x_t - mean of the last "
            "context_window snippets] (causal: live equals offline); auto: trailing_mean when the archive's "
            "between-video share of feature variance is at least context_auto_share, else none (models.context)"
        ),
    )
    context_window: int = Field(256, ge=1, description="snippets in the trailing mean, the current one included")
    context_auto_share: float = Field(
        0.9, gt=0, le=1, description="auto: the between-video variance share from which the context is used"
    )


class BankConfig(_Section):
    """The cross-video normality bank (``models.bank``): the prior's seed snippets of every video, compared across
    the archive. It informs the pseudo labels, scores beside the classifier, and is the whole model of an archive
    that holds no anomaly."""

    enabled: bool = Field(False, description="build the bank (False: the official recipe, no cross-video evidence)")
    archive: Literal["auto", "mixed", "normal_only"] = Field(
        "auto",
        description=(
            "normal_only: the archive holds no anomaly (a clean week): the model is a bank of all its snippets; "
            "mixed: it may hold anomalies (LANP's pseudo labels and classifier, with the seed bank); auto: "
            "decided from the archive (see models.bank.check_archive)"
        ),
    )
    labels: Literal["lanp", "joint"] = Field(
        "joint",
        description=(
            "the snippets of LANP's abnormal videos labelled abnormal are ranked by: lanp: z (the official rule); "
            "joint: the joint evidence of the video's own propagation (1 - z/max z) and the bank distance, "
            "each in robust standard units of the archive (models.snippet_ranking.joint_evidence)"
        ),
    )
    fusion: Literal["classifier", "mean"] = Field(
        "mean",
        description=(
            "the score of a snippet: classifier: the classifier alone; mean: the calibrated mean evidence of the "
            "classifier, the bank distance and (whole videos) the video's own propagation (models.calibration)"
        ),
    )
    clean_seeds: bool = Field(
        True,
        description=(
            "after training, drop from the bank the seed snippets the classifier scores above its own threshold "
            "(an archive whose clips start or end with anomalies would otherwise teach the bank they are normal); "
            "at most max_cleaned of them"
        ),
    )
    max_cleaned: float = Field(0.5, gt=0, lt=1, description="the largest share of seed entries cleaning may drop")
    smooth_alpha: float = Field(
        0.5, gt=0, lt=1, description="alpha of the graph smoothing of the bank evidence used for pseudo labels"
    )
    center_share: float = Field(
        0.9, gt=0, le=1,
        description="centre each video on its seeds' mean when this share of the variance lies between videos",
    )
    max_entries: int = Field(
        16384, ge=16, description="an all-snippet bank keeps every k-th snippet to stay below this many entries"
    )


class TrainConfig(_Section):
    """Optimisation: the official RMSprop schedule on batches of videos of 32 sampled snippets."""

    epochs: int = Field(300, ge=1)
    batch_size: int = Field(30, ge=1, description="videos per batch")
    drop_last: bool = Field(True, description="code: True (a set smaller than a batch then trains nothing)")
    skip_short: bool = Field(
        False,
        description="leave out videos of fewer than 3 snippets with a warning (listed in metadata.json); "
        "False: refuse them (code)",
    )
    pseudo_video_snippets: int | None = Field(
        None,
        ge=6,
        description=(
            "cut every video longer than this many snippets into about equal pseudo-videos of about this length "
            "before propagation (continuous recordings: the normality prior holds at the ends of each stretch); "
            "None: whole videos (code). Seconds = snippets * 16 / fps"
        ),
    )
    num_segments: int = Field(32, ge=1, description="snippets sampled per video: floor(i * T / n)")
    lr: float = Field(1e-4, gt=0)
    momentum: float = Field(0.6, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 1
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    amp: Literal["auto", "on", "off"] = Field(
        "auto", description="bf16 autocast for the head's forward pass; auto: on CUDA only (the loss stays fp32)"
    )


class LANPConfig(_Section):
    """All switches of the method; ``preset`` records which preset the values started from.

    The field defaults are the official code's (``reference``), so a config.json written before a switch existed
    loads with the behaviour it was trained with.
    """

    preset: str = "reference"
    propagation: PropagationConfig = PropagationConfig()
    pseudo: PseudoLabelConfig = PseudoLabelConfig()
    reweight: ReweightConfig = ReweightConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    bank: BankConfig = BankConfig()
    train: TrainConfig = TrainConfig()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> LANPConfig:
        return cls.model_validate_json(text)


_PRESET_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    # The product: the official UCF-Crime recipe with a length-neutral video score, the normality bank across
    # videos (the snippets of abnormal videos ranked by the joint evidence of their own propagation and the bank;
    # scores that join the classifier, the bank and the video's own propagation, calibrated; an archive without
    # anomalies scored by a bank of all its snippets), trainable on any archive of two or more videos (batches of
    # min(30, N): the last partial batch is kept; at least one confident normal; videos too short to propagate are
    # skipped and listed); the head gets the video context where the archive's videos differ from each other far
    # more than inside. Chosen on the regime grid (docs/ACCURACY.md).
    "default": {
        "pseudo": {"video_score": "decorrelation", "min_confident_normal": 1},
        "classifier": {"context": "auto"},
        "bank": {"enabled": True},
        "train": {"drop_last": False, "skip_short": True, "epochs": 100},
    },
    # The official code on UCF-Crime: RMS-distance kernel, half the videos abnormal, cosine re-weighting.
    "reference": {},
    # The official code on ShanghaiTech: plain cosine affinity, 64 of 238 videos abnormal, RMS re-weighting.
    "reference-sh": {
        "propagation": {"affinity": "cosine"},
        "pseudo": {"abnormal_fraction": 64 / 238},
        "reweight": {"distance": "rms"},
    },
    # The paper's text: first/last seeds, Gaussian kernel on all pairs with L = T, CG to convergence.
    "paper": {
        "propagation": {
            "seeds": "first_last",
            "affinity": "gaussian",
            "temporal_length": "video",
            "banded": False,
            "cg_maxiter": None,
            "postprocess": False,
        },
        "reweight": {"distance": "cosine", "normal_features": "all"},
    },
}

PRESETS: tuple[str, ...] = tuple(_PRESET_OVERRIDES)
DEFAULT_PRESET = "default"
"""The preset every interface trains with unless told otherwise: ``lanp train``, ``api.train``, ``lanp demo``."""


def preset(name: str) -> LANPConfig:
    """The configuration a named preset stands for."""
    if name not in _PRESET_OVERRIDES:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    sections = _PRESET_OVERRIDES[name]
    return LANPConfig(preset=name, **{key: {**values} for key, values in sections.items()})


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true/false, null), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: LANPConfig, assignments: list[str]) -> LANPConfig:
    """A new config with ``section.field=value`` assignments applied; unknown keys or bad values raise ConfigError."""
    data = config.model_dump()
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise ConfigError(f"override {assignment!r} is not of the form key=value")
        path = key.strip().split(".")
        node: Any = data
        for part in path[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown config key {key!r}")
            node = node[part]
        if not isinstance(node, dict) or path[-1] not in node or isinstance(node[path[-1]], dict):
            raise ConfigError(f"unknown config key {key!r}")
        node[path[-1]] = _parse_value(raw.strip())
    try:
        return LANPConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid override: {error}") from error
