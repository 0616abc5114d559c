#!/usr/bin/env python
"""Benchmark: label a folder from ten labels per class — sort, suggest, re-sort.

Usage::

    python benchmarks/bench_labelling.py              # 2,000 photos for the speed part
    python benchmarks/bench_labelling.py --n 10000    # the full speed run of issue 12
    python benchmarks/bench_labelling.py --n 500      # a quick run

Needs the shared MobileNetV2 weights and the animals-dev photos beside the checkout
(``../shared``); says so and exits when they are absent. Everything else is built in a
temporary directory with its own feature cache.

1. Accuracy: 10 labelled photos per class of animals-dev train a pipeline
   (MobileNetV2 features with global average pooling, then a LogisticRegression head); the
   other 30 per class are sorted with ``sort_images``. The threshold is calibrated with
   :func:`skanimal.calibration.confidence_threshold` (precision 0.98) on out-of-fold
   probabilities of the labelled photos (5-fold cross-validation), the way a classifier's
   ``confidence_threshold_`` is set from held-out data. Reported: % of photos in class
   folders that are right (target >= 98 %), % sent to review (target <= 30 %), and the same
   with the fallback threshold. Unknown class: the model trained without "horse" sorts the
   horses; % of them sent to review.
2. One round of active learning: ``suggest_images`` picks 12 photos of the rest, the true
   labels are the oracle, the model is retrained (and recalibrated) and the rest sorted
   again.
3. Speed: N generated JPEGs (dev photos resized, cropped and flipped, so every file is new
   to the cache) are sorted cold (feature extraction; compared with a bare
   ``BottleneckFeatures(cache=False).transform`` of a subset, in images per second), then,
   after a retrain, sorted again into the same output on the warm cache (no CNN work;
   photos whose class changed are moved within the output, the others left in place).

Prints one table: measure | value | target | result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = (REPO_ROOT / ".." / "shared").resolve()
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_pretrained_notop.weights.h5"
ANIMALS_DEV = SHARED / "data" / "animals-dev"
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N_LABELLED = 10
N_SUGGEST = 12
UNKNOWN = "horse"


def make_model(cache):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckFeatures

    return make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=WEIGHTS, pooling="avg", cache=cache),
        LogisticRegression(max_iter=2000),
    )


def fit_calibrated(paths, labels, cache):
    """Fit, and calibrate a threshold on 5-fold out-of-fold probabilities of the same data."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from skanimal.calibration import confidence_threshold

    model = make_model(cache)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    proba = cross_val_predict(model, paths, labels, cv=folds, method="predict_proba")
    model.fit(paths, labels)
    threshold = confidence_threshold(proba, labels, np.unique(labels), precision=0.98)
    return model, threshold


def sort_scores(model, paths, truth, out, threshold):
    from skanimal.sorting import REVIEW_FOLDER, sort_images

    source = out.parent / (out.name + "-in")
    source.mkdir(parents=True)
    for p in paths:
        os.symlink(p, source / Path(p).name)
    result = sort_images(model, source, out, min_confidence=threshold)
    placed = [r for r in result.rows if Path(r["destination"]).parent.name != REVIEW_FOLDER]
    right = sum(r["label_1"] == truth[Path(r["source"]).name] for r in placed)
    return (100 * right / max(1, len(placed)), 100 * (len(result.rows) - len(placed))
            / len(result.rows), result)


