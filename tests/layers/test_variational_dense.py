import json

import keras
import numpy as np
import pytest

import vtrain
from tests.layers.contract import check_layer_contract
from tests.layers.test_variational_embedding import numpy_kl
from tests.runs import launch
from vtrain.layers.variational_dense import VariationalDense
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.tagging import evaluate


def numpy_log_alpha(theta, log_sigma2):
    theta = np.asarray(theta, np.float64)
    return np.clip(np.asarray(log_sigma2, np.float64) - np.log(theta**2 + 1e-8), -10, 10)


def layer_with(theta, log_sigma2, bias=None, **kwargs):
    theta = np.asarray(theta, np.float32)
    layer = VariationalDense(theta.shape[1], **kwargs)
    layer.build((None, theta.shape[0]))
    layer.kernel.assign(theta)
    layer.log_sigma2.assign(np.asarray(log_sigma2, np.float32))
    if bias is not None:
        layer.bias.assign(np.asarray(bias, np.float32))
    return layer


def test_contract(tmp_path):
    check_layer_contract(
        VariationalDense,
        dict(units=3, activation="tanh", seed=7),
        np.random.default_rng(0).normal(size=(2, 4)).astype("float32"),
        expected_output_shape=(2, 3),
        expected_trainable_weights=3,
        tmp_path=tmp_path,
    )


def test_contract_without_bias(tmp_path):
    check_layer_contract(
        VariationalDense,
        dict(units=2, use_bias=False),
        np.ones((3, 5), "float32"),
        expected_output_shape=(3, 2),
        expected_trainable_weights=2,
        tmp_path=tmp_path,
    )


def test_kl_matches_numpy_formula_summed_over_weights():
    rng = np.random.default_rng(1)
    theta = rng.normal(scale=0.5, size=(6, 4))
    # From far below to far above the clip range, and an exact zero weight.
    log_sigma2 = rng.uniform(-14, 6, size=(6, 4))
    theta[0, 0] = 0.0
    layer = layer_with(theta, log_sigma2)
    expected_log_alpha = numpy_log_alpha(theta.astype(np.float32), log_sigma2.astype(np.float32))
    np.testing.assert_allclose(layer.log_alpha().numpy(), expected_log_alpha, rtol=1e-5, atol=1e-5)
    assert expected_log_alpha.min() == -10 and expected_log_alpha.max() == 10
    expected = numpy_kl(expected_log_alpha).sum()
    assert float(layer.regularizer()) == pytest.approx(expected, rel=1e-5)


def test_inference_is_x_times_masked_kernel_plus_bias_exactly():
    # Dyadic values: every product and sum is exact in float32, so the layer
    # must return the NumPy result bit for bit.
    theta = np.array([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]], np.float32)
    log_alpha = np.array([[2.5, 3.01, -4.0], [8.0, 0.0, 2.99]], np.float32)
    log_sigma2 = log_alpha + np.log(theta.astype(np.float64) ** 2 + 1e-8)
    bias = np.array([0.125, -2.0, 1.0], np.float32)
    layer = layer_with(theta, log_sigma2, bias, threshold=3.0)
    mask = numpy_log_alpha(theta, layer.log_sigma2.numpy()) < 3.0
    np.testing.assert_array_equal(mask, [[True, False, True], [False, True, True]])
    x = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 4.0]], np.float32)
    out = layer(x, training=False).numpy()
    np.testing.assert_array_equal(out, x @ (theta * mask) + bias)
    np.testing.assert_array_equal(layer.keep_mask().numpy(), mask)
    assert float(layer.sparsity()) == pytest.approx(2 / 6)
    # Inference is deterministic.
    np.testing.assert_array_equal(layer(x).numpy(), out)


def test_local_reparameterisation_mean_and_variance():
    theta = np.array([[1.0, -0.5], [0.3, 2.0], [-1.5, 0.8]], np.float32)
    log_alpha = np.array([[-1.0, 0.0], [0.5, -2.0], [-0.5, 1.0]], np.float32)
    log_sigma2 = log_alpha + np.log(theta.astype(np.float64) ** 2 + 1e-8)
    bias = np.array([0.5, -1.0], np.float32)
    layer = layer_with(theta, log_sigma2, bias, seed=3)
    x = np.array([1.0, -2.0, 0.5], np.float32)
    samples = layer(np.tile(x, (200_000, 1)), training=True).numpy()
    expected_mean = x @ theta + bias
    expected_var = (x**2) @ (np.exp(log_alpha) * theta**2)
    np.testing.assert_allclose(samples.mean(axis=0), expected_mean, rtol=0.05)
    np.testing.assert_allclose(samples.var(axis=0), expected_var, rtol=0.05)
    # One independent draw per example: no two rows share their noise.
    assert len(np.unique(samples[:1000, 0])) == 1000


