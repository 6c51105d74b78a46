"""The review page in a real browser (Debian's chromium + chromedriver through selenium) against a real server.

Uploads a clip through the page, waits for the job, opens the result, and checks that the curve and the events
render, that the threshold slider re-draws the events from the server, and that clicking the curve or an event
seeks the video; starts a live stream from the page and follows its curve and events. Set
``LANP_SCREENSHOT_DIR=docs`` to refresh the screenshots in docs/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service.conftest import API_KEY, LiveServer, wait_for
from tests.videos import write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver",
)


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("review-work")
    live = LiveServer(
        {"LANP_MODEL_DIR": str(tiny_model_dir), "LANP_DEVICE": "cpu", "LANP_WORK_DIR": str(work),
         "LANP_API_KEY": API_KEY, "LANP_ALLOWED_NETWORKS": '["127.0.0.1/32"]'},  # the live source is on loopback
        work / "server.log",
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def shifted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose model learned its normal from flat grey footage: a moving scene is unlike its training
    archive, so every result carries the domain-shift warning (a real one, from the model's feature statistics)."""
    from tests.service.tiny_model import make_shifted_model

    work = tmp_path_factory.mktemp("shifted-work")
    model = make_shifted_model(work / "model")
    live = LiveServer({"LANP_MODEL_DIR": str(model), "LANP_DEVICE": "cpu", "LANP_WORK_DIR": str(work / "state"),
                       "LANP_ALLOWED_NETWORKS": '["127.0.0.1/32"]'},  # the live source is on loopback
                      work / "server.log")
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_upload_review_rethreshold_and_seek(page_server: LiveServer, browser, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    clip = write_video(tmp_path / "street.mp4", num_frames=120, width=96, height=64, fps=10)
    browser.get(page_server.url + "/")
    assert "LANP review" in browser.title
    browser.find_element(By.ID, "api-key").send_keys(API_KEY)
    browser.execute_script("document.getElementById('api-key').dispatchEvent(new Event('change'))")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()

    item = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs li[data-status=completed]"), 120,
                    what="the job")[0]
    job_id = item.get_attribute("data-job")
    item.click()
    wait_for(lambda: browser.execute_script("return window.review.doc !== null"), 120, what="the result")
    wait_for(lambda: browser.execute_script("return document.getElementById('video').readyState >= 1"),
          what="the video to load in the browser")

    with httpx.Client(base_url=page_server.url, headers={"X-API-Key": API_KEY}) as client:
        document = client.get(f"/jobs/{job_id}/result").json()
    assert browser.execute_script("return window.review.doc.num_frames") == document["num_frames"] == 120
    canvas = browser.find_element(By.ID, "curve")
    assert canvas.get_attribute("data-drawn-events") == str(len(document["segments"]))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#events li")) == len(document["segments"])

    # The slider asks the server for the events at another threshold and re-draws them.
    threshold = float(np.median(document["frame_scores"]))
    expected = client_segments(page_server, job_id, threshold)
    assert expected, "the median threshold must give at least one event"
    browser.execute_script(
        "const s = document.getElementById('threshold'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'))", threshold)
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#events li")) == len(expected), 30, "re-drawn events")
    assert canvas.get_attribute("data-drawn-events") == str(len(expected))

    # A click on the curve seeks there; a click on an event seeks to its start.
    width = canvas.size["width"]  # offsets are from the element's centre: this clicks a quarter of the way in
    webdriver.ActionChains(browser).move_to_element_with_offset(canvas, -int(width * 0.25), 0).click().perform()
    quarter = browser.execute_script("return window.review.toSeconds(0.25 * arguments[0])",
                                     canvas.get_attribute("width"))
    wait_for(lambda: abs(_current_time(browser) - quarter) < 0.3, 30, "a seek from the curve")
    last = browser.find_elements(By.CSS_SELECTOR, "#events li")[-1]
    last.click()
    start = float(last.get_attribute("data-start"))
    wait_for(lambda: abs(_current_time(browser) - start) < 0.15, 30, "a seek to the event")
    assert float(canvas.get_attribute("data-cursor")) == pytest.approx(start, abs=0.15)

    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#events img')].every(i => i.complete && i.naturalWidth > 0)"),
        60, "the event thumbnails")

    shots = Path(os.environ.get("LANP_SCREENSHOT_DIR", tmp_path))
    browser.save_screenshot(str(shots / "review-page.png"))


RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"


def _submit(server: LiveServer, clip: Path, headers: dict[str, str] | None = None) -> str:
    """A job through the API, waited for: its id."""
    with httpx.Client(base_url=server.url, headers=headers or {}, timeout=120) as client:
        with clip.open("rb") as stream:
            job = client.post("/jobs", files={"file": (clip.name, stream, "video/mp4")}).json()
        wait_for(lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "completed", 120, what="the job")
    return job["id"]


def test_the_job_list_a_warning_banner_and_each_result_from_its_start(shifted_server: LiveServer, browser,  # noqa: ANN001
                                                                       tmp_path: Path) -> None:
    """The landing page uses the width; each job's line says when (RFC 3339), how long, how many events and how
    high, with a badge when its result warns; the result shows the warning as a banner with the domain-shift
    figure and what to do; a second result opens at 0:00 whatever the first was playing."""
    import re

    from selenium.webdriver.common.by import By

    first = _submit(shifted_server, write_video(tmp_path / "gate.mp4", num_frames=150, width=96, height=64, fps=10))
    second = _submit(shifted_server, write_video(tmp_path / "yard.mp4", num_frames=100, width=96, height=64, fps=10))
    browser.get(shifted_server.url + "/")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#jobs li[data-status=completed]")) == 2, 30,
             what="both jobs in the list")
    window = browser.execute_script("return window.innerWidth")
    assert browser.find_element(By.ID, "jobs-panel").size["width"] > 0.4 * window  # not a 300 px column

    with httpx.Client(base_url=shifted_server.url) as client:
        summary = client.get(f"/jobs/{first}").json()["result"]
    assert summary["duration_s"] == pytest.approx(15.0) and summary["warnings"][0]["kind"] == "domain_shift"
    item = browser.find_element(By.CSS_SELECTOR, f"#jobs li[data-job='{first}']")
    facts = item.find_element(By.CSS_SELECTOR, ".facts").text
    assert re.fullmatch(rf"scored {RFC3339} – {RFC3339} · 15\.0 s · {summary['events']} event\(s\) · top score "
                        rf"{summary['top_score']:.2f}", facts), facts
    badge = item.find_element(By.CSS_SELECTOR, ".badge")
    assert badge.get_attribute("data-kind") == "domain_shift" and "domain shift" in badge.get_attribute("title")

    item.click()
    wait_for(lambda: browser.execute_script("return window.review.doc !== null"), 60, what="the result")
    banner = browser.find_element(By.CSS_SELECTOR, "#warnings .banner[data-kind=domain_shift]")
    assert f"domain shift {summary['domain_shift']:.2f}" in banner.text and "train again" in banner.text
    wait_for(lambda: browser.execute_script("return document.getElementById('video').readyState >= 1"),
             what="the video")
    browser.execute_script("const v = document.getElementById('video'); v.currentTime = 9;")
    wait_for(lambda: _current_time(browser) > 8, 30, "the seek")
    shots = Path(os.environ.get("LANP_SCREENSHOT_DIR", tmp_path))
    browser.save_screenshot(str(shots / "review-warning.png"))

    browser.find_element(By.CSS_SELECTOR, f"#jobs li[data-job='{second}']").click()
    wait_for(lambda: browser.execute_script("return window.review.open") == second, 30, what="the second result")
    wait_for(lambda: browser.execute_script("return document.getElementById('video').readyState >= 1"),
             what="the second video")
    assert _current_time(browser) == 0.0

    browser.get(shifted_server.url + "/")  # the landing page with its job list, for the docs
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#jobs li .badge")) == 2, 30, what="the badges")
    browser.save_screenshot(str(shots / "job-list.png"))


