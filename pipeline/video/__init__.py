"""Video in: container sniffing, decoding (PyAV / decord / frame folders), snippet plans, input expansion and the
torch-free decode worker process. May import ``models.errors`` and the shared plumbing only: no torch here, so
decode workers stay small.
"""
