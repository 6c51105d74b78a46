"""Frames to features: the feature spec, backbone weights, batched transforms, the extractor and its engine,
the feature store and feature-set readers. May import ``pipeline.video`` and ``models``.
"""
