#!/usr/bin/env python
"""Benchmark: ``skanimal export`` in every format against skanimal itself, on real photos.

Usage::

    python benchmarks/bench_export.py                   # 224 px, 120 test photos (~15 min)
    python benchmarks/bench_export.py --quick           # 128 px, 48 test photos
    python benchmarks/bench_export.py --json export.json

MobileNetV2 with the shared pretrained weights (``../shared/weights``), both heads (the
``BottleneckClassifier`` network and ``--head logistic``'s StandardScaler +
LogisticRegression), fitted on half of ``../shared/data/animals-dev`` and run on the other
half. For every format it exports the model, then on the same test photos:

* ``size``: the network's file(s) on disk;
* ``export img/s``: photos per second through the export folder's own ``predict.py`` steps
  (Pillow decode + resize, then the format's runtime, batches of 32), and ``network img/s``
  the runtime alone on the decoded pixels;
* ``skanimal img/s``: photos per second through the fitted pipeline's ``predict_proba`` on the
  same files (decode, resize, backbone, head; feature cache off), measured in the same run;
* ``top-1 agree``: share of photos whose top class is skanimal's; ``median |dp|``: the median
  difference of skanimal's top-class probability.

It also fits ``precision="int8"`` features (calibrated on the
training half) with their own network head, exports them to ``openvino`` (the int8 network)
and ``onnx`` (the float32 network, with a warning), and reports the int8 model's agreement
with the float32 one. Prints one table; ``--json`` saves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ANIMALS_DEV, REPO_ROOT, loadavg, render_table  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WEIGHTS = (REPO_ROOT / ".." / "shared" / "weights"
           / "mobilenet_v2_1.0_pretrained_notop.weights.h5").resolve()
BATCH = 32


def _best_of(repeats, work):
    """Fastest of ``repeats`` runs of ``work()`` (seconds) and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def _skanimal(pipeline, paths, repeats):
    pipeline[0].set_params(cache=False)  # the CNN runs every time, as it does for new photos
    seconds, proba = _best_of(repeats, lambda: pipeline.predict_proba(paths))
    return len(paths) / seconds, proba


def _exported(folder, paths, reference, repeats):
    import numpy as np

    from skanimal.exported_predict import load_network, load_photo

    run, info = load_network(str(folder))
    size = (info["input"]["height"], info["input"]["width"])

    def decode():
        return np.stack([load_photo(p, *size) for p in paths])

    def network(pixels):
        return np.concatenate([run(pixels[i:i + BATCH]) for i in range(0, len(pixels), BATCH)])

    run(decode()[:BATCH])  # warm-up: first-call allocation and kernel selection
    end_to_end, proba = _best_of(repeats, lambda: network(decode()))
    pixels = decode()
    network_only, _ = _best_of(repeats, lambda: network(pixels))
    top = reference.argmax(axis=1)
    rows = np.arange(len(top))
    return {
        "export_img_s": len(paths) / end_to_end,
        "network_img_s": len(paths) / network_only,
        "top1_agreement": float(np.mean(proba.argmax(axis=1) == top)),
        "median_abs_dp": float(np.median(np.abs(proba[rows, top] - reference[rows, top]))),
    }


def _fit(head, paths, target, image_size, precision="float32"):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skanimal import BottleneckClassifier, BottleneckFeatures

    features = BottleneckFeatures("mobilenet_v2", weights=str(WEIGHTS), image_size=image_size,
                                  precision=precision)
    steps = ([BottleneckClassifier(random_state=0)] if head == "network"
             else [StandardScaler(), LogisticRegression(max_iter=5000)])
    return make_pipeline(features, *steps).fit(paths, target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="128 px, 48 test photos")
    parser.add_argument("--formats", nargs="+", default=None, metavar="FORMAT")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-int8", action="store_true", help="leave the int8 model out")
    parser.add_argument("--only-int8", action="store_true",
                        help="the int8 model (and the float32 one it is compared with) only")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if not (ANIMALS_DEV.is_dir() and WEIGHTS.is_file()):
        sys.exit(f"needs {ANIMALS_DEV} and {WEIGHTS}")
    import numpy as np

    import skanimal
    from skanimal.exporting import FORMATS

    formats = args.formats or list(FORMATS)
    image_size = 128 if args.quick else 224
    data = skanimal.load_image_folder(ANIMALS_DEV)
    order = np.random.default_rng(0).permutation(len(data.paths))
    paths, target = np.asarray(data.paths), np.asarray(data.target)
    half = len(order) // 2
    train, test = order[:half], order[half:]
    if args.quick:
        test = test[:48]
    test_paths = list(paths[test])
    print(f"MobileNetV2 (shared weights), {image_size} px; fitted on {len(train)} photos, "
          f"measured on {len(test)}; {os.cpu_count()} CPU(s), load {loadavg()}", flush=True)

    models = {head: _fit(head, paths[train], target[train], image_size)
              for head in (("network",) if args.only_int8 else ("network", "logistic"))}
    if not args.no_int8:
        models["network, int8"] = _fit("network", paths[train], target[train], image_size,
                                       precision="int8")
    rows, figures = [], []
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        float_proba = None
        for name, model in models.items():
            skanimal_img_s, reference = _skanimal(model, test_paths, args.repeats)
            if name == "network":
                float_proba = reference
            int8 = name.endswith("int8")
            if args.only_int8 and not int8:
                continue
            for fmt in (["openvino", "onnx"] if int8 else formats):
                folder = work / f"{name}-{fmt}".replace(", ", "-")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # int8 -> float32, known
                    start = time.perf_counter()
                    result = skanimal.export(model, folder, format=fmt)
                    export_s = time.perf_counter() - start
                measured = _exported(folder, test_paths, reference, args.repeats)
                figure = {"model": name, "format": fmt,
                          "network": result.description["precision"],
                          "size_mb": result.n_bytes / 1e6, "export_s": export_s,
                          "skanimal_img_s": skanimal_img_s, **measured}
                figures.append(figure)
                rows.append([name, fmt, figure["network"], f"{figure['size_mb']:.1f} MB",
                             f"{export_s:.0f} s", f"{measured['export_img_s']:.0f}",
                             f"{measured['network_img_s']:.0f}", f"{skanimal_img_s:.0f}",
                             f"{measured['export_img_s'] / skanimal_img_s:.2f}x",
                             f"{100 * measured['top1_agreement']:.1f} %",
                             f"{measured['median_abs_dp']:.1e}"])
                shutil.rmtree(folder)
                print(" | ".join(rows[-1]), flush=True)
            if int8:
                agreement = float(np.mean(reference.argmax(1) == float_proba.argmax(1)))
                figures.append({"model": name, "int8_vs_float32_top1": agreement})
                print(f"skanimal int8 vs float32 (network head): top-1 agreement "
                      f"{100 * agreement:.1f} % of {len(test_paths)} photos", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(render_table(["model", "format", "network", "size", "export", "export img/s",
                        "network img/s", "skanimal img/s", "ratio", "top-1 agree",
                        "median |dp|"], rows))
    print("img/s: decode + resize + network (export: predict.py's steps; skanimal: "
          "predict_proba without cache); ratio = export / skanimal; agreement vs skanimal's "
          "own predictions of the same model")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
