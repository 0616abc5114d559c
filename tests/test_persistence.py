"""skanimal.save / skanimal.load: a pickle-free model file that Keras loads in safe_mode."""

import json
import subprocess
import sys
import textwrap
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, IncompatibleModelError

from .conftest import SMALL


@pytest.fixture(scope="module")
def fitted(shapes):
    return make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL),
        BottleneckClassifier(epochs=3, random_state=0, validation_split=0.2),
    ).fit(shapes.paths, shapes.target)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return skanimal.save(fitted, tmp_path_factory.mktemp("model") / "shapes.skanimal")


def test_save_load_gives_identical_predictions(fitted, saved, shapes):
    loaded = skanimal.load(saved)
    np.testing.assert_array_equal(loaded.predict_proba(shapes.paths),
                                  fitted.predict_proba(shapes.paths))
    np.testing.assert_array_equal(loaded.predict(shapes.paths), fitted.predict(shapes.paths))
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    head = loaded[-1]
    assert head.history_["val_loss"] == pytest.approx(fitted[-1].history_["val_loss"])
    with pytest.raises(ValueError, match="features"):
        head.predict(np.zeros((2, 7), dtype=np.float32))  # input width checked as after fit


def test_file_holds_json_and_native_keras_head_and_no_pickle(saved):
    import keras

    with zipfile.ZipFile(saved) as zf:
        assert sorted(zf.namelist()) == ["head.keras", "novelty.npz", "skanimal.json"]
        description = json.loads(zf.read("skanimal.json"))
        head_bytes = zf.read("head.keras")
        assert all(b"\x80\x04\x95" not in zf.read(name) for name in zf.namelist())  # pickle
    assert description["versions"]["skanimal"] == skanimal.__version__
    assert description["versions"]["keras"] == keras.__version__
    assert [step["class"] for step in description["steps"]] == ["BottleneckFeatures",
                                                                "BottleneckClassifier"]
    head_file = saved.parent / "head.keras"
    head_file.write_bytes(head_bytes)
    model = keras.saving.load_model(head_file, safe_mode=True)
    assert model.output_shape[-1] == 4


@pytest.mark.slow
def test_loads_in_a_new_process(fitted, saved, shapes, tmp_path):
    out = tmp_path / "proba.npy"
    paths_file = tmp_path / "paths.txt"
    paths_file.write_text("\n".join(shapes.paths))
    script = textwrap.dedent(f"""
        import numpy as np, skanimal
        pipe = skanimal.load({str(saved)!r})
        paths = open({str(paths_file)!r}).read().splitlines()
        np.save({str(out)!r}, pipe.predict_proba(paths))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    # another process computes the features with its own TensorFlow threads: equal up to
    # float32 rounding, the same classes
    expected = fitted.predict_proba(shapes.paths)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-6)
    assert (np.load(out).argmax(1) == expected.argmax(1)).all()


def test_incompatible_feature_format_is_refused(saved, tmp_path):
    tampered = tmp_path / "old.skanimal"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tampered, "w") as dst:
        description = json.loads(src.read("skanimal.json"))
        description["feature_format_version"] += 1
        dst.writestr("skanimal.json", json.dumps(description))
        dst.writestr("head.keras", src.read("head.keras"))
    with pytest.raises(IncompatibleModelError, match="features of format"):
        skanimal.load(tampered)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 broken"])
def test_non_model_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.skanimal"
    path.write_bytes(content)
    with pytest.raises(IncompatibleModelError, match="not a skanimal model"):
        skanimal.load(path)


def test_joblib_file_given_to_load_is_refused_with_advice(fitted, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    with pytest.raises(IncompatibleModelError):
        skanimal.load(path)


def test_unknown_step_class_in_description_is_refused(saved, tmp_path):
    tampered = tmp_path / "evil.skanimal"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tampered, "w") as dst:
        description = json.loads(src.read("skanimal.json"))
        description["steps"][0]["class"] = "os.system"
        dst.writestr("skanimal.json", json.dumps(description))
        dst.writestr("head.keras", src.read("head.keras"))
    with pytest.raises(IncompatibleModelError, match="invalid pipeline description"):
        skanimal.load(tampered)


def test_only_skanimal_pipelines_can_be_saved(fitted, tmp_path):
    other = make_pipeline(StandardScaler(), BottleneckClassifier())
    with pytest.raises(TypeError, match="joblib"):
        skanimal.save(other, tmp_path / "x.skanimal")
    assert not (tmp_path / "x.skanimal").exists()


def test_joblib_pickle_records_versions(fitted, tmp_path):
    import keras
    import sklearn

    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    features = joblib.load(path)[0]
    assert features.versions_ == {"skanimal": skanimal.__version__, "keras": keras.__version__,
                                  "scikit-learn": sklearn.__version__}


def test_save_is_atomic_with_normal_permissions(fitted, tmp_path):
    import os
    import stat

    from skanimal.fileio import TMP_PREFIX

    path = tmp_path / "new" / "shapes.skanimal"
    umask = os.umask(0o022)
    try:
        assert skanimal.save(fitted, path) == path
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == ["shapes.skanimal"]  # no temporary file left
    assert not any(name.startswith(TMP_PREFIX) for name in os.listdir(tmp_path))


def test_parameters_json_cannot_hold_are_refused_and_nothing_is_written(fitted, tmp_path):
    head = fitted[-1]
    previous = head.class_weight
    head.class_weight = {"circle": object()}
    try:
        with pytest.raises(TypeError, match=r"class_weight=.* cannot be stored without "
                                            r"pickle; use joblib.dump"):
            skanimal.save(fitted, tmp_path / "x.skanimal")
    finally:
        head.class_weight = previous
    assert list(tmp_path.iterdir()) == []
