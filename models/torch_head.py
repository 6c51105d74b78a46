"""The trained LANP classifier as a head (``models.detector.Head``), in torch on a given device."""

from __future__ import annotations

import numpy as np
import torch

from lanp_vad.models.classifier import LANPClassifier


def temporal_radius(classifier: torch.nn.Module) -> int:
    """How many snippets on each side a classifier's score looks at (its temporal convolution's half width)."""
    convolutions = [m for m in classifier.modules() if isinstance(m, torch.nn.Conv1d)]
    return sum(int(m.kernel_size[0]) // 2 * int(m.dilation[0]) for m in convolutions)


class TorchHead:
    """``LANPClassifier`` in eval mode on ``device``."""

    def __init__(self, classifier: LANPClassifier, device: torch.device):
        self.classifier = classifier.to(device).eval()
        self.torch_device = device
        self.device = str(device)
        self.radius = temporal_radius(classifier)
        config = classifier.config
        self.context_window = config.context_window if config.context == "trailing_mean" else None

    def __call__(self, features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        def batch(values: np.ndarray) -> torch.Tensor:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.torch_device)
            return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(1, 0, 2).unsqueeze(0)

        with torch.inference_mode():
            scores = self.classifier(batch(features), None if reference is None else batch(reference))
        return scores.reshape(-1).double().cpu().numpy()
