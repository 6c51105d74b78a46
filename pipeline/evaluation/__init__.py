"""Ground truth and metrics: label builders for the public layouts and the frame-level evaluator. May import
``pipeline.features`` and ``models``.
"""
