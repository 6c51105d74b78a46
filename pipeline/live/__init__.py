"""Live sources: streams and cameras decoded as they play, cut into snippets as offline, scored as they arrive."""
