#!/usr/bin/env python
"""Benchmark: label a folder from ten labels per class — sort, suggest, re-sort.

Usage::

    python benchmarks/bench_labelling.py              # 2,000 photos for the speed part
    python benchmarks/bench_labelling.py --n 10000    # the full speed run of issue 12
    python benchmarks/bench_labelling.py --n 500      # a quick run
    python benchmarks/bench_labelling.py --open-set   # photos of classes never seen
    python benchmarks/bench_labelling.py --outliers   # audit: strays in a labelled set

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

``--open-set`` (issue 20): photos of animals the model never saw. Each of animals-dev's 6
classes in turn is left out; 17 photos of each other class train the default pipeline
(MobileNetV2 features once for all, cached in memory, then ``BottleneckClassifier()``); the
rest of the known photos and all 40 of the left-out class are sorted. Every "unlike the
training photos" score tried (kNN cosine distance, class-conditional Mahalanobis with a
LedoitWolf covariance, class-mean cosine, energy of the head's logits, max softmax) is
printed side by side as a trade-off curve: % of unknown photos sent to review, % of known
photos sorted, % of sorted known photos that are right (targets >= 90, >= 85, >= 99 %).

``--outliers`` (issue 20, audit): a labelled set with strays. Each class of animals-dev in
turn is left out, and 1 or 3 of its photos are filed under random other classes among the
other 200 photos (MobileNetV2 features with global average pooling, as ``skanimal audit``
computes them). Each rule is printed side by side: % of strays listed, clean photos listed
per 200. The shipped rule is ``skanimal audit``'s (distance to the nearest other photo of
the class above the upper fence, :data:`skanimal.audit.OUTLIER_FENCE`).
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
    if threshold is None:  # too few out-of-fold photos for 98 % with 95 % confidence (< 149):
        threshold = 0.0    # nothing calibrated; sort's floor decides, as it does for users
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


# ------------------------------------------------------------------ open set (issue 20.1)

N_OPEN_SET = 17  # training photos per known class
QUANTILES = (0.8, 0.9, 0.95, 0.975, 0.99, 1.0)
CONFIDENCES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def _candidate_scores(F_train, y_train, F_test, head):
    """Every "unlike the training photos" score tried, higher = less like them, on the test
    photos and, for the feature-space ones, the training photos scored without themselves
    (leave one out, or 5-fold cross-fitting), which sets their thresholds."""
    import numpy as np
    from scipy.special import logsumexp
    from sklearn.covariance import LedoitWolf
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import normalize

    from skanimal.novelty import FeatureNovelty

    def mahalanobis(fit_F, fit_y, F):
        labels = np.unique(fit_y)
        means = np.stack([fit_F[fit_y == c].mean(0) for c in labels])
        precision = LedoitWolf().fit(fit_F - means[np.searchsorted(labels, fit_y)]).precision_
        diff = F[:, None, :] - means[None]
        return np.einsum("nkd,de,nke->nk", diff, precision, diff).min(1)

    def class_mean_cosine(fit_F, fit_y, F):
        means = normalize(np.stack([normalize(fit_F[fit_y == c]).mean(0)
                                    for c in np.unique(fit_y)]))
        return 1 - (normalize(F) @ means.T).max(1)

    def cross_fitted(score):
        out = np.empty(len(F_train))
        for a, b in StratifiedKFold(5, shuffle=True, random_state=0).split(F_train, y_train):
            out[b] = score(F_train[a], y_train[a], F_train[b])
        return out

    model = head.model_
    import keras

    penultimate = keras.Model(model.inputs, model.get_layer("predictions").input)
    kernel, bias = model.get_layer("predictions").get_weights()

    def logits(F):
        return np.asarray(penultimate.predict(F.astype("float32"), verbose=0)) @ kernel + bias

    scores = {}
    for k in (1, 5):
        novelty = FeatureNovelty(n_neighbors=k).fit(F_train)
        scores[f"kNN cosine, k={k}"] = (novelty.novelty_score(F_test), novelty.train_scores_)
    scores["Mahalanobis (LedoitWolf)"] = (mahalanobis(F_train, y_train, F_test),
                                          cross_fitted(mahalanobis))
    scores["class-mean cosine"] = (class_mean_cosine(F_train, y_train, F_test),
                                   cross_fitted(class_mean_cosine))
    # Energy: the head's own training logits (no cross-fitting: that is a retrained head).
    scores["energy (head logits)"] = (-logsumexp(logits(F_test), axis=1),
                                      -logsumexp(logits(F_train), axis=1))
    return scores


def open_set(args):
    """Leave one class out of animals-dev: train on 17 photos of each other class, sort the
    rest of them and all 40 of the left-out one; every rotation, ``args.draws`` draws."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder
    from skanimal.sorting import DEFAULT_MIN_CONFIDENCE, REVIEW_REASONS

    dev = load_image_folder(ANIMALS_DEV)
    t0 = time.perf_counter()
    X = BottleneckFeatures("mobilenet_v2", weights=WEIGHTS, cache=False).fit_transform(dev.paths)
    print(f"features of {len(X)} photos in {time.perf_counter() - t0:.0f} s (computed once)")
    y = np.asarray(dev.target)
    classes = np.unique(y)
    rng = np.random.default_rng(0)
    runs = []
    for unknown in classes:
        for draw in range(args.draws):
            train, test = [], []
            for c in classes:
                idx = rng.permutation(np.flatnonzero(y == c))
                if c == unknown:
                    test.extend(idx)
                else:
                    train.extend(idx[:N_OPEN_SET])
                    test.extend(idx[N_OPEN_SET:])
            F_train, y_train, F_test = X[train], y[train], X[test]
            head = BottleneckClassifier(random_state=draw).fit(F_train, y_train)
            proba = head.predict_proba(F_test)
            run = {"unknown": y[test] == unknown,
                   "right": head.classes_[proba.argmax(1)] == y[test],
                   "confidence": proba.max(1),
                   "shipped": head.novelty_.is_novel(F_test),
                   "scores": _candidate_scores(F_train, y_train, F_test, head)}
            run["scores"]["max softmax"] = (-proba.max(1), None)
            runs.append(run)
            print(f"  left out {unknown}, draw {draw}: {time.perf_counter() - t0:.0f} s",
                  flush=True)

    def measure(sorted_of):
        """unknown -> review, known sorted (mean over runs), known sorted right (pooled)."""
        unknown_review, known_sorted, right, kept = [], [], 0, 0
        for run in runs:
            sorted_ = sorted_of(run)
            unknown, known = run["unknown"], ~run["unknown"]
            unknown_review.append(1 - sorted_[unknown].mean())
            known_sorted.append(sorted_[known].mean())
            right += int((run["right"] & sorted_ & known).sum())
            kept += int((sorted_ & known).sum())
        return np.mean(unknown_review), np.mean(known_sorted), right / max(kept, 1)

    def line(name, setting, values, mark=""):
        u, k, p = values
        ok = u >= 0.90 and k >= 0.85 and p >= 0.99
        print(f"  {name:26s} {setting:28s} {u:7.1%} {k:8.1%} {p:8.1%}  {'target' if ok else ''}"
              f"{mark}")

    names = list(runs[0]["scores"])
    print(f"\nOpen set, animals-dev, leave one class out: {len(classes)} rotations x "
          f"{args.draws} draws, {N_OPEN_SET} training photos per known class")
    print("AUROC, unknown vs known photos (1 = every unknown scores above every known):")
    for name in names:
        auc = np.mean([roc_auc_score(r["unknown"], r["scores"][name][0]) for r in runs])
        print(f"  {name:26s} {auc:.3f}")
    header = (f"  {'score':26s} {'setting':28s} {'unknown':>7s} {'known':>8s} {'sorted':>8s}\n"
              f"  {'':26s} {'':28s} {'->review':>7s} {'sorted':>8s} {'right':>8s}")
    print("\nTrade-off: a photo is sorted when confident enough AND its score is at most the "
          "threshold\n(feature scores: a quantile q of the training photos' own scores, "
          "each left out; target: >= 90 %, >= 85 %, >= 99 %)")
    print(header)
    for c in CONFIDENCES:
        line("max softmax", f"confidence >= {c}",
             measure(lambda r, c=c: r["confidence"] >= c))
    for name in names:
        if name == "max softmax":
            continue
        for floor in (0.5, 0.7, DEFAULT_MIN_CONFIDENCE):
            for q in QUANTILES:
                line(name, f"q={q}, confidence >= {floor}",
                     measure(lambda r, name=name, q=q, floor=floor:
                             (r["scores"][name][0] <= np.quantile(r["scores"][name][1], q))
                             & (r["confidence"] >= floor)))
    print("\nAs shipped (BottleneckClassifier().novelty_, sort's default threshold "
          f"{DEFAULT_MIN_CONFIDENCE} without held-out photos):")
    print(header)
    line("kNN cosine (novelty_)", f"confidence >= {DEFAULT_MIN_CONFIDENCE}",
         measure(lambda r: ~r["shipped"] & (r["confidence"] >= DEFAULT_MIN_CONFIDENCE)))
    reasons = {}
    for run in runs:
        for low, unlike in zip(run["confidence"] < DEFAULT_MIN_CONFIDENCE, run["shipped"]):
            reason = REVIEW_REASONS[bool(low), bool(unlike)]
            reasons[reason] = reasons.get(reason, 0) + 1
    print("  review_reason over every photo sorted: "
          + ", ".join(f"{k or 'sorted'}: {v}" for k, v in sorted(reasons.items())))


