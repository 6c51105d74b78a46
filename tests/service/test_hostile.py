"""Hostile clients against the newer surfaces of a real server (streams, webhooks, evidence, request bodies):
each test sends what an attacker sent and checks the hardened answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service import raw_http
from tests.service.conftest import API_KEY, LiveServer, start_server


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("hostile-work")
    (work / "root").mkdir()
    live = start_server(work, tiny_model_dir, LANP_DATA_ROOT=str(work / "root"), LANP_MAX_STREAMS="4",
                        LANP_BODY_TIMEOUT_S="3")
    yield live
    live.stop()


def test_a_body_is_read_only_after_the_key_and_never_beyond_16_kib(hostile_server: LiveServer) -> None:
    """An unauthenticated POST /streams declaring 400 MiB is answered 401 before its body is read (it used to be
    read and parsed first: +1.5 GiB of RSS); with the key, a body over 16 KiB is 413, declared or sent."""
    port, huge = hostile_server.port, 400 * 2**20
    json_type = {"Content-Type": "application/json"}
    for path in ("/streams", "/jobs"):
        unauthenticated = raw_http.send_declared(port, "POST", path, declared=huge, sent=b'{"url": "' + b"a" * 65536,
                                                 headers=json_type)
        assert raw_http.read_status(unauthenticated) == 401, path
        unauthenticated.close()
        declared = raw_http.send_declared(port, "POST", path, declared=huge, sent=b"{",
                                          headers={**json_type, "X-API-Key": API_KEY})
        assert raw_http.read_status(declared) == 413, path
        declared.close()
    with hostile_server.client() as client:
        chunked = client.post("/streams", content=iter([b'{"url": "http://example.com/', b"a" * 20000, b'"}']),
                              headers=json_type)
        assert chunked.status_code == 413 and chunked.json()["kind"] == "too_large"
        long_url = client.post("/streams", json={"url": "http://example.com/" + "a" * 3000})
        assert long_url.status_code == 422 and "2048" in long_url.json()["detail"]
        unknown = client.post("/streams", content=json.dumps({"url": "x", "extra": 1}), headers=json_type)
        assert unknown.status_code == 422
