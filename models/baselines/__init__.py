"""Peers of LANP run in the same harness: C2FPL, a GCL-style cooperative learner, the naive seed contrast and a
random scorer."""

from lanp_vad.models.baselines.c2fpl import C2FPLConfig, make_c2fpl_labels, train_c2fpl
from lanp_vad.models.baselines.common import BaselineError, PeerPseudoLabels, SnippetHead, score_videos
from lanp_vad.models.baselines.gcl import GCLConfig, train_gcl
from lanp_vad.models.baselines.random_scorer import random_scores
from lanp_vad.models.baselines.seed_contrast import seed_contrast_scores

__all__ = [
    "BaselineError",
    "C2FPLConfig",
    "GCLConfig",
    "PeerPseudoLabels",
    "SnippetHead",
    "make_c2fpl_labels",
    "random_scores",
    "score_videos",
    "seed_contrast_scores",
    "train_c2fpl",
    "train_gcl",
]
