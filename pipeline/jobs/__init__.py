"""Archives: batch scoring with a resumable manifest and its output tables, the local process pool and the Ray
engine. May import every room below it (scoring, features, video); nothing imports it but the CLI, demo and
service.
"""