def test_inputs_of_rank_three_and_masks_pass_through():
    layer = VariationalDense(5)
    x = np.ones((2, 7, 3), "float32")
    assert tuple(layer(x, training=True).shape) == (2, 7, 5)
    assert tuple(layer(x).shape) == (2, 7, 5)
    assert layer.supports_masking


def test_variational_model_finds_it_next_to_an_embedding():
    ids = keras.Input((4,), dtype="int32")
    h = VariationalEmbedding(12, 3, name="embed")(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = VariationalDense(6, activation="relu", name="hidden")(h)
    logits = keras.layers.Dense(2)(h)
    model = vtrain.VariationalModel(ids, logits, weight_decay=0.01)
    assert sorted(layer.name for layer in model.variational_layers()) == ["embed", "hidden"]
    hidden = model.get_layer("hidden")
    expected = (
        numpy_kl(model.get_layer("embed").log_alpha.numpy()).sum()
        + numpy_kl(numpy_log_alpha(hidden.kernel.numpy(), hidden.log_sigma2.numpy())).sum()
    )
    assert float(model.kl_divergence()) == pytest.approx(expected, rel=1e-5)


def test_kl_pushes_out_the_weights_the_task_does_not_need():
    # y depends on feature 0 only; features 1-7 are noise. The KL must raise
    # their log_alpha far above the useful weights', which stay kept.
    # (Full pruning of all 14 takes thousands of steps; this stays < 5 s.)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((8,))
    layer = VariationalDense(2, name="logits")
    model = vtrain.VariationalModel(inputs, layer(inputs), weight_decay=1.0 / len(x))
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    start = layer.log_alpha().numpy()
    history = model.fit(x, y, epochs=60, batch_size=64, verbose=0).history
    log_alpha = layer.log_alpha().numpy()
    assert layer.keep_mask().numpy()[0].all()
    assert log_alpha[1:].mean() > start[1:].mean() + 6, log_alpha
    assert log_alpha[1:].mean() > log_alpha[0].mean() + 3, log_alpha
    assert history["kl"][-1] < history["kl"][0]
    accuracy = (model.predict(x, verbose=0).argmax(axis=1) == y).mean()
    assert accuracy > 0.95


def test_mixed_precision_output_dtype_and_float32_weights():
    layer = VariationalDense(2, dtype="mixed_float16")
    out = layer(np.ones((1, 3), "float32"), training=True)
    assert out.dtype == "float16"
    assert layer.kernel.dtype == "float32" and layer.log_sigma2.dtype == "float32"


@pytest.mark.parametrize("units", [0, -1, 2.0, None, True])
def test_invalid_units_message(units):
    with pytest.raises(
        ValueError, match=r"Invalid units .* received .*Expected a positive integer"
    ):
        VariationalDense(units)


@pytest.mark.parametrize("threshold", [float("nan"), 12.0, "x"])
def test_invalid_threshold_message(threshold):
    with pytest.raises(ValueError, match=r"Invalid threshold: received"):
        VariationalDense(3, threshold=threshold)


def test_unknown_input_dimension_message():
    with pytest.raises(ValueError, match=r"last dimension is unknown"):
        VariationalDense(3).build((None, None))


# -- End to end through the launcher ---------------------------------------


def test_config_trains_through_the_launcher_and_reports_kept_weights(tmp_path):
    result = launch(
        "--config=configs/variational_dense.py",
        "--config.data.max_train_examples=600",
        "--config.data.max_vocabulary_size=2000",
        "--config.data.sequence_length=32",
        "--config.model.embedding_dim=16",
        "--config.model.hidden_units=32",
        "--config.train.num_epochs=2",
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= results["test"]["f1@3"] <= 1.0
    # The hidden kernel: 16 pooled features x 32 units (reported once
    # vtrain.tagging.evaluate has weight_stats, issue 6 report).
    if hasattr(evaluate, "weight_stats"):
        assert results["variational_weights"] == 16 * 32
        assert 0 <= results["kept_weights"] <= 16 * 32
