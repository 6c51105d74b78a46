"""``lanp segments`` on one stored document and ``lanp score`` with the event and evidence options, for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanp_vad.cli import main
from tests.service.tiny_model import make_tiny_model
from tests.videos import write_video


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model dir, clip, result JSON of ``lanp score clip --threshold 0 --plot --evidence``)."""
    root = tmp_path_factory.mktemp("segments")
    return make_tiny_model(root / "tiny"), write_video(root / "clip.mp4", num_frames=60, fps=10), root


def test_score_one_video_with_event_options_plot_and_evidence(scored: tuple[Path, Path, Path], capsys) -> None:
    model, clip, root = scored
    assert main(["score", str(clip), "--model", str(model), "--threshold", "0", "--min-duration", "0.2",
                 "--plot", str(root / "plot.png"), "--evidence", str(root / "events"), "--clips",
                 "--start-time", "2024-05-01T08:00:00"]) == 0
    document = json.loads(capsys.readouterr().out)
    (root / "result.json").write_text(json.dumps(document))
    assert document["threshold"] == 0.0 and document["segment_config"]["min_duration_s"] == 0.2
    assert document["start_time"] == "2024-05-01T08:00:00"
    assert [s["index"] for s in document["segments"]] == [1]  # everything is above 0
    assert (root / "plot.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (root / "events").iterdir()) == ["1.jpg", "1.mp4"]


def test_segments_of_one_document_without_a_model(scored: tuple[Path, Path, Path], capsys, tmp_path: Path) -> None:
    _, _, root = scored
    stored = root / "result.json"
    assert main(["segments", str(stored), "--threshold", "1", "--plot", str(tmp_path / "p.png")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["threshold"] == 1.0 and document["segments"] == []
    assert json.loads(stored.read_text())["threshold"] == 0.0  # the stored document is left as it was
    assert (tmp_path / "p.png").is_file()
    (tmp_path / "bad.json").write_text('{"video": 1}')
    assert main(["segments", str(tmp_path / "bad.json")]) == 2
    assert "not a LANP result document" in capsys.readouterr().err
    assert main(["segments", str(tmp_path / "missing")]) == 2
    assert main(["segments", str(tmp_path)]) == 2  # a folder that is not a batch output
    assert "no run.json" in capsys.readouterr().err
