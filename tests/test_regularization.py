"""Plain Keras losses inside a `vtrain.Model`: layer regularizers and `add_loss`
make the `regularization` term, checked against NumPy.

(The same on two replicas: `tests/test_distribute.py`, case `regularized_even`.)
"""

import keras
import numpy as np
import pytest
from keras import ops

import vtrain

L2_FACTOR, L1_ACTIVITY, ADDED = 100.0, 0.5, 0.25


class AddedLoss(keras.layers.Layer):
    """Identity whose `call` adds `ADDED * mean(x ** 2)` with `add_loss`."""

    def call(self, x):
        self.add_loss(ADDED * ops.mean(ops.square(x)))
        return x


class Regularized(vtrain.Model):
    """One Dense with a kernel L2 and an activity L1 regularizer, then `AddedLoss`."""

    def __init__(self, kernel_regularizer=L2_FACTOR, activity=True, added=True, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(
            2,
            kernel_regularizer=keras.regularizers.L2(kernel_regularizer)
            if kernel_regularizer
            else None,
            activity_regularizer=keras.regularizers.L1(L1_ACTIVITY) if activity else None,
        )
        self.added = AddedLoss() if added else None
        self.train_traces = 0

    def call(self, x):
        out = self.dense(x)
        return self.added(out) if self.added is not None else out

    def train_step(self, data):
        self.train_traces += 1  # Python side effect: runs once per trace.
        return super().train_step(data)

    def compute_losses(self, data, training):
        x, y = data
        return {"mse": ops.mean(ops.square(self(x)[:, 0] - y))}


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], "float32")).astype("float32")


def numpy_terms(model, x, y, kernel=True, activity=True, added=True):
    """The task term and the penalty, in float64, from the model's weights."""
    w, b = (np.asarray(v, "float64") for v in model.dense.get_weights())
    out = x.astype("float64") @ w + b
    penalty = 0.0
    if kernel:
        penalty += L2_FACTOR * np.sum(w**2)
    if activity:  # Keras 3 divides an activity regularizer by the batch size.
        penalty += L1_ACTIVITY * np.sum(np.abs(out)) / len(x)
    if added:
        penalty += ADDED * np.mean(out**2)
    return np.mean((out[:, 0] - y) ** 2), penalty


def test_history_loss_is_task_plus_numpy_penalty():
    x, y = data()
    model = Regularized()
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: weights stay put
    history = model.fit(
        x, y, batch_size=len(x), epochs=2, verbose=0, validation_data=(x, y)
    ).history
    mse, penalty = numpy_terms(model, x, y)
    assert sorted(history) == [
        "learning_rate",
        "loss",
        "mse",
        "regularization",
        "val_loss",
        "val_mse",
        "val_regularization",
    ]
    assert penalty > 10 * mse  # the penalty is not lost in the rounding
    for prefix in ("", "val_"):
        np.testing.assert_allclose(history[f"{prefix}regularization"], [penalty] * 2, rtol=1e-5)
        np.testing.assert_allclose(history[f"{prefix}mse"], [mse] * 2, rtol=1e-5)
        np.testing.assert_allclose(history[f"{prefix}loss"], [mse + penalty] * 2, rtol=1e-5)
    assert model.train_traces == 1


@pytest.mark.parametrize(
    "kernel, activity, added",
    [(True, False, False), (False, True, False), (False, False, True)],
    ids=["kernel_regularizer", "activity_regularizer", "add_loss"],
)
def test_each_kind_of_keras_loss_counts_in_evaluate(kernel, activity, added):
    x, y = data(6)
    model = Regularized(
        kernel_regularizer=L2_FACTOR if kernel else None, activity=activity, added=added
    )
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    mse, penalty = numpy_terms(model, x, y, kernel, activity, added)
    assert logs["regularization"] == pytest.approx(penalty, rel=1e-5)
    assert logs["loss"] == pytest.approx(mse + penalty, rel=1e-5)


def test_the_kernel_penalty_reaches_the_gradient():
    # The task term has no gradient (the target is the prediction itself,
    # stopped): one SGD step is exactly w - lr * 2 * L2_FACTOR * w.
    class PenaltyOnly(Regularized):
        def compute_losses(self, data, training):
            x, _ = data
            out = self(x)
            return {"zero": ops.mean(ops.square(out - ops.stop_gradient(out)))}

    x, y = data()
    model = PenaltyOnly(activity=False, added=False)
    lr = 1e-3
    model.compile(optimizer=keras.optimizers.SGD(lr))
    model(x)
    w0, b0 = model.dense.get_weights()
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    w1, b1 = model.dense.get_weights()
    np.testing.assert_allclose(w1, w0 - lr * 2 * L2_FACTOR * w0, rtol=1e-6)
    np.testing.assert_array_equal(b1, b0)


def test_no_keras_losses_no_regularization_term():
    x, y = data()
    model = Regularized(kernel_regularizer=None, activity=False, added=False)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    assert "regularization" not in history and "val_regularization" not in history


def test_functional_variational_model_counts_a_dense_regularizer():
    ids = keras.Input((4,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(vtrain.layers.VariationalEmbedding(20, 3)(ids))
    dense = keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.5))
    model = vtrain.VariationalModel(ids, dense(h), weight_decay=1e-3)
    model.compile(optimizer=vtrain.optimizers.LazyAdam())
    x, y = np.arange(24).reshape(6, 4) % 20, np.arange(6) % 2
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    penalty = 0.5 * np.sum(dense.kernel.numpy().astype("float64") ** 2)
    assert logs["regularization"] == pytest.approx(penalty, rel=1e-5)
    assert logs["loss"] == pytest.approx(
        logs["cross_entropy"] + 1e-3 * logs["kl"] + penalty, rel=1e-5
    )


@pytest.mark.parametrize("where", ["compute_losses", "loss_weights"])
def test_regularization_is_a_reserved_term_name(where):
    class Claims(Regularized):
        def compute_losses(self, data, training):
            x, _ = data
            return {"regularization": ops.mean(self(x))}

    expected = rf"Invalid loss term name 'regularization' in {where}: vtrain adds"
    if where == "loss_weights":
        with pytest.raises(ValueError, match=expected):
            Regularized(loss_weights={"regularization": 2.0})
        return
    model = Claims()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=expected):
        model.fit(*data(), epochs=1, verbose=0)


def test_the_last_call_of_the_model_counts_as_in_keras():
    # Keras clears add_loss() values at each outer call: a second self(...)
    # in compute_losses replaces the first call's activity losses.
    class TwoCalls(Regularized):
        def compute_losses(self, data, training):
            x, y = data
            self(x)
            return {"mse": ops.mean(ops.square(self(2.0 * x)[:, 0] - y))}

    x, y = data(6)
    model = TwoCalls(kernel_regularizer=None, added=False)
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    _, penalty = numpy_terms(model, 2.0 * x, y, kernel=False, added=False)
    assert logs["regularization"] == pytest.approx(penalty, rel=1e-5)


def test_sublayers_called_directly_count_too():
    class Direct(Regularized):
        def compute_losses(self, data, training):
            x, y = data
            return {"mse": ops.mean(ops.square(self.added(self.dense(x))[:, 0] - y))}

    x, y = data(6)
    model = Direct()
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    assert logs["regularization"] == pytest.approx(numpy_terms(model, x, y)[1], rel=1e-5)
