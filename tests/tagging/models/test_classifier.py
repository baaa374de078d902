"""Pooled and CNN tag classifiers: shapes, masking, recommend, training, saving."""

import types

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import vtrain
from vtrain.tagging import configs, train
from vtrain.tagging.models import classifier

VOCABULARY_SIZE, NUM_TAGS = 30, 6
SMALL = {
    "pooled": dict(embedding_dim=8, hidden_units=16),
    "pooled_mean_max": dict(embedding_dim=8, hidden_units=0, pooling="mean_max"),
    "cnn": dict(embedding_dim=8, filter_widths=(2, 3), num_filters=4),
}


def make(kind, **kwargs):
    cls = classifier.CNNClassifier if kind == "cnn" else classifier.PooledClassifier
    return cls(vocabulary_size=VOCABULARY_SIZE, num_tags=NUM_TAGS, **SMALL[kind], **kwargs)


def batch(size=16, length=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY_SIZE, (size, length)).astype("int32")
    ids[:, -2:] = 0  # padding
    tags = np.zeros((size, NUM_TAGS), "float32")
    tags[np.arange(size), ids[:, 0] % NUM_TAGS] = 1.0  # learnable: first word
    return ids, tags


@pytest.mark.parametrize("kind", sorted(SMALL))
@pytest.mark.parametrize("variational", [True, False])
def test_output_shape_and_kl_term(kind, variational):
    model = make(kind, variational=variational)
    ids, _ = batch()
    assert tuple(model(ids).shape) == (16, NUM_TAGS)
    assert isinstance(model, vtrain.VariationalModel)
    assert bool(model.variational_layers()) == variational


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_padding_does_not_change_the_scores(kind):
    model = make(kind)
    ids, _ = batch()
    padded = np.concatenate([ids, np.zeros((16, 5), "int32")], axis=1)
    np.testing.assert_allclose(model(ids), model(padded), rtol=1e-5, atol=1e-6)


def test_mean_pooling_matches_numpy():
    model = classifier.PooledClassifier(
        VOCABULARY_SIZE, NUM_TAGS, embedding_dim=8, hidden_units=0, variational=False
    )
    ids = np.array([[3, 4, 0, 0]], "int32")
    model(ids)
    table = model.embedding.embeddings.numpy()
    expected = (table[3] + table[4]) / 2
    np.testing.assert_allclose(
        model.encode(table[ids], (ids != 0).astype("float32")), expected[None], rtol=1e-6
    )


@pytest.mark.parametrize("unknown_words", ["learned", "zero", "zero_at_inference"])
@pytest.mark.parametrize("training", [False, True])
def test_unknown_words_option_matches_numpy(unknown_words, training):
    model = classifier.PooledClassifier(
        VOCABULARY_SIZE,
        NUM_TAGS,
        embedding_dim=8,
        hidden_units=0,
        dropout=0.0,
        variational=False,
        unknown_words=unknown_words,
    )
    ids = np.array([[3, 1, 4, 0], [1, 1, 0, 0]], "int32")  # id 1: [UNK]
    model(ids)
    table = model.embedding.embeddings.numpy()
    kernel, bias = model.output_layer.kernel.numpy(), model.output_layer.bias.numpy()
    zero = unknown_words == "zero" or (unknown_words == "zero_at_inference" and not training)
    unk = np.zeros(8) if zero else table[1]
    # Mean over the real tokens; [UNK] counts whatever its vector.
    pooled = np.stack([(table[3] + unk + table[4]) / 3, (unk + unk) / 2])
    np.testing.assert_allclose(
        model(ids, training=training), pooled @ kernel + bias, rtol=1e-5, atol=1e-6
    )


