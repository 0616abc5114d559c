#!/usr/bin/env python
"""Benchmark: accuracy from few labelled photos, with real pretrained weights.

Usage::

    python benchmarks/bench_quality.py                  # full run (~10-15 min on 2 CPU cores)
    python benchmarks/bench_quality.py --quick          # k = 2, 10, 30; 2 repeats (~3 min)
    python benchmarks/bench_quality.py --out curve.png --json results.json

Learning curves on the real photos of ``../shared/data/animals-dev`` (6 classes × 40) with the
shared MobileNetV2 weights of ``../shared/weights`` (a stand-in for ImageNet's, see its
SOURCES.md): for each k in 2, 5, 10, 20, 30 photos per class, repeated stratified subsampling
draws k training photos per class and tests on all the others (40 - k per class); every
configuration sees the same draws. Configurations:

* ``default`` — ``make_pipeline(BottleneckFeatures("mobilenet_v2", weights=W),
  BottleneckClassifier())``, nothing else set;
* ``article`` — the reference article's settings: ``BottleneckFeatures(..., pooling=None)``
  and ``BottleneckClassifier(**ARTICLE_SETTINGS)`` (7 epochs of 50, RMSprop 1e-4);
* ``linear`` — ``StandardScaler`` + ``LogisticRegression`` on ``pooling="avg"`` features, the
  strong linear baseline;
* ``random`` — the default pipeline on random weights (``weights=None``): the floor.

The backbone is frozen, so each feature configuration is extracted once, through
:class:`~skanimal.BottleneckFeatures` and its on-disk cache (``--cache``; a second run of the
benchmark extracts nothing), and only the heads are trained per repeat. Every head is seeded
with the repeat number. Prints ONE table (mean ± standard deviation of the test accuracy over
the repeats, per k and configuration) and saves a learning-curve PNG (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ANIMALS_DEV, REPO_ROOT, Stopwatch, loadavg, render_table  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The shared pretrained MobileNetV2 weights (no top), beside the checkout like the photos.
WEIGHTS = (REPO_ROOT / ".." / "shared" / "weights"
           / "mobilenet_v2_1.0_pretrained_notop.weights.h5").resolve()
OUT_DIR = REPO_ROOT / "benchmarks" / "out"
BACKBONE = "mobilenet_v2"
KS = (2, 5, 10, 20, 30)
QUICK_KS = (2, 10, 30)
#: Columns of the table, in order, with what each one is.
CONFIG_NAMES = {
    "default": "default pipeline",
    "article": "article's settings",
    "linear": "StandardScaler+LogReg (avg)",
    "random": "random weights (default)",
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def configurations(cache):
    """name -> (feature transformer, head factory): the head is a fresh estimator per call."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skanimal import ARTICLE_SETTINGS, BottleneckClassifier, BottleneckFeatures

    weights = str(WEIGHTS)
    return {
        "default": (BottleneckFeatures(BACKBONE, weights=weights, cache=cache),
                    lambda seed: BottleneckClassifier(random_state=seed)),
        "article": (BottleneckFeatures(BACKBONE, weights=weights, pooling=None, cache=cache),
                    lambda seed: BottleneckClassifier(**ARTICLE_SETTINGS, random_state=seed)),
        "linear": (BottleneckFeatures(BACKBONE, weights=weights, pooling="avg", cache=cache),
                   lambda seed: make_pipeline(StandardScaler(),
                                              LogisticRegression(max_iter=5000))),
        "random": (BottleneckFeatures(BACKBONE, weights=None, cache=cache),
                   lambda seed: BottleneckClassifier(random_state=seed)),
    }


def subsample(y, k, repeat, np):
    """k training indices per class (the rest is the test part), drawn for (k, repeat)."""
    rng = np.random.default_rng([k, repeat])
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False)
                            for c in np.unique(y)])
    train = np.sort(train)
    return train, np.setdiff1d(np.arange(len(y)), train)


def extract(configs, paths):
    """Features of every configuration, each distinct transformer run once (cached on disk)."""
    from sklearn.base import clone

    features, done = {}, {}
    for name, (transformer, _) in configs.items():
        key = repr(sorted(transformer.get_params().items()))
        if key not in done:
            with Stopwatch() as sw:
                done[key] = clone(transformer).fit().transform(paths)
            log(f"features for {name}: {done[key].shape[1]} per image, {sw.seconds:.1f} s")
        features[name] = done[key]
    return features


