"""Prometheus metrics of one app instance (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class ServiceMetrics:
    """Request latency, videos and snippets scored, queue depth, errors by kind and client disconnects."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "lanp_request_seconds",
            "HTTP request latency by route, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.videos_scored = Counter("lanp_videos_scored", "Videos scored", registry=self.registry)
        self.snippets_scored = Counter("lanp_snippets_scored", "Snippets scored", registry=self.registry)
        self.frames_scored = Counter("lanp_frames_scored", "Frames scored", registry=self.registry)
        self.queue_depth = Gauge("lanp_queue_depth", "Videos waiting for the inference worker", registry=self.registry)
        self.errors = Counter("lanp_errors", "Errors by kind", ["kind"], registry=self.registry)
        self.client_disconnects = Counter(
            "lanp_client_disconnects",
            "Requests whose client hung up before the answer, by stage (not errors: answered 499)",
            ["stage"],
            registry=self.registry,
        )
        self.scoring_seconds = Histogram(
            "lanp_scoring_seconds", "Worker time per video", buckets=LATENCY_BUCKETS, registry=self.registry
        )

        self.device_seconds = Counter(
            "lanp_device_seconds", "Seconds the device was held, by group (requests: uploads and jobs; streams)",
            ["group"], registry=self.registry,
        )
        self.device_wait_seconds = Histogram(
            "lanp_device_wait_seconds", "Wait for the device's turn, by group", ["group"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def device_turn(self, group: str, waited_s: float, held_s: float) -> None:
        """One turn on the device ended (``service.scheduler``'s observer)."""
        self.device_seconds.labels(group=group).inc(held_s)
        self.device_wait_seconds.labels(group=group).observe(waited_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
