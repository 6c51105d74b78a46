"""Accuracy benchmark: LANP, its ablations, C2FPL, GCL and a random scorer in one table (Markdown + JSON).

Runs every row on every data set with every seed; the random scorer is the baseline every ratio is read against.
Finished cells are appended to ``<out>.jsonl`` as they come, so a long run can be watched and survives a kill.

    python bench/accuracy.py --grid                       # the regime grid (docs/ACCURACY.md), 3 seeds
    python bench/accuracy.py --grid --held-out            # the regimes kept out of every selection
    python bench/accuracy.py --grid --spec f16 --only "LANP default"  # a candidate feature spec on the grid
    python bench/accuracy.py --tiny                       # CI: tiny synthetic set, 20 epochs, 1 seed
    python bench/accuracy.py --datasets ped2 ped2-long syn-sh --out bench/results/accuracy
    python bench/accuracy.py --length-bias                # video scores vs length on the official SH z
    python bench/accuracy.py --datasets none --public "SH-I3D" TRAIN.list TEST.list GT_DIR   # public features
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.extract import SPECS  # noqa: E402
from lanp_vad.pipeline.research.accuracy import (  # noqa: E402
    markdown_tables,
    method_rows,
    run_table,
    summarize,
    verdict_table,
)
from lanp_vad.pipeline.research.datasets import AccuracyDataset, SyntheticSpec, public_dataset, synthetic_dataset  # noqa: E402
from lanp_vad.pipeline.research.ped2 import PED2_DATASETS, ped2_datasets, synthetic_clip_datasets  # noqa: E402
from lanp_vad.pipeline.research.regimes import PLAZAS, REGIMES, ped2_regime_datasets, plaza_datasets  # noqa: E402

SYNTHETIC = {
    "syn-sh": SyntheticSpec("shanghaitech", 1.0, dim=128, keep_every=2),
    "syn-sh-less-salient": SyntheticSpec("shanghaitech", 0.5, dim=128, keep_every=2),
    "syn-sh-scenes": SyntheticSpec("shanghaitech", 1.0, dim=128, keep_every=2, scenes_per_video=3),
    "syn-sh-indep": SyntheticSpec("shanghaitech", 1.0, dim=128, keep_every=2, length_independent=True),
    "syn-sh-indep-less-salient": SyntheticSpec("shanghaitech", 0.5, dim=128, keep_every=2, length_independent=True),
    "syn-sh-indep-scenes": SyntheticSpec(
        "shanghaitech", 1.0, dim=128, keep_every=2, scenes_per_video=3, length_independent=True
    ),
    "syn-ucf": SyntheticSpec("ucf-crime", 1.0, dim=128, keep_every=32),
    "tiny": SyntheticSpec("tiny", 2.0, dim=32),
}

GRID = (
    "ped2", "ped2-long", "ped2-long-decoys", "rare-3", "rare-10", "normal-only", "normal-only-long", "plaza",
    "ped2-continuous", "ped2-small", "syn-sh", "syn-sh-less-salient", "syn-sh-indep", "syn-sh-indep-less-salient",
)
"""The regime grid: every default is chosen on these (docs/ACCURACY.md says what each stands for)."""
HELD_OUT = ("plaza-busy", "syn-sh-indep-scenes")
"""Regimes kept out of every selection: measured only to report how the chosen default does where it was not
tuned."""
SPEC_DEPENDENT = (
    "ped2", "ped2-long", "ped2-long-decoys", "rare-3", "rare-10", "normal-only", "normal-only-long", "ped2-continuous",
    "ped2-small",
)
"""The grid's regimes built from extracted Ped2 footage: the ones a feature spec changes (the plaza archives are
extracted at the demo's spec, the synthetic sets are features already)."""
CANDIDATE_SPECS = tuple(name for name in SPECS if name != "x3d")


def build_datasets(args: argparse.Namespace) -> list[AccuracyDataset]:
    data_dir, cache = Path(args.data_dir), Path(args.cache)
    datasets: list[AccuracyDataset] = []
    names = [name for name in args.datasets if name != "none"]
    spec = SPECS[args.spec or "default"]
    ped2 = [name for name in names if name in PED2_DATASETS]
    if ped2:
        datasets += ped2_datasets(data_dir, cache, ped2, pairing=args.pairing, spec=spec)
    regimes = [name for name in names if name in REGIMES]
    if regimes:
        datasets += ped2_regime_datasets(data_dir, cache, regimes, spec=spec)
    for name in names:
        if name in PLAZAS:
            datasets += plaza_datasets(PLAZAS[name], cache)
        elif name in SYNTHETIC:
            datasets.append(synthetic_dataset(SYNTHETIC[name], cache))
        elif name == "tiny-long":  # the Ped2-long construction on the tiny set (CI: both regions, no video)
            tiny = synthetic_dataset(SYNTHETIC["tiny"], cache)
            datasets += synthetic_clip_datasets(tiny, cache / "tiny-derived", ("long",))
        elif name not in PED2_DATASETS and name not in REGIMES:
            choices = ", ".join([*PED2_DATASETS, *REGIMES, *PLAZAS, *SYNTHETIC, "tiny-long"])
            raise SystemExit(f"unknown data set {name!r}; choose from {choices}")
    for name, train, test, gt in args.public or []:
        datasets.append(
            public_dataset(
                name, train, test, gt, feature_dir=args.feature_dir, gt_format=args.gt_format, frames=args.frames,
                overrides=args.set,
            )
        )  # fmt: skip
    return datasets


