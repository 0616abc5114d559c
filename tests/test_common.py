"""scikit-learn's estimator checks over every skanimal estimator, and the checks all share.

Estimators: :class:`~skanimal.BottleneckFeatures`, :class:`~skanimal.BottleneckClassifier`
and :class:`~skanimal.augmentation.AugmentedClassifier` (wrapping a small features + head
pipeline). :class:`~skanimal.augmentation.ImageAugmentation` is a frozen value object (no
``fit``, no ``get_params``), not an estimator; its parameters are checked below with the rest.

``BottleneckFeatures`` and ``AugmentedClassifier`` take *images* (paths, or arrays of shape
(n, h, w, 3)); scikit-learn skips every check for an estimator whose tags say it does not
take a 2-D array. To still run the checks of the estimator API (cloning, parameters, init,
repr, tags, unfitted errors), the instance under test claims 2-D input, and each check that
feeds it a 2-D numeric matrix is an expected failure. Every expected failure of every
estimator, with its reason, is in :data:`EXPECTED_FAILED_CHECKS`; ``xfail_strict`` makes a
check that starts passing fail the suite, so the lists stay minimal.

TensorFlow runs its functions eagerly in this module (``tf.config.run_functions_eagerly``):
the checks are about the scikit-learn API, and a tiny network fit traced into a graph takes
about three times as long. Graph mode, the default, is what the other tests train in.
"""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skanimal import BottleneckClassifier, BottleneckFeatures
from skanimal.augmentation import AugmentedClassifier, ImageAugmentation
from skanimal.compat import InvalidParameterError
from skanimal.exceptions import ImageLoadError


class BottleneckFeaturesUnderChecks(BottleneckFeatures):
    """BottleneckFeatures whose tags let scikit-learn run its checks (see module notes)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


class AugmentedClassifierUnderChecks(AugmentedClassifier):
    """AugmentedClassifier whose tags let scikit-learn run its checks (see module notes)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


@pytest.fixture(autouse=True, scope="module")
def _eager_tensorflow():
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def small_pipeline():
    return make_pipeline(
        BottleneckFeatures(weights=None, image_size=(32, 32), cache=False),
        BottleneckClassifier(hidden_layer_sizes=(8,), epochs=1, learning_rate=1e-2),
    )


IMAGES_ONLY = ("feeds a 2-D numeric matrix; {name} takes images (paths or "
               "(n, height, width, 3) arrays) and rejects it with ImageLoadError")

_FEATURES_IMAGES_ONLY = [
    "check_dict_unchanged", "check_dont_overwrite_parameters",
    "check_f_contiguous_array_estimator", "check_fit2d_predict1d",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_estimators_dtypes", "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params", "check_readonly_memmap_input",
    "check_estimators_pickle", "check_fit_score_takes_y", "check_pipeline_consistency",
    "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_transformer_data_not_an_array",
    "check_dtype_object", "check_positive_only_tag_during_fit", "check_estimators_nan_inf",
    "check_fit2d_1feature", "check_fit2d_1sample",
]
_NOT_IMAGES = {
    "check_estimator_sparse_array": "sparse matrices are not images; rejected with "
                                    "ImageLoadError, whose message does not say 'sparse'",
    "check_estimator_sparse_matrix": "sparse matrices are not images; rejected with "
                                     "ImageLoadError, whose message does not say 'sparse'",
    "check_estimators_empty_data_messages": "a (n, 0) matrix is not images; the message says "
                                            "what shape is expected, not '0 feature(s)'",
    "check_complex_data": "complex arrays are rejected as non-image input, not with "
                          "'Complex data not supported'",
}
#: The 2-D matrix is refused (as not images) before anything else is looked at, so these
#: fail too, including the checks that expect an error about ``y`` or a one-class target.
_AUGMENTED_IMAGES_ONLY = sorted(set(_FEATURES_IMAGES_ONLY) - {
    "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_transformer_data_not_an_array",
} | {
    "check_classifier_data_not_an_array", "check_classifiers_classes",
    "check_classifiers_one_label", "check_classifiers_one_label_sample_weights",
    "check_classifiers_regression_target", "check_classifiers_train", "check_requires_y_none",
    "check_supervised_y_2d",
})

