"""Training speed at ShanghaiTech scale: this trainer's loop vs a naive official-style loop, side by side.

Both train the same head (Conv1d 2048 -> 512, k 3; two linear layers) with the same weighted BCE, RMSprop and batches
of 30 videos x 32 snippets (drop_last, shuffle) on the same pseudo labels and loss weights of a synthetic
ShanghaiTech-scale set (238 videos, T from the real split, D = 2048, as 10-crop features averaged over crops):

- ``lanp``: ``pipeline.training.trainer.fit_classifier``: all sampled snippets stacked once into one (N, 32, D)
tensor on
  the device; an epoch is a shuffled sequence of index batches.
- ``official-style``: a ``torch.utils.data.DataLoader`` over a Dataset whose ``__getitem__`` samples one video's
  32 snippets, labels and weights with numpy each time (as the official code does), then the same steps.

Propagation, pseudo labels and weights are computed once (not timed; see ``bench/propagation.py``). Timings on
the shared 2-core machine are noisy: one run of each by default (``--repeats``), medians quoted.

    python bench/training.py --epochs 300 --json bench-training.json
    python bench/training.py --epochs 300 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import LANPConfig, apply_overrides, preset
from lanp_vad.models.propagation import propagate
from lanp_vad.models.pseudo_labels import make_pseudo_labels
from lanp_vad.models.reweighting import loss_weights, normal_list
from lanp_vad.models.sampling import segment_indices
from lanp_vad.pipeline.device import resolve_device
from lanp_vad.pipeline.research.synthetic import make_synthetic_features
from lanp_vad.pipeline.training.trainer import fit_classifier


class OfficialStyleVideos(Dataset):
    """One item = one video's 32 sampled snippets, labels and weights, sampled with numpy on every access."""

    def __init__(self, features: list[np.ndarray], labels: list[np.ndarray], weights: list[np.ndarray], n: int):
        self.features, self.labels, self.weights, self.num_segments = features, labels, weights, n

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        picked = segment_indices(self.features[index].shape[0], self.num_segments)
        return (
            torch.from_numpy(self.features[index][picked]),
            torch.from_numpy(self.labels[index][picked].astype(np.float32)),
            torch.from_numpy(self.weights[index][picked].astype(np.float32)),
        )


def official_style_train(dataset: OfficialStyleVideos, config: LANPConfig, device: torch.device) -> float:
    """The baseline loop; returns the last batch's loss (to check both loops train)."""
    train = config.train
    torch.manual_seed(train.seed)
    model = create_classifier(dim=dataset.features[0].shape[1], config=config.classifier, seed=train.seed).to(device)
    optimiser = torch.optim.RMSprop(model.parameters(), lr=train.lr, momentum=train.momentum)
    loader = DataLoader(dataset, batch_size=train.batch_size, shuffle=True, drop_last=train.drop_last)
    loss = torch.zeros(())
    model.train()
    for _ in range(train.epochs):
        for inputs, targets, weights in loader:
            inputs, targets, weights = inputs.to(device), targets.to(device), weights.to(device)
            scores = model(inputs)
            loss = (weights * functional.binary_cross_entropy(scores, targets, reduction="none")).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return loss.item()


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--scale", choices=("shanghaitech", "ucf-crime"), default="shanghaitech")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-baseline", action="store_true", help="time only this trainer (large scales)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for this trainer, e.g. train.amp=on (bf16 autocast)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = apply_overrides(preset("reference-sh"), [f"train.epochs={args.epochs}", *args.set])
    started = time.perf_counter()
    synthetic = make_synthetic_features(scale=args.scale, dim=args.dim, salience=1.0, seed=0)
    features = synthetic.features
    z = propagate(features, config.propagation, device=device)
    labels = make_pseudo_labels(z, config.pseudo)
    normals = normal_list(features, labels.confident_normal, config.reweight, config.train.num_segments)
    weights = [loss_weights(video, label, normals, config.reweight) for video, label in zip(
        features, labels.snippet_labels, strict=True)]
    print(f"prepared {len(features)} videos, {sum(len(f) for f in features)} snippets, D={args.dim} "
          f"in {time.perf_counter() - started:.1f} s; device {device}; {args.epochs} epochs")

    def run_lanp() -> float:
        stacked = [np.stack([a[segment_indices(len(a), config.train.num_segments)] for a in arrays])
                   for arrays in (features, labels.snippet_labels, weights)]
        inputs, targets, loss_weight = (torch.from_numpy(np.asarray(a, dtype=np.float32)).to(device) for a in stacked)
        _, history = fit_classifier(inputs, targets, loss_weight, config, progress=False, eval_fn=None)
        return history[-1]["loss"]

    def run_official() -> float:
        return official_style_train(OfficialStyleVideos(features, labels.snippet_labels, weights,
                                                        config.train.num_segments), config, device)

    runs = {"lanp": run_lanp} | ({} if args.skip_baseline else {"official-style": run_official})
    times: dict[str, list[float]] = {name: [] for name in runs}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            _synchronise(device)
            start = time.perf_counter()
            losses[name] = run()
            _synchronise(device)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        print(f"{name:>15}: {seconds:8.2f} s median of {len(times[name])} ({seconds / args.epochs * 1000:.1f} ms/epoch)"
              f", last loss {losses[name]:.4f}")
    result = {"epochs": args.epochs, "device": str(device), "videos": len(features), "dim": args.dim,
              "threads": torch.get_num_threads(), "seconds": medians, "runs": times}
    if "official-style" in medians:
        result["speedup"] = medians["official-style"] / medians["lanp"]
        print(f"speed-up (official-style / lanp): {result['speedup']:.2f}x")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(result, stream, indent=2)


if __name__ == "__main__":
    main()
