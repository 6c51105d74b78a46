"""The accuracy table: LANP, its ablations and its peers on the same data, through the same evaluator.

Rows are methods (LANP presets, every affinity variant, the paper's ablations, C2FPL, GCL, a random scorer),
columns are data sets (UCSD Ped2 from real video, Ped2-long, synthetic sets at benchmark scale, any public feature
set given by the user). Each cell is the mean and std over seeds of the frame ROC-AUC at the final epoch (honest)
and at the best epoch (chosen on the test set, as the papers report), AP, and snippet pseudo-label
precision/recall on the training videos where their ground truth is known. Output: Markdown and JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lanp_vad.models.config import LANPConfig, apply_overrides, preset
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.research.baselines import run_baseline
from lanp_vad.pipeline.research.datasets import AccuracyDataset
from lanp_vad.pipeline.research.label_ceiling import train_on_true_labels
from lanp_vad.pipeline.training.trainer import train_lanp

log = logging.getLogger(__name__)

MethodKind = Literal["lanp", "c2fpl", "gcl", "seed_contrast", "seed_bank", "all_bank", "random", "true_labels"]
AFFINITIES = ("gaussian", "rms", "cosine", "adaptive")


class AccuracyError(UserError):
    """A data set or method the table cannot be built from; names the item."""

    kind = ErrorKind.INVALID_ARGUMENT


@dataclass(frozen=True)
class MethodRow:
    """One row: a method and, for LANP, the config overrides on top of the row's preset."""

    name: str
    kind: MethodKind
    preset: str = "reference"
    overrides: tuple[str, ...] = ()
    group: str = ""


SWITCHES: dict[str, tuple[str, ...]] = {
    "video score std (official)": ("pseudo.video_score=std",),
    "video context always on": ("classifier.context=trailing_mean",),
    "video context off": ("classifier.context=none",),
    "LANP's own snippet ranking (z)": ("bank.labels=lanp",),
    "scored by the classifier alone": ("bank.fusion=classifier",),
    "no normality bank": ("bank.enabled=false",),
    "bank seeds not cleaned": ("bank.clean_seeds=false",),
    "never normal-only": ("bank.archive=mixed",),
    "300 epochs": ("train.epochs=300",),
    "pseudo-videos of 8 snippets": ("train.pseudo_video_snippets=8",),
    "pseudo-videos of 16 snippets": ("train.pseudo_video_snippets=16",),
    "pseudo-videos of 32 snippets": ("train.pseudo_video_snippets=32",),
    "pseudo-videos of 48 snippets": ("train.pseudo_video_snippets=48",),
}
"""Method switches measured on top of the default preset (row name -> overrides)."""