#: Every check each estimator is known to fail, and why.
EXPECTED_FAILED_CHECKS = {
    BottleneckFeatures: {
        **{name: IMAGES_ONLY.format(name="BottleneckFeatures")
           for name in _FEATURES_IMAGES_ONLY},
        **_NOT_IMAGES,
    },
    BottleneckClassifier: {
        "check_sample_weight_equivalence_on_dense_data": (
            "mini-batch training is not equivalent under sample repetition: Keras averages "
            "the weighted loss over the batch size, not over the sum of the weights, and "
            "repeated rows change the batches"
        ),
    },
    AugmentedClassifier: {
        **{name: IMAGES_ONLY.format(name="AugmentedClassifier")
           for name in _AUGMENTED_IMAGES_ONLY},
        **_NOT_IMAGES,
    },
}


def expected_failed_checks(estimator):
    for cls, failures in EXPECTED_FAILED_CHECKS.items():
        if isinstance(estimator, cls):
            return failures
    raise AssertionError(f"no expected failures declared for {type(estimator).__name__}")


@parametrize_with_checks(
    [
        BottleneckFeaturesUnderChecks(weights=None, image_size=(32, 32), cache=False),
        BottleneckClassifier(hidden_layer_sizes=(8,), epochs=2, batch_size=32,
                             learning_rate=1e-2),
        AugmentedClassifierUnderChecks(small_pipeline(), n_copies=1, random_state=0),
    ],
    expected_failed_checks=expected_failed_checks,
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_images_only_failures_really_fail_for_the_stated_reason():
    # The declared failures are about input type, not a broken estimator: a 2-D matrix is
    # refused with skanimal's own error, naming the expected shape.
    transformer = BottleneckFeatures(weights=None, image_size=(32, 32), cache=False).fit()
    with pytest.raises(ImageLoadError, match=r"\(n_images, height, width, 3\)"):
        transformer.transform(np.zeros((5, 3)))
    with pytest.raises(ImageLoadError, match=r"\(n_images, height, width, 3\)"):
        AugmentedClassifier(small_pipeline()).fit(np.zeros((4, 3)), [0, 0, 1, 1])


# ---------------------------------------------------------------- parameters: bool is no number

#: Every numeric parameter of every estimator (``verbose`` excepted: like scikit-learn's, it
#: is a level that also takes True/False as on/off).
NUMERIC_PARAMETERS = {
    BottleneckFeatures: ["image_size", "batch_size", "n_jobs"],
    BottleneckClassifier: ["hidden_layer_sizes", "dropout", "negative_slope", "learning_rate",
                           "epochs", "batch_size", "validation_split", "n_iter_no_change",
                           "random_state"],
    AugmentedClassifier: ["n_copies", "random_state"],
    ImageAugmentation: ["rotation", "shift", "zoom", "shear", "brightness"],
}


def _fit_with(cls, params):
    if cls is ImageAugmentation:
        return ImageAugmentation(**params)
    if cls is BottleneckFeatures:
        params = {"weights": None, "image_size": (32, 32), "cache": False, **params}
        return BottleneckFeatures(**params).fit(np.zeros((2, 32, 32, 3), np.uint8))
    if cls is AugmentedClassifier:
        images = np.zeros((4, 32, 32, 3), np.uint8)
        return AugmentedClassifier(small_pipeline(), **params).fit(images, [0, 0, 1, 1])
    X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    return BottleneckClassifier(**{"epochs": 1, **params}).fit(X, [0, 1] * 3)


@pytest.mark.parametrize("cls, name", [(cls, name) for cls, names in NUMERIC_PARAMETERS.items()
                                       for name in names],
                         ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("flag", [True, np.True_, False], ids=["True", "np.True_", "False"])
def test_bool_is_never_accepted_as_a_number(cls, name, flag):
    with pytest.raises(InvalidParameterError, match=rf"'{name}' parameter of {cls.__name__}"):
        _fit_with(cls, {name: flag})


def test_parameter_errors_are_both_value_and_type_errors():
    # scikit-learn's convention: callers catching either keep working
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)