def test_a_live_stream_unlike_the_training_footage_shows_a_banner(shifted_server: LiveServer, browser,  # noqa: ANN001
                                                                  camera: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(shifted_server.url + "/")
    browser.find_element(By.ID, "stream-url").send_keys(camera)
    browser.find_element(By.CSS_SELECTOR, "#watch button[type=submit]").click()
    banner = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#live-warnings .banner[data-kind=domain_shift]"),
                      90, what="the stream's warning")[0]
    assert "domain shift" in banner.text and "train again" in banner.text
    stream_id = browser.execute_script("return window.live.open")
    with httpx.Client(base_url=shifted_server.url) as client:
        assert client.delete(f"/streams/{stream_id}").status_code in (200, 202)


def test_an_avi_upload_plays_through_a_playable_copy_made_once(page_server: LiveServer, browser,  # noqa: ANN001
                                                                tmp_path: Path) -> None:
    """MPEG-4 part 2 in AVI (what many recorders write) does not play in a browser: the page gets an H.264 MP4
    copy, made once and kept with the job, and the player loads it."""
    import av
    from selenium.webdriver.common.by import By

    clip = write_video(tmp_path / "recorder.avi", codec="mpeg4", num_frames=60, width=96, height=64, fps=10)
    job_id = _submit(page_server, clip, {"X-API-Key": API_KEY})
    with httpx.Client(base_url=page_server.url, headers={"X-API-Key": API_KEY}, timeout=120) as client:
        copy = client.get(f"/jobs/{job_id}/video")
        again = client.get(f"/jobs/{job_id}/video")
    assert copy.status_code == 200 and copy.headers["content-type"] == "video/mp4"
    assert again.content == copy.content  # the same copy, not made twice
    (tmp_path / "copy.mp4").write_bytes(copy.content)
    with av.open(str(tmp_path / "copy.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 60

    browser.get(page_server.url + "/")
    key = browser.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys(API_KEY)
    browser.execute_script("document.getElementById('api-key').dispatchEvent(new Event('change'))")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#jobs li[data-job='{job_id}']"), 30, what="the job")
    browser.find_element(By.CSS_SELECTOR, f"#jobs li[data-job='{job_id}']").click()
    wait_for(lambda: browser.execute_script("return document.getElementById('video').readyState >= 2"), 60,
             what="the copy to play")
    assert not browser.find_element(By.ID, "video-message").is_displayed()


def _current_time(browser) -> float:  # noqa: ANN001
    return float(browser.execute_script("return document.getElementById('video').currentTime"))


def client_segments(server: LiveServer, job_id: str, threshold: float) -> list[dict]:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}) as client:
        response = client.get(f"/jobs/{job_id}/segments", params={"threshold": threshold})
    response.raise_for_status()
    return response.json()["segments"]