def test_unknown_words_survives_a_keras_file_round_trip(tmp_path):
    model = make("pooled", unknown_words="zero_at_inference")
    ids, _ = batch()
    ids[:, 1] = 1
    model(ids)
    model.save(str(tmp_path / "model.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert loaded.unknown_words == "zero_at_inference"
    np.testing.assert_allclose(loaded(ids), model(ids), rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_recommend_ranks_tags_by_score(kind):
    model = make(kind)
    ids, _ = batch()
    scores = model(ids).numpy()
    ranked = model.recommend(ids, k=4)
    assert ranked.dtype == tf.int32 and tuple(ranked.shape) == (16, 4)
    np.testing.assert_array_equal(ranked, np.argsort(-scores, axis=1)[:, :4])


@pytest.mark.parametrize("k", [0, NUM_TAGS + 1, 2.0])
def test_recommend_rejects_bad_k(k):
    with pytest.raises(ValueError, match=f"Invalid k for PooledClassifier: received {k!r}"):
        make("pooled").recommend(batch()[0], k=k)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_fit_learns_and_logs_every_term(kind):
    model = make(kind, weight_decay=1e-3)
    model.compile(optimizer=vtrain.optimizers.LazyAdam(0.02))
    ids, tags = batch(size=64)
    history = model.fit(ids, tags, epochs=8, batch_size=16, verbose=0).history
    assert {"loss", "cross_entropy", "kl", "kl_weight", "learning_rate"} <= set(history)
    assert history["cross_entropy"][-1] < 0.75 * history["cross_entropy"][0]


@pytest.mark.parametrize("variational", [True, False])
def test_embedding_gradient_is_sparse(variational):
    model = make("pooled", variational=variational)
    ids, tags = batch()
    with tf.GradientTape() as tape:
        loss = model.compute_losses((ids, tags), training=True)["cross_entropy"]
    gradient = tape.gradient(loss, model.embedding.embeddings)
    assert isinstance(gradient, tf.IndexedSlices)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_keras_file_round_trip(kind, tmp_path):
    model = make(
        kind,
        weight_decay=vtrain.schedules.linear_warmup(1e-3, 2),
        initial_tag_bias=[-1.0] * NUM_TAGS,
    )
    model.compile(optimizer=vtrain.optimizers.LazyAdam())
    ids, tags = batch()
    model.fit(ids, tags, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(ids), model(ids), rtol=1e-6)
    np.testing.assert_array_equal(loaded.recommend(ids, 3), model.recommend(ids, 3))
    assert loaded.loss_weight_schedules["kl"] == vtrain.schedules.linear_warmup(1e-3, 2)


def test_initial_tag_bias_sets_the_output_bias():
    model = make("pooled", initial_tag_bias=np.arange(NUM_TAGS) - 3.0)
    model(batch()[0])
    np.testing.assert_array_equal(model.output_layer.bias.numpy(), np.arange(NUM_TAGS) - 3.0)
    with pytest.raises(ValueError, match="received 2 values. Expected one per tag"):
        make("pooled", initial_tag_bias=[0.0, 1.0])


def fake_data(num_train=20):
    return types.SimpleNamespace(
        vocabulary=["", "[UNK]"] + [f"w{i}" for i in range(VOCABULARY_SIZE - 2)],
        tags=[f"t{i}" for i in range(NUM_TAGS)],
        num_train=num_train,
        tag_train_counts=np.array([19, 10, 1, 0, 5, 2]),
    )


def launcher_config(**model_fields):
    config = configs.base("default")
    config.model = ml_collections.ConfigDict(model_fields)
    return config


def test_build_model_uses_data_sizes_priors_and_the_kl_weight():
    config = launcher_config(name="cnn", embedding_dim=4, num_filters=2)
    config.train.weight_decay_warmup_epochs = 0
    model = train.build_model(config, fake_data())
    assert isinstance(model, classifier.CNNClassifier)
    assert (model.vocabulary_size, model.num_tags) == (VOCABULARY_SIZE, NUM_TAGS)
    # weight_decay = weight_decay_scale / num_train
    assert float(model.loss_weight_variables["kl"].numpy()) == pytest.approx(30 / 20)
    # log-odds of (uses + 1) / (num_train + 2): a tag seen by 10 of 20 is even.
    assert model.initial_tag_bias[1] == pytest.approx(np.log(11 / 11))
    assert model.initial_tag_bias[3] == pytest.approx(np.log(1 / 21))


def test_build_model_warms_the_kl_weight_up():
    config = launcher_config(name="pooled")
    model = train.build_model(config, fake_data())
    weights = [model.loss_weight_schedules["kl"](epoch) for epoch in (0, 1, 5, 9)]
    assert weights == pytest.approx([0.0, 30 / 20 / 5, 30 / 20, 30 / 20])


def test_build_model_rejects_unknown_names_and_fields_with_a_fix():
    with pytest.raises(
        train.ConfigError,
        match="--config.model.name: received 'poled'. Expected one of .*Did you mean 'pooled'",
    ):
        train.check_config(launcher_config(name="poled"))
    with pytest.raises(
        train.ConfigError,
        match=r"--config.model.num_filters: received 3\. "
        r"Expected a field of model 'pooled' \(PooledClassifier\): one of .*"
        "Remove it from the config's model section",
    ):
        train.build_model(launcher_config(name="pooled", num_filters=3), fake_data())
    with pytest.raises(train.ConfigError, match="Did you mean 'embedding_dim'"):
        train.build_model(launcher_config(name="pooled", embeding_dim=3), fake_data())


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("embedding_dim", 0, "Invalid embedding_dim for PooledClassifier: received 0"),
        ("dropout", 1.0, "Invalid dropout for PooledClassifier: received 1.0"),
        ("pooling", "sum", "Invalid pooling for PooledClassifier: received 'sum'"),
        (
            "unknown_words",
            "drop",
            "Invalid unknown_words for PooledClassifier: received 'drop'. Expected one of "
            "learned, zero, zero_at_inference",
        ),
    ],
)
def test_invalid_options_say_what_was_received(argument, value, message):
    with pytest.raises(ValueError, match=message):
        classifier.PooledClassifier(VOCABULARY_SIZE, NUM_TAGS, **{argument: value})


def test_config_learning_rate_multipliers_reach_the_optimizer():
    config = launcher_config(name="pooled", embedding_dim=4, hidden_units=4)
    config.train.learning_rate_multipliers = ml_collections.ConfigDict({"log_alpha": 5.0})
    model = train._build_and_compile(config, fake_data())
    model(batch()[0])
    model.optimizer.build(model.trainable_variables)
    factors = {
        v.path: model.optimizer.learning_rate_multiplier(v) for v in model.trainable_variables
    }
    assert factors["pooled_classifier/embedding/log_alpha"] == 5.0
    assert {f for p, f in factors.items() if not p.endswith("log_alpha")} == {1.0}
    # A plain embedding has no log_alpha: a factor of 1 must not be an error.
    config.model.variational = False
    config.train.learning_rate_multipliers.log_alpha = 1.0
    train._build_and_compile(config, fake_data())


def test_log_alpha_init_range_and_its_errors():
    model = make("pooled", log_alpha_init_min=2.0, log_alpha_init_max=2.0)
    model(batch()[0])
    np.testing.assert_array_equal(model.embedding.log_alpha.numpy(), 2.0)
    model = make("pooled", log_alpha_init_min=4.0, log_alpha_init_max=6.0)
    model(batch()[0])
    log_alpha = model.embedding.log_alpha.numpy()
    assert 4.0 <= log_alpha.min() < log_alpha.max() <= 6.0
    assert model.get_config()["log_alpha_init_max"] == 6.0
    with pytest.raises(ValueError, match="received 3.0 and 1.0. Expected min <= max"):
        make("pooled", log_alpha_init_min=3.0, log_alpha_init_max=1.0)
