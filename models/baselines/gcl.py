"""A GCL-style cooperative learner (Zaheer et al., CVPR 2022; no official code exists).

A generator (an autoencoder over snippet features) and a discriminator (a snippet MLP) teach each other on
unlabeled snippets. The generator is first pre-trained to reconstruct every snippet, and the discriminator is
pre-trained on the pre-trained generator's pseudo labels (a randomly initialised discriminator would otherwise
pick the first negatives of the loop at random). Then, in every batch: snippets whose reconstruction error
exceeds the batch's mean + k_g * std are the discriminator's pseudo anomalies and it takes a step on them;
snippets the updated discriminator scores above mean + k_d * std get a distorted reconstruction target
(negative learning: the generator learns *not* to reconstruct them, so anomalies stay hard to reconstruct), and
the generator takes a step. Batches are random snippets, or consecutive snippets of the training videos shuffled
as wholes (``batching="consecutive"``, our reading of the paper's data organisation). Both networks see snippets
z-scored with the training set's statistics. The anomaly score is the discriminator's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lanp_vad.models.baselines.common import (
    EpochCallback,
    PeerPseudoLabels,
    SnippetHead,
    Standardize,
    check_videos,
    epoch_factor,
    seeded_generator,
)


class GCLConfig(BaseModel):
    """Every switch of the GCL-style learner."""

    model_config = ConfigDict(extra="forbid")

    standardize: bool = Field(
        True, description="z-score the snippets with the training set's statistics before both networks"
    )
    generator_widths: tuple[float, ...] = Field(
        (0.5, 0.25, 0.5), description="autoencoder hidden widths as shares of D (a bottleneck below D)"
    )
    discriminator_hidden: tuple[int, ...] = (512, 32)
    dropout: float = Field(0.6, ge=0, lt=1)
    generator_threshold_std: float = Field(1.0, description="pseudo anomaly if error > mean + k * std")
    discriminator_threshold_std: float = Field(0.1, description="negative learning if score > mean + k * std")
    negative_target: float = Field(1.0, description="the distorted reconstruction target's constant")
    distortion: Literal["constant", "shift"] = Field(
        "constant", description="negatives reconstruct to the constant vector, or to themselves + the constant"
    )
    batching: Literal["shuffled", "consecutive"] = Field(
        "shuffled",
        description="batches of random snippets, or of consecutive snippets shuffled as wholes (our reading of the "
        "paper's data organisation; measured worse on 5 of 6 sets, docs/ACCURACY.md)",
    )
    warmup_epochs: int = Field(1, ge=0, description="generator-only (reconstruction) epochs before cooperation")
    discriminator_warmup_epochs: int = Field(
        1, ge=0, description="discriminator epochs on the pre-trained generator's labels before negative learning"
    )
    epochs: int = Field(15, ge=1, description="cooperative epochs")
    batch_size: int = Field(128, ge=2, description="snippets per batch (thresholds are batch statistics)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    min_steps: int = Field(
        0, ge=0, description="repeat every stage's epochs by one factor until cooperation takes this many steps"
    )


class Generator(nn.Module):
    """Snippet autoencoder D -> hidden widths (shares of D) -> D."""

    def __init__(self, dim: int, widths: Sequence[float]):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for share in widths:
            size = max(1, round(share * dim))
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def above_batch_threshold(values: torch.Tensor, std_multiple: float) -> torch.Tensor:
    """Float 0/1 mask of values above the batch's mean + ``std_multiple`` * std."""
    return (values > values.mean() + std_multiple * values.std()).float()


def batch_indices(count: int, config: GCLConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches of snippet indices (into the concatenated videos); single-snippet batches dropped."""
    if config.batching == "consecutive":
        chunks = list(torch.arange(count).split(config.batch_size))
        batches = [chunks[index] for index in torch.randperm(len(chunks), generator=generator)]
    else:
        batches = list(torch.randperm(count, generator=generator).split(config.batch_size))
    return [batch for batch in batches if len(batch) > 1]


def train_gcl(
    features: Sequence[np.ndarray],
    config: GCLConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> tuple[nn.Module, PeerPseudoLabels]:
    """Train generator and discriminator cooperatively on unlabeled videos.

    Returns the discriminator (behind the input standardisation) and the generator's pseudo labels of the last
    cooperative epoch (``abnormal``: videos with any labelled snippet).
    """
    videos = check_videos(features)
    raw = torch.as_tensor(np.concatenate(videos), device=device)
    scaling = Standardize(raw).to(device) if config.standardize else nn.Identity()
    inputs = scaling(raw)
    generator_rng = seeded_generator(seed)
    dim = inputs.shape[1]
    autoencoder = Generator(dim, config.generator_widths).to(device)
    discriminator = SnippetHead(dim, config.discriminator_hidden, config.dropout).to(device)
    scored = nn.Sequential(scaling, discriminator)  # what scoring sees: raw features in
    generator_optimizer = torch.optim.Adam(
        autoencoder.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    discriminator_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    bce = nn.BCELoss()

    def errors(snippets: torch.Tensor) -> torch.Tensor:
        return ((autoencoder(snippets) - snippets) ** 2).mean(dim=1)

    def discriminator_step(snippets: torch.Tensor) -> torch.Tensor:
        """One step on the generator's labels of ``snippets``; returns those labels."""
        with torch.no_grad():
            targets = above_batch_threshold(errors(snippets), config.generator_threshold_std)
        discriminator_optimizer.zero_grad()
        bce(discriminator(snippets), targets).backward()
        discriminator_optimizer.step()
        return targets

    steps_per_epoch = len(inputs) // config.batch_size + int(len(inputs) % config.batch_size > 1)
    factor = epoch_factor(config.epochs, steps_per_epoch, config.min_steps)
    for _ in range(factor * config.warmup_epochs):
        for batch in batch_indices(len(inputs), config, generator_rng):
            generator_optimizer.zero_grad()
            errors(inputs[batch]).mean().backward()
            generator_optimizer.step()
    discriminator.train()
    for _ in range(factor * config.discriminator_warmup_epochs):
        for batch in batch_indices(len(inputs), config, generator_rng):
            discriminator_step(inputs[batch])

    labels = torch.zeros(len(inputs), device=device)
    for epoch in range(1, factor * config.epochs + 1):
        discriminator.train()
        for batch in batch_indices(len(inputs), config, generator_rng):
            snippets = inputs[batch]
            labels[batch] = discriminator_step(snippets)
            with torch.no_grad():
                negatives = above_batch_threshold(discriminator(snippets), config.discriminator_threshold_std)
            distorted = (
                torch.full_like(snippets, config.negative_target)
                if config.distortion == "constant"
                else snippets + config.negative_target
            )
            target = torch.where(negatives[:, None].bool(), distorted, snippets)
            generator_optimizer.zero_grad()
            ((autoencoder(snippets) - target) ** 2).mean().backward()
            generator_optimizer.step()
        if on_epoch is not None:
            scored.eval()
            on_epoch(epoch, scored)
    scored.eval()
    per_video = np.split(labels.cpu().numpy().astype(np.float32), np.cumsum([len(v) for v in videos])[:-1])
    abnormal = np.array([video.any() for video in per_video])
    return scored, PeerPseudoLabels(abnormal=abnormal, snippet_labels=per_video)
