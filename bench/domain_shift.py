"""Which statistic of the training features tells a foreign camera from the training archive? (measurement)

For each training feature folder and each test feature folder, prints every video's domain-shift figure under
three statistics, each in units of the training snippets' own 99th percentile (1 = as far as the farthest 1 % of
training snippets):

- ``pca-residual``: norm of the residual off the principal subspace (90 % of the variance), the product's choice;
- ``pca-mahalanobis``: Mahalanobis distance inside that subspace;
- ``nearest``: distance to the nearest training snippet (reference: nearest snippet of another training video).

The baseline a user would write is the nearest-neighbour distance; the ratio printed is the gap between the
smallest foreign and the largest in-distribution figure of each statistic (> 1: a threshold separates them).

    python bench/domain_shift.py --train demo=DEMO/features ped2=PED2_TRAIN_FEATURES \
        --test demo:held=HELD_FEATURES demo:cctv=CCTV demo:ped2=PED2_TEST ped2:ped2=PED2_TEST ped2:cctv=CCTV

A test named ``TRAIN:NAME`` is scored against that training set; NAMEs starting with the training set's own name
(``ped2`` for ``ped2``, ``held`` for the demo) are in-distribution, the others foreign.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lanp_vad.pipeline.training.domain import REFERENCE_QUANTILE, fit_feature_stats


def load_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {path.stem: np.load(path) for path in sorted(Path(folder).glob("*.npy"))}
    return {name: array.mean(axis=1) if array.ndim == 3 else array for name, array in arrays.items()}


class Statistics:
    """The three candidate statistics fitted on one training set."""

    def __init__(self, train: dict[str, np.ndarray]):
        self.stats = fit_feature_stats(list(train.values()))
        snippets = np.concatenate(list(train.values())).astype(np.float64)
        centred = snippets - self.stats.mean
        projected = centred @ self.stats.components.T
        self.sigma = projected.std(axis=0) + 1e-12
        self.maha_ref = float(np.quantile(np.linalg.norm(projected / self.sigma, axis=1), REFERENCE_QUANTILE))
        self.train = train
        self.snippets = snippets
        owners = np.concatenate([[index] * len(array) for index, array in enumerate(train.values())])
        nearest_other = []
        for index, array in enumerate(train.values()):
            others = snippets[owners != index]
            nearest_other.append(self._nearest(array, others))
        self.nearest_ref = float(np.quantile(np.concatenate(nearest_other), REFERENCE_QUANTILE))

    @staticmethod
    def _nearest(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float64)
        squared = (queries**2).sum(1)[:, None] + (pool**2).sum(1)[None, :] - 2 * queries @ pool.T
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    def figures(self, features: np.ndarray) -> dict[str, float]:
        centred = np.asarray(features, dtype=np.float64) - self.stats.mean
        projected = centred @ self.stats.components.T
        return {
            "pca-residual": self.stats.shift(features),
            "pca-mahalanobis": float(np.median(np.linalg.norm(projected / self.sigma, axis=1)) / self.maha_ref),
            "nearest": float(np.median(self._nearest(features, self.snippets)) / self.nearest_ref),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--test", nargs="+", required=True, metavar="TRAIN:NAME=FOLDER")
    parser.add_argument("--in-distribution", nargs="+", default=["demo:held", "ped2:ped2"], metavar="TRAIN:NAME")
    args = parser.parse_args()
    trained = {}
    for item in args.train:
        name, folder = item.split("=", 1)
        trained[name] = Statistics(load_folder(Path(folder)))
    worst: dict[str, dict[str, list[float]]] = {}
    for item in args.test:
        key, folder = item.split("=", 1)
        train_name = key.split(":", 1)[0]
        inside = key in args.in_distribution
        for video, features in load_folder(Path(folder)).items():
            figures = trained[train_name].figures(features)
            print(f"{key:14s} {'in ' if inside else 'out'} {video:28s} "
                  + "  ".join(f"{stat} {value:7.2f}" for stat, value in figures.items()))
            for stat, value in figures.items():
                worst.setdefault(stat, {"in": [], "out": []})["in" if inside else "out"].append(value)
    for stat, groups in worst.items():
        largest_in, smallest_out = max(groups["in"]), min(groups["out"])
        print(f"{stat:16s} in-distribution max {largest_in:6.2f}  foreign min {smallest_out:6.2f}  "
              f"separation ratio {smallest_out / largest_in:5.2f}")


if __name__ == "__main__":
    main()
