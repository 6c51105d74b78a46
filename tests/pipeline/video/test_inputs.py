"""Input expansion: files, folders, patterns, frame folders and lists of paths give videos with stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanp_vad.pipeline.video.inputs import InputError, VideoInput, expand_inputs


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """cam1/a.mp4, cam1/b.AVI, cam2/a.mp4, cam2/notes.md, frames/0001.jpg..., .hidden.mp4 under one root."""
    root = tmp_path / "archive"
    _touch(root / "cam1" / "a.mp4")
    _touch(root / "cam1" / "b.AVI")
    _touch(root / "cam2" / "a.mp4")
    _touch(root / "cam2" / "notes.md")
    for index in range(3):
        _touch(root / "frames" / f"{index:04d}.jpg")
    _touch(root / ".hidden.mp4")
    return root


def _ids(videos: list[VideoInput]) -> list[str]:
    return [video.video_id for video in videos]


def test_folder_is_searched_recursively_with_ids_relative_to_it(archive: Path) -> None:
    videos = expand_inputs([archive])
    assert _ids(videos) == ["frames", "cam1__a", "cam1__b", "cam2__a"]
    frames = videos[0]
    assert frames.is_frame_folder and frames.path == archive / "frames"
    assert not any(video.is_frame_folder for video in videos[1:])
    assert all(video.path.exists() for video in videos)


def test_explicit_files_keep_their_stem_and_clashing_ids_take_their_folders(archive: Path) -> None:
    paths = [archive / "cam1" / "a.mp4", archive / "cam2" / "a.mp4", archive / "cam1" / "b.AVI"]
    videos = expand_inputs(paths)
    assert _ids(videos) == ["cam1__a", "cam2__a", "b"]
    assert [video.path for video in videos] == paths


def test_two_folders_with_the_same_file_names_keep_readable_ids(tmp_path: Path) -> None:
    """``lanp extract train/ test/``: the split stays in the id (train__01, test__01), no hash hides it; ids
    found inside one folder take the folder above them (a__cam__01 vs b__cam__01)."""
    for split in ("train", "test"):
        _touch(tmp_path / "ped2" / split / "01.mp4")
        _touch(tmp_path / "ped2" / split / "02.mp4")
    assert _ids(expand_inputs([tmp_path / "ped2" / "train", tmp_path / "ped2" / "test"])) == [
        "train__01", "train__02", "test__01", "test__02"]
    assert _ids(expand_inputs([tmp_path / "ped2"])) == ["test__01", "test__02", "train__01", "train__02"]
    for site in ("a", "b"):
        _touch(tmp_path / site / "cam" / "01.mp4")
    assert _ids(expand_inputs([tmp_path / "a", tmp_path / "b"])) == ["a__cam__01", "b__cam__01"]


def test_ids_that_clash_whatever_their_folders_get_a_path_hash(tmp_path: Path) -> None:
    """Folder names that differ only in characters unsafe in a file name clash at every level."""
    paths = [_touch(tmp_path / "cam 1" / "c.mp4"), _touch(tmp_path / "cam_1" / "c.mp4")]
    ids = _ids(expand_inputs(paths))
    assert ids[0] != ids[1] and all("cam_1__c-" in video_id for video_id in ids), ids


def test_a_file_reached_twice_is_listed_once(archive: Path) -> None:
    videos = expand_inputs([archive / "cam1", str(archive / "cam1" / "*.mp4"), archive / "cam1" / "a.mp4"])
    assert _ids(videos) == ["a", "b"]


def test_glob_patterns_take_videos_and_folders_and_skip_other_files(archive: Path) -> None:
    videos = expand_inputs([str(archive / "**" / "*")])
    names = sorted(str(video.path.relative_to(archive)) for video in videos)
    assert names == ["cam1/a.mp4", "cam1/b.AVI", "cam2/a.mp4", "frames"]
    assert not any(video.path.name == "notes.md" for video in videos)


def test_list_file_with_comments_relative_paths_and_patterns(archive: Path) -> None:
    listing = _touch(
        archive / "todo.txt",
        b"# cameras to score\n\ncam1/b.AVI\n  cam2/*.mp4  \n" + str(archive / "frames").encode() + b"\n",
    )
    videos = expand_inputs([listing])
    assert _ids(videos) == ["b", "a", "frames"]
    assert videos[2].is_frame_folder


def test_frame_folder_given_directly_is_one_video(archive: Path) -> None:
    videos = expand_inputs([archive / "frames"])
    assert videos == [VideoInput("frames", archive / "frames", True)]


def test_explicit_file_without_video_extension_is_kept_for_the_decoder_to_judge(archive: Path) -> None:
    videos = expand_inputs([archive / "cam2" / "notes.md"])
    assert _ids(videos) == ["notes"]


def test_unsafe_characters_in_ids_are_replaced(tmp_path: Path) -> None:
    video = _touch(tmp_path / "front door (2024).mp4")
    assert _ids(expand_inputs([video])) == ["front_door_2024"]


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda root: root / "missing.mp4", "no such file or folder"),
        (lambda root: str(root / "cam9" / "*.mp4"), "matches no file"),
        (lambda root: _touch(root / "empty" / "readme.md").parent, "holds no video"),
        (lambda root: _touch(root / "bad.txt", b"cam1/a.mp4\ncam1/zzz.mp4\n"), "bad.txt:2: cam1/zzz.mp4"),
        (lambda root: [_touch(root / "inner.list", b"x"), _touch(root / "nested.txt", b"inner.list\n")][1],
         "cannot name other lists"),
        (lambda root: _touch(root / "binary.txt", b"\xff\xfe\x00\x80"), "not a text list"),
    ],
)
def test_bad_inputs_raise_a_typed_error_naming_the_item(archive: Path, make_input, message: str) -> None:
    item = make_input(archive)
    with pytest.raises(InputError, match=message) as raised:
        expand_inputs([item])
    assert raised.value.item


def test_no_inputs_is_an_error() -> None:
    with pytest.raises(InputError, match="no inputs"):
        expand_inputs([])


def test_real_ped2_folder_keeps_train_and_test_clips_apart(shared_data: Path) -> None:
    videos = expand_inputs([shared_data / "ucsd-ped2" / "videos"])
    ids = _ids(videos)
    assert len(ids) == len(set(ids)) == 28
    assert ids[:2] == ["test__01", "test__02"] and "train__16" in ids