def test_a_live_stream_grows_its_curve_and_events_on_the_page(page_server: LiveServer, browser,  # noqa: ANN001
                                                               camera: str, tmp_path: Path) -> None:
    """Start a stream from the page, watch its curve grow and an event open from the Server-Sent Events, stop it
    and see the event close with its thumbnail: the page's figures equal the API's."""
    from selenium.webdriver.common.by import By

    browser.get(page_server.url + "/")
    key = browser.find_element(By.ID, "api-key")
    key.clear()  # the page remembers the key of an earlier test
    key.send_keys(API_KEY)
    browser.execute_script("document.getElementById('api-key').dispatchEvent(new Event('change'))")
    browser.find_element(By.ID, "stream-url").send_keys(camera)
    browser.find_element(By.ID, "stream-threshold").send_keys("0")  # every snippet is above it: an event opens
    browser.find_element(By.CSS_SELECTOR, "#watch button[type=submit]").click()
    wait_for(lambda: browser.execute_script("return window.live.open"), 30, what="the stream to open")
    stream_id = browser.execute_script("return window.live.open")
    assert browser.find_element(By.ID, "live").is_displayed()
    canvas = browser.find_element(By.ID, "live-curve")
    wait_for(lambda: int(canvas.get_attribute("data-points") or 0) >= 2, 60, what="the first scores")
    first = int(canvas.get_attribute("data-points"))
    wait_for(lambda: int(canvas.get_attribute("data-points")) > first, 30, what="the curve to grow")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#live-events li.open"), 30, what="an open event")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#streams li[data-stream='{stream_id}']"), 10,
             what="the stream in the list")

    if "LANP_SCREENSHOT_DIR" in os.environ:  # a longer curve for the screenshot
        wait_for(lambda: int(canvas.get_attribute("data-points")) >= 12, 60, what="a longer curve")
    browser.save_screenshot(str(Path(os.environ.get("LANP_SCREENSHOT_DIR", tmp_path)) / "live-stream.png"))

    browser.execute_script(  # every status the panel shows, from the click on
        "window.statuses = []; new MutationObserver(() => window.statuses.push("
        "document.getElementById('live').dataset.status)).observe(document.getElementById('live'),"
        "{attributes: true, attributeFilter: ['data-status']})")
    browser.find_element(By.ID, "live-stop").click()
    changes = browser.execute_script("return window.statuses.filter(s => s !== 'live')")
    assert changes[:1] == ["stopping"]  # at once, before the server answers
    assert not browser.find_element(By.ID, "live-stop").is_enabled()
    wait_for(lambda: browser.find_element(By.ID, "live").get_attribute("data-status") == "stopped", 60,
             what="the stream to stop")
    closed = browser.find_elements(By.CSS_SELECTOR, "#live-events li")
    assert len(closed) == 1 and "open" not in closed[0].get_attribute("class")
    import re  # the event's wall-clock start and end, RFC 3339
    times = [element.get_attribute("datetime") for element in closed[0].find_elements(By.TAG_NAME, "time")]
    assert len(times) == 2 and all(re.fullmatch(RFC3339, value) for value in times), times
    assert browser.execute_script(
        "const i = document.querySelector('#live-events img'); return i.complete && i.naturalWidth > 0")
    with httpx.Client(base_url=page_server.url, headers={"X-API-Key": API_KEY}) as client:
        summary = client.get(f"/streams/{stream_id}").json()
    points = browser.execute_script("return window.live.points.length")
    assert points == summary["snippets_scored"] + summary["snippets_dropped"]
    assert summary["last_event"]["type"] == "event_end"


def test_event_evidence_thumbnail_and_clip_with_roll(page_server: LiveServer, tmp_path: Path) -> None:
    import av

    clip = write_video(tmp_path / "yard.mp4", num_frames=150, width=96, height=64, fps=10)
    with httpx.Client(base_url=page_server.url, headers={"X-API-Key": API_KEY}, timeout=120) as client:
        with clip.open("rb") as stream:
            job = client.post("/jobs", files={"file": ("yard.mp4", stream, "video/mp4")}).json()
        wait_for(lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "completed", 120, what="the job")
        scores = client.get(f"/jobs/{job['id']}/result").json()["frame_scores"]
        threshold = float(np.median(scores))
        (event, *_) = client.get(f"/jobs/{job['id']}/segments", params={"threshold": threshold}).json()["segments"]
        thumbnail = client.get(f"/jobs/{job['id']}/events/1/thumbnail.jpg", params={"threshold": threshold})
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"  # a JPEG
        response = client.get(f"/jobs/{job['id']}/events/1/clip.mp4",
                              params={"threshold": threshold, "pre_roll": 1, "post_roll": 1})
        assert response.status_code == 200
        missing = client.get(f"/jobs/{job['id']}/events/99/thumbnail.jpg", params={"threshold": threshold})
        assert missing.status_code == 404
    (tmp_path / "event.mp4").write_bytes(response.content)
    with av.open(str(tmp_path / "event.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    expected = min(15.0, event["end_s"] + 1) - max(0.0, event["start_s"] - 1)  # the roll, clamped to the video
    assert frames == pytest.approx(expected * 10, abs=2)


def test_the_page_and_its_assets_are_served_offline(page_server: LiveServer) -> None:
    page = httpx.get(page_server.url + "/")
    assert page.status_code == 200 and "static/review.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    script = httpx.get(page_server.url + "/static/review.js")
    assert script.status_code == 200 and "X-API-Key" in script.text


def test_job_resources_need_the_key(page_server: LiveServer) -> None:
    assert httpx.get(page_server.url + "/jobs/nope/video").status_code == 401
    assert httpx.get(page_server.url + "/jobs/nope/segments?threshold=0.5").status_code == 401
