import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import vtrain
from vtrain import schedules


@keras.saving.register_keras_serializable(package="vtrain_tests")
class TwoTerms(vtrain.Model):
    """y ~ Dense(x); terms: mse and the L2 norm of the kernel."""

    def __init__(self, units=1, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)
        self.train_traces = 0

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.train_traces += 1  # Python side effect: runs once per trace.
        return super().train_step(data)

    def compute_losses(self, data, training):
        x, y = data
        return {
            "mse": ops.mean(ops.square(ops.cast(self(x)[:, 0], "float32") - y)),
            "l2": ops.sum(ops.square(self.dense.kernel)),
        }

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def regression_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], "float32") + 0.3)


def gradients(model, data, weights):
    model.set_epoch(0)
    for term, value in weights.items():
        model.loss_weight_variables[term].assign(value)
    with tf.GradientTape() as tape:
        terms = model.compute_losses(data, training=True)
        total = model._weighted_total(terms)
    return total, terms, tape.gradient(total, model.trainable_variables)


def test_gradient_of_total_is_sum_of_weighted_term_gradients():
    x, y = regression_data()
    model = TwoTerms(loss_weights={"l2": 0.25})
    model(x)
    total, terms, grad_total = gradients(model, (x, y), {"l2": 0.25})
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_losses((x, y), training=True)
    g_mse = tape.gradient(terms["mse"], model.trainable_variables)
    g_l2 = tape.gradient(terms["l2"], model.trainable_variables)
    g_l2 = [np.zeros(v.shape) if g is None else g for g, v in zip(g_l2, model.trainable_variables)]
    for g, a, b in zip(grad_total, g_mse, g_l2):
        np.testing.assert_allclose(g, a + 0.25 * b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        float(total), float(terms["mse"]) + 0.25 * float(terms["l2"]), rtol=1e-6
    )


def test_zero_weight_removes_a_term_gradient_exactly():
    x, y = regression_data()
    model = TwoTerms(loss_weights={"l2": 0.0})
    model(x)
    _, _, grad_total = gradients(model, (x, y), {"l2": 0.0})
    with tf.GradientTape() as tape:
        mse = model.compute_losses((x, y), training=True)["mse"]
    for g, g_mse in zip(grad_total, tape.gradient(mse, model.trainable_variables)):
        np.testing.assert_array_equal(g, g_mse)


def test_fit_sets_epoch_and_logs_schedules_at_each_epoch():
    x, y = regression_data()
    l2_weight = schedules.linear_warmup(0.1, warmup_epochs=3)
    lr = schedules.exponential_decay(0.05, 0.5)
    model = TwoTerms(loss_weights={"l2": l2_weight}, learning_rate=lr)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0).history
    assert int(model.epoch.numpy()) == 4
    assert history["l2_weight"] == [l2_weight(e) for e in range(5)]
    np.testing.assert_allclose(history["learning_rate"], [lr(e) for e in range(5)], rtol=1e-6)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(lr(4))
    assert sorted(history) == ["l2", "l2_weight", "learning_rate", "loss", "mse"]


def test_step_is_traced_once_across_epochs_with_changing_schedules():
    x, y = regression_data()
    model = TwoTerms(
        loss_weights={"l2": schedules.linear_warmup(1.0, 4)},
        learning_rate=schedules.exponential_decay(0.1, 0.5),
    )
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.train_traces == 1


def test_epoch_logs_are_exact_means_weighted_by_batch_size():
    # Batches of 8, 8, 4: a term equal to the batch mean of y averages to the
    # mean of y over the whole epoch only if batches are weighted by size.
    class MeanOfY(vtrain.Model):
        def __init__(self):
            super().__init__()
            self.w = self.add_weight(shape=(), initializer="zeros")

        def compute_losses(self, data, training):
            _, y = data
            return {"mean_y": ops.mean(y) + 0.0 * self.w, "zero": 0.0 * self.w}

    y = np.arange(20, dtype="float32")
    model = MeanOfY()
    model.compile(optimizer="sgd")
    history = model.fit(
        np.zeros((20, 1)),
        y,
        batch_size=8,
        epochs=1,
        shuffle=False,
        validation_data=(np.zeros((20, 1)), y),
        verbose=0,
    ).history
    assert history["mean_y"][0] == pytest.approx(y.mean(), rel=1e-6)
    assert history["val_mean_y"][0] == pytest.approx(y.mean(), rel=1e-6)
    assert history["loss"][0] == pytest.approx(y.mean(), rel=1e-6)


