import keras
import numpy as np
import pytest
from keras import ops

import vtrain
from tests.layers.test_variational_embedding import numpy_kl
from vtrain import schedules
from vtrain.layers import VariationalEmbedding


def functional_model(vocab=30, classes=4, length=6, weight_decay=0.01, **kwargs):
    ids = keras.Input((length,), dtype="int32")
    h = VariationalEmbedding(vocab, 5, name="embed")(ids)
    logits = keras.layers.Dense(classes, name="out")(keras.layers.GlobalAveragePooling1D()(h))
    return vtrain.VariationalModel(ids, logits, weight_decay=weight_decay, **kwargs)


@keras.saving.register_keras_serializable(package="vtrain_tests")
class Subclassed(vtrain.VariationalModel):
    """Nested: the variational embedding lives inside an inner block."""

    def __init__(self, vocab=30, classes=4, **kwargs):
        super().__init__(**kwargs)
        self.vocab, self.classes = vocab, classes
        self.block = keras.Sequential(
            [VariationalEmbedding(vocab, 5), keras.layers.GlobalAveragePooling1D()]
        )
        self.out = keras.layers.Dense(classes)

    def call(self, ids, training=False):
        return self.out(self.block(ids, training=training))

    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "classes": self.classes}


def data(n=40, vocab=30, classes=4, length=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, (n, length)), rng.integers(0, classes, n)


def numpy_softmax_cross_entropy(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels]


def test_loss_is_cross_entropy_plus_weighted_kl_against_numpy():
    x, y = data()
    model = functional_model(weight_decay=0.01)
    model.compile(optimizer="adam")
    logs = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0)
    expected_ce = numpy_softmax_cross_entropy(logits.astype(np.float64), y).mean()
    expected_kl = numpy_kl(model.get_layer("embed").log_alpha.numpy()).sum()
    assert logs["cross_entropy"] == pytest.approx(expected_ce, rel=1e-5)
    assert logs["kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected_ce + 0.01 * expected_kl, rel=1e-5)


def test_multilabel_cross_entropy_sums_over_labels_and_uses_sample_weights():
    model = vtrain.VariationalModel(task_loss="binary_crossentropy")
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], "float32")
    labels = np.array([[1, 0, 1], [0, 0, 1]], "float32")
    weights = np.array([1.0, 0.5], "float32")
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    per_example = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).sum(axis=1)
    got = float(model.cross_entropy(labels, logits, weights))
    assert got == pytest.approx((weights * per_example).mean(), rel=1e-5)


def test_kl_is_found_in_nested_layers_and_summed():
    model = Subclassed()
    model(np.zeros((1, 6), "int32"))
    layers = model.variational_layers()
    assert len(layers) == 1
    expected = numpy_kl(layers[0].log_alpha.numpy()).sum()
    assert float(model.kl_divergence()) == pytest.approx(expected, rel=1e-5)


def test_weight_decay_schedule_reaches_the_step_and_history():
    x, y = data()
    ramp = schedules.vocabulary_ramp(1e-4, 1e-1, start_epoch=1, total_epochs=4, learning_rate=1e-2)
    model = functional_model(weight_decay=ramp.weight_decay, learning_rate=ramp.learning_rate)
    model.compile(optimizer="adam")
    history = model.fit(x, y, epochs=4, batch_size=20, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["kl_weight"], [ramp(e)[0] for e in range(4)], rtol=1e-6)
    # In epoch 3 the total is ce + weight * kl for that epoch's weight.
    assert history["loss"][3] == pytest.approx(
        history["cross_entropy"][3] + ramp(3)[0] * history["kl"][3], rel=1e-4
    )


def test_kl_pushes_log_alpha_up_when_data_does_not_need_the_words():
    # Labels independent of the words: only the KL acts on log_alpha.
    x, y = data(n=64)
    model = functional_model(weight_decay=1.0)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    before = model.get_layer("embed").log_alpha.numpy().mean()
    model.fit(x, np.zeros_like(y), epochs=20, verbose=0)
    assert model.get_layer("embed").log_alpha.numpy().mean() > before + 1.0


def test_jit_compile_fit_on_cpu():
    x, y = data()
    model = functional_model()
    model.compile(optimizer="adam", jit_compile=True)
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert model.jit_compile and np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("style", ["functional", "subclassed"])
def test_save_load_keeps_epoch_log_alpha_and_predictions(style, tmp_path):
    x, y = data()
    model = (
        functional_model()
        if style == "functional"
        else Subclassed(weight_decay=schedules.linear_warmup(0.01, 2))
    )
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=3, verbose=0)
    path = str(tmp_path / f"{style}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert int(loaded.epoch.numpy()) == 2
    np.testing.assert_array_equal(
        loaded.variational_layers()[0].log_alpha.numpy(),
        model.variational_layers()[0].log_alpha.numpy(),
    )
    diff = np.abs(loaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    assert diff == 0.0
    assert loaded.loss_weight_schedules == model.loss_weight_schedules


def test_model_without_variational_layers_has_zero_kl():
    ids = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(30, 5)(ids)
    model = vtrain.VariationalModel(ids, keras.layers.Dense(4)(ops.mean(h, axis=1)))
    model.compile(optimizer="adam")
    x, y = data()
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["kl"] == 0.0 and logs["loss"] == logs["cross_entropy"]


def test_invalid_task_loss_and_kl_in_loss_weights_messages():
    with pytest.raises(ValueError, match=r"Invalid task_loss: received 'mse'"):
        vtrain.VariationalModel(task_loss="mse")
    with pytest.raises(ValueError, match=r"Pass weight_decay=\.\.\. instead"):
        vtrain.VariationalModel(loss_weights={"kl": 1.0})


def test_missing_labels_message():
    model = functional_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="VariationalModel needs labels"):
        model.fit(data()[0], epochs=1, verbose=0)
