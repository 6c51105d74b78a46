"""``lanp demo``: a synthetic surveillance archive (scenes), extraction, training without labels, evaluation and
a scored held-back clip, all offline.
"""
