"""Features of an unlabeled archive to a model directory: propagation of a feature set, pseudo labels, the
trainer and the model directory format. May import ``pipeline.features``, ``pipeline.evaluation`` and ``models``.
"""
