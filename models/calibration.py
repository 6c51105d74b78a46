"""How a model's evidence becomes one score: the classifier's and the normality bank's, joined on one scale.

The official recipe scores with the classifier alone (its sigmoid output, often a 0/1 step). The product's default
also asks the normality bank how far each snippet is from the other videos' normal seeds, and joins the two: each
component is put in robust standard units of the training archive's *pseudo-normal* snippets (the classifier's
logit and the log bank distance: median and IQR), their mean is the evidence, and a logistic maps it to a score in
(0, 1) whose 0.5 is the label-free threshold (the midpoint between the evidence's medians over the pseudo-normal
and the pseudo-abnormal training snippets; the pseudo-normal median maps to 0.1). An archive without anomalies is
scored by the bank alone, its threshold where 1 % of the training snippets lie above. Scores then rank within a
video instead of saturating, and the threshold is 0.5 for every model. Pure numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError

Component = Literal["classifier", "bank"]
NORMAL_MEDIAN_SCORE = 0.1  # where the pseudo-normal snippets' median evidence lands on the score scale
NORMAL_ONLY_QUANTILE = 0.99  # an archive without anomalies: the threshold leaves 1 % of its snippets above
_LOGIT_CLIP = 1e-7


class CalibrationError(UserError):
    """A calibration that cannot be fitted or read; says why."""

    kind = ErrorKind.INVALID_MODEL


def classifier_logit(scores: np.ndarray) -> np.ndarray:
    """The classifier's sigmoid output back in logit units (clipped away from 0 and 1)."""
    values = np.clip(np.asarray(scores, dtype=np.float64), _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(values) - np.log1p(-values)


@dataclass(frozen=True)
class Standardiser:
    """x -> (x - center) / spread for one component, after its transform (logit or log distance)."""

    center: float
    spread: float
    floor: float = 0.0  # added to a bank distance before its log (a distance of 0 stays finite)

    @classmethod
    def fit(cls, values: np.ndarray, *, floor: float = 0.0) -> Standardiser:
        low, center, high = np.quantile(values, [0.25, 0.5, 0.75])
        return cls(float(center), float(max((high - low) / 1.349, 1e-6)), floor)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.spread


@dataclass(frozen=True)
class Calibration:
    """The components' standardisers, and the logistic of their mean evidence: score = sigmoid((e - t) / s)."""

    components: tuple[Component, ...]
    standardisers: tuple[Standardiser, ...]
    threshold: float
    scale: float
    rule: str

    def evidence(self, classifier_scores: np.ndarray | None, bank_distances: np.ndarray | None) -> np.ndarray:
        parts = []
        for component, standardiser in zip(self.components, self.standardisers, strict=True):
            if component == "classifier":
                parts.append(standardiser(classifier_logit(classifier_scores)))
            else:
                parts.append(standardiser(np.log(np.asarray(bank_distances, dtype=np.float64) + standardiser.floor)))
        return np.mean(parts, axis=0)

    def score(self, evidence: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(evidence - self.threshold) / self.scale))

    def to_dict(self) -> dict[str, Any]:
        return {"components": list(self.components), "standardisers": [asdict(s) for s in self.standardisers],
                "threshold": self.threshold, "scale": self.scale, "rule": self.rule}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            components = tuple(data["components"])
            if not components or any(c not in ("classifier", "bank") for c in components):
                raise CalibrationError(f"unknown calibration components {components}")
            standardisers = tuple(Standardiser(**item) for item in data["standardisers"])
            calibration = cls(components, standardisers, float(data["threshold"]), float(data["scale"]),
                              str(data["rule"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"calibration is not valid: {error!r}") from error
        if len(standardisers) != len(components) or not calibration.scale > 0:
            raise CalibrationError("calibration is not valid: one standardiser per component and a positive scale")
        return calibration


def fit_calibration(
    *,
    classifier_scores: np.ndarray | None,
    bank_distances: np.ndarray | None,
    abnormal: np.ndarray | None,
) -> Calibration:
    """Fit on the training archive's snippets (all of them, in one order): the classifier's scores and the bank's
    leave-one-video-out distances (either may be None), ``abnormal`` the 0/1 pseudo labels (None: no anomaly)."""
    components: list[Component] = []
    raw: list[np.ndarray] = []
    if classifier_scores is not None:
        components.append("classifier")
        raw.append(classifier_logit(classifier_scores))
    if bank_distances is not None:
        distances = np.asarray(bank_distances, dtype=np.float64)
        floor = 0.05 * float(np.median(distances)) + 1e-12
        components.append("bank")
        raw.append(np.log(distances + floor))
    if not components:
        raise CalibrationError("nothing to calibrate: neither classifier scores nor bank distances")
    normal = np.ones(len(raw[0]), dtype=bool) if abnormal is None else ~np.asarray(abnormal, dtype=bool)
    if not normal.any():
        raise CalibrationError("every training snippet is pseudo-abnormal: no normal reference to calibrate on")
    floors = [0.0 if c == "classifier" else float(floor) for c in components]
    standardisers = tuple(Standardiser.fit(values[normal], floor=f) for values, f in zip(raw, floors, strict=True))
    evidence = np.mean([s(values) for s, values in zip(standardisers, raw, strict=True)], axis=0)
    normal_median = float(np.median(evidence[normal]))
    if abnormal is not None and (~normal).any():
        threshold = (normal_median + float(np.median(evidence[~normal]))) / 2
        rule = "midpoint of the median evidence of pseudo-normal and pseudo-abnormal training snippets"
    else:
        threshold = float(np.quantile(evidence, NORMAL_ONLY_QUANTILE))
        rule = f"{100 * (1 - NORMAL_ONLY_QUANTILE):g} % of the training snippets (all normal) above it"
    gap = threshold - normal_median
    if not gap > 1e-9:  # pseudo-abnormal snippets no higher than normal ones: fall back to the normal spread
        threshold, gap = normal_median + 1.0, 1.0
        rule += " (fallback: pseudo-abnormal evidence was not above normal; one spread above the normal median)"
    scale = gap / np.log(1 / NORMAL_MEDIAN_SCORE - 1)
    return Calibration(tuple(components), standardisers, float(threshold), float(scale), rule)
