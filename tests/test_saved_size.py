"""Saved heads leave the optimizer's state out unless training is to be resumed."""

import pickle

import numpy as np
import pytest

from skanimal import BottleneckClassifier


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((60, 2000), dtype=np.float32)
    y = np.repeat(["cat", "dog", "fox"], 20)
    return X, y


def _optimizer_values(head):
    return sum(int(np.prod(v.shape)) for v in head.model_.optimizer.variables)


def test_a_pickled_head_holds_no_optimizer_state_and_predicts_the_same(data):
    X, y = data
    head = BottleneckClassifier(epochs=2, random_state=0).fit(X, y)
    n_weights = head.model_.count_params()
    resumable = pickle.dumps(head.set_params(warm_start=True))
    small = pickle.dumps(head.set_params(warm_start=False))
    # Adam (RMSprop) keeps two (one) moving averages per weight: 4 bytes each that predicting
    # never reads.
    assert len(resumable) - len(small) > 0.9 * 4 * n_weights
    assert _optimizer_values(head) > n_weights  # the fitted head itself keeps its state

    loaded = pickle.loads(small)
    np.testing.assert_allclose(loaded.predict_proba(X), head.predict_proba(X), rtol=1e-6)
    loaded.set_params(warm_start=True, epochs=1).fit(X, y)  # training can go on from here
    assert loaded.history_["loss"]


def test_warm_start_pickles_keep_the_optimizer_state(data):
    X, y = data
    head = BottleneckClassifier(epochs=2, random_state=0, warm_start=True).fit(X, y)
    loaded = pickle.loads(pickle.dumps(head))
    for saved, original in zip(loaded.model_.optimizer.variables,
                               head.model_.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(original))
    assert _optimizer_values(loaded) > head.model_.count_params()
