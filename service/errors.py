"""Typed HTTP errors: every 4xx/5xx body is ``{"detail": message, "kind": short-kind}``."""

from __future__ import annotations


class ServiceError(Exception):
    """An error answered with ``status``; ``kind`` is the short label used in metrics and clients' logic."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"detail": self.message, "kind": self.kind}
