"""Reports: plots are real figures, metrics agree with scikit-learn, files are written."""

import io
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)
from sklearn.pipeline import make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures
from skanimal.report import (
    REPORT_FILES,
    add_provenance,
    classification_metrics,
    classification_text,
    compute_metrics,
    evaluate,
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
    predict_with_proba,
    unknown_labels,
    write_report,
)

from .conftest import SMALL


@pytest.fixture(scope="module")
def fitted(split):
    """A quickly trained pipeline with validation curves (few epochs: some mistakes)."""
    X_train, _, y_train, _ = split
    pipe = make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL),
        BottleneckClassifier(epochs=4, learning_rate=1e-3, validation_split=0.2,
                             random_state=0),
    )
    return pipe.fit(X_train, y_train)


def render(fig):
    """PNG-render a figure; return it as an RGB array."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))


def assert_real_png(path, min_size=(200, 150)):
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert width >= min_size[0] and height >= min_size[1], (path, image.size)
    assert pixels.std() > 0, f"{path} is blank"


# ---------------------------------------------------------------------------- history


def test_plot_history_of_classifier_pipeline_and_dict(fitted):
    head = fitted[-1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(head.history_)
    for source in (fitted, head, dict(head.history_)):
        fig = plot_history(source)
        assert isinstance(fig, Figure)
        loss_ax, acc_ax = fig.axes
        # training and validation curves, one point per epoch
        assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2
        np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), head.history_["loss"])
        np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), head.history_["val_accuracy"])
        np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), np.arange(1, 5))
        assert render(fig).std() > 0


def test_plot_history_training_only_and_given_axes():
    history = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.4, 0.7, 0.9]}
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert plot_history(history, ax=axes) is fig
    assert [len(ax.lines) for ax in axes] == [1, 1]
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["training"]
    with pytest.raises(ValueError, match="pair of Axes"):
        plot_history(history, ax=axes[0])


def test_plot_history_without_history_raises():
    with pytest.raises(NotFittedError, match="no training history"):
        plot_history(BottleneckClassifier())
    with pytest.raises(ValueError, match="'loss'"):
        plot_history({"accuracy": [0.5]})


# -------------------------------------------------------------------- confusion matrix


def test_plot_confusion_matrix():
    y_true = ["cat", "dog", "dog", "bird", "cat"]
    y_pred = ["cat", "dog", "cat", "bird", "cat"]
    labels = ["dog", "cat", "bird"]
    fig = plot_confusion_matrix(y_true, y_pred, labels=labels)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    np.testing.assert_array_equal(ax.images[0].get_array(),
                                  confusion_matrix(y_true, y_pred, labels=labels))
    assert render(fig).std() > 0
    normalized = plot_confusion_matrix(y_true, y_pred, normalize="true").axes[0]
    np.testing.assert_allclose(normalized.images[0].get_array().sum(axis=1), 1)


def test_plots_do_not_touch_pyplot_or_the_backend():
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    plot_confusion_matrix(["a", "b"], ["a", "a"])
    plot_history({"loss": [1, 0.5]})
    plot_misclassified(["x.png"], ["a"], ["a"])
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == figures


# ------------------------------------------------------------------------ misclassified


def test_plot_misclassified_contact_sheet(split, shapes):
    _, X_test, _, y_test = split
    y_pred = y_test.copy()
    wrong = [0, 3, 7]
    y_pred[wrong] = np.where(y_test[wrong] == "circle", "square", "circle")
    fig = plot_misclassified(X_test, y_test, y_pred, thumbnail=48)
    assert isinstance(fig, Figure)
    with_images = [ax for ax in fig.axes if ax.images]
    assert len(with_images) == 3
    titles = [ax.get_title() for ax in with_images]
    assert titles == [f"{y_test[i]} / {y_pred[i]}" for i in wrong]
    assert with_images[0].images[0].get_array().shape == (48, 48, 3)
    assert render(fig).std() > 0

    limited = plot_misclassified(X_test, y_test, y_pred, max_images=2)
    assert len([ax for ax in limited.axes if ax.images]) == 2
    assert "first 2 shown" in limited.get_suptitle()


def test_plot_misclassified_accepts_arrays():
    images = np.zeros((2, 20, 30, 3), dtype=np.uint8)
    images[1, :, :, 0] = 255
    fig = plot_misclassified(images, ["a", "b"], ["a", "c"], thumbnail=(24, 36))
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 1
    assert shown[0].images[0].get_array().shape == (24, 36, 3)
    assert shown[0].images[0].get_array()[..., 0].min() == 255


def test_plot_misclassified_with_none_wrong(split):
    _, X_test, _, y_test = split
    fig = plot_misclassified(X_test, y_test, y_test)
    assert isinstance(fig, Figure)
    assert not any(ax.images for ax in fig.axes)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("No misclassified images" in text for text in texts)
    assert render(fig).std() > 0


def test_plot_misclassified_checks_lengths():
    with pytest.raises(ValueError, match="Inconsistent"):
        plot_misclassified(["a.png", "b.png"], ["a"], ["a"])


# ------------------------------------------------------------------------------ metrics


def test_classification_metrics_match_sklearn(fitted, split):
    _, X_test, _, y_test = split
    metrics = classification_metrics(fitted, X_test, y_test)
    classes = fitted.classes_
    y_pred = fitted.predict(X_test)
    proba = fitted.predict_proba(X_test)
    assert metrics["classes"] == list(classes)
    assert metrics["n_samples"] == len(y_test)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, y_pred))
    assert metrics["log_loss"] == pytest.approx(log_loss(y_test, proba, labels=classes),
                                                rel=1e-5)
    assert metrics["confusion_matrix"] == confusion_matrix(y_test, y_pred,
                                                           labels=classes).tolist()
    p, r, f, s = precision_recall_fscore_support(y_test, y_pred, labels=classes,
                                                 zero_division=0)
    for i, name in enumerate(classes):
        assert metrics["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    report = classification_report(y_test, y_pred, output_dict=True, zero_division=0)
    assert metrics["macro_avg"]["f1"] == pytest.approx(report["macro avg"]["f1-score"])
    json.dumps(metrics)  # plain Python values only


def test_classification_metrics_reject_unknown_classes(fitted, split):
    _, X_test, _, y_test = split
    y = y_test.copy()
    y[0] = "hexagon"
    with pytest.raises(ValueError, match="hexagon"):
        classification_metrics(fitted, X_test, y)


def test_report_evaluate_is_a_deprecated_name_of_classification_metrics(fitted, split):
    # workflow.evaluate (a folder) and report.evaluate (a pipeline and X) were two public
    # names "evaluate" for different things; the report's keeps working for one release.
    _, X_test, _, y_test = split
    with pytest.warns(FutureWarning, match="classification_metrics"):
        metrics = evaluate(fitted, X_test, y_test)
    assert metrics == classification_metrics(fitted, X_test, y_test)


# ------------------------------------------------------------------------- write_report


def test_write_report_writes_every_file(fitted, split, tmp_path):
    _, X_test, _, y_test = split
    report_dir = tmp_path / "nested" / "report"
    sizes = {"train": 72, "test": len(y_test)}
    timings = {"fit_s": 1.5}
    metrics = write_report(fitted, X_test, y_test, report_dir, sizes=sizes, timings=timings)

    assert sorted(p.name for p in report_dir.iterdir()) == sorted(REPORT_FILES)
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert_real_png(report_dir / name)

    saved = json.loads((report_dir / "metrics.json").read_text())
    assert saved == metrics
    y_pred = fitted.predict(X_test)
    classes = list(fitted.classes_)
    assert saved["accuracy"] == pytest.approx(accuracy_score(y_test, y_pred))
    assert saved["log_loss"] == pytest.approx(
        log_loss(y_test, fitted.predict_proba(X_test), labels=classes), rel=1e-5)
    assert saved["classes"] == classes
    assert saved["confusion_matrix"] == confusion_matrix(y_test, y_pred,
                                                         labels=classes).tolist()
    p, r, f, s = precision_recall_fscore_support(y_test, y_pred, labels=classes,
                                                 zero_division=0)
    assert [saved["per_class"][c]["precision"] for c in classes] == pytest.approx(p)
    assert [saved["per_class"][c]["recall"] for c in classes] == pytest.approx(r)
    assert [saved["per_class"][c]["f1"] for c in classes] == pytest.approx(f)
    assert [saved["per_class"][c]["support"] for c in classes] == list(s)
    assert saved["sizes"] == sizes
    assert saved["timings"] == timings
    assert saved["skanimal_version"] == skanimal.__version__
    assert saved["model"]["bottleneckfeatures"]["params"]["image_size"] == list(SMALL)
    assert saved["model"]["bottleneckclassifier"]["class"] == "BottleneckClassifier"

    text = (report_dir / "classification_report.txt").read_text()
    assert classification_report(y_test, y_pred, labels=classes, digits=3,
                                  zero_division=0) in text


@pytest.mark.slow
def test_write_report_for_a_classifier_without_history(split, tmp_path):
    """Any classifier after BottleneckFeatures gets every file (curves replaced by a note)."""
    from sklearn.dummy import DummyClassifier

    _, X_test, _, y_test = split
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                         DummyClassifier(strategy="most_frequent"))
    pipe.fit(X_test, y_test)
    metrics = write_report(pipe, X_test, y_test, tmp_path)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, pipe.predict(X_test)))
    assert metrics["sizes"] == {"test": len(y_test)}
    assert metrics["timings"] == {}
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert_real_png(tmp_path / name)


def test_report_files_are_atomic_with_normal_permissions(fitted, split, tmp_path):
    import os
    import stat

    from skanimal.fileio import TMP_PREFIX

    _, X_test, _, y_test = split
    umask = os.umask(0o022)
    try:
        write_report(fitted, X_test, y_test, tmp_path)
    finally:
        os.umask(umask)
    for name in REPORT_FILES:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_model_description_keeps_values_json_cannot_hold_as_text(split, tmp_path):
    """A callback object among the parameters must not stop the report."""
    from sklearn.dummy import DummyClassifier

    class Marker:
        def __repr__(self):
            return "<marker>"

    class TaggedDummy(DummyClassifier):
        def __init__(self, strategy="prior", tags=None):
            super().__init__(strategy=strategy)
            self.tags = tags

    _, X_test, _, y_test = split
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                         TaggedDummy(tags=[1, Marker()]))
    pipe.fit(X_test, y_test)
    metrics = write_report(pipe, X_test, y_test, tmp_path)
    assert metrics["model"]["taggeddummy"]["params"]["tags"] == [1, "<marker>"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


# ----------------------------------------------------------- building blocks of a report


def test_report_building_blocks_agree_with_evaluate(fitted, split):
    _, X_test, _, y_test = split
    classes, proba, y_pred = predict_with_proba(fitted, X_test)
    np.testing.assert_array_equal(classes, fitted.classes_)
    np.testing.assert_allclose(proba, fitted.predict_proba(X_test))
    np.testing.assert_array_equal(y_pred, fitted.predict(X_test))
    metrics = compute_metrics(y_test, y_pred, proba, classes)
    assert metrics == classification_metrics(fitted, X_test, y_test)
    text = classification_text(y_test, y_pred, classes)
    assert text == classification_report(y_test, y_pred, labels=classes, digits=3,
                                         zero_division=0)
    complete = add_provenance(metrics, fitted, sizes={"test": 24}, timings={"fit_s": 2})
    assert {k: complete[k] for k in metrics} == metrics
    assert complete["sizes"] == {"test": 24} and complete["timings"] == {"fit_s": 2}
    assert complete["files"] == list(REPORT_FILES)
    assert complete["skanimal_version"] == skanimal.__version__


def test_unknown_labels_compares_values_not_text():
    assert unknown_labels(["cat", "dog", "emu", "cat"], np.array(["cat", "dog"])) == ["emu"]
    assert unknown_labels(["0", "1"], np.array([0, 1])) == ["0", "1"]
    assert unknown_labels([1, 0], np.array([0, 1])) == []