def test_validation_logs_every_term_and_evaluate_returns_dict():
    x, y = regression_data()
    model = TwoTerms(loss_weights={"l2": 0.5})
    model.compile(optimizer="adam")
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0).history
    assert {"val_loss", "val_mse", "val_l2"} <= set(history)
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(results["mse"] + 0.5 * results["l2"], rel=1e-5)


def test_resumed_fit_starts_at_initial_epoch():
    x, y = regression_data()
    lr = schedules.step_decay(0.1, 0.1, step_epochs=2)
    model = TwoTerms(learning_rate=lr)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0).history
    assert int(model.epoch.numpy()) == 3
    np.testing.assert_allclose(history["learning_rate"], [lr(2), lr(3)], rtol=1e-6)


def test_sample_weights_reach_compute_losses():
    class Weighted(vtrain.Model):
        def __init__(self):
            super().__init__()
            self.w = self.add_weight(shape=(), initializer="zeros")

        def compute_losses(self, data, training):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            return {"weighted": ops.mean(sample_weight * y) + 0.0 * self.w}

    model = Weighted()
    model.compile(optimizer="sgd")
    y = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    sw = np.array([0.0, 1.0, 0.0, 2.0], "float32")
    logs = model.evaluate(
        np.zeros((4, 1)), y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True
    )
    assert logs["weighted"] == pytest.approx(np.mean(sw * y))


def test_unused_variables_get_none_gradients_and_fit_still_works():
    class Unused(TwoTerms):
        def __init__(self):
            super().__init__()
            self.unused = keras.layers.Dense(2)
            self.unused.build((None, 3))

    x, y = regression_data()
    model = Unused()
    model.compile(optimizer="adam")
    before = model.unused.kernel.numpy().copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    np.testing.assert_array_equal(model.unused.kernel.numpy(), before)


def test_mixed_precision_uses_loss_scaling_and_trains():
    keras.config.set_dtype_policy("mixed_float16")
    x, y = regression_data(64)
    model = TwoTerms(loss_weights={"l2": 1e-3})
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    assert isinstance(model.optimizer, vtrain.optimizers.SparseLossScaleOptimizer)
    history = model.fit(x, y, epochs=5, verbose=0).history
    assert history["mse"][-1] < history["mse"][0]


def test_jit_compile_on_cpu():
    x, y = regression_data()
    model = TwoTerms()
    model.compile(optimizer="adam", jit_compile=True)
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert model.jit_compile and np.isfinite(history["loss"]).all()


def test_save_load_round_trip_keeps_epoch_weights_and_schedules(tmp_path):
    x, y = regression_data()
    model = TwoTerms(
        loss_weights={"l2": schedules.cubic(0.1, 4)},
        learning_rate=schedules.exponential_decay(0.01, 0.9),
    )
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=3, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert int(loaded.epoch.numpy()) == 2
    assert loaded.loss_weight_schedules == model.loss_weight_schedules
    assert loaded.learning_rate_schedule == model.learning_rate_schedule
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    loaded.fit(x, y, epochs=4, initial_epoch=3, verbose=0)  # still trainable
    assert int(loaded.epoch.numpy()) == 3


