"""skanimal.save/load for sharing: what the file holds, moved or embedded weights, tuples,
one-line refusals; and the per-image predictions every report carries."""

import csv
import shutil
import zipfile

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, WeightsUnavailableError
from skanimal.compat import pack_model
from skanimal.report import plot_misclassified, top_k_columns, write_predictions, write_report_files

SMALL = (32, 32)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("share-weights") / "mobilenet.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None,
                                   input_shape=(*SMALL, 3)).save_weights(path)
    return path


@pytest.fixture(scope="module")
def fitted(split, weights_file):
    X_train, X_test, y_train, _ = split
    pipe = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=str(weights_file), image_size=SMALL,
                           pooling="avg", cache=False),
        BottleneckClassifier(epochs=2, random_state=0),
    )
    return pipe.fit(X_train, y_train)


def test_the_file_holds_tuples_hashes_and_no_optimizer_state(fitted, split, tmp_path):
    _, X_test, _, _ = split
    path = skanimal.save(fitted, tmp_path / "m.skanimal")
    with zipfile.ZipFile(path) as zf:
        head_bytes = len(zf.read("head.keras"))
        assert "weights.h5" not in zf.namelist()
    head = fitted[-1].model_
    assert head_bytes < len(pack_model(head, optimizer_state=True)) - 3 * head.count_params()

    loaded = skanimal.load(path)
    assert loaded[0].image_size == SMALL and isinstance(loaded[0].image_size, tuple)
    assert isinstance(loaded[-1].hidden_layer_sizes, tuple)
    assert loaded[0].weights_identity_ == fitted[0].weights_identity_
    np.testing.assert_array_equal(loaded[0].training_hashes_, fitted[0].training_hashes_)
    np.testing.assert_allclose(loaded.predict_proba(X_test), fitted.predict_proba(X_test),
                               rtol=1e-5)


def test_load_takes_the_weights_new_place_or_the_embedded_copy(fitted, split, weights_file,
                                                               tmp_path, monkeypatch):
    _, X_test, _, _ = split
    expected = fitted.predict_proba(X_test)
    plain = skanimal.save(fitted, tmp_path / "plain.skanimal")
    shared = skanimal.save(fitted, tmp_path / "shared.skanimal", include_weights=True)
    with zipfile.ZipFile(shared) as zf:
        assert zf.read("weights.h5") == weights_file.read_bytes()

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(weights_file, moved / "w.h5")
    try:
        with pytest.raises(WeightsUnavailableError, match="no longer exists"):
            skanimal.load(plain).predict_proba(X_test)
        np.testing.assert_allclose(skanimal.load(plain, weights=moved).predict_proba(X_test),
                                   expected, rtol=1e-5)
        # The embedded copy goes to Keras' models folder, where skanimal also looks.
        np.testing.assert_allclose(skanimal.load(shared).predict_proba(X_test), expected,
                                   rtol=1e-5)
        copies = list((tmp_path / "keras-home" / "models").iterdir())
        assert len(copies) == 1 and copies[0].read_bytes() == (moved / "w.h5").read_bytes()
    finally:
        shutil.move(moved / "w.h5", weights_file)


def test_save_refuses_other_pipelines_in_one_line_naming_the_step(fitted):
    features, head = fitted.steps[0][1], fitted.steps[-1][1]
    for pipeline, fragment in [
        (make_pipeline(features, StandardScaler(), head), "step 'standardscaler' is a "
                                                          "StandardScaler"),
        (make_pipeline(features), "1 step(s)"),
        (head, "got a BottleneckClassifier"),
    ]:
        with pytest.raises(TypeError) as info:
            skanimal.save(pipeline, "never-written.skanimal")
        assert fragment in str(info.value) and "\n" not in str(info.value)
        assert len(str(info.value)) < 200


# -- per-image predictions in reports ----------------------------------------------------------


@pytest.fixture
def predictions():
    paths = [f"/photos/{name}.jpg" for name in
             ("a", "b", "a_very_long_file_name_from_a_phone_IMG_20240101_123456", "d")]
    classes = np.array(["cat", "dog", "fox"])
    y_true = np.array(["cat", "dog", "cat", "fox"], dtype=object)
    proba = np.array([[0.9, 0.05, 0.05],   # right
                      [0.6, 0.3, 0.1],     # wrong, 60 %
                      [0.1, 0.85, 0.05],   # wrong, 85 %
                      [0.2, 0.3, 0.5]])    # right
    return paths, y_true, proba, classes


def test_predictions_csv_has_a_row_per_image(predictions, tmp_path):
    paths, y_true, proba, classes = predictions
    write_predictions(tmp_path / "p.csv", paths, y_true, proba, classes)
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == paths
    assert rows[1] == {"path": paths[1], "true": "dog", "correct": "false",
                       "label_1": "cat", "probability_1": "0.600000",
                       "label_2": "dog", "probability_2": "0.300000",
                       "label_3": "fox", "probability_3": "0.100000"}
    assert list(rows[1]) == ["path", "true", "correct", *top_k_columns(3)]
    with pytest.warns(FutureWarning, match="top_k"):
        write_predictions(tmp_path / "q.csv", paths, y_true, proba, classes, alternatives=1)
    with open(tmp_path / "q.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["path", "true", "correct", *top_k_columns(2)]


def test_misclassified_shows_the_most_confident_mistakes_first_with_whole_names(predictions):
    paths, y_true, proba, classes = predictions
    y_pred = classes[proba.argmax(axis=1)]
    fig = plot_misclassified(paths, y_true, y_pred, proba=proba)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["cat / dog 85%", "dog / cat 60%"]
    assert shown[0].get_xlabel().replace("\n", "") == paths[2].rsplit("/", 1)[-1]
    assert "most confident first" in fig.get_suptitle()


def test_evaluate_reports_label_the_history_as_training(predictions, tmp_path, monkeypatch):
    import skanimal.report as report

    paths, y_true, proba, classes = predictions
    titles = []
    real = report.plot_history

    def spy(history, ax=None, *, title=None):
        titles.append(title)
        return real(history, ax, title=title)

    monkeypatch.setattr(report, "plot_history", spy)
    metrics = report.compute_metrics(y_true, classes[proba.argmax(1)], proba, classes)
    history = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8]}
    for is_training in (False, True):
        write_report_files(tmp_path / str(is_training), metrics, paths, y_true,
                           classes[proba.argmax(1)], history, proba=proba,
                           history_is_training=is_training)
        assert (tmp_path / str(is_training) / "predictions.csv").is_file()
    assert titles[0] is None and "recorded while it was trained" in titles[1]