def plot(summary, ks, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, label in CONFIG_NAMES.items():
        if name not in summary:
            continue
        means = [summary[name][k]["mean"] for k in ks]
        stds = [summary[name][k]["std"] for k in ks]
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xlabel("training photos per class (k)")
    ax.set_ylabel("test accuracy (mean ± std)")
    ax.set_title(f"animals-dev, {BACKBONE} (shared weights): learning curves")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(list(ks))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(args):
    missing = [p for p in (ANIMALS_DEV, WEIGHTS) if not p.exists()]
    if missing:
        sys.exit("bench_quality needs the shared photos and weights beside the checkout; "
                 f"missing: {', '.join(map(str, missing))}")
    import numpy as np

    from skanimal import load_image_folder

    ks = QUICK_KS if args.quick else KS
    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        sys.exit("--repeats must be at least 1")
    wanted = list(CONFIG_NAMES) if not args.configs else args.configs.split(",")
    unknown = set(wanted) - set(CONFIG_NAMES)
    if unknown:
        sys.exit(f"--configs: unknown {sorted(unknown)}; choose from {list(CONFIG_NAMES)}")
    data = load_image_folder(ANIMALS_DEV)
    paths, y = list(data.paths), np.asarray(data.target)
    n_per_class = np.unique(y, return_counts=True)[1].min()
    load_start = loadavg()
    t_start = time.perf_counter()
    configs = {name: cfg for name, cfg in configurations(args.cache).items() if name in wanted}
    features = extract(configs, paths)
    scores = {name: {k: [] for k in ks} for name in configs}
    fit_seconds = {name: [] for name in configs}
    for k in ks:
        for repeat in range(repeats):
            train, test = subsample(y, k, repeat, np)
            for name, (_, make_head) in configs.items():
                X = features[name]
                with Stopwatch() as sw:
                    head = make_head(repeat).fit(X[train], y[train])
                fit_seconds[name].append(sw.seconds)
                scores[name][k].append(float(np.mean(head.predict(X[test]) == y[test])))
        log(f"k={k}: " + ", ".join(f"{n} {np.mean(s[k]):.3f}" for n, s in scores.items()))
    summary = {name: {k: {"mean": float(np.mean(s[k])), "std": float(np.std(s[k])),
                          "scores": s[k]} for k in ks} for name, s in scores.items()}

    headers = ["k / class", "test photos"] + [CONFIG_NAMES[n] for n in configs]
    rows = []
    for k in ks:
        rows.append([str(k), str(len(y) - k * len(np.unique(y)))]
                    + [f"{summary[n][k]['mean']:.3f} ± {summary[n][k]['std']:.3f}"
                       for n in configs])
    total = time.perf_counter() - t_start
    print()
    print(render_table(headers, rows))
    print()
    print(f"animals-dev ({len(y)} photos, {len(np.unique(y))} classes × {n_per_class}), "
          f"{BACKBONE} with the shared weights ({WEIGHTS.name}; a stand-in for ImageNet's); "
          f"{repeats} stratified subsamples per k, the same for every column; mean ± std of "
          "the accuracy on the photos not trained on. Median head fit: "
          + ", ".join(f"{n} {np.median(t):.1f} s" for n, t in fit_seconds.items())
          + f". {os.cpu_count()} CPU cores, load average {load_start[0]:.2f} at start; "
          f"{total:.0f} s in all.")
    out = Path(args.out)
    plot(summary, ks, out)
    print(f"learning curves: {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "ks": list(ks), "repeats": repeats, "summary": {n: {str(k): v for k, v in s.items()}
                                                            for n, s in summary.items()},
            "fit_seconds": fit_seconds, "total_s": total, "loadavg_start": load_start},
            indent=2))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"k = {', '.join(map(str, QUICK_KS))} and 2 repeats")
    parser.add_argument("--repeats", type=int, default=0,
                        help="subsamples per k (default 5, or 2 with --quick)")
    parser.add_argument("--configs", help=f"comma-separated subset of {','.join(CONFIG_NAMES)}")
    parser.add_argument("--out", default=str(OUT_DIR / "learning_curves.png"),
                        help="where to save the learning-curve PNG (default: %(default)s)")
    parser.add_argument("--cache", default=str(OUT_DIR / "feature-cache"),
                        help="feature cache directory (default: %(default)s)")
    parser.add_argument("--json", help="also write every score to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
