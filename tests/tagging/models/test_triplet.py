import json

import keras
import numpy as np
import pytest

from tests.runs import launch
from vtrain import schedules
from vtrain.tagging import metrics
from vtrain.tagging.models.triplet import TripletRecommender, bpr, triplet_hinge


def numpy_triplet(anchor, positive, negatives, margin):
    """max(0, margin - <a, p> + <a, n>), averaged over examples and negatives."""
    losses = []
    for a, p, ns in zip(anchor, positive, negatives):
        for n in ns:
            losses.append(max(0.0, margin - a @ p + a @ n))
    return np.mean(losses)


def numpy_bpr(anchor, positive, negatives):
    losses = []
    for a, p, ns in zip(anchor, positive, negatives):
        for n in ns:
            losses.append(np.log1p(np.exp(-(a @ p - a @ n))))
    return np.mean(losses)


def hand_made(seed=0, batch=5, negatives=3, dim=4):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, dim)),
        rng.normal(size=(batch, dim)),
        rng.normal(size=(batch, negatives, dim)),
    )


@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
def test_triplet_hinge_on_hand_made_embeddings_matches_numpy(margin):
    anchor, positive, negatives = hand_made()
    expected = numpy_triplet(anchor, positive, negatives, margin)
    assert 0 < expected  # some triplets violate the margin, some do not
    got = float(
        triplet_hinge(
            anchor.astype("float32"),
            positive.astype("float32"),
            negatives.astype("float32"),
            margin,
        )
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_hardest_negative_hinge_matches_numpy():
    anchor, positive, negatives = hand_made(seed=2)
    expected = np.mean(
        [
            max(0.0, 0.5 - a @ p + max(a @ n for n in ns))
            for a, p, ns in zip(anchor, positive, negatives)
        ]
    )
    got = float(
        triplet_hinge(
            anchor.astype("float32"),
            positive.astype("float32"),
            negatives.astype("float32"),
            0.5,
            hardest=True,
        )
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_bpr_on_hand_made_embeddings_matches_numpy():
    anchor, positive, negatives = hand_made(seed=1)
    got = float(
        bpr(anchor.astype("float32"), positive.astype("float32"), negatives.astype("float32"))
    )
    assert got == pytest.approx(numpy_bpr(anchor, positive, negatives), rel=1e-5)


def small_model(**kwargs):
    defaults = dict(
        vocabulary_size=20,
        num_tags=2,
        embedding_dim=3,
        hidden_units=5,
        margin=0.7,
        num_negatives=4,
        seed=3,
    )
    return TripletRecommender(**{**defaults, **kwargs})


def test_model_terms_use_the_tag_table_and_text_tower():
    # One tag each out of two: the positive and every negative are fixed, so
    # the term is a pure function of the hand-set tag table and the anchors.
    model = small_model()
    table = np.array([[1.0, -0.5, 0.25], [-1.0, 2.0, 0.5]], np.float32)
    model.tag_table.assign(table)
    ids = np.array([[1, 2, 0], [3, 4, 5], [6, 0, 0]], np.int32)
    tags = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    terms = model.compute_losses((ids, tags), training=False)
    anchor = model.encode_text(ids).numpy().astype(np.float64)
    positive = table[tags.argmax(axis=1)]
    negatives = np.repeat(table[1 - tags.argmax(axis=1)][:, None], 4, axis=1)
    expected = numpy_triplet(anchor, positive, negatives, margin=0.7)
    assert float(terms["triplet"]) == pytest.approx(expected, rel=1e-5)
    l2 = sum(
        (w.numpy().astype(np.float64) ** 2).sum()
        for w in (
            model.word_embedding.embeddings,
            model.hidden.kernel,
            model.projection.kernel,
            model.tag_table,
        )
    )
    assert float(terms["l2"]) == pytest.approx(l2, rel=1e-5)
    assert sorted(terms) == ["l2", "triplet"]
    assert sorted(small_model(loss="bpr").compute_losses((ids, tags), False)) == ["bpr", "l2"]


def test_text_tower_ignores_padding():
    model = small_model()
    short = model.encode_text(np.array([[4, 7, 0, 0]])).numpy()
    np.testing.assert_allclose(model.encode_text(np.array([[4, 7]])).numpy(), short, rtol=1e-6)


def test_sampling_draws_positives_from_the_tags_and_negatives_from_the_rest():
    model = small_model(num_tags=5, num_negatives=2000)
    tags = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 1, 0]], np.float32)
    positives = np.stack([model.sample_triplets(tags)[0].numpy() for _ in range(400)])
    _, negatives = model.sample_triplets(tags)
    negatives = negatives.numpy()
    assert set(positives[:, 0]) == {0, 1} and set(positives[:, 1]) == {3}
    assert set(negatives[0]) == {2, 3, 4} and set(negatives[1]) == {0, 1, 2, 4}
    # Uniform: each of the 3 non-tags of example 0 about a third of the time.
    np.testing.assert_allclose(np.bincount(negatives[0], minlength=5)[2:] / 2000, 1 / 3, atol=0.05)
    assert abs((positives[:, 0] == 0).mean() - 0.5) < 0.1


