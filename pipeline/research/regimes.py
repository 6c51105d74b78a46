"""The regime grid's archives built from real UCSD Ped2 footage, each with controls, and the plaza archives.

Ped2's test clips were recorded apart from its training clips and differ from them globally, so inserting test
footage into training footage rewards any scorer that spots "test footage". Every construction here that inserts
abnormal test footage also inserts **decoys**: runs of *normal* test footage, labelled normal.

- **rare-3 / rare-10**: 30 one-minute videos (37 snippets at Ped2's 10 fps) of normal training footage; some hold
  one run of fully abnormal test snippets (about 3 % / 10 % of all frames, 27 % / 40 % of the videos), another
  8 hold a decoy run. The normality prior holds: every video starts and ends with ordinary activity.
- **ped2-long-decoys**: Ped2-long's 12 long videos (train clip, test clip, train clip) plus 12 whose middle is a
  decoy run; trained on the 16 training clips and all 24 long videos, scored on the 24 long videos.
- **normal-only**: trained on the 16 normal training clips alone (a clean week), scored on the 12 test clips.
- **normal-only-long**: trained on 30 one-minute videos of normal training footage, scored on a rare-10 archive
  built from other draws.

The runs come from Ped2 features extracted with a stride of 4 frames: keeping every 4th snippet from offset k
gives four *views* of each clip (the same footage cut 4 frames apart), so an archive reuses footage the way a
camera repeats itself (near, not exact, duplicates). The plaza archives are rendered by the demo's scene
generator and extracted at the demo's spec (``plaza``: the demo's own archive and its held-back clip;
``plaza-busy``: a busier camera with subtle, person-like events, kept out of every selection).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanp_vad.pipeline.demo.plans import ANOMALY_KINDS, AnomalyKind, SceneSettings, plan_clips
from lanp_vad.pipeline.demo.run import DemoSettings
from lanp_vad.pipeline.demo.scenes import write_archive
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth, VideoAnnotation, load_ground_truth
from lanp_vad.pipeline.features.featureset import FeatureSet, open_feature_set
from lanp_vad.pipeline.research.datasets import AccuracyDataset, store_arrays, subset
from lanp_vad.pipeline.research.ped2 import PED2_FPS, extract_ped2
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

log = logging.getLogger(__name__)

VIEW_STRIDE = 4  # frames between the views' starts: SNIPPET_LENGTH // VIEW_STRIDE views per clip
VIDEO_SNIPPETS = 37  # one minute at Ped2's 10 fps
EDGE = 3  # inserted runs stay this many snippets away from both ends (the prior's seeds stay normal)


@dataclass(frozen=True)
class Run:
    """Consecutive snippets of one view of one clip: features (R, D) and whether they are abnormal."""

    features: np.ndarray
    abnormal: bool


@dataclass
class FootageLibrary:
    """Every view of every Ped2 clip, cut into normal training runs, abnormal test runs and normal test runs."""

    normal: list[np.ndarray]
    anomalies: list[np.ndarray]
    decoys: list[np.ndarray]
    spec: object

    def draw(self, pool: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
        """A random stretch of ``length`` consecutive snippets from a random run of ``pool`` at least that long."""
        candidates = [run for run in pool if len(run) >= length]
        run = candidates[rng.integers(len(candidates))]
        start = int(rng.integers(len(run) - length + 1))
        return run[start : start + length]

    def base(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Normal footage of ``length`` snippets: stretches of 4 snippets or more of random training clip views."""
        parts, total = [], 0
        while total < length:
            piece = self.draw(self.normal, int(rng.integers(4, 9)), rng)
            parts.append(piece)
            total += len(piece)
        return np.concatenate(parts)[:length]


