"""INT8 check: the default backbone quantised with ONNX Runtime, its speed and its agreement with fp32 features.

The candidate: EfficientNet-Lite0 exported as ``lanp extract`` exports it (``runtime.exported_model``), quantised
statically with ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8 activations),
calibrated on ``--calibration`` snippets of the Ped2 training clips. Both models then run the same snippets
(Ped2 test clip 02 and the 1080p camera clip of ``bench/footage.py``) in ONNX Runtime and in OpenVINO, each with
two threads: CPU-s per frame, and the int8 features against fp32's (cosine and relative L2 per snippet; NaN
features are reported as such). A spec may use INT8 only if its features agree with fp32's about as well as a
re-encode of the video does (relative L2 ~2 %, ``bench/decode_size.py``) and it is clearly cheaper.

    python bench/int8.py [--calibration 4] [--snippets 8]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.footage import SHARED, camera_clip  # noqa: E402


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def snippets_of(extractor: object, path: Path, count: int) -> torch.Tensor:
    """The first ``count`` transformed single-crop clips (count, 3, L, S, S) of a video."""
    reader, plan = extractor.decode.open(path)  # type: ignore[attr-defined]
    clips = []
    with reader:
        for _, chunk in extractor.decode.iter_chunks(reader, plan, 4):  # type: ignore[attr-defined]
            clips.append(extractor.clips(torch.from_numpy(chunk))[:, 0])  # type: ignore[attr-defined]
            if sum(len(c) for c in clips) >= count:
                break
    return torch.cat(clips)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=4, help="Ped2 training snippets to calibrate on")
    parser.add_argument("--snippets", type=int, default=8, help="snippets of each test clip")
    args = parser.parse_args()

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.features.runtime import _onnxruntime_runner, _openvino_runner, exported_model

    extractor = FeatureExtractor(ExtractionConfig(device="cpu", runtime="onnxruntime"))
    spec = extractor.spec
    fp32 = exported_model(extractor.backbone, spec.weights, spec.frames_per_snippet, spec.crop_size)
    calibration = snippets_of(extractor, SHARED / "ucsd-ped2/videos/train/01.mp4", args.calibration)
    test = torch.cat([snippets_of(extractor, SHARED / "ucsd-ped2/videos/test/02.mp4", args.snippets),
                      snippets_of(extractor, camera_clip("1080p", 25), args.snippets)])

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"clips": clip[None].numpy()} for clip in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as folder:
        int8 = Path(folder) / "int8.onnx"
        quantize_static(str(fp32), str(int8), Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        features: dict[tuple[str, str], np.ndarray] = {}
        frames = len(test) * spec.frames_per_snippet
        for precision, path in (("fp32", fp32), ("int8", int8)):
            for runtime, build in (("onnxruntime", _onnxruntime_runner), ("openvino", _openvino_runner)):
                run = build(path, 2)
                run(test[:2])  # warm-up
                cpu, wall = _cpu_s(), time.perf_counter()
                features[precision, runtime] = torch.cat([run(part) for part in test.split(4)]).numpy()
                print(f"{precision} {runtime:11s} {1000 * (_cpu_s() - cpu) / frames:6.2f} CPU-ms a frame, "
                      f"{1000 * (time.perf_counter() - wall) / frames:6.2f} wall-ms", flush=True)
    reference = features["fp32", "openvino"]
    for (precision, runtime), values in features.items():
        with np.errstate(invalid="ignore", divide="ignore"):  # all-zero features have no cosine
            cosine = (reference * values).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(values, axis=1))
        relative = np.linalg.norm(reference - values, axis=1) / np.linalg.norm(reference, axis=1)
        broken = np.isnan(values).any() or not np.linalg.norm(values, axis=1).all()
        print(f"{precision} {runtime:11s} vs fp32 OpenVINO: cosine min {np.min(cosine):.5f} median "
              f"{np.median(cosine):.5f}, relative L2 median {np.median(relative):.4f} max {np.max(relative):.4f}"
              f"{' (NaN or all-zero features)' if broken else ''}")


if __name__ == "__main__":
    main()
