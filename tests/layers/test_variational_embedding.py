import numpy as np
import pytest
import tensorflow as tf

from tests.layers.contract import check_layer_contract
from vtrain.layers import VariationalEmbedding
from vtrain.layers.base import kl_log_uniform
from vtrain.layers.variational_embedding import clipped_kl_sum


def numpy_kl(log_alpha):
    """Molchanov et al. (2017), eq. 14, written out independently."""
    k1, k2, k3 = 0.63576, 1.8732, 1.48695
    la = np.clip(np.asarray(log_alpha, np.float64), -10, 10)
    sigmoid = 1 / (1 + np.exp(-(k2 + k3 * la)))
    softplus = np.log1p(np.exp(-la))
    return -(k1 * sigmoid - 0.5 * softplus - k1)


def layer_with_log_alpha(values, output_dim=4, **kwargs):
    values = np.asarray(values, np.float32).reshape(-1, 1)
    layer = VariationalEmbedding(len(values), output_dim, **kwargs)
    layer.build()
    layer.log_alpha.assign(values)
    return layer


def test_contract(tmp_path):
    check_layer_contract(
        VariationalEmbedding,
        dict(input_dim=20, output_dim=3, mask_zero=True),
        np.array([[1, 2, 0], [3, 19, 7]], "int32"),
        expected_output_shape=(2, 3, 3),
        expected_trainable_weights=2,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("log_alpha", [-10.0, -1.0, 0.0, 3.0, 8.0])
def test_kl_per_row_matches_numpy_formula(log_alpha):
    layer = layer_with_log_alpha([log_alpha])
    np.testing.assert_allclose(float(layer.regularizer()), numpy_kl(log_alpha), rtol=1e-6)


def test_kl_reference_values_from_design_notes():
    layer = layer_with_log_alpha([-10.0, 0.0, 3.0, 8.0])
    per_row = numpy_kl([-10.0, 0.0, 3.0, 8.0])
    np.testing.assert_allclose(per_row, [5.63578, 0.43124, 0.025420, 1.6837e-4], rtol=1e-4)
    np.testing.assert_allclose(float(layer.regularizer()), per_row.sum(), rtol=1e-6)


def test_log_alpha_is_clipped_to_plus_minus_ten():
    clipped = layer_with_log_alpha([-10.0, 10.0])
    beyond = layer_with_log_alpha([-25.0, 40.0])
    assert float(beyond.regularizer()) == float(clipped.regularizer())
    np.testing.assert_array_equal(beyond.clipped_log_alpha().numpy()[:, 0], [-10, 10])


def _autodiff_kl(log_alpha):
    """Value and autodiff gradient of the formula the layer used before."""
    with tf.GradientTape() as tape:
        tape.watch(log_alpha)
        kl = tf.reduce_sum(kl_log_uniform(tf.clip_by_value(log_alpha, -10.0, 10.0)))
    return kl, tape.gradient(kl, log_alpha)


def _grid():
    # Dense over [-10, 10], the clip edges exactly, and values beyond them.
    inside = np.linspace(-10, 10, 4001)
    return np.concatenate([inside, [-10.0, 10.0, -10.5, 10.5, -30, 30]])


@pytest.mark.parametrize("upstream", [1.0, 1e-5])
def test_closed_form_kl_gradient_equals_autodiff(upstream):
    log_alpha = tf.constant(_grid().reshape(-1, 1), "float32")
    want_kl, want_grad = _autodiff_kl(log_alpha)
    with tf.GradientTape() as tape:
        tape.watch(log_alpha)
        kl = clipped_kl_sum(log_alpha)
        scaled = upstream * kl
    got_grad = tape.gradient(scaled, log_alpha).numpy()
    assert float(kl) == float(want_kl)
    np.testing.assert_allclose(got_grad, upstream * want_grad.numpy(), rtol=1e-6, atol=0)
    # The clip passes gradient at its edges and none beyond them.
    outside = np.abs(_grid()) > 10
    assert np.all(got_grad[outside] == 0) and np.all(got_grad[~outside] != 0)


def test_closed_form_kl_gradient_under_xla():
    log_alpha = tf.constant(_grid().reshape(-1, 1), "float32")

    @tf.function(jit_compile=True)
    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            kl = clipped_kl_sum(x)
        return kl, tape.gradient(kl, x)

    kl, grad = value_and_grad(log_alpha)
    want_kl, want_grad = _autodiff_kl(log_alpha)
    np.testing.assert_allclose(float(kl), float(want_kl), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), rtol=1e-5, atol=1e-7)


