"""Data flow and jobs: the rooms below are the stages of the README diagram.

video -> features -> training / evaluation -> scoring -> jobs; research and demo sit on top of them, cli is the
shell over all of it (the only room that may import ``service``). Shared plumbing (files, devices, worker
processes) lives in the modules directly under ``pipeline``; the error hierarchy is ``models.errors``.
"""