def _labelled_runs(views: np.ndarray, labels: np.ndarray, want_abnormal: bool) -> list[np.ndarray]:
    """Maximal runs of snippets whose 16 frames are all abnormal (``want_abnormal``) or all normal."""
    keep = labels.all(axis=1) if want_abnormal else ~labels.any(axis=1)
    runs, start = [], None
    for index, flag in enumerate([*keep, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append(views[start:index])
            start = None
    return runs


def footage_library(data_dir: Path, cache_dir: Path, spec: Mapping[str, Any] | None = None) -> FootageLibrary:
    """Ped2 at stride 4, cut into the library's runs (cached features; the library itself is cheap)."""
    features = extract_ped2(data_dir, cache_dir, stride=VIEW_STRIDE, spec=spec)
    official = load_ground_truth(data_dir / "ucsd-ped2" / "ped2.mat", fmt="ped2")
    normal, anomalies, decoys = [], [], []
    for video_id in features.video_ids:
        array = features.load(video_id)
        split, name = video_id.split("_")
        num_frames = features.entry(video_id).num_frames or SNIPPET_LENGTH * len(array)
        frame_labels = np.zeros(num_frames + SNIPPET_LENGTH * VIEW_STRIDE, dtype=bool)
        if split == "test":
            for start, end in official.annotations[name].intervals:
                frame_labels[start:end] = True
        for offset in range(SNIPPET_LENGTH // VIEW_STRIDE):
            view = array[offset::SNIPPET_LENGTH // VIEW_STRIDE]
            starts = VIEW_STRIDE * offset + SNIPPET_LENGTH * np.arange(len(view))
            inside = starts + SNIPPET_LENGTH <= num_frames
            view, starts = view[inside], starts[inside]
            labels = np.stack([frame_labels[start : start + SNIPPET_LENGTH] for start in starts])
            if split == "train":
                normal.append(view)
            else:
                anomalies += _labelled_runs(view, labels, True)
                decoys += _labelled_runs(view, labels, False)
    return FootageLibrary(normal, anomalies, decoys, features.spec)


@dataclass(frozen=True)
class RareSpec:
    """A rare-anomaly archive: how many videos, how many hold an anomaly run or a decoy run, run lengths."""

    name: str
    abnormal_videos: int
    anomaly_snippets: tuple[int, int]  # inclusive range of an anomaly run's length
    decoy_videos: int = 8
    decoy_snippets: tuple[int, int] = (3, 5)
    videos: int = 30
    seed: int = 0


RARE = {
    "rare-3": RareSpec("rare-3", abnormal_videos=8, anomaly_snippets=(3, 6)),
    "rare-10": RareSpec("rare-10", abnormal_videos=12, anomaly_snippets=(6, 11)),
}


def rare_archive(
    library: FootageLibrary, spec: RareSpec, *, prefix: str = "video"
) -> tuple[dict[str, np.ndarray], dict[str, VideoAnnotation]]:
    """The archive's arrays and frame-mask annotations (abnormal runs only; decoys are labelled normal)."""
    rng = np.random.default_rng(spec.seed)
    kinds = ["anomaly"] * spec.abnormal_videos + ["decoy"] * spec.decoy_videos
    kinds += ["normal"] * (spec.videos - len(kinds))
    kinds = [kinds[index] for index in rng.permutation(len(kinds))]
    arrays, annotations = {}, {}
    for number, kind in enumerate(kinds):
        video = library.base(VIDEO_SNIPPETS, rng)
        mask = np.zeros(SNIPPET_LENGTH * VIDEO_SNIPPETS, dtype=np.uint8)
        if kind != "normal":
            low, high = spec.anomaly_snippets if kind == "anomaly" else spec.decoy_snippets
            length = int(rng.integers(low, high + 1))
            start = int(rng.integers(EDGE, VIDEO_SNIPPETS - EDGE - length + 1))
            video[start : start + length] = library.draw(
                library.anomalies if kind == "anomaly" else library.decoys, length, rng
            )
            if kind == "anomaly":
                mask[SNIPPET_LENGTH * start : SNIPPET_LENGTH * (start + length)] = 1
        video_id = f"{prefix}{number:02d}_{kind}"
        arrays[video_id] = video
        annotations[video_id] = VideoAnnotation(mask=mask, num_frames=len(mask))
    return arrays, annotations


def _store(folder: Path, library: FootageLibrary, arrays: dict[str, np.ndarray]) -> FeatureSet:
    return store_arrays(folder, library.spec, arrays)


def rare_dataset(library: FootageLibrary, spec: RareSpec, cache: Path) -> AccuracyDataset:
    arrays, annotations = rare_archive(library, spec)
    features = _store(cache / f"{spec.name}-{spec.seed}", library, arrays)
    share = float(np.mean(np.concatenate([a.mask for a in annotations.values()])))
    return AccuracyDataset(
        spec.name, features, features, GroundTruth(annotations, "pad_last", source=spec.name),
        f"{spec.videos} one-minute videos of Ped2 training footage; {spec.abnormal_videos} hold a run of "
        f"abnormal test footage ({100 * share:.1f} % of frames), {spec.decoy_videos} a decoy run of normal test "
        "footage; trained on the archive unlabeled, scored on it",
        train_truth=True, fps=PED2_FPS,
    )  # fmt: skip


def long_decoys_dataset(
    data_dir: Path, cache_dir: Path, library: FootageLibrary, cache: Path, spec: Mapping[str, Any] | None = None
) -> AccuracyDataset:
    """Ped2-long plus 12 long videos whose middle is a decoy run of normal test footage."""
    features = extract_ped2(data_dir, cache_dir, spec=spec)
    official = load_ground_truth(data_dir / "ucsd-ped2" / "ped2.mat", fmt="ped2")
    train_ids = [video_id for video_id in features.video_ids if video_id.startswith("train_")]
    test_ids = [video_id for video_id in features.video_ids if video_id.startswith("test_")]
    rng = np.random.default_rng(0)
    arrays, annotations = {}, {}
    for index, middle in enumerate(test_ids + [f"decoy_{n + 1:02d}" for n in range(len(test_ids))]):
        before = features.load(train_ids[(2 * index) % len(train_ids)])
        after = features.load(train_ids[(2 * index + 1) % len(train_ids)])
        if middle.startswith("test_"):
            centre = features.load(middle)
            intervals = official.annotations[middle.split("_")[1]].intervals
            offset = SNIPPET_LENGTH * len(before)
            truth = VideoAnnotation(intervals=tuple((s + offset, e + offset) for s, e in intervals))
        else:
            centre = library.draw(library.decoys, int(rng.integers(3, 6)), rng)
            truth = VideoAnnotation()
        long_id = f"long_{middle}"
        arrays[long_id] = np.concatenate([before, centre, after])
        annotations[long_id] = truth
    long_set = store_arrays(cache / "long-decoys", features.spec, arrays)
    train_clips = [features.entry(video_id) for video_id in train_ids]
    clip_truth = {video_id: VideoAnnotation() for video_id in train_ids}
    return AccuracyDataset(
        "ped2-long-decoys",
        FeatureSet(train_clips + list(long_set), features.spec, source="ped2-long-decoys"),
        long_set,
        GroundTruth({**clip_truth, **annotations}, "pad_last", source="ped2.mat shifted into ped2-long-decoys"),
        "Ped2-long's 12 long videos plus 12 whose middle is a decoy run of normal test footage; trained on the 16 "
        "training clips and the 24 long videos, scored on the 24 long videos",
        train_truth=True, fps=PED2_FPS,
    )  # fmt: skip


def normal_only_datasets(
    data_dir: Path, cache_dir: Path, library: FootageLibrary, cache: Path, spec: Mapping[str, Any] | None = None
) -> list[AccuracyDataset]:
    """Trained on normal footage alone: the 16 training clips (scored on the test clips), and a normal week of
    one-minute videos (scored on a rare-10 archive of other draws)."""
    features = extract_ped2(data_dir, cache_dir, spec=spec)
    official = load_ground_truth(data_dir / "ucsd-ped2" / "ped2.mat", fmt="ped2")
    train_ids = [video_id for video_id in features.video_ids if video_id.startswith("train_")]
    test_ids = [video_id for video_id in features.video_ids if video_id.startswith("test_")]
    truth = GroundTruth(
        {video_id: official.annotations[video_id.split("_")[1]] for video_id in test_ids}, "pad_last",
        source=official.source,
    )  # fmt: skip
    clips = AccuracyDataset(
        "normal-only", subset(features, train_ids), subset(features, test_ids), truth,
        "trained on the 16 normal Ped2 training clips alone, scored on the 12 test clips",
        fps=PED2_FPS,
    )  # fmt: skip
    normal_spec = RareSpec("normal-week", abnormal_videos=0, anomaly_snippets=(1, 1), decoy_videos=0, seed=101)
    week, _ = rare_archive(library, normal_spec, prefix="week")
    test_spec = RareSpec("rare-10-other", abnormal_videos=12, anomaly_snippets=(6, 11), seed=202)
    later, later_truth = rare_archive(library, test_spec, prefix="later")
    long = AccuracyDataset(
        "normal-only-long", _store(cache / "normal-week", library, week),
        _store(cache / "normal-week-later", library, later),
        GroundTruth(later_truth, "pad_last", source="normal-only-long"),
        "trained on 30 one-minute videos of normal Ped2 training footage, scored on a rare-10 archive of other draws "
        "(anomalies and decoys)",
        fps=PED2_FPS,
    )  # fmt: skip
    return [clips, long]


def ped2_regime_datasets(
    data_dir: Path, cache_dir: Path, names: Sequence[str], *, spec: Mapping[str, Any] | None = None
) -> list[AccuracyDataset]:
    """The Ped2-footage regimes named in ``names`` (see the module docstring), extracted with ``spec``'s settings
    (see :func:`~lanp_vad.pipeline.research.ped2.extract_ped2`)."""
    library = footage_library(data_dir, cache_dir, spec)
    cache = cache_dir / f"regimes-{library.spec.digest()}"
    datasets: list[AccuracyDataset] = []
    for name in names:
        if name in RARE:
            datasets.append(rare_dataset(library, RARE[name], cache))
        elif name == "ped2-long-decoys":
            datasets.append(long_decoys_dataset(data_dir, cache_dir, library, cache, spec))
    if {"normal-only", "normal-only-long"} & set(names):
        datasets += [d for d in normal_only_datasets(data_dir, cache_dir, library, cache, spec) if d.name in names]
    return datasets


REGIMES = ("rare-3", "rare-10", "ped2-long-decoys", "normal-only", "normal-only-long")



@dataclass(frozen=True)
class PlazaSpec:
    """A plaza archive rendered by the demo's scene generator: its clips, camera and events, and the held-back
    clip scored as unseen video."""

    name: str
    settings: DemoSettings
    kinds: tuple[AnomalyKind, ...] = ANOMALY_KINDS


PLAZAS = {
    # The demo's own archive (``lanp demo``), its held-back clip a column of its own.
    "plaza": PlazaSpec("plaza", DemoSettings()),
    # A busier, noisier camera whose events are person-like (a runner, a cyclist, a fight), a quarter of the clips
    # touched: held out of every selection.
    "plaza-busy": PlazaSpec(
        "plaza-busy",
        DemoSettings(clips=32, abnormal_fraction=0.25, seed=5, held_out_kind="fight",
                     scene=SceneSettings(walkers=9.0, noise=4.0, flicker=0.04)),
        kinds=("runner", "cyclist", "fight"),
    ),  # fmt: skip
}


def plaza_datasets(spec: PlazaSpec, cache_dir: Path) -> list[AccuracyDataset]:
    """The plaza archive (trained on unlabeled, scored on itself) and its held-back clip (scored as unseen)."""
    from lanp_vad.pipeline.demo.run import demo_extractor
    from lanp_vad.pipeline.features.archive import extract_archive

    settings = spec.settings
    plans = plan_clips(
        settings.clips, num_frames=settings.num_frames, abnormal_fraction=settings.abnormal_fraction,
        seed=settings.seed, kinds=spec.kinds,
    )  # fmt: skip
    [held] = plan_clips(
        1, num_frames=settings.num_frames, abnormal_fraction=1.0, seed=settings.seed + 1, prefix="held_out",
        kinds=(settings.held_out_kind,),
    )  # fmt: skip
    tag = hashlib.sha256(repr((spec, plans, held)).encode()).hexdigest()[:8]
    root = cache_dir / f"{spec.name}-{tag}"
    extractor = None
    sets = {}
    for part, part_plans in (("clips", plans), ("held_out", [held])):
        features = root / f"{part}-features"
        if not (features / "manifest.jsonl").is_file() or len(open_feature_set(features)) < len(part_plans):
            archive = write_archive(root / part, part_plans, settings.scene, scene_seed=settings.seed)
            extractor = extractor or demo_extractor(settings)
            extract_archive([archive.paths[p.video_id] for p in part_plans], features, extractor=extractor,
                            workers=1, progress=False)  # fmt: skip
        sets[part] = open_feature_set(features)
    labels = {p.video_id: p.frame_labels() for p in [*plans, held]}
    truth = GroundTruth(
        {video_id: VideoAnnotation(mask=mask, num_frames=len(mask)) for video_id, mask in labels.items()},
        "pad_last", source=spec.name,
    )  # fmt: skip
    fps = float(settings.scene.fps)
    touched = sum(p.is_abnormal for p in plans)
    return [
        AccuracyDataset(
            spec.name, sets["clips"], sets["clips"], truth,
            f"{len(plans)} rendered plaza clips ({touched} with an event: {', '.join(spec.kinds)}), "
            f"{settings.scene.walkers:g} walkers in view; trained on unlabeled, scored on the archive",
            train_truth=True, fps=fps,
        ),
        AccuracyDataset(
            f"{spec.name} held-back", sets["clips"], sets["held_out"], truth,
            f"the {spec.name} archive's model scoring a clip it never saw ({settings.held_out_kind})", fps=fps,
        ),
    ]  # fmt: skip
