"""Does a video score measure anomaly or length? Spearman with T and video AUC overall and within length strata.

Run on the official ShanghaiTech propagation output (``shanghaitech/lanp/pseudo_label_scores_sh.json``, the z the
official code computed for the 238 train videos) with the split's video labels: std(z) there separates abnormal
videos mostly because ShanghaiTech's abnormal training videos are short. A length-neutral score has Spearman
near 0 with T; its AUC within strata of similar length is what it knows about anomalies.

Beside the product's scores (std(z), decorrelation) the table measures two more against the null model, kept
here because they lost (``models.video_scores`` has the null):

- std ratio: std(z) / std(z_null(T)): how much more uneven z is than position alone makes it;
- deficit: the mean shortfall max(0, 1 - r) of r = (z / mean z) / (z_null / mean z_null) between the seeds: the
  share of normality that does not reach snippets which position alone would reach; and shape deficit, the
  decorrelation times the deficit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig, preset
from lanp_vad.models.video_scores import between_seeds, decorrelation, null_normality, video_scores

STRATA: tuple[tuple[int, int], ...] = ((0, 20), (20, 40), (40, 80), (80, 1_000_000))
SH_SCORES = "shanghaitech/lanp/pseudo_label_scores_sh.json"
SH_SPLIT = "shanghaitech/splits/train_split.txt"


def _std_ratio(z: np.ndarray, null: np.ndarray) -> float:
    return float(np.std(z)) / float(np.std(null)) if np.ptp(null) > 0 else 0.0


def _deficit(z: np.ndarray, null: np.ndarray) -> float:
    z, null = between_seeds(z), between_seeds(null)
    if np.ptp(null) == 0 or float(np.mean(z)) <= 0:
        return 0.0
    ratio = (z / np.mean(z)) / (null / np.mean(null))
    return float(np.maximum(0.0, 1.0 - ratio).mean())


NULL_SCORES = {
    "std_ratio": _std_ratio,
    "decorrelation": decorrelation,
    "deficit": _deficit,
    "shape_deficit": lambda z, null: decorrelation(z, null) * _deficit(z, null),
}


def null_scores(z: Sequence[np.ndarray], name: str, propagation: PropagationConfig) -> np.ndarray:
    """One score per video against the null model of its length (``NULL_SCORES``)."""
    nulls = null_normality([len(video) for video in z], propagation)
    return np.array([NULL_SCORES[name](np.asarray(video, np.float64), nulls[len(video)]) for video in z])


def score_table(z: Sequence[np.ndarray], labels: np.ndarray, preset_name: str = "reference-sh") -> list[dict]:
    """One row per score (std(z), length alone, std ratio, deficit): Spearman with T, AUC overall and per stratum.

    ``preset_name`` gives the graph the null model is propagated on (the one that produced ``z``).
    """
    lengths = np.array([len(values) for values in z])
    propagation = preset(preset_name).propagation
    scores = {
        "std(z) (official)": video_scores(z, PseudoLabelConfig(video_score="std"), propagation),
        "length alone (shorter = abnormal)": -lengths.astype(float),
        **{f"{name} vs z_null(T)": null_scores(z, name, propagation) for name in NULL_SCORES},
    }
    rows = []
    for name, values in scores.items():
        row: dict = {"score": name, "spearman_T": float(spearmanr(values, lengths)[0]),
                     "auc": float(roc_auc_score(labels, values))}  # fmt: skip
        for low, high in STRATA:
            inside = (lengths >= low) & (lengths < high)
            both = len(set(labels[inside].tolist())) == 2
            row[f"T {low}-{high}"] = float(roc_auc_score(labels[inside], values[inside])) if both else None
            row[f"n {low}-{high}"] = int(inside.sum())
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (strata headers carry the video counts)."""
    strata = [f"T {low}-{high}" for low, high in STRATA]
    names = [f"{label} (n={rows[0]['n' + label[1:]]})".replace("-1000000", "+") for label in strata]
    lines = ["| score | Spearman with T | video AUC | " + " | ".join(names) + " |", "|---" * (3 + len(strata)) + "|"]
    for row in rows:
        cells = [f"{row[label]:.3f}" if row[label] is not None else "—" for label in strata]
        lines.append(f"| {row['score']} | {row['spearman_T']:+.3f} | {row['auc']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def official_sh_table(data_dir: Path) -> str:
    """The table on the official ShanghaiTech z (reference-sh graph), as Markdown."""
    released = json.loads((data_dir / SH_SCORES).read_text())
    labels = {line.split(",")[0]: int(line.split(",")[1]) for line in (data_dir / SH_SPLIT).read_text().split()}
    video_ids = list(released)
    z = [np.asarray(released[video_id]["pseudo_label_scores"], dtype=np.float64) for video_id in video_ids]
    truth = np.array([labels[video_id] for video_id in video_ids])
    return markdown(score_table(z, truth))
