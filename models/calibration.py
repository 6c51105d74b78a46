"""How a model's evidence becomes one score: the classifier's and the normality bank's, joined on one scale.

The official recipe scores with the classifier alone (its sigmoid output, often a 0/1 step). The product's default
joins three views of each snippet: the classifier's, the normality bank's (how far the snippet is from the other
videos' normal seeds) and, for a whole video, its own propagation's (``models.within``: how little normality the
video's start and end send it). Each is put in robust standard units of the training archive's *pseudo-normal*
snippets (median and IQR, after its transform), their mean is the evidence, and a logistic maps it to a score in
(0, 1) whose 0.5 is the label-free threshold: 40 % of the way from the evidence's median over the pseudo-normal
training snippets to its median over the pseudo-abnormal ones (an anomaly's quieter stretches sit between the two),
with a slope at which half the gap between the two medians spans 0.5 to 0.9 (about 0.15 and 0.94 at the
medians). An archive without anomalies is scored by the bank alone, its threshold where 1 % of the training
snippets lie above. Scores then rank within a video instead of saturating, and the threshold is 0.5 for every
model. A live stream has no end, so it is scored by a second calibration without the within-video view. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError

Component = Literal["classifier", "bank", "within"]
COMPONENTS: tuple[Component, ...] = ("classifier", "bank", "within")
THRESHOLD_SHARE = 0.4  # the threshold's place from the pseudo-normal (0) to the pseudo-abnormal (1) median evidence
MEDIAN_SCORE_GAP = 0.8  # the slope: half the medians' gap spans 0.5 -+ MEDIAN_SCORE_GAP / 2 on the score scale
NORMAL_ONLY_QUANTILE = 0.99  # an archive without anomalies: the threshold leaves 1 % of its snippets above
BANK_RADIUS = 2  # the log bank distance is averaged over the snippet and this many on each side (triangular)
WEIGHTS: dict[str, float] = {"classifier": 0.5, "bank": 1.0, "within": 1.0}
"""How much each view counts in the evidence. The classifier learned from the other two views' joint evidence, so
it counts half: it adds what it generalises without counting its teachers twice."""
COMPONENT_BOUND = 4.0  # robust units: no one view's extreme values outvote the others
_LOGIT_CLIP = 1e-7
_WITHIN_FLOOR = 1e-3


class CalibrationError(UserError):
    """A calibration that cannot be fitted or read; says why."""

    kind = ErrorKind.INVALID_MODEL


def classifier_logit(scores: np.ndarray) -> np.ndarray:
    """The classifier's sigmoid output back in logit units (clipped away from 0 and 1)."""
    values = np.clip(np.asarray(scores, dtype=np.float64), _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(values) - np.log1p(-values)


def moving_average(values: np.ndarray, radius: int) -> np.ndarray:
    """Each value averaged with the ``radius`` on either side that exist (fewer at the ends of the sequence),
    triangular weights (radius + 1 - |offset|): a snippet's own value counts most."""
    if radius == 0 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    kernel = radius + 1.0 - np.abs(np.arange(-radius, radius + 1))
    window = slice(radius, radius + len(values))  # "full" then cut: "same" is as long as the kernel when longer
    return np.convolve(values, kernel)[window] / np.convolve(np.ones(len(values)), kernel)[window]


def bounded(values: np.ndarray) -> np.ndarray:
    """Values in robust units squashed to (-COMPONENT_BOUND, COMPONENT_BOUND), nearly unchanged near 0."""
    return COMPONENT_BOUND * np.tanh(np.asarray(values) / COMPONENT_BOUND)


@dataclass(frozen=True)
class Standardiser:
    """x -> (x - center) / spread for one component, after its transform."""

    center: float
    spread: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        low, center, high = np.quantile(values, [0.25, 0.5, 0.75])
        return cls(float(center), float(max((high - low) / 1.349, 1e-6)))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.spread


@dataclass(frozen=True)
class Calibration:
    """The components' transforms and standardisers, and the logistic of their mean: sigmoid((e - t) / s).

    Transforms, per video: the classifier's logit; the log of the bank distance plus ``floor``, averaged over
    ``bank_radius`` snippets on each side; the log of the within-video abnormality plus 1e-3.
    """

    components: tuple[Component, ...]
    standardisers: tuple[Standardiser, ...]
    weights: tuple[float, ...]
    floor: float
    bank_radius: int
    threshold: float
    scale: float
    rule: str

    def transform(self, component: Component, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if component == "classifier":
            return classifier_logit(values)
        if component == "bank":
            return moving_average(np.log(values + self.floor), self.bank_radius)
        return np.log(values + _WITHIN_FLOOR)

    def evidence(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted mean standardised evidence of one video's snippets from its components' raw values (each
        bounded to +-COMPONENT_BOUND robust units, smoothly: a distance a million times the normal one says "far",
        as a thousand times does, and must not silence the other views)."""
        views = [bounded(standardiser(self.transform(component, parts[component])))
                 for component, standardiser in zip(self.components, self.standardisers, strict=True)]  # fmt: skip
        return np.average(views, axis=0, weights=self.weights)

    def score(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """Scores in (0, 1) of one video's snippets; 0.5 is the threshold."""
        return 1.0 / (1.0 + np.exp(-(self.evidence(parts) - self.threshold) / self.scale))

    def to_dict(self) -> dict[str, Any]:
        return {"components": list(self.components), "standardisers": [asdict(s) for s in self.standardisers],
                "weights": list(self.weights), "floor": self.floor, "bank_radius": self.bank_radius,
                "threshold": self.threshold, "scale": self.scale, "rule": self.rule}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            components = tuple(data["components"])
            if not components or any(c not in COMPONENTS for c in components):
                raise CalibrationError(f"unknown calibration components {components}")
            standardisers = tuple(Standardiser(**item) for item in data["standardisers"])
            weights = tuple(float(weight) for weight in data["weights"])
            calibration = cls(components, standardisers, weights, float(data["floor"]), int(data["bank_radius"]),
                              float(data["threshold"]), float(data["scale"]), str(data["rule"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"calibration is not valid: {error!r}") from error
        if (len(standardisers) != len(components) or len(weights) != len(components) or min(weights) < 0
                or not sum(weights) > 0 or not calibration.scale > 0 or calibration.bank_radius < 0):
            raise CalibrationError("calibration is not valid: one standardiser and weight per component, weights "
                                   "not negative, a positive scale")
        return calibration


def fit_calibration(
    parts: Mapping[str, Sequence[np.ndarray]], abnormal: Sequence[np.ndarray] | None, *, bank_radius: int = BANK_RADIUS
) -> Calibration:
    """Fit on the training archive's videos: ``parts`` maps each component used to its raw values per video (the
    classifier's scores, the bank's leave-one-video-out distances, the within-video abnormality), ``abnormal`` the
    0/1 pseudo labels per video (None: an archive without anomalies)."""
    components = tuple(component for component in COMPONENTS if component in parts)
    if not components:
        raise CalibrationError("nothing to calibrate: no component")
    floor = 0.0
    if "bank" in parts:
        floor = 0.05 * float(np.median(np.concatenate([np.asarray(v, dtype=np.float64) for v in parts["bank"]])))
        floor += 1e-12
    weights = tuple(WEIGHTS[component] for component in components)
    draft = Calibration(components, (), weights, floor, bank_radius, 0.0, 1.0, "")
    raw = {c: np.concatenate([draft.transform(c, values) for values in parts[c]]) for c in components}
    size = len(raw[components[0]])
    normal = np.ones(size, dtype=bool) if abnormal is None else ~(np.concatenate(abnormal) >= 0.5)
    if not normal.any():
        raise CalibrationError("every training snippet is pseudo-abnormal: no normal reference to calibrate on")
    standardisers = tuple(Standardiser.fit(raw[c][normal]) for c in components)
    views = [bounded(s(raw[c])) for s, c in zip(standardisers, components, strict=True)]
    evidence = np.average(views, axis=0, weights=weights)
    normal_median = float(np.median(evidence[normal]))
    if abnormal is not None and (~normal).any():
        gap = float(np.median(evidence[~normal])) - normal_median
        threshold = normal_median + THRESHOLD_SHARE * gap
        rule = (f"{100 * THRESHOLD_SHARE:g} % of the way from the median evidence of pseudo-normal training snippets "
                "to that of pseudo-abnormal ones")
    else:
        threshold = float(np.quantile(evidence, NORMAL_ONLY_QUANTILE))
        gap = 2 * (threshold - normal_median)
        rule = f"{100 * (1 - NORMAL_ONLY_QUANTILE):g} % of the training snippets (all normal) above it"
    if not gap > 1e-9:  # pseudo-abnormal snippets no higher than normal ones: fall back to the normal spread
        threshold, gap = normal_median + 1.0, 2.0
        rule += " (fallback: pseudo-abnormal evidence was not above normal; one spread above the normal median)"
    # a logistic of slope 1/scale puts points gap/2 either side of the threshold at 0.5 -+ MEDIAN_SCORE_GAP / 2
    scale = (gap / 2) / np.log((1 + MEDIAN_SCORE_GAP) / (1 - MEDIAN_SCORE_GAP))
    return Calibration(components, standardisers, weights, floor, bank_radius, float(threshold), float(scale), rule)