# ------------------------------------------------------------ audit outliers (issue 20)

def outliers(args):
    """Strays of a left-out class filed under known ones: which rule lists them."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    from skanimal import BottleneckFeatures, load_image_folder
    from skanimal.audit import OUTLIER_FENCE
    from skanimal.novelty import distance_to_own_class, upper_fence

    dev = load_image_folder(ANIMALS_DEV)
    X = BottleneckFeatures("mobilenet_v2", weights=WEIGHTS, pooling="avg",
                           cache=False).fit_transform(dev.paths)
    y = np.asarray(dev.target, dtype=object)
    classes = np.unique(y)
    rng = np.random.default_rng(0)

    def any_class(F):
        d, _ = NearestNeighbors(n_neighbors=1).fit(normalize(F)).kneighbors()
        return d[:, 0] ** 2 / 2

    rules = {
        f"shipped: own class, fence {OUTLIER_FENCE}":
            lambda F, labels: (lambda d: d > upper_fence(d, OUTLIER_FENCE))(
                distance_to_own_class(F, labels)[0]),
        "own class, fence 2.0":
            lambda F, labels: (lambda d: d > upper_fence(d, 2.0))(
                distance_to_own_class(F, labels)[0]),
        "own class, 0.95 quantile":
            lambda F, labels: (lambda d: d > np.quantile(d, 0.95))(
                distance_to_own_class(F, labels)[0]),
        f"any class, fence {OUTLIER_FENCE}":
            lambda F, labels: (lambda d: d > upper_fence(d, OUTLIER_FENCE))(any_class(F)),
        "any class, 0.9 quantile (sort's)":
            lambda F, labels: (lambda d: d > np.quantile(d, 0.9))(any_class(F)),
    }
    print(f"{len(X)} photos; each class left out in turn, {args.draws} draws; "
          "strays filed under random known classes")
    print(f"{'rule':36} {'strays':>7} | {'listed %':>8} | {'clean listed per 200':>20}")
    for n_strays in (1, 3):
        found = {name: ([], []) for name in rules}
        for unknown in classes:
            for _ in range(args.draws):
                known = np.flatnonzero(y != unknown)
                strays = rng.choice(np.flatnonzero(y == unknown), n_strays, replace=False)
                rows = np.concatenate([known, strays])
                labels = y[rows].copy()
                labels[len(known):] = rng.choice(classes[classes != unknown], n_strays)
                is_stray = np.arange(len(rows)) >= len(known)
                for name, rule in rules.items():
                    listed = rule(X[rows], labels)
                    found[name][0].append(listed[is_stray].mean())
                    found[name][1].append(listed[~is_stray].sum() * 200 / len(known))
        for name, (caught, clean) in found.items():
            print(f"{name:36} {n_strays:>7} | {100 * np.mean(caught):8.1f} | "
                  f"{np.mean(clean):20.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=2000,
                        help="photos for the speed part (10000 is the full run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--open-set", action="store_true",
                        help="only the open-set trade-off of every novelty score tried")
    parser.add_argument("--outliers", action="store_true",
                        help="only the audit's outlier rule against others, on planted strays")
    parser.add_argument("--draws", type=int, default=3,
                        help="with --open-set: draws of training photos per rotation; with "
                             "--outliers: draws of strays per left-out class (default 3)")
    args = parser.parse_args(argv)
    if not (WEIGHTS.exists() and ANIMALS_DEV.is_dir()):
        sys.exit(f"bench_labelling needs the shared weights ({WEIGHTS}) and photos "
                 f"({ANIMALS_DEV}); they are not there.")
    if args.open_set:
        return open_set(args)
    if args.outliers:
        return outliers(args)

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
