"""Service settings, read from ``LANP_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lanp_vad.service.egress import DEFAULT_DENIED_NETWORKS


class Settings(BaseSettings):
    """Every knob of the service; ``LANP_<NAME>`` in the environment sets ``<name>``."""

    # An empty variable (compose's `${LANP_API_KEY:-}`) means "not set", not an empty key that locks every client out.
    model_config = SettingsConfigDict(env_prefix="LANP_", extra="ignore", env_ignore_empty=True)

    model_dir: Path = Field(description="model directory to serve (model.safetensors, feature_spec.json, ...)")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N: the one device the inference worker owns")
    runtime: Literal["auto", "torch", "onnxruntime", "openvino"] = Field(
        "auto", description="the backbone's inference runtime (auto: torch on CUDA, else the fastest installed)"
    )
    weights: str | None = Field(None, description="backbone weights file when the spec's weights live elsewhere")
    max_upload_mb: float = Field(512.0, gt=0, description="largest accepted upload (413 above)")
    max_sync_seconds: float = Field(
        300.0, gt=0, description="longest video POST /score accepts (413 above: use POST /jobs)"
    )
    max_sync_frames: int = Field(
        9000, ge=1, description="most frames (the header's count) POST /score accepts (413 above: use POST /jobs)"
    )
    max_sync_megapixel_frames: float = Field(
        20000.0, gt=0, description="most width x height x frames, in millions, POST /score accepts (413 above)"
    )
    max_concurrent_uploads: int = Field(4, ge=1, description="uploads received at once; more get 503 + Retry-After")
    max_uploads_in_flight_mb: float = Field(
        2048.0, gt=0, description="uploads held on disk at once (received, queued, scoring); beyond: 503"
    )
    max_stored_uploads_mb: float = Field(
        10240.0, gt=0, description="videos kept with completed jobs (for the review page) at most; beyond, the "
        "oldest are deleted (their jobs keep their results)"
    )
    min_free_disk_mb: float = Field(
        512.0, ge=0, description="below this much free space in the work directory, /readyz is not ready and "
        "uploads, path jobs and renders get 507"
    )
    header_timeout_s: float = Field(10.0, gt=0, description="a connection must send its request headers in this")
    body_timeout_s: float = Field(30.0, gt=0, description="an upload that sends nothing for this long gets 408")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="on SIGTERM, requests in flight get this long to finish before they are canceled"
    )
    job_ttl_hours: float | None = Field(
        168.0, gt=0, description="ended jobs and their files are deleted this long after they end (unset: never)"
    )
    webhook_url: AnyHttpUrl | None = Field(None, description="every job's end is also POSTed here")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the webhook signature (default: a random key kept in "
        "<work_dir>/webhook.key; never the API key, which every client holds)"
    )
    webhook_attempts: int = Field(5, ge=1, description="deliveries tried per webhook (backoff 1 s, 2 s, 4 s, ...)")
    queue_size: int = Field(8, ge=1, description="videos waiting for the worker; beyond it: 503 + Retry-After")
    retry_after_s: int = Field(5, ge=1, description="the Retry-After a 503 suggests")
    decode_timeout_s: float = Field(
        120.0, gt=0, description="a decode that makes no progress for this long is killed (422, kind timeout)"
    )
    isolate_decode: bool = Field(
        True,
        description="decode in a killable worker process (a hang or a decoder crash cannot take the server down); "
        "False decodes in the inference thread: faster start per video, for trusted inputs only",
    )
    probe_timeout_s: float = Field(20.0, gt=0, description="reading a video's header takes at most this")
    probe_concurrency: int = Field(
        2, ge=1, description="requests waiting for the header probe at once (one persistent probe process reads them)"
    )
    work_dir: Path = Field(
        Path(tempfile.gettempdir()) / "lanp-service", description="temporary uploads and job inputs/results"
    )
    jobs_db: Path | None = Field(None, description="SQLite job store (default: <work_dir>/jobs.sqlite)")
    data_root: Path | None = Field(None, description="server-side paths for POST /jobs must lie under it")
    api_key: SecretStr | None = Field(None, description="when set, every route but the probes needs X-API-Key")
    max_streams: int = Field(4, ge=0, description="live streams watched at once (POST /streams answers 429 beyond)")
    stream_schemes: list[str] = Field(
        ["rtsp", "rtsps", "http", "https", "udp", "srt"],
        description="URL schemes POST /streams accepts (JSON list); file and device paths must lie under data_root",
    )
    stream_max_reconnects: int = Field(
        20, ge=0, description="failed connection attempts in a row (backoff up to 30 s) before a stream gives up"
    )
    max_event_clients: int = Field(
        32, ge=1, description="GET /streams/{id}/events connections open at once (429 beyond)"
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        [], description="networks streams and webhooks may reach even when denied below (JSON list of CIDR)"
    )
    denied_networks: list[IPvAnyNetwork] = Field(
        [IPvAnyNetwork(network) for network in DEFAULT_DENIED_NETWORKS],  # type: ignore[misc]
        description="networks streams and webhooks may not reach unless allowed (JSON list of CIDR): loopback, "
        "private, shared, link-local, multicast and reserved ranges by default",
    )
    allowed_origins: list[str] = Field(
        [], description="browser origins (scheme://host[:port]) besides the server's own that may send "
        "state-changing requests (POST, DELETE); others get 403"
    )
    evidence_cache_mb: float = Field(
        1024.0, gt=0, description="event thumbnails and clips kept at most (least recently used deleted first)"
    )
    max_job_attempts: int = Field(
        2, ge=1, description="a job interrupted by a server death is re-queued until it has started this often"
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_uploads_in_flight_bytes(self) -> int:
        return int(self.max_uploads_in_flight_mb * 1024 * 1024)

    @property
    def evidence_cache_bytes(self) -> int:
        return int(self.evidence_cache_mb * 1024 * 1024)

    @property
    def max_stored_uploads_bytes(self) -> int:
        return int(self.max_stored_uploads_mb * 1024 * 1024)

    @property
    def min_free_disk_bytes(self) -> int:
        return int(self.min_free_disk_mb * 1024 * 1024)

    @property
    def jobs_db_path(self) -> Path:
        return self.jobs_db or self.work_dir / "jobs.sqlite"

    @property
    def uploads_dir(self) -> Path:
        return self.work_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.work_dir / "jobs"