def test_recommend_ranks_all_tags_by_score():
    model = small_model(num_tags=6, embedding_dim=2)
    ids = np.array([[1, 2, 3], [4, 5, 0]], np.int32)
    anchor = model.encode_text(ids).numpy()
    table = model.tag_table.numpy()
    expected = np.argsort(-(anchor @ table.T), axis=1, kind="stable")[:, :4]
    got = model.recommend(ids, k=4).numpy()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(model.predict(ids, verbose=0), anchor @ table.T, rtol=1e-5)


def synthetic(n=256, num_tags=4, length=6, seed=0):
    """Tag t is carried by texts that contain word 10 + t (plus noise words)."""
    rng = np.random.default_rng(seed)
    tags = np.zeros((n, num_tags), np.float32)
    ids = rng.integers(20, 40, (n, length)).astype(np.int32)
    for i in range(n):
        chosen = rng.choice(num_tags, size=rng.integers(1, 3), replace=False)
        tags[i, chosen] = 1
        ids[i, : len(chosen)] = 10 + chosen
    return ids, tags


def test_l2_schedule_reaches_history_and_model_learns_the_tags():
    ids, tags = synthetic()
    l2_weight = schedules.exponential_decay(1e-3, 0.5)
    model = TripletRecommender(
        vocabulary_size=40,
        num_tags=4,
        embedding_dim=8,
        hidden_units=16,
        num_negatives=2,
        seed=0,
        loss_weights={"l2": l2_weight},
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(ids, tags, epochs=8, batch_size=32, verbose=0).history
    np.testing.assert_allclose(history["l2_weight"], [l2_weight(e) for e in range(8)], rtol=1e-6)
    assert history["loss"][-1] == pytest.approx(
        history["triplet"][-1] + l2_weight(7) * history["l2"][-1], rel=1e-4
    )
    assert history["triplet"][-1] < 0.5 * history["triplet"][0]
    scores = model.predict(ids, verbose=0)
    assert metrics.recall_at_k(scores, tags, k=2) > 0.9


def test_save_load_round_trip(tmp_path):
    ids, tags = synthetic(n=32)
    model = small_model(
        vocabulary_size=40, num_tags=4, loss_weights={"l2": schedules.constant(1e-4)}
    )
    model.compile(optimizer="adam")
    model.fit(ids, tags, epochs=2, verbose=0)
    path = str(tmp_path / "triplet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is TripletRecommender and int(loaded.epoch.numpy()) == 1
    np.testing.assert_array_equal(loaded.recommend(ids, 3).numpy(), model.recommend(ids, 3).numpy())
    assert loaded.get_config() == model.get_config()


def test_invalid_arguments_messages():
    with pytest.raises(ValueError, match=r"Invalid loss .* received 'warp'.*Expected one of"):
        small_model(loss="warp")
    with pytest.raises(ValueError, match=r"num_tags=1; expected at least 2"):
        small_model(num_tags=1)


# -- End to end through the launcher ---------------------------------------

SHRUNKEN = [
    "--config.data.max_train_examples=600",
    "--config.data.max_vocabulary_size=2000",
    "--config.data.sequence_length=32",
    "--config.train.num_epochs=2",
    "--config.model.embedding_dim=16",
    "--config.model.hidden_units=32",
]


def test_config_trains_through_the_launcher_and_writes_ranking_results(tmp_path):
    result = launch("--config=configs/triplet.py", *SHRUNKEN, f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "triplet"
    for k in (1, 3, 5):
        for name in ("precision", "recall", "f1", "ndcg"):
            assert 0.0 <= results["test"][f"{name}@{k}"] <= 1.0
    # The tag table is not counted as vocabulary.
    assert results["vocabulary_size"] == 2000


@pytest.mark.slow
def test_triplet_and_classifier_measured_in_one_command(tmp_path):
    baseline = [argument.replace("--config.", "--baseline.") for argument in SHRUNKEN]
    result = launch(
        "--config=configs/triplet.py",
        *SHRUNKEN,
        "--baseline=configs/default.py",
        *baseline,
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert sorted(comparison) == ["baseline pooled", "triplet"]
    assert all("recall@5" in test and "ndcg@5" in test for test in comparison.values())
    assert "recall@5" in result.stdout and "baseline pooled" in result.stdout