def render(paths: list[str]) -> int:
    """Print the Markdown tables of the cells recorded in ``.jsonl`` files (a partial or merged run).

    A cell recorded twice (same data set, method and seed: a re-run) counts once, the later record winning.
    """
    cells = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                cells[record["dataset"], record["method"], record["seed"]] = record
    records = list(cells.values())
    datasets = list(dict.fromkeys(record["dataset"] for record in records))
    summary = summarize(records)
    print(verdict_table(summary, datasets))
    print(markdown_tables(summary, datasets))
    print("Mean final-epoch frame AUC over the data sets each row was measured on (the spec comparison's figure):")
    for method, cells in summary.items():
        means = [cell["auc_final"]["mean"] for cell in cells.values() if "auc_final" in cell]
        if means:
            print(f"- {method}: {100 * sum(means) / len(means):.1f} over {len(means)} data sets")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ped2", "ped2-long", "syn-sh"])
    parser.add_argument("--public", nargs=4, action="append", metavar=("NAME", "TRAIN", "TEST", "GT"),
                        help="public features: train, test (RTFM .list, LANP split, folder), gt")  # fmt: skip
    parser.add_argument("--feature-dir", help="folder of the feature files of --public splits/lists")
    parser.add_argument("--gt-format", default="auto")
    parser.add_argument("--frames", help="per-video frame counts for --public ground truth")
    parser.add_argument("--set", nargs="*", default=[], help="LANP overrides for --public data sets (key=value)")
    parser.add_argument("--rows", choices=("grid", "all", "product", "affinity", "ablation", "core"), default="all")
    parser.add_argument("--grid", action="store_true",
                        help="the regime grid: its data sets and rows, 3 seeds, the presets' epochs, final epoch only")
    parser.add_argument("--held-out", action="store_true", help="with --grid: the held-out regimes instead")
    parser.add_argument("--spec", choices=CANDIDATE_SPECS,
                        help="extract the Ped2 footage with this candidate feature spec (docs/performance.md; "
                             "default: the product's); with --grid, only the regimes built from it")  # fmt: skip
    parser.add_argument("--pairing", type=int, default=0, help="Ped2-long: shift which training clips surround")
    parser.add_argument("--base", nargs="*", default=[], help="overrides under every ablation row")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="keep only the rows whose name contains one of these texts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int,
                        help="LANP epochs (default: each row's preset's own: 100 default, 300 reference)")
    parser.add_argument("--eval-every", type=int, default=10,
                        help="evaluate LANP's classifier every N epochs (0: none; the saved model is always measured)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache", default=str(ROOT / "bench" / "results" / "cache"),
                        help="where extracted Ped2 features and generated sets are kept (reused)")
    parser.add_argument("--length-bias", action="store_true",
                        help="only the video-score-vs-length table on the official ShanghaiTech propagation output")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "accuracy"), help="output path stem")
    parser.add_argument("--tiny", action="store_true",
                        help="CI: tiny synthetic set and its long-video construction, core rows, 1 seed, 20 epochs")
    parser.add_argument("--render", nargs="+", metavar="JSONL", help="only print the tables of finished cells")
    args = parser.parse_args(argv)
    if args.render:
        return render(args.render)
    if args.length_bias:
        from lanp_vad.pipeline.research.length_bias import official_sh_table

        print(official_sh_table(Path(args.data_dir)))
        return 0
    if args.tiny:
        args.datasets, args.rows, args.seeds, args.epochs, args.eval_every = ["tiny", "tiny-long"], "core", [0], 20, 5
    if args.grid:
        args.datasets, args.rows, args.eval_every = list(HELD_OUT if args.held_out else GRID), "grid", 0
        if args.spec:
            args.datasets = [name for name in args.datasets if name in SPEC_DEPENDENT]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    datasets = build_datasets(args)
    rows = method_rows(base=args.base, include=args.rows)
    if args.only:
        rows = [row for row in rows if any(text in row.name for text in args.only)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".jsonl")
    partial.write_text("")
    started = time.perf_counter()

    def progress(record: dict) -> None:
        with partial.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        if "error" in record:
            print(f"{record['dataset']:>24} | {record['method']:<60} | failed: {record['error']}")
            return
        print(
            f"{record['dataset']:>24} | {record['method']:<60} | seed {record['seed']} | "
            f"AUC final {100 * record['final']['auc_roc']:.1f} best {100 * record['best']['auc_roc']:.1f} | "
            f"{record['seconds']:.0f} s",
            flush=True,
        )

    report = run_table(
        datasets, rows, seeds=args.seeds, epochs=args.epochs, eval_every=args.eval_every, on_record=progress
    )
    report.settings.update({"threads": args.threads, "rows": args.rows, "base": args.base,
                            "spec": args.spec or "default",
                            "wall_seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
    out.with_suffix(".json").write_text(report.to_json())
    out.with_suffix(".md").write_text(report.markdown())
    print(report.markdown())
    if args.grid:
        print(verdict_table(report.summary, list(report.datasets)))
    random_row = report.summary.get("random scorer", {})
    for dataset in report.datasets:
        floor = random_row.get(dataset, {}).get("auc_final", {}).get("mean")
        measured = [(method, cells[dataset]["auc_final"]["mean"]) for method, cells in report.summary.items()
                    if "auc_final" in cells.get(dataset, {})]  # fmt: skip
        if floor and measured:
            best = max(measured, key=lambda item: item[1])
            ratio = best[1] / floor
            print(f"{dataset}: best final-epoch AUC {best[1]:.3f} ({best[0]}) = {ratio:.2f}x the random scorer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
