"""scikit-learn's own estimator checks on BottleneckFeatures.

BottleneckClassifier runs the full suite in test_classifier.py. BottleneckFeatures takes
*images* (paths, or arrays of shape (n, h, w, 3)); scikit-learn skips every check for an
estimator whose tags say it does not take a 2-D array. To still run the checks of the
estimator API (cloning, parameters, init, repr, tags, unfitted errors), the instance under
test claims 2-D input, and each check that feeds it a 2-D numeric matrix is declared an
expected failure below, with the reason.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skanimal import BottleneckFeatures
from skanimal.exceptions import ImageLoadError


class BottleneckFeaturesUnderChecks(BottleneckFeatures):
    """BottleneckFeatures whose tags let scikit-learn run its checks (see module notes)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


IMAGES_ONLY = ("feeds a 2-D numeric matrix; BottleneckFeatures takes images (paths or "
               "(n, height, width, 3) arrays) and rejects it with ImageLoadError")

EXPECTED_FAILED_CHECKS = {
    name: IMAGES_ONLY
    for name in [
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
}
EXPECTED_FAILED_CHECKS.update({
    "check_estimator_sparse_array": "sparse matrices are not images; rejected with "
                                    "ImageLoadError, whose message does not say 'sparse'",
    "check_estimator_sparse_matrix": "sparse matrices are not images; rejected with "
                                     "ImageLoadError, whose message does not say 'sparse'",
    "check_estimators_empty_data_messages": "a (n, 0) matrix is not images; the message says "
                                            "what shape is expected, not '0 feature(s)'",
    "check_complex_data": "complex arrays are rejected as non-image input, not with "
                          "'Complex data not supported'",
})


@parametrize_with_checks(
    [BottleneckFeaturesUnderChecks(weights=None, image_size=(32, 32), cache=False)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failures_really_fail_for_the_stated_reason():
    # The declared failures are about input type, not a broken estimator: a 2-D matrix is
    # refused with skanimal's own error, naming the expected shape.
    import numpy as np
    import pytest

    transformer = BottleneckFeatures(weights=None, image_size=(32, 32), cache=False).fit()
    with pytest.raises(ImageLoadError, match=r"\(n_images, height, width, 3\)"):
        transformer.transform(np.zeros((5, 3)))
