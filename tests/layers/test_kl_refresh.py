"""`VariationalEmbedding(kl_refresh_steps=k)`: the fast mode of the KL.

Equal to the exact path where it must be (the first step, any step for
the rows it refreshes), and otherwise equal to a NumPy simulation of the
rotating refresh written out in this file.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vtrain
from tests.layers.contract import check_layer_contract
from vtrain.layers import VariationalEmbedding
from vtrain.layers.variational_embedding import clipped_kl_sum, kl_slope
from vtrain.optimizers import LazyAdam

K1, K2, K3 = 0.63576, 1.8732, 1.48695


def numpy_kl(log_alpha):
    la = np.clip(np.asarray(log_alpha, np.float64), -10, 10)
    return K1 / (1 + np.exp(K2 + K3 * la)) + 0.5 * np.log1p(np.exp(-la))


def numpy_slope(log_alpha):
    x = np.asarray(log_alpha, np.float64)
    la = np.clip(x, -10, 10)
    s = 1 / (1 + np.exp(K2 + K3 * la))
    slope = -K1 * K3 * s * (1 - s) - 0.5 / (1 + np.exp(la))
    return np.where(la == x, slope, 0.0)


def layer_from(values, refresh_steps, output_dim=2):
    values = np.asarray(values, np.float32).reshape(-1, 1)
    layer = VariationalEmbedding(
        len(values),
        output_dim,
        kl_refresh_steps=refresh_steps,
        log_alpha_initializer=lambda shape, dtype=None: tf.constant(values),
    )
    layer.build()
    return layer


def value_and_gradient(layer, upstream=1.0):
    with tf.GradientTape() as tape:
        kl = layer.regularizer()
        scaled = upstream * kl
    return float(kl), tape.gradient(scaled, layer.log_alpha)[:, 0].numpy()


GRID = np.concatenate([np.linspace(-12, 12, 61), [-10.0, 10.0, 3.0]])


@pytest.mark.parametrize("refresh_steps", [2, 3, 7, 64, 100])
@pytest.mark.parametrize("upstream", [1.0, 1e-5])
def test_first_step_equals_the_exact_path(refresh_steps, upstream):
    layer = layer_from(GRID, refresh_steps)
    value, gradient = value_and_gradient(layer, upstream)
    x = tf.constant(GRID.reshape(-1, 1), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        exact = upstream * clipped_kl_sum(x)
    np.testing.assert_allclose(value, float(exact) / upstream, rtol=1e-6)
    np.testing.assert_allclose(value, numpy_kl(GRID).sum(), rtol=1e-6)
    np.testing.assert_allclose(gradient, tape.gradient(exact, x)[:, 0], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(gradient, upstream * numpy_slope(GRID), rtol=1e-5, atol=1e-12)


def simulate(trajectory, refresh_steps):
    """NumPy: the value and gradient the rotating refresh gives at each step."""
    rows = trajectory.shape[1]
    chunk = -(-rows // refresh_steps)
    slope = numpy_slope(trajectory[0])
    owner = np.minimum(np.arange(rows) // chunk, refresh_steps - 1)
    chunk_values = np.array(
        [numpy_kl(trajectory[0])[owner == c].sum() for c in range(refresh_steps)]
    )
    out = []
    for step, x in enumerate(trajectory):
        index = step % refresh_steps
        start = min(index * chunk, rows - chunk)
        part = slice(start, start + chunk)
        slope[part] = numpy_slope(x[part])
        chunk_values[index] = numpy_kl(x)[owner == index].sum()
        out.append((chunk_values.sum(), slope.copy()))
    return out


@pytest.mark.parametrize("rows, refresh_steps", [(10, 3), (12, 4), (5, 5), (7, 2)])
def test_rows_get_the_gradient_of_their_last_refresh(rows, refresh_steps):
    rng = np.random.default_rng(rows)
    trajectory = rng.uniform(-11, 11, (2 * refresh_steps + 1, rows))
    trajectory = trajectory.astype(np.float32).astype(np.float64)
    layer = layer_from(trajectory[0], refresh_steps)
    for step, (expected_value, expected_slope) in enumerate(simulate(trajectory, refresh_steps)):
        layer.log_alpha.assign(trajectory[step].reshape(-1, 1))
        value, gradient = value_and_gradient(layer, upstream=0.5)
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, err_msg=f"step {step}")
        np.testing.assert_allclose(
            gradient, 0.5 * expected_slope, rtol=1e-5, atol=1e-9, err_msg=f"step {step}"
        )
    assert int(layer.kl_steps.numpy()) == len(trajectory)


def test_a_forward_pass_alone_does_not_advance_the_step():
    layer = layer_from([0.0, 1.0, 2.0, 3.0], refresh_steps=2)
    for _ in range(3):
        layer.regularizer()
    assert int(layer.kl_steps.numpy()) == 0
    value_and_gradient(layer)
    assert int(layer.kl_steps.numpy()) == 1


def test_kl_slope_is_the_exact_gradient():
    x = tf.constant(GRID, tf.float32)
    np.testing.assert_allclose(kl_slope(x), numpy_slope(GRID), rtol=1e-5, atol=1e-12)


def tiny_model(refresh_steps, vocab=12, seed=4):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((vocab,), dtype="int32")
    embedding = VariationalEmbedding(vocab, 3, kl_refresh_steps=refresh_steps, seed=seed)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(embedding(ids)))
    model = vtrain.VariationalModel(ids, logits, weight_decay=0.3)
    return model, embedding


def data(vocab=12, n=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab, (n, vocab)).astype("int32"), np.arange(n) % 2


@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_training_step_equals_the_exact_path(jit_compile):
    x, y = data()
    weights = {}
    for refresh_steps in (1, 4):
        model, _ = tiny_model(refresh_steps)
        model.compile(optimizer=LazyAdam(0.05), jit_compile=jit_compile)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        weights[refresh_steps] = [w.numpy() for w in model.trainable_weights]
    for exact, fast in zip(weights[1], weights[4]):
        np.testing.assert_allclose(fast, exact, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_counts_training_steps_only(jit_compile):
    x, y = data()
    model, embedding = tiny_model(refresh_steps=3)
    model.compile(optimizer=LazyAdam(0.05), jit_compile=jit_compile)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False, validation_data=(x, y))
    assert int(embedding.kl_steps.numpy()) == 8  # 4 batches x 2 epochs; validation takes none
    # The logged value is the sum of the chunks' cached values.
    np.testing.assert_allclose(
        float(embedding.regularizer()),
        embedding.kl_value_cache.numpy().sum(),
        rtol=1e-6,
    )


def test_contract_and_saved_caches(tmp_path):
    check_layer_contract(
        VariationalEmbedding,
        dict(input_dim=20, output_dim=3, mask_zero=True, kl_refresh_steps=3),
        np.array([[1, 2, 0], [3, 19, 7]], "int32"),
        expected_output_shape=(2, 3, 3),
        expected_trainable_weights=2,  # the caches are not weights: the same as exact
        tmp_path=tmp_path,
    )


def test_loading_weights_recomputes_the_caches(tmp_path):
    x, y = data()
    model, embedding = tiny_model(refresh_steps=3)
    model.compile(optimizer=LazyAdam(0.05))
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    other, loaded = tiny_model(refresh_steps=3, seed=9)
    other.load_weights(path)
    log_alpha = loaded.log_alpha.numpy()[:, 0]
    np.testing.assert_allclose(
        loaded.kl_slope_cache.numpy()[:, 0], numpy_slope(log_alpha), rtol=1e-5
    )
    np.testing.assert_allclose(float(loaded.regularizer()), numpy_kl(log_alpha).sum(), rtol=1e-6)
    assert int(loaded.kl_steps.numpy()) == 0


def test_pruned_export_of_a_fast_model():
    from vtrain import vocabulary

    x, y = data()
    model, embedding = tiny_model(refresh_steps=3)
    model.compile(optimizer=LazyAdam(0.05))
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    pruned = vocabulary.pruned_model(model, [3, 5, 7])
    layer = vocabulary.embedding_layer(pruned)
    np.testing.assert_array_equal(
        layer.log_alpha.numpy()[2:], embedding.log_alpha.numpy()[[3, 5, 7]]
    )
    assert layer.kl_refresh_steps == 3
    assert len(pruned.weights) == len(model.weights)
    layer.refresh_kl_caches()  # its log_alpha was assigned after build
    np.testing.assert_allclose(
        layer.kl_slope_cache.numpy()[:, 0], numpy_slope(layer.log_alpha.numpy()[:, 0]), rtol=1e-5
    )


def test_the_classifier_passes_the_field_on():
    from vtrain.tagging.models.classifier import PooledClassifier

    model = PooledClassifier(50, 4, embedding_dim=8, kl_refresh_steps=5)
    assert model.embedding.kl_refresh_steps == 5
    assert model.get_config()["kl_refresh_steps"] == 5


@pytest.mark.parametrize("refresh_steps", [0, -2, 2.5, True, "8"])
def test_invalid_refresh_steps_message(refresh_steps):
    with pytest.raises(ValueError, match=r"Invalid kl_refresh_steps .* received .* Expected"):
        VariationalEmbedding(10, 2, kl_refresh_steps=refresh_steps)


@pytest.mark.parametrize("training", [True, False])
def test_rows_the_layer_looked_up_get_their_current_gradient(training):
    rng = np.random.default_rng(3)
    before, after = rng.uniform(-11, 11, (2, 10)).astype(np.float32)
    layer = layer_from(before, refresh_steps=5)  # chunks of 2 rows
    layer.log_alpha.assign(after.reshape(-1, 1))  # the caches still hold `before`
    with tf.GradientTape() as tape:
        layer(np.array([[7, 2, 7], [0, 2, 9]]), training=training)
        kl = 2.0 * layer.regularizer()
    gradient = tape.gradient(kl, layer.log_alpha)[:, 0].numpy()
    current = [0, 1, 2, 7, 9]  # chunk 0 (this step's) and the looked-up rows
    expected = numpy_slope(before)
    expected[current] = numpy_slope(after[current])
    np.testing.assert_allclose(gradient, 2.0 * expected, rtol=1e-5, atol=1e-9)


def test_the_launcher_trains_and_exports_the_fast_mode(tmp_path):
    import json

    from tests import runs

    result = runs.launch(
        "--config=configs/tiny.py",
        "--config.model.kl_refresh_steps=4",
        f"--workdir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["model"]["kl_refresh_steps"] == 4
    with open(tmp_path / "run" / "results.json") as f:
        results = json.load(f)
    assert 0 < results["kept_vocabulary"] <= results["vocabulary_size"]
    assert (tmp_path / "run" / "pruned" / "vocabulary.json").exists()
