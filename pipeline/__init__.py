"""Data flow and jobs: the rooms below are the stages of docs/ARCHITECTURE.md's diagram.

video -> features -> training / evaluation -> scoring -> jobs / live; research and demo sit on top of them and
``api`` (the Python API) over all of it. Shared plumbing (files, devices, worker processes) lives in the modules
directly under ``pipeline``; the error hierarchy is ``lanp_vad.models.errors``. The ``lanp`` shell
(``lanp_vad.cli``) and the web service sit above this package and call the same functions.
"""
