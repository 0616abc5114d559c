"""Start-up (issue 23): ``import skanimal`` is light, and the commands that use an int8 model
(sort, suggest, audit) run without importing TensorFlow or Keras.

Each check runs in a fresh interpreter, since what a process has imported is the point.
How fast the start is, is measured by ``benchmarks/bench_start.py``, not here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import skanimal

from .conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "scikeras")


def run_python(code, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_skanimal_defers_the_estimators_and_keeps_its_api():
    result = run_python("""
import json, sys
import skanimal
loaded = sorted(m for m in ("sklearn", "scipy", "pandas", "tensorflow", "keras", "PIL")
                if m in sys.modules)
missing = sorted(set(skanimal.__all__) - set(dir(skanimal)))
from skanimal import BottleneckClassifier, BottleneckFeatures, load
print(json.dumps({"loaded": loaded, "missing": missing,
                  "resolved": all(getattr(skanimal, n) is not None for n in skanimal.__all__),
                  "features": BottleneckFeatures.__module__}))
""")
    assert result == {"loaded": [], "missing": [], "resolved": True,
                      "features": "skanimal.features"}


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'BottleneckFeature'"):
        skanimal.BottleneckFeature  # noqa: B018 - the typo is the point


# One process runs the commands one after the other and says, after each, which of HEAVY it
# has imported (and, after predict, which runs first, whether scoring photos pulled in
# scikit-learn's neighbours module); then uses SciPy's statistics, which the command defers
# (skanimal._deferred).
_COMMANDS = """
import contextlib, io, json, sys
from skanimal.cli import main
model, photos, out = sys.argv[1:]
HEAVY = ("tensorflow", "keras", "scikeras", "sklearn.neighbors")
runs = {
    "predict": ["predict", model, photos],
    "sort": ["sort", model, photos, "--into", out, "--copy"],
    "suggest": ["suggest", model, photos, "-n", "3", "--format", "json"],
    "audit": ["audit", photos, "--model", model, "--format", "json"],
}
imported, status = {}, {}
for name, argv in runs.items():
    with contextlib.redirect_stdout(io.StringIO()):
        status[name] = main(argv)
    imported[name] = sorted(m for m in HEAVY if m in sys.modules)
import scipy.stats
print(json.dumps({"imported": imported, "status": status,
                  "norm": float(scipy.stats.norm.cdf(0.0))}))
"""


@pytest.mark.slow
def test_sort_suggest_audit_of_an_int8_model_import_no_tensorflow(shapes, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import joblib
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures

    pipe = make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg", precision="int8",
                           cache=False),
        BottleneckClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0))
    pipe.fit(shapes.paths, shapes.target)
    joblib.dump(pipe, tmp_path / "int8.joblib")
    photos = Path(shapes.paths[0]).parents[1]  # the class-per-folder root

    result = run_python(_COMMANDS, tmp_path / "int8.joblib", photos, tmp_path / "sorted")

    assert result["status"] == {"predict": 0, "sort": 0, "suggest": 0, "audit": 0}
    # audit's near-duplicate search uses scikit-learn's radius neighbours.
    assert result["imported"] == {"predict": [], "sort": [], "suggest": [],
                                  "audit": ["sklearn.neighbors"]}
    assert len(list((tmp_path / "sorted").rglob("*.jpg"))) == len(shapes.paths)
    assert result["norm"] == 0.5  # a deferred module still works when used
