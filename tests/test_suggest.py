"""suggest_images: uncertain photos first, and not near-copies of each other."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skanimal import BottleneckFeatures, make_shapes
from skanimal.suggest import k_center_greedy, suggest_images

from .conftest import SMALL


@pytest.fixture(scope="module")
def model_and_pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    train = make_shapes(root / "train", n_per_class=5, image_size=40)
    pool = make_shapes(root / "pool", n_per_class=10, image_size=40, random_state=3)
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                          StandardScaler(), LogisticRegression(C=0.01, max_iter=500))
    model.fit(train.paths, train.target)
    return model, pool


def test_k_center_greedy_spreads_its_picks():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    points = np.concatenate([c + rng.normal(0, 0.1, (25, 2)) for c in centres])
    picked = k_center_greedy(points, 4)
    assert sorted(i // 25 for i in picked) == [0, 1, 2, 3]  # one per cluster
    assert k_center_greedy(points, 0) == [] and len(k_center_greedy(points, 500)) == 100


def test_suggestions_are_the_uncertain_ones(model_and_pool):
    model, pool = model_and_pool
    proba = model.predict_proba(pool.paths)
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = dict(zip(pool.paths, top2[:, 1] - top2[:, 0]))
    result = suggest_images(model, pool.root, 5, candidates=12)
    assert len(result.rows) == 5 and len({r["path"] for r in result.rows}) == 5
    cutoff = np.sort(list(margin.values()))[11]
    for row in result.rows:
        assert row["margin"] == pytest.approx(margin[row["path"]], abs=1e-5)
        assert row["margin"] <= cutoff + 1e-6
        assert row["probability_1"] >= row["probability_2"]
    pure = suggest_images(model, pool.root, 5, candidates=5)
    expected = np.sort(list(margin.values()))[:5]
    assert sorted(r["margin"] for r in pure.rows) == pytest.approx(expected, abs=1e-5)


def test_near_copies_of_one_confusing_photo_are_suggested_once(model_and_pool, tmp_path):
    model, pool = model_and_pool
    shutil.copytree(pool.root, tmp_path / "pool")
    proba = model.predict_proba(pool.paths)
    top2 = np.sort(proba, axis=1)[:, -2:]
    confusing = Path(pool.paths[int(np.argmin(top2[:, 1] - top2[:, 0]))])
    for k in range(10):
        shutil.copy(confusing, tmp_path / "pool" / f"copy_{k}.jpg")
    pure = suggest_images(model, tmp_path / "pool", 6, candidates=6)
    copies = lambda rows: sum(Path(r["path"]).read_bytes() == confusing.read_bytes() for r in rows)  # noqa: E731
    assert copies(pure.rows) == 6  # margin alone picks only the copies
    diverse = suggest_images(model, tmp_path / "pool", 6)
    assert copies(diverse.rows) == 1


def test_into_copies_them_without_touching_the_pool(model_and_pool, tmp_path):
    model, pool = model_and_pool
    before = {p: Path(p).read_bytes() for p in pool.paths}
    result = suggest_images(model, pool.root, 4, into=tmp_path / "to-label")
    assert sorted(p.name for p in (tmp_path / "to-label").iterdir()) == \
        sorted(Path(r["path"]).name for r in result.rows)
    assert [p.read_bytes() for p in result.copied] == [before[r["path"]] for r in result.rows]
    assert {p: Path(p).read_bytes() for p in pool.paths} == before
    again = suggest_images(model, pool.root, 4, into=tmp_path / "to-label")
    assert again.copied == result.copied and len(list((tmp_path / "to-label").iterdir())) == 4


def test_bad_arguments(model_and_pool, tmp_path):
    model, pool = model_and_pool
    with pytest.raises(ValueError, match="n must be"):
        suggest_images(model, pool.root, 0)
    with pytest.raises(ValueError, match="nowhere"):
        suggest_images(model, tmp_path / "nowhere", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        suggest_images(model, tmp_path / "empty", 3)


def test_photos_unlike_the_training_photos_come_first(model_and_pool):
    from skanimal import BottleneckClassifier

    _, pool = model_and_pool
    train = make_shapes(Path(pool.root).parent / "train-keras", n_per_class=5, image_size=40)
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                          BottleneckClassifier(epochs=2, batch_size=8, random_state=0))
    model.fit(train.paths, train.target)
    novelty = model[-1].novelty_
    features = model[0].transform(pool.paths)
    scores = novelty.novelty_score(features)
    saved = novelty.threshold_
    try:  # 8 of the 40 pool photos unlike the training photos
        novelty.threshold_ = float(np.sort(scores)[-9])
        unlike = set(np.asarray(pool.paths)[scores > novelty.threshold_])
        assert len(unlike) == 8
        pure = suggest_images(model, pool.root, 5, candidates=5)
        diverse = suggest_images(model, pool.root, 10, candidates=10)
    finally:
        novelty.threshold_ = saved
    # whatever their margin: with 5 candidates, all 5 picks are unlike the training photos
    assert {r["path"] for r in pure.rows} <= unlike
    assert all(r["unlike_training"] for r in pure.rows)
    # the 8 unlike ones, then the 2 smallest margins of the others
    assert {r["path"] for r in diverse.rows if r["unlike_training"]} == unlike
    proba = model.predict_proba(pool.paths)
    top2 = np.sort(proba, axis=1)[:, -2:]
    others = sorted((m, p) for p, m in zip(pool.paths, top2[:, 1] - top2[:, 0])
                    if p not in unlike)
    assert {r["path"] for r in diverse.rows if not r["unlike_training"]} == \
        {p for _, p in others[:2]}
