"""A trained model applied to a video: the torch-free result type, the scorer, event segments and the plot. May
import ``pipeline.training``, ``pipeline.features``, ``pipeline.video`` and ``models``.
"""