def method_rows(
    *, base: Sequence[str] = (), h_values: Sequence[float] = (0.05, 0.2, 0.5), include: str = "all"
) -> list[MethodRow]:
    """The table's rows. ``base`` overrides apply to every ablation row (the configuration being ablated).

    ``include``: ``grid`` (the regime grid's rows: the default, the official recipe, the naive contrast, the two
    memory banks, the label ceiling), ``all`` (every row), ``product`` (the presets, the default's switches, the
    baselines), ``peers``
    (the baselines and the peers' switches),
    ``affinity`` (presets, affinity variants, baselines), ``ablation`` (the ablation rows and the random scorer)
    or ``core`` (the default and reference presets and the baselines: the CI configuration).
    """
    base = tuple(base)
    presets = [
        MethodRow("LANP default", "lanp", "default", group="presets"),
        MethodRow("LANP reference code (rms, UCF)", "lanp", "reference", group="presets"),
        MethodRow("LANP reference-sh code (cosine, SH)", "lanp", "reference-sh", group="presets"),
        MethodRow("LANP paper text (gaussian)", "lanp", "paper", group="presets"),
    ]
    switches = [
        MethodRow(f"LANP default, {name}", "lanp", "default", overrides, group="switches")
        for name, overrides in SWITCHES.items()
    ]
    variants = [
        MethodRow(
            f"LANP affinity={affinity}{' +standardize' if standardize else ''}",
            "lanp",
            overrides=(f"propagation.affinity={affinity}", f"propagation.standardize={str(standardize).lower()}"),
            group="affinity",
        )
        for standardize in (False, True)
        for affinity in AFFINITIES
        if (affinity, standardize) != ("rms", False)  # that is the reference row
    ]
    suffix = f" [base: {', '.join(base)}]" if base else ""

    def ablation(name: str, *overrides: str) -> MethodRow:
        return MethodRow(f"{name}{suffix}", "lanp", overrides=base + overrides, group="ablation")

    ablations = [
        ablation("ablation: base (prior seeds, propagate, T&F, reweight, h=0.1)"),
        ablation("ablation: seeds random", "propagation.seeds=random"),
        ablation("ablation: seeds data-driven", "propagation.seeds=data_driven"),
        ablation("ablation: direct comparison", "propagation.method=direct"),
        ablation("ablation: similarity T only", "propagation.feature_similarity=false"),
        ablation("ablation: similarity F only", "propagation.temporal=false"),
        ablation("ablation: no re-weighting", "reweight.enabled=false"),
        *(ablation(f"ablation: h={h:g}", f"pseudo.confident_normal_ratio={h}") for h in h_values),
    ]
    baselines = [
        MethodRow("naive seed contrast (no training)", "seed_contrast", group="baselines"),
        MethodRow("C2FPL", "c2fpl", group="baselines"),
        MethodRow("C2FPL (authors' code)", "c2fpl", overrides=("variant=authors",), group="baselines"),
        MethodRow("GCL-style", "gcl", group="baselines"),
        MethodRow("random scorer", "random", group="baselines"),
        MethodRow("classifier on the true labels (ceiling)", "true_labels", "default", group="baselines"),
    ]
    peer_variants = [  # the audit of the peers: what the switches change (docs/ACCURACY.md, "The peers, audited")
        MethodRow("C2FPL, raw features", "c2fpl", overrides=("standardize=false",), group="peers"),
        MethodRow("GCL-style, raw features", "gcl", overrides=("standardize=false",), group="peers"),
    ]
    grid = [
        MethodRow("LANP default", "lanp", "default", group="grid"),
        MethodRow("LANP reference (official recipe)", "lanp", "reference", group="grid"),
        MethodRow("naive own-seed contrast", "seed_contrast", group="grid"),
        MethodRow("kNN seed bank", "seed_bank", group="grid"),
        MethodRow("kNN all-snippet bank (normal-only baseline)", "all_bank", group="grid"),
        MethodRow("classifier on the true labels (ceiling)", "true_labels", "default", group="grid"),
    ]
    groups = {
        "grid": grid,
        "all": presets + switches + variants + ablations + baselines + peer_variants,
        "peers": baselines + peer_variants,
        "product": presets + switches + baselines,
        "affinity": presets + variants + baselines,
        "ablation": ablations + [row for row in baselines if row.kind == "random"],
        "core": presets[:2] + baselines,
    }
    if include not in groups:
        raise AccuracyError(f"unknown row group {include!r}; choose from {', '.join(groups)}")
    return groups[include]


# ---------------------------------------------------------------------------------------------------------------
# Running the table.


def lanp_config(row: MethodRow, dataset: AccuracyDataset, *, seed: int, epochs: int | None) -> LANPConfig:
    """The row's preset with the data set's overrides, the row's overrides, the seed and epochs.

    Every row keeps the last partial batch (``train.drop_last=false``, batches of min(30, N)): the official
    batch of 30 with drop_last trains nothing on Ped2's 28 clips, and the comparison is about pseudo labels.
    """
    batching = ["train.drop_last=false", f"train.batch_size={min(30, len(dataset.train))}"]
    assignments = [*batching, *dataset.overrides, *row.overrides, f"train.seed={seed}", "train.device=cpu"]
    if epochs is not None:
        assignments.append(f"train.epochs={epochs}")
    return apply_overrides(preset(row.preset), assignments)


