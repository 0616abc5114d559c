"""Start-up of an int8 model (issue 23.3): ``skanimal predict MODEL one.jpg`` side by side with
the imports int8 inference really needs, in fresh processes.

Rows (best wall time of ``--repeats`` runs, each in a new interpreter):

* ``import numpy, PIL.Image, openvino`` — the floor: what int8 inference needs;
* ``import skanimal``;
* ``joblib.load + predict`` — the library path: load the model, predict one photo;
* ``skanimal predict MODEL one.jpg`` — the command.

Each row prints its ratio to the floor (target: the command within 4x) and which of
TensorFlow, Keras and SciKeras the process imported (read from ``-X importtime``, which adds
a little to every row alike), so a module that still pulls them in on
the inference path shows here.

Usage::

    python benchmarks/bench_start.py                  # builds a MobileNetV2 int8 model from
                                                      # ../shared (weights + animals-dev)
    python benchmarks/bench_start.py --model M.joblib --image one.jpg
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HEAVY = ("tensorflow", "keras", "scikeras")


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
    """A MobileNetV2 int8 pipeline trained on 5 photos per class of animals-dev."""
    import joblib
    import numpy as np
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder

    data = load_image_folder(SHARED / "data" / "animals-dev")
    target = np.asarray(data.target)
    keep = np.concatenate([np.flatnonzero(target == c)[:5] for c in np.unique(target)])
    paths = np.asarray(data.paths)[keep]
    weights = SHARED / "weights" / "mobilenet_v2_1.0_pretrained_notop.weights.h5"
    pipe = make_pipeline(BottleneckFeatures("mobilenet_v2", weights=str(weights),
                                            precision="int8", cache=False),
                         BottleneckClassifier(random_state=0))
    pipe.fit(paths, target[keep])
    model = Path(directory) / "int8.joblib"
    joblib.dump(pipe, model)
    return model, Path(paths[0])


def timed(argv, repeats, env):
    """Best wall time of ``argv`` over ``repeats`` runs, and the heavy modules it imported."""
    best, imported = float("inf"), "?"
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{done.stderr[-2000:]}")
        best = min(best, wall)
        imported = heavy_imports(done.stderr)
    return best, imported


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an int8 model written by joblib.dump")
    parser.add_argument("--image", type=Path, help="the photo to predict")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryDirectory() as tmp:
        model, image = args.model, args.image
        if model is None:
            model, built_image = build_model(tmp)
            image = image or built_image
        rows = [
            ("import numpy, PIL.Image, openvino", ["-c", "import numpy, PIL.Image, openvino"]),
            ("import skanimal", ["-c", "import skanimal"]),
            ("joblib.load + predict", ["-c", (
                f"import joblib; joblib.load({str(model)!r}).predict([{str(image)!r}])")]),
            ("skanimal predict MODEL one.jpg", ["-m", "skanimal", "predict", str(model),
                                                 str(image)]),
        ]
        # -X importtime: its log (stderr) says which modules each process imported
        rows = [(name, [sys.executable, "-X", "importtime", *argv]) for name, argv in rows]
        results = [(name, *timed(argv, args.repeats, env)) for name, argv in rows]
    floor = results[0][1]
    print(f"{'':34} {'wall s':>7} {'x floor':>8}  imported")
    for name, wall, imported in results:
        print(f"{name:34} {wall:7.2f} {wall / floor:8.2f}  {imported}")
    print("\ntarget: skanimal predict within 4x of the floor (issue 23.3)")


if __name__ == "__main__":
    main()