def test_saving_a_lambda_schedule_warns_and_saves_the_current_value(tmp_path):
    x, y = regression_data()
    model = TwoTerms(loss_weights={"l2": lambda epoch: 0.5 + epoch})
    model.compile(optimizer="sgd")
    model.fit(x, y, epochs=2, verbose=0)
    with pytest.warns(UserWarning, match="plain callable and cannot be saved"):
        model.save(str(tmp_path / "m.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert loaded.loss_weight_schedules["l2"](7) == 1.5


def test_compile_with_a_loss_is_refused_with_a_fix():
    with pytest.raises(ValueError, match=r"received loss='mse'.*Remove loss=\.\.\."):
        TwoTerms().compile(optimizer="sgd", loss="mse")


def test_non_scalar_term_message():
    class Bad(TwoTerms):
        def compute_losses(self, data, training):
            x, y = data
            return {"mse": ops.square(self(x)[:, 0] - y)}

    model = Bad()
    model.compile(optimizer="sgd")
    x, y = regression_data(8)
    with pytest.raises(ValueError, match=r"'mse' .* has shape \(8,\); expected a scalar"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_weight_for_an_unknown_term_message():
    model = TwoTerms(loss_weights={"kl": 1.0})
    model.compile(optimizer="sgd")
    x, y = regression_data(8)
    with pytest.raises(ValueError, match=r"loss_weights names \['kl'\].*\['l2', 'mse'\]"):
        model.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("name", ["loss", "learning_rate", "kl_weight", "has space", 3])
def test_reserved_or_invalid_term_names_are_refused(name):
    with pytest.raises(ValueError, match="Invalid loss term name"):
        TwoTerms(loss_weights={name: 1.0})


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_set_epoch_rejects_invalid_epochs(epoch):
    with pytest.raises(ValueError, match="Invalid epoch: received"):
        TwoTerms().set_epoch(epoch)


def test_learning_rate_schedule_with_a_keras_schedule_optimizer_message():
    x, y = regression_data(8)
    model = TwoTerms(learning_rate=schedules.constant(0.1))
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(optimizer=keras.optimizers.SGD(decay))
    with pytest.raises(TypeError, match="built with a LearningRateSchedule"):
        model.fit(x, y, epochs=1, verbose=0)


def test_two_positional_sizes_do_not_make_a_functional_model():
    class Sized(TwoTerms):
        def __init__(self, inputs_dim, units, **kwargs):
            super().__init__(units=units, **kwargs)
            self.inputs_dim = inputs_dim

    model = Sized(3, 2)
    assert not isinstance(model, keras.src.models.functional.Functional)
    assert model.dense.units == 2


# --------------------------------------------------------------------------
# No silent densification of sparse gradients.


def embedding_model(layer, optimizer):
    ids = keras.Input((4,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(layer(50_000, 8, name="words")(ids))
    model = vtrain.VariationalModel(ids, keras.layers.Dense(3)(h), weight_decay=1e-5)
    model.compile(optimizer=optimizer)
    return model


def densified_warnings(model, epochs=2):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50_000, (32, 4)), rng.integers(0, 3, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, validation_data=(x, y))
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, vtrain.optimizers.DensifiedGradientWarning)
    ]


@pytest.mark.parametrize(
    "layer", [vtrain.layers.VariationalEmbedding, vtrain.layers.GatherEmbedding]
)
def test_adam_on_a_sparse_gradient_warns_once_naming_the_variable(layer):
    messages = densified_warnings(embedding_model(layer, "adam"))
    assert len(messages) == 1, messages  # 2 epochs of 4 steps, validation: one warning
    assert messages[0].startswith(
        "VariationalModel received sparse (tf.IndexedSlices) gradients for "
        "'words/embeddings' (shape (50000, 8), 1.6 MB), but its optimizer, Adam, "
        "applies them as dense updates"
    )
    assert "Fix: model.compile(optimizer=vtrain.optimizers.LazyAdam(...))" in messages[0]
    assert "log_alpha" not in messages[0]  # its KL gradient is dense anyway


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: vtrain.optimizers.LazyAdam(),
        lambda: keras.optimizers.SGD(0.1),
        lambda: vtrain.optimizers.LazyAdam(learning_rate_multipliers={"log_alpha": 5.0}),
    ],
    ids=["lazy_adam", "sgd", "lazy_adam_multiplied"],
)
def test_row_wise_optimizers_do_not_warn(optimizer):
    assert (
        densified_warnings(embedding_model(vtrain.layers.VariationalEmbedding, optimizer())) == []
    )


def test_keras_embedding_with_adam_warns_too():
    # On this TF backend keras.layers.Embedding's gradient is IndexedSlices
    # as well; Adam is what densifies it.
    (message,) = densified_warnings(embedding_model(keras.layers.Embedding, "adam"))
    assert "'words/embeddings' (shape (50000, 8), 1.6 MB)" in message


def test_recompiling_with_another_densifying_optimizer_warns_again():
    model = embedding_model(vtrain.layers.GatherEmbedding, "rmsprop")
    assert len(densified_warnings(model, epochs=1)) == 1
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    (message,) = densified_warnings(model, epochs=1)
    assert "its optimizer, SGD, applies them as dense updates" in message
