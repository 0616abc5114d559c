"""Start-up of an int8 model (issue 23.3): ``skanimal predict MODEL one.jpg`` side by side with
the imports int8 inference really needs, in fresh processes.

Rows (best wall time of ``--repeats`` runs, each in a new interpreter):

* ``import numpy, PIL.Image, openvino`` — the floor: what int8 inference needs;
* ``import skanimal``;
* ``joblib.load + predict`` — the library path: load the model, predict one photo;
* ``skanimal predict MODEL one.jpg`` — the command (cold: OpenVINO compiles the network);
* the same with OpenVINO's compiled network already on disk (``openvino/`` of the cache,
  written by an earlier run; the feature cache is still empty) — the usual case;
* the same where pandas is not installed, as in a core install (pandas comes with the test
  extra; scikit-learn imports it whenever it is there), and ``import sklearn.pipeline``
  alone, which unpickling any model needs;
* ``skanimal predict MODEL.skanimal one.jpg``: the same model saved by ``skanimal.save``,
  which ``predict`` loads without scikit-learn (``skanimal.inference``), cold and with the
  compiled network cached;
* ``skanimal sort MODEL PHOTOS --into OUT --copy`` of ``--n-sort`` real photos (default
  1,200: variants of animals-dev — re-encoded, cropped, flipped, so every file's content and
  cache key differ), each run with an empty feature cache, against a bare
  ``joblib.load(MODEL).predict(paths)`` of the same photos in one process, also cold
  (target: the sort within 1.15x of it); the two are run in turn, ``--sort-repeats`` times,
  and the median ratio of these pairs is printed beside the ratio of the best runs.

Each start row prints its ratio to the floor (target: the command within 4x) and which of
TensorFlow, Keras, SciKeras and scikit-learn the process imported (read from ``-X
importtime``, which adds a little to every row alike), so a module that still pulls them in
on the inference path shows here.

Usage::

    python benchmarks/bench_start.py                  # builds a MobileNetV2 int8 model from
                                                      # ../shared (weights + animals-dev)
    python benchmarks/bench_start.py --model M.joblib --image one.jpg --photos DIR

Every process gets an empty feature cache (``$SKANIMAL_CACHE_DIR`` in a new temporary folder).
The machine's load average is printed beside the figures: other work on the cores slows
every row, and the ratios less than the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HEAVY = ("tensorflow", "keras", "scikeras", "sklearn")


def heavy_imports(importtime_log):
    """Which of HEAVY a ``python -X importtime`` run imported (read from its stderr)."""
    found = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name in HEAVY:
                found.add(name)
    return ",".join(sorted(found)) or "-"


def build_model(directory):
    """A MobileNetV2 int8 pipeline trained on 5 photos per class of animals-dev, saved by
    joblib (``int8.joblib``) and by skanimal.save (``int8.skanimal``, beside it)."""
    import joblib
    import numpy as np
    from sklearn.pipeline import make_pipeline

    import skanimal
    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder

    data = load_image_folder(SHARED / "data" / "animals-dev")
    target = np.asarray(data.target)
    keep = np.concatenate([np.flatnonzero(target == c)[:5] for c in np.unique(target)])
    paths = np.asarray(data.paths)[keep]
    weights = SHARED / "weights" / "mobilenet_v2_1.0_pretrained_notop.weights.h5"
    pipe = make_pipeline(BottleneckFeatures("mobilenet_v2", weights=str(weights),
                                            precision="int8"),
                         BottleneckClassifier(random_state=0))
    pipe.fit(paths, target[keep])
    model = Path(directory) / "int8.joblib"
    joblib.dump(pipe, model)
    skanimal.save(pipe, model.with_suffix(".skanimal"))
    return model, Path(paths[0])


def build_float_model(directory):
    """A float32 MobileNetV2 pipeline like :func:`build_model`'s, the same with
    ``engine="openvino"`` (same head), and how the two engines agree on animals-dev."""
    import joblib
    import numpy as np
    from sklearn.pipeline import Pipeline, make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder

    data = load_image_folder(SHARED / "data" / "animals-dev")
    target = np.asarray(data.target)
    keep = np.concatenate([np.flatnonzero(target == c)[:5] for c in np.unique(target)])
    paths = np.asarray(data.paths)
    weights = str(SHARED / "weights" / "mobilenet_v2_1.0_pretrained_notop.weights.h5")
    pipe = make_pipeline(BottleneckFeatures("mobilenet_v2", weights=weights),
                         BottleneckClassifier(random_state=0))
    pipe.fit(paths[keep], target[keep])
    model = Path(directory) / "float32.joblib"
    joblib.dump(pipe, model)
    ov_pipe = Pipeline([(pipe.steps[0][0], BottleneckFeatures(
        "mobilenet_v2", weights=weights, engine="openvino").fit()), pipe.steps[1]])
    ov_model = Path(directory) / "float32_openvino.joblib"
    joblib.dump(ov_pipe, ov_model)
    # agreement on all of animals-dev
    tf_features = pipe[0].set_params(cache=False).transform(paths)
    ov_features = ov_pipe[0].set_params(cache=False).transform(paths)
    relative = (np.linalg.norm(ov_features - tf_features, axis=1)
                / np.linalg.norm(tf_features, axis=1))
    head = pipe[-1]
    agree = np.mean(head.predict(tf_features) == head.predict(ov_features))
    dp = np.abs(head.predict_proba(tf_features) - head.predict_proba(ov_features)).max()
    agreement = (f"OpenVINO float vs TensorFlow features on {len(paths)} animals-dev photos: "
                 f"relative error max {relative.max():.1e} (median {np.median(relative):.1e}), "
                 f"top-1 agreement {agree:.2%}, max |dp| {dp:.1e}")
    return model, ov_model, agreement


def make_photos(directory, n):
    """``n`` JPEGs made from animals-dev: each photo re-encoded, cropped and/or flipped."""
    from PIL import Image, ImageOps

    sources = sorted((SHARED / "data" / "animals-dev").rglob("*.jpg"))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        variant, source = divmod(i, len(sources))
        with Image.open(sources[source]) as image:
            image = image.convert("RGB")
            if variant % 2:
                image = ImageOps.mirror(image)
            crop = 0.04 * (variant // 2 + 1)  # 4 %, 8 %, ... off each side
            w, h = image.size
            image = image.crop((round(w * crop), round(h * crop),
                                round(w * (1 - crop)), round(h * (1 - crop))))
            image.save(directory / f"{i:05d}.jpg", quality=92 - 3 * variant)
    return directory


def timed(argv, repeats, env, fresh=None, compiled=None, keep=None):
    """Best wall time of ``argv`` over ``repeats`` runs, and the heavy modules it imported.

    Each run gets an empty feature cache, and ``fresh`` (a path) is removed before it. With
    ``compiled`` (a folder), OpenVINO's compiled networks are kept there between runs and put
    into each run's cache before it starts (a first, untimed run fills it).
    """
    best, imported = float("inf"), "?"
    if compiled is not None and not Path(compiled).is_dir():
        timed(argv, 1, env, fresh, compiled=None, keep=compiled)
    for _ in range(repeats):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        with tempfile.TemporaryDirectory() as cache:
            if compiled is not None:
                shutil.copytree(compiled, Path(cache) / "openvino")
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True,
                                  env={**env, "SKANIMAL_CACHE_DIR": cache})
            wall = time.perf_counter() - start
            if keep is not None and (Path(cache) / "openvino").is_dir():
                shutil.copytree(Path(cache) / "openvino", keep, dirs_exist_ok=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{done.stderr[-2000:]}")
        best = min(best, wall)
        imported = heavy_imports(done.stderr)
    return best, imported


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an int8 model written by joblib.dump")
    parser.add_argument("--image", type=Path, help="the photo to predict")
    parser.add_argument("--photos", type=Path, help="a folder of photos to sort (default: "
                        "--n-sort variants of animals-dev, made in a temporary folder)")
    parser.add_argument("--n-sort", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sort-repeats", type=int, help="pairs of bare and sort runs "
                        "(default: --repeats)")
    parser.add_argument("--float", action="store_true", help="also a float32 model: "
                        'skanimal predict through TensorFlow vs engine="openvino"')
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKANIMAL_CACHE_DIR"] = str(Path(tmp) / "build-cache")
        model, image = args.model, args.image
        if model is None:
            model, built_image = build_model(tmp)
            image = image or built_image
        photos = args.photos or make_photos(Path(tmp) / "photos", args.n_sort)
        n_photos = sum(1 for _ in Path(photos).rglob("*.jpg"))
        out = Path(tmp) / "sorted"
        starts = [
            ("import numpy, PIL.Image, openvino", ["-c", "import numpy, PIL.Image, openvino"]),
            ("import skanimal", ["-c", "import skanimal"]),
            ("joblib.load + predict", ["-c", (
                f"import joblib; joblib.load({str(model)!r}).predict([{str(image)!r}])")]),
            ("skanimal predict MODEL one.jpg", ["-m", "skanimal", "predict", str(model),
                                                 str(image)]),
        ]
        # -X importtime: its log (stderr) says which modules each process imported
        starts = [(name, [sys.executable, "-X", "importtime", *argv]) for name, argv in starts]
        results = [(name, *timed(argv, args.repeats, env)) for name, argv in starts]
        results.append(("  ... compiled network already cached", *timed(
            starts[-1][1], args.repeats, env, compiled=Path(tmp) / "compiled")))
        # pandas is no dependency of skanimal (the test extra brings it), yet scikit-learn
        # imports it whenever it is installed: a core install's start, without it.
        without_pandas = (
            "import runpy, sys; sys.modules['pandas'] = None; "
            f"sys.argv = ['skanimal', 'predict', {str(model)!r}, {str(image)!r}]; "
            "runpy.run_module('skanimal', run_name='__main__', alter_sys=True)")
        results.append(("  ... and no pandas installed (core install)", *timed(
            [sys.executable, "-X", "importtime", "-c", without_pandas], args.repeats, env,
            compiled=Path(tmp) / "compiled")))
        results.append(("import sklearn.pipeline (to unpickle a model)", *timed(
            [sys.executable, "-X", "importtime", "-c", "import sklearn.pipeline"],
            args.repeats, env)))
        saved = Path(model).with_suffix(".skanimal")
        if saved.is_file():  # skanimal.save's file: loaded without scikit-learn
            light = [sys.executable, "-X", "importtime", "-m", "skanimal", "predict",
                     str(saved), str(image)]
            results.append(("skanimal predict MODEL.skanimal one.jpg", *timed(
                light, args.repeats, env)))
            results.append(("  ... compiled network already cached", *timed(
                light, args.repeats, env, compiled=Path(tmp) / "compiled-saved")))
        # Interleaved, a run of each in turn: the machine's speed drifts over minutes, and
        # the ratio is the point.
        bares, sorts = [], []
        for _ in range(args.sort_repeats or args.repeats):
            bares.append(timed([sys.executable, "-X", "importtime", "-c", (
                "import joblib; from pathlib import Path; "
                f"paths = sorted(map(str, Path({str(photos)!r}).rglob('*.jpg'))); "
                f"joblib.load({str(model)!r}).predict(paths)")], 1, env))
            sorts.append(timed([sys.executable, "-X", "importtime", "-m", "skanimal", "sort",
                                str(model), str(photos), "--into", str(out), "--copy"],
                               1, env, fresh=out))
        bare, sort = min(bares), min(sorts)
        # Each pair ran back to back: its ratio is the least touched by the machine's drift.
        pair_ratios = sorted(s[0] / b[0] for b, s in zip(bares, sorts))
        floats = []
        if args.float:
            float_model, ov_model, agreement = build_float_model(tmp)
            floats = [
                ("float32: skanimal predict (TensorFlow)", timed(
                    [sys.executable, "-X", "importtime", "-m", "skanimal", "predict",
                     str(float_model), str(image)], args.repeats, env)),
                ('float32: skanimal predict (engine="openvino")', timed(
                    [sys.executable, "-X", "importtime", "-m", "skanimal", "predict",
                     str(ov_model), str(image)], args.repeats, env)),
                ('  ... compiled network already cached', timed(
                    [sys.executable, "-X", "importtime", "-m", "skanimal", "predict",
                     str(ov_model), str(image)], args.repeats, env,
                    compiled=Path(tmp) / "compiled-float")),
            ]
    load_after = os.getloadavg()
    floor = results[0][1]
    print(f"{'':44} {'wall s':>7} {'x floor':>8}  imported")
    for name, wall, imported in results:
        print(f"{name:44} {wall:7.2f} {wall / floor:8.2f}  {imported}")
    print(f"\n{'':44} {'wall s':>7} {'x bare':>8}  imported")
    print(f"{f'load + predict {n_photos} photos, one process':44} {bare[0]:7.2f} "
          f"{1:8.2f}  {bare[1]}")
    print(f"{f'skanimal sort {n_photos} photos, cold':44} {sort[0]:7.2f} "
          f"{sort[0] / bare[0]:8.2f}  {sort[1]}")
    print(f"{'  ... sort / bare of each pair run in turn':44} {'':7} "
          f"{statistics.median(pair_ratios):8.2f}  median of "
          f"{', '.join(f'{r:.2f}' for r in pair_ratios)}")
    for name, (wall, imported) in floats:
        print(f"{name:44} {wall:7.2f} {wall / floor:8.2f}  {imported}  (x floor)")
    if floats:
        print(f"float32 one-photo predict, TensorFlow / OpenVINO: "
              f"{floats[0][1][0] / floats[1][1][0]:.2f}x\n{agreement}")
    print("\ntargets: skanimal predict within 4x of the floor; the cold sort within 1.15x of "
          "the bare load + predict (issue 23.3)")
    print(f"load average (1 min) before and after: {load_before[0]:.2f}, {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores; best of {args.repeats} runs per row")


if __name__ == "__main__":
    main()
