"""How an archive is extracted by default, for ``lanp extract``, ``api.extract`` and ``extract_archive`` alike.
Standard library only, so that the command line's ``--help`` can show them without importing torch."""

DEFAULT_WORKERS = 2
"""Decoding processes: two keep a core decoding while the backbone runs."""
DEFAULT_TIMEOUT_S = 600.0
"""A video whose decoding makes no progress this long is recorded as failed (its worker is killed)."""