def run_cell(
    row: MethodRow,
    dataset: AccuracyDataset,
    seed: int,
    *,
    epochs: int | None = None,
    eval_every: int = 1,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Train and evaluate one method on one data set with one seed; one JSON-able record per column.

    ``epochs`` (None: the preset's own) and ``eval_every`` apply to LANP; the baselines keep their own schedules
    (C2FPL 20 epochs, GCL 15) and are evaluated after every epoch.
    """
    started = time.perf_counter()
    pseudo: dict[str, float] | None = None
    context: dict[str, Any] | None = None
    if row.kind == "lanp":
        config = lanp_config(row, dataset, seed=seed, epochs=epochs)
        result = train_lanp(
            dataset.train,
            config,
            ground_truth=dataset.ground_truth if dataset.train_truth else None,
            progress=False,
            eval_fn=dataset.epoch_eval(device, every=eval_every, epochs=config.train.epochs) if eval_every else None,
        )
        # The final record is the model as saved (classifier, bank and calibration) at its own threshold; the
        # per-epoch records (when asked for) are the classifier's, for the best-epoch column.
        final = {"epoch": config.train.epochs, **dataset.measure(dataset.score(result.detector, device),
                                                                 threshold=result.metadata["threshold"])}
        history = [record for record in result.history if "auc_roc" in record] + [final]
        quality = result.metadata["pseudo_labels"].get("vs_ground_truth")
        pseudo = quality["snippet"] if quality else None
        context = {**result.metadata.get("classifier_context", {}), "archive": result.metadata["archive"]}
    elif row.kind == "true_labels":
        if not dataset.train_truth:
            raise AccuracyError(f"{dataset.name}: the training videos have no ground truth for the ceiling row")
        config = lanp_config(row, dataset, seed=seed, epochs=epochs)
        evaluate = dataset.epoch_eval(device, every=eval_every, epochs=config.train.epochs)
        history = train_on_true_labels(dataset.train, dataset.ground_truth, config, eval_fn=evaluate)
        history = [record for record in history if "auc_roc" in record]
    else:
        outcome = run_baseline(
            row.kind,
            dataset.train,
            dataset.evaluation,
            seed=seed,
            ground_truth=dataset.ground_truth if dataset.train_truth else None,
            eval_fn=dataset.epoch_eval(device),
            measure=dataset.measure,
            device=device,
            overrides=row.overrides,
        )
        history, pseudo = outcome.history, outcome.pseudo_quality
    seconds = round(time.perf_counter() - started, 2)
    records = []
    for column, prefix in zip(dataset.columns, ["", *(f"{region.name}:" for region in dataset.regions)], strict=True):
        final = history[-1]
        best = max(history, key=lambda record: record[f"{prefix}auc_roc"])
        records.append({
            "dataset": column,
            "method": row.name,
            "kind": row.kind,
            "seed": seed,
            "final": {"auc_roc": final[f"{prefix}auc_roc"], "ap": final[f"{prefix}ap"],
                      "epoch": int(final.get("epoch", 1))},
            "best": {"auc_roc": best[f"{prefix}auc_roc"], "ap": best[f"{prefix}ap"],
                     "epoch": int(best.get("epoch", 1))},
            "events": {key.removeprefix("events:"): value for key, value in final.items()
                       if not prefix and key.startswith("events:")} or None,
            "pseudo_labels": pseudo,
            "classifier_context": context,
            "seconds": seconds,
        })  # fmt: skip
    return records


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> dataset -> mean/std of each metric over seeds (and the seed count)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["method"], record["dataset"]), []).append(record)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for (method, dataset), all_runs in grouped.items():
        runs = [run for run in all_runs if "error" not in run]
        if not runs:
            summary.setdefault(method, {})[dataset] = {"seeds": 0, "error": all_runs[0]["error"]}
            continue
        values = {
            "auc_final": [run["final"]["auc_roc"] for run in runs],
            "auc_best": [run["best"]["auc_roc"] for run in runs],
            "ap_final": [run["final"]["ap"] for run in runs],
            "pl_precision": [run["pseudo_labels"]["precision"] for run in runs if run["pseudo_labels"]],
            "pl_recall": [run["pseudo_labels"]["recall"] for run in runs if run["pseudo_labels"]],
            **{name: [run["events"][name] for run in runs if (run.get("events") or {}).get(name) is not None]
               for name in EVENT_COLUMNS},
        }
        summary.setdefault(method, {})[dataset] = {
            "seeds": len(runs),
            **{
                name: {"mean": float(np.mean(series)), "std": float(np.std(series))}
                for name, series in values.items()
                if series
            },
        }
    return summary


_TABLES = {
    "auc_final": "Frame ROC-AUC, final epoch (%)",
    "auc_best": "Frame ROC-AUC, best epoch (%) — chosen on the test set, as the papers report",
    "ap_final": "Frame AP (average precision), final epoch (%)",
    "pl_precision": "Snippet pseudo-label precision on the training videos (%)",
    "pl_recall": "Snippet pseudo-label recall on the training videos (%)",
    "event_recall": "Event recall at the model's own threshold, final epoch (%): footage of known frame rate; the "
                    "baselines, which have no threshold, at 0.5",
    "event_precision": "Event precision at the model's own threshold, final epoch (%)",
    "false_alarms_per_hour": "False alarms per hour at the model's own threshold, final epoch",
    "recall_within_budget": "Event recall with at most 60 false alarms per hour, final epoch (%): the threshold is "
                            "chosen on the test videos (like a best epoch), so methods of any score scale compare",
}
EVENT_COLUMNS = ("event_recall", "event_precision", "false_alarms_per_hour", "recall_within_budget")
_SCALE = {"false_alarms_per_hour": 1.0}  # every other metric is a fraction shown in %


def markdown_tables(summary: dict[str, dict[str, dict[str, Any]]], datasets: Sequence[str]) -> str:
    """One Markdown table per metric: rows = methods, columns = data sets, cells = mean ± std over seeds."""
    blocks = []
    for metric, title in _TABLES.items():
        if not any(metric in cell for cells in summary.values() for cell in cells.values()):
            continue  # e.g. event metrics of a run on synthetic sets only
        lines = [f"### {title}", "", "| method | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
        for method, cells in summary.items():
            row = []
            for dataset in datasets:
                cell = cells.get(dataset, {})
                stats = cell.get(metric)
                failed = "failed (see JSON)" if "error" in cell else "—"
                scale = _SCALE.get(metric, 100.0)
                row.append(f"{scale * stats['mean']:.1f} ± {scale * stats['std']:.1f}" if stats else failed)
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@dataclass
class AccuracyReport:
    """Everything a run measured, with the settings that made it."""

    records: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, Any]]]
    datasets: dict[str, str]
    settings: dict[str, Any]

    def markdown(self) -> str:
        header = [f"- **{name}**: {description}" for name, description in self.datasets.items()]
        settings = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        return "\n".join(header) + f"\n\nSettings: {settings}\n\n" + markdown_tables(self.summary, list(self.datasets))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def run_table(
    datasets: Sequence[AccuracyDataset],
    rows: Sequence[MethodRow],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    eval_every: int = 1,
    device: str = "cpu",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> AccuracyReport:
    """Every row on every data set with every seed. ``on_record`` sees each finished cell (progress, partial JSON)."""
    records = []
    for dataset in datasets:
        for row in rows:
            for seed in seeds:
                try:
                    cell = run_cell(row, dataset, seed, epochs=epochs, eval_every=eval_every, device=device)
                except ValueError as error:  # a configuration this data set cannot train: recorded, run goes on
                    log.warning("%s on %s (seed %d) failed: %s", row.name, dataset.name, seed, error)
                    cell = [{"dataset": column, "method": row.name, "kind": row.kind, "seed": seed,
                             "error": str(error)} for column in dataset.columns]  # fmt: skip
                records += cell
                if on_record is not None:
                    for record in cell:
                        on_record(record)
    return AccuracyReport(
        records,
        summarize(records),
        {column: dataset.description for dataset in datasets for column in dataset.columns},
        {
            "seeds": list(seeds),
            "lanp_epochs": epochs if epochs is not None else "each preset's own",
            "lanp_eval_every": eval_every,
            "device": device,
        },
    )


DEFAULT_ROW = "LANP default"
ANCHOR_ROWS = ("LANP reference (official recipe)", "kNN seed bank")
NORMAL_ONLY_ANCHOR = "kNN all-snippet bank (normal-only baseline)"
MARGIN = 0.01


def verdict_table(summary: dict[str, dict[str, dict[str, Any]]], datasets: Sequence[str]) -> str:
    """Per column: the default's mean frame AUC against max(anchors) - 0.01, the anchors being the official recipe
    and the kNN seed bank (and the all-snippet bank on archives trained without anomalies)."""
    lines = ["| regime | default | official recipe | kNN seed bank | kNN all-snippet bank | target | |",
             "|---|---|---|---|---|---|---|"]
    def mean(row: str, dataset: str) -> float | None:
        stats = summary.get(row, {}).get(dataset, {}).get("auc_final")
        return None if stats is None else stats["mean"]

    for dataset in datasets:
        default = mean(DEFAULT_ROW, dataset)
        anchors = [mean(row, dataset) for row in ANCHOR_ROWS]
        if dataset.startswith("normal-only"):
            anchors.append(mean(NORMAL_ONLY_ANCHOR, dataset))
        known = [value for value in anchors if value is not None]
        target = max(known) - MARGIN if known else None
        cells = [default, *[mean(row, dataset) for row in ANCHOR_ROWS], mean(NORMAL_ONLY_ANCHOR, dataset), target]
        verdict = "" if default is None or target is None else ("at or above" if default >= target else "BELOW")
        shown = " | ".join("—" if value is None else f"{100 * value:.1f}" for value in cells)
        lines.append(f"| {dataset} | {shown} | {verdict} |")
    return "\n".join(lines) + "\n"
