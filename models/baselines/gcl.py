"""A GCL-style cooperative learner (Zaheer et al., CVPR 2022; no official code exists).

A generator (an autoencoder over snippet features) and a discriminator (a snippet MLP) teach each other on
unlabeled snippets. In every batch, snippets whose reconstruction error exceeds mean + k_g * std are the
discriminator's pseudo anomalies; snippets the discriminator scores above mean + k_d * std get a distorted
reconstruction target (negative learning: the generator learns *not* to reconstruct them), which keeps the
generator from learning to reconstruct anomalies too. The anomaly score is the discriminator's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from models.baselines.common import EpochCallback, SnippetHead, check_videos, seeded_generator


class GCLConfig(BaseModel):
    """Every switch of the GCL-style learner."""

    model_config = ConfigDict(extra="forbid")

    generator_widths: tuple[float, ...] = Field(
        (0.5, 0.25, 0.5), description="autoencoder hidden widths as shares of D (a bottleneck below D)"
    )
    discriminator_hidden: tuple[int, ...] = (512, 32)
    dropout: float = Field(0.6, ge=0, lt=1)
    generator_threshold_std: float = Field(1.0, description="pseudo anomaly if error > mean + k * std")
    discriminator_threshold_std: float = Field(0.1, description="negative learning if score > mean + k * std")
    negative_target: float = Field(1.0, description="the distorted reconstruction target (a constant vector)")
    warmup_epochs: int = Field(1, ge=0, description="generator-only epochs before cooperation starts")
    epochs: int = Field(15, ge=1, description="cooperative epochs")
    batch_size: int = Field(128, ge=2, description="snippets per batch (thresholds are batch statistics)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


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


def train_gcl(
    features: Sequence[np.ndarray],
    config: GCLConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> SnippetHead:
    """Train generator and discriminator cooperatively on unlabeled videos; returns the discriminator."""
    videos = check_videos(features)
    inputs = torch.as_tensor(np.concatenate(videos), device=device)
    generator_rng = seeded_generator(seed)
    dim = inputs.shape[1]
    autoencoder = Generator(dim, config.generator_widths).to(device)
    discriminator = SnippetHead(dim, config.discriminator_hidden, config.dropout).to(device)
    generator_optimizer = torch.optim.Adam(
        autoencoder.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    discriminator_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    bce = nn.BCELoss()

    def batches() -> list[torch.Tensor]:
        order = torch.randperm(len(inputs), generator=generator_rng).to(device)
        return [batch for batch in order.split(config.batch_size) if len(batch) > 1]

    for _ in range(config.warmup_epochs):
        for batch in batches():
            generator_optimizer.zero_grad()
            ((autoencoder(inputs[batch]) - inputs[batch]) ** 2).mean().backward()
            generator_optimizer.step()

    for epoch in range(1, config.epochs + 1):
        discriminator.train()
        for batch in batches():
            snippets = inputs[batch]
            reconstruction = autoencoder(snippets)
            error = ((reconstruction - snippets) ** 2).mean(dim=1)
            with torch.no_grad():
                discriminator_targets = above_batch_threshold(error.detach(), config.generator_threshold_std)
                generator_negatives = above_batch_threshold(
                    discriminator(snippets), config.discriminator_threshold_std
                )
            distorted = torch.full_like(snippets, config.negative_target)
            target = torch.where(generator_negatives[:, None].bool(), distorted, snippets)
            generator_optimizer.zero_grad()
            ((reconstruction - target) ** 2).mean().backward()
            generator_optimizer.step()
            discriminator_optimizer.zero_grad()
            bce(discriminator(snippets), discriminator_targets).backward()
            discriminator_optimizer.step()
        if on_epoch is not None:
            discriminator.eval()
            on_epoch(epoch, discriminator)
    discriminator.eval()
    return discriminator