def generate(dev_paths, n, folder):
    import numpy as np
    from PIL import Image, ImageOps

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    sources = [Image.open(p).convert("RGB") for p in dev_paths]
    for i in range(n):
        image = sources[i % len(sources)]
        w, h = image.size
        left, top = rng.integers(0, max(1, w // 6)), rng.integers(0, max(1, h // 6))
        crop = image.crop((left, top, left + w * 5 // 6, top + h * 5 // 6))
        side = int(rng.integers(120, 200))
        crop = crop.resize((side, side * crop.size[1] // crop.size[0]))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        crop.save(folder / f"gen_{i:05d}.jpg", quality=int(rng.integers(80, 95)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=2000,
                        help="photos for the speed part (10000 is the full run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not (WEIGHTS.exists() and ANIMALS_DEV.is_dir()):
        sys.exit(f"bench_labelling needs the shared weights ({WEIGHTS}) and photos "
                 f"({ANIMALS_DEV}); they are not there.")

    import numpy as np

    from skanimal import BottleneckFeatures, load_image_folder
    from skanimal.sorting import default_threshold, sort_images
    from skanimal.suggest import suggest_images

    work = Path(tempfile.mkdtemp(prefix="bench-labelling-"))
    cache = work / "cache"
    os.environ["SKANIMAL_CACHE_DIR"] = str(cache)
    rows = []

    def row(measure, value, target="", ok=None):
        rows.append((measure, value, target, "" if ok is None else ("PASS" if ok else "MISS")))

    try:
        dev = load_image_folder(ANIMALS_DEV)
        rng = np.random.default_rng(0)
        labelled = np.concatenate([rng.permutation(np.flatnonzero(dev.target == c))[:N_LABELLED]
                                   for c in dev.target_names])
        rest = np.setdiff1d(np.arange(len(dev.paths)), labelled)
        truth = {Path(p).name: t for p, t in zip(dev.paths, dev.target)}

        # 1. ten labels per class
        # The default threshold: the calibrated one, raised to DEFAULT_MIN_CONFIDENCE.
        model, calibrated = fit_calibrated(dev.paths[labelled], dev.target[labelled], cache)
        threshold = default_threshold(calibrated)
        right, review, _ = sort_scores(model, dev.paths[rest], truth, work / "sort1", threshold)
        row(f"10/class: right in class folders (default threshold {threshold:.3f}, "
            f"calibrated {calibrated:.3f})", f"{right:.1f} %", ">= 98 %", right >= 98)
        row("10/class: sent to review", f"{review:.1f} %", "<= 30 %", review <= 30)
        c_right, c_review, _ = sort_scores(model, dev.paths[rest], truth, work / "sortc",
                                           calibrated)
        row(f"  calibrated threshold alone {calibrated:.3f}: right / review",
            f"{c_right:.1f} % / {c_review:.1f} %")

        known = labelled[dev.target[labelled] != UNKNOWN]
        partial, t_partial = fit_calibrated(dev.paths[known], dev.target[known], cache)
        unknown = rest[dev.target[rest] == UNKNOWN]
        _, unknown_review, _ = sort_scores(partial, dev.paths[unknown], truth, work / "unk",
                                           default_threshold(t_partial))
        _, unknown_calibrated, _ = sort_scores(partial, dev.paths[unknown], truth, work / "unkc",
                                               t_partial)
        row(f"unknown class ({UNKNOWN}, never seen): sent to review at the default "
            f"{default_threshold(t_partial):.3f} (calibrated {t_partial:.3f} alone)",
            f"{unknown_review:.1f} % ({unknown_calibrated:.1f} %)", "most", unknown_review > 50)

        # 2. one round of suggest -> label -> retrain
        pool = work / "pool"
        pool.mkdir()
        for p in dev.paths[rest]:
            os.symlink(p, pool / Path(p).name)
        picked = suggest_images(model, pool, N_SUGGEST).rows
        picked_names = {Path(r["path"]).name for r in picked}
        index = {Path(p).name: i for i, p in enumerate(dev.paths)}
        added = np.array([index[name] for name in picked_names])
        model2, threshold2 = fit_calibrated(dev.paths[np.concatenate([labelled, added])],
                                            dev.target[np.concatenate([labelled, added])],
                                            cache)
        rest2 = np.setdiff1d(rest, added)
        threshold2 = default_threshold(threshold2)
        right2, review2, _ = sort_scores(model2, dev.paths[rest2], truth, work / "sort2",
                                         threshold2)
        row(f"after suggest {N_SUGGEST} -> label -> retrain (threshold {threshold2:.3f}): right",
            f"{right:.1f} -> {right2:.1f} %", ">= 98 %", right2 >= 98)
        row("  sent to review", f"{review:.1f} -> {review2:.1f} %", "<= 30 %", review2 <= 30)

        # 3. speed
        generate(dev.paths, args.n, work / "many")
        n_bare = min(args.n, 256)
        bare = BottleneckFeatures("mobilenet_v2", weights=WEIGHTS, pooling="avg",
                                  cache=False).fit()
        bare.transform(sorted(map(str, (work / "many").iterdir()))[:32])  # build + trace
        start = time.perf_counter()
        bare.transform(sorted(map(str, (work / "many").iterdir()))[-n_bare:])
        bare_rate = n_bare / (time.perf_counter() - start)
        model.steps[0][1].transform(dev.paths[:32])  # same warm-up for the model's backbone
        start = time.perf_counter()
        sort_images(model, work / "many", work / "out-cold", min_confidence=threshold,
                    progress=True)
        cold = time.perf_counter() - start
        sort_rate = args.n / cold
        row(f"sort {args.n} photos cold: img/s vs bare transform ({n_bare} photos)",
            f"{sort_rate:.1f} vs {bare_rate:.1f} = {sort_rate / bare_rate:.2f}x", ">= 0.9x",
            sort_rate / bare_rate >= 0.9)
        model3, threshold3 = fit_calibrated(dev.paths[np.concatenate([labelled, added])],
                                            dev.target[np.concatenate([labelled, added])],
                                            cache)
        start = time.perf_counter()
        resort = sort_images(model3, work / "many", work / "out-cold",
                             min_confidence=threshold3)
        warm = time.perf_counter() - start
        row(f"re-sort {args.n} into the same OUT after a retrain, warm cache "
            f"({len(resort.relocations)} changed folder)", f"{warm:.1f} s "
            f"(cold {cold:.1f} s, {cold / warm:.0f}x faster)", "seconds", warm < 0.2 * cold)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    widths = [max(len(str(r[i])) for r in rows + [("measure", "value", "target", "result")])
              for i in range(4)]
    for r in [("measure", "value", "target", "result")] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