def test_inference_zeroes_rows_at_or_above_threshold():
    layer = layer_with_log_alpha([2.99, 3.0, 3.01, -4.0], threshold=3.0)
    ids = np.array([[0, 1, 2, 3]])
    out = layer(ids, training=False).numpy()[0]
    mu = layer.embeddings.numpy()
    np.testing.assert_array_equal(out[0], mu[0])
    np.testing.assert_array_equal(out[3], mu[3])
    assert not out[1].any() and not out[2].any()
    np.testing.assert_array_equal(layer.keep_mask().numpy(), [True, False, False, True])
    assert float(layer.sparsity()) == 0.5


def test_training_noise_has_variance_alpha_mu_squared():
    log_alpha = np.log(0.5)
    layer = layer_with_log_alpha([log_alpha, log_alpha], output_dim=2)
    layer.embeddings.assign(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
    ids = np.zeros((200_000,), "int32")
    samples = layer(ids, training=True).numpy()
    mu = layer.embeddings.numpy()[0]
    np.testing.assert_allclose(samples.mean(axis=0), mu, rtol=0.02)
    np.testing.assert_allclose(samples.var(axis=0), 0.5 * mu**2, rtol=0.05)


def test_noise_is_one_scalar_per_looked_up_row():
    # The KL counts one term per row, so the noise must be per row too: all
    # dimensions of a sample are the same multiple of the mean.
    layer = layer_with_log_alpha([1.0], output_dim=3)
    samples = layer(np.zeros((50,), "int32"), training=True).numpy()
    ratios = samples / layer.embeddings.numpy()[0]
    np.testing.assert_allclose(ratios, ratios[:, :1].repeat(3, axis=1), rtol=1e-5)


def test_embedding_gradient_is_indexed_slices():
    layer = VariationalEmbedding(1000, 8)
    ids = np.array([[3, 5, 5]])
    layer.build()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids, training=True)) + layer.regularizer()
    grad_embeddings, grad_log_alpha = tape.gradient(
        loss, [layer.embeddings.value, layer.log_alpha.value]
    )
    assert isinstance(grad_embeddings, tf.IndexedSlices)
    assert sorted(set(grad_embeddings.indices.numpy().tolist())) == [3, 5]
    # Every row of log_alpha gets the KL gradient each step (V x 1: cheap).
    assert tf.convert_to_tensor(grad_log_alpha).shape == (1000, 1)


def test_mask_zero_emits_padding_mask():
    layer = VariationalEmbedding(10, 2, mask_zero=True)
    mask = layer.compute_mask(np.array([[4, 0, 2]]))
    np.testing.assert_array_equal(mask.numpy(), [[True, False, True]])
    assert VariationalEmbedding(10, 2).compute_mask(np.array([[0]])) is None


def test_mixed_precision_output_dtype_and_float32_weights():
    layer = VariationalEmbedding(10, 2, dtype="mixed_float16")
    out = layer(np.array([[1, 2]]), training=True)
    assert out.dtype == "float16"
    assert layer.embeddings.dtype == "float32"


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "high", 11.0])
def test_invalid_threshold_message(threshold):
    with pytest.raises(ValueError, match=r"Invalid threshold: received .*Expected a finite number"):
        VariationalEmbedding(10, 2, threshold=threshold)


@pytest.mark.parametrize("input_dim", [0, -3, 2.5, None])
def test_invalid_input_dim_message(input_dim):
    with pytest.raises(
        ValueError, match=r"Invalid input_dim .* received .*Expected a positive integer"
    ):
        VariationalEmbedding(input_dim, 2)
