"""Tests for vtrain.callbacks: NaNGuard and the atomic checkpoint callbacks.

(`EpochScheduler` is covered by its docstring example, run in test_docs.)
"""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

import vtrain
from vtrain import backup_files, callbacks, checksums
from vtrain.callbacks import (
    AtomicBackupAndRestore,
    AtomicModelCheckpoint,
    NaNGuard,
    NonFiniteLossError,
)

# 16 examples in batches of 4: 4 steps an epoch. Optimizer step index 6
# (0-based, counted before the update) is epoch 1, batch 2.
X = np.linspace(-1, 1, 48).reshape(16, 3).astype("float32")
Y = X.sum(axis=1)
BAD_STEP = 6


@keras.saving.register_keras_serializable(package="vtrain_tests")
class Poisoned(vtrain.Model):
    """Regression whose `mse` term is multiplied by `value` at one step.

    NaN or inf times the gradient poisons the weights too, as a real
    divergence would, so a checkpoint written after that step would be bad.
    """

    def __init__(self, value, at=BAD_STEP, in_validation=False, **kwargs):
        super().__init__(**kwargs)
        self.value, self.at, self.in_validation = value, at, in_validation
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return {
            **super().get_config(),
            "value": self.value,
            "at": self.at,
            "in_validation": self.in_validation,
        }

    def compute_losses(self, data, training):
        x, y = data
        mse = ops.mean((self(x)[:, 0] - y) ** 2)
        if training:
            hit = ops.equal(self.optimizer.iterations, self.at)
        else:
            hit = ops.convert_to_tensor(self.in_validation)
        mse = mse * ops.where(hit, self.value, 1.0)
        return {"mse": mse, "l2": ops.sum(self.dense.kernel**2)}


def _poisoned(value, **kwargs):
    model = Poisoned(value, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model(X[:1])
    return model


class Snapshots(keras.callbacks.Callback):
    """Records the weights after every training batch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(self.model.get_weights())


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_guard_names_the_term_epoch_and_step(value):
    model = _poisoned(value)
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[NaNGuard()])
    message = str(error.value)
    assert f"the loss term 'mse' is {float(value)} at epoch 1, batch 2 " in message
    assert "optimizer step 7" in message
    assert "l2=" in message and "loss=" in message
    e = error.value
    assert (e.term, e.epoch, e.batch, e.step) == ("mse", 1, 2, 7)
    assert isinstance(e, RuntimeError)  # a launcher's generic handler sees it


def test_guard_checks_validation_terms():
    model = _poisoned(np.nan, at=-1, in_validation=True)
    with pytest.raises(
        NonFiniteLossError, match=r"'val_mse' is nan in validation after epoch 0"
    ) as error:
        model.fit(
            X, Y, batch_size=4, epochs=2, verbose=0, validation_data=(X, Y), callbacks=[NaNGuard()]
        )
    assert error.value.batch is None


def test_guard_on_a_plain_keras_model_checks_the_total():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    y = Y.copy()
    y[5] = np.nan  # batch 1 of every epoch
    with pytest.raises(NonFiniteLossError, match=r"the total 'loss' is nan at epoch 0, batch 1"):
        model.fit(X, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[NaNGuard()])


def test_guard_without_problem_is_silent():
    model = _poisoned(1.0)
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[NaNGuard()])
    assert len(history.history["loss"]) == 2


def test_last_good_checkpoint_stays(tmp_path):
    """Checkpoint callbacks placed *before* the guard, saving every batch:
    the worst order. They skip the poisoned batch; the guard then stops."""
    model = _poisoned(np.nan)
    snapshots = Snapshots()
    checkpoint = tmp_path / "last.weights.h5"
    backup_dir = tmp_path / "backup"
    with pytest.warns(UserWarning) as warned:
        with pytest.raises(NonFiniteLossError):
            model.fit(
                X,
                Y,
                batch_size=4,
                epochs=3,
                verbose=0,
                callbacks=[
                    snapshots,
                    AtomicModelCheckpoint(checkpoint, save_weights_only=True, save_freq=1),
                    AtomicBackupAndRestore(backup_dir, save_freq=1),
                    NaNGuard(),
                ],
            )
    messages = sorted(str(w.message) for w in warned if "Atomic" in str(w.message))
    assert messages == [
        "AtomicBackupAndRestore: not backing up: mse is nan. The last backup is kept.",
        "AtomicModelCheckpoint: not saving epoch 1 (0-based): mse is nan. "
        "The last checkpoint is kept.",
    ]
    assert len(snapshots.weights) == BAD_STEP + 1
    assert not all(np.isfinite(w).all() for w in snapshots.weights[-1])  # bad state
    good = snapshots.weights[-2]

    restored = _poisoned(1.0)
    restored.load_weights(checkpoint)
    for got, want in zip(restored.get_weights(), good):
        np.testing.assert_array_equal(got, want)

    # The backup survives (no on_train_end ran) and resumes from the same state.
    resumed = _poisoned(1.0)
    backup = AtomicBackupAndRestore(backup_dir)
    backup.set_model(resumed)
    backup.on_train_begin()
    for got, want in zip(resumed.get_weights(), good):
        np.testing.assert_array_equal(got, want)
    assert resumed._initial_epoch == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_backup_crash_before_commit_resumes_from_the_previous_backup(tmp_path, monkeypatch):
    model = _poisoned(1.0)
    backup = AtomicBackupAndRestore(tmp_path, delete_checkpoint=False)
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[backup])
    after_epoch_0 = model.get_weights()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the metadata commit")

    # The next backup writes its weights file, then dies before the commit.
    monkeypatch.setattr(callbacks.vtrain_io, "atomic_write_json", crash)
    with pytest.raises(OSError, match="simulated crash"):
        model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[backup])
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == [
        "backup-1.weights.h5",
        "backup-2.weights.h5",
        "training_metadata.json",
    ]
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 1

    resumed = _poisoned(1.0)
    history = resumed.fit(
        X,
        Y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[Snapshots(), AtomicBackupAndRestore(tmp_path, delete_checkpoint=False)],
    )
    assert len(history.history["loss"]) == 1  # epoch 0 restored, epoch 1 run
    # Epoch 1 started from the committed epoch-0 state, not the orphan file.
    reference = _poisoned(1.0)
    reference.set_weights(after_epoch_0)
    reference.fit(X, Y, batch_size=4, epochs=2, initial_epoch=1, verbose=0)
    for got, want in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    # The next commit removed the orphan and kept the backup before it.
    assert sorted(os.listdir(tmp_path)) == [
        "backup-1.weights.h5",
        "backup-3.weights.h5",
        "training_metadata.json",
        "training_metadata.previous.json",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "{not json",
            r"no intact backup is left .*training_metadata.json': received {not json: not JSON",
        ),
        (
            '{"epoch": 2, "batch": 0}',
            r"received {\"epoch\": 2, \"batch\": 0}: no 'weights'.*Keras BackupAndRestore",
        ),
    ],
)
def test_backup_metadata_errors(tmp_path, text, message):
    (tmp_path / "training_metadata.json").write_text(text)
    backup = AtomicBackupAndRestore(tmp_path)
    backup.set_model(_poisoned(1.0))
    with pytest.raises(ValueError, match=message):
        backup.on_train_begin()


def test_model_checkpoint_formats_names_and_keeps_the_best(tmp_path):
    model = _poisoned(1.0)
    pattern = str(tmp_path / "model-{epoch:02d}.keras")
    best = str(tmp_path / "best.weights.h5")
    model.fit(
        X,
        Y,
        batch_size=4,
        epochs=2,
        verbose=0,
        validation_data=(X, Y),
        callbacks=[
            AtomicModelCheckpoint(pattern),
            AtomicModelCheckpoint(best, save_weights_only=True, save_best_only=True),
        ],
    )
    assert sorted(os.listdir(tmp_path)) == [
        "best.weights.h5",
        "best.weights.h5.sha256",
        "model-01.keras",
        "model-01.keras.sha256",
        "model-02.keras",
        "model-02.keras.sha256",
    ]
    for name in ("best.weights.h5", "model-01.keras", "model-02.keras"):
        assert checksums.verify(tmp_path / name) == checksums.sha256_of(tmp_path / name)
    loaded = keras.saving.load_model(tmp_path / "model-02.keras")
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_first_non_finite_reads_arrays_and_scalars():
    assert callbacks.first_non_finite({"kl": np.array([np.nan])}, ["kl"])[0] == "kl"
    assert callbacks.first_non_finite(None, ["kl"]) is None
    model = _poisoned(1.0)
    assert callbacks.monitored_terms(model) == ["loss"]  # terms known after fit
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    assert callbacks.monitored_terms(model) == ["mse", "l2", "loss"]


def test_metadata_is_json_written_by_the_callback(tmp_path):
    model = _poisoned(1.0)
    model.fit(
        X,
        Y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[AtomicBackupAndRestore(tmp_path, delete_checkpoint=False)],
    )
    metadata = json.loads((tmp_path / "training_metadata.json").read_text())
    weights = tmp_path / "backup-1.weights.h5"
    assert metadata == {
        "batches_done": 0,
        "epoch": 1,
        "weights": "backup-1.weights.h5",
        "sha256": checksums.sha256_of(weights),
        "seed_states": [],  # the model has no SeedGenerator
        "checksum": metadata["checksum"],
    }
    assert backup_files.read_manifest(tmp_path / "training_metadata.json") == metadata


# --------------------------------------------------------------------------
# Keras's monitor callbacks on vtrain terms, with no mode=: lower is better.


class Trends(vtrain.Model):
    """Terms that depend on the epoch only: `rising` = epoch, `falling` =
    -epoch, `dip` = (epoch - 1) ** 2; with these weights `loss` =
    epoch - 0.5 * epoch rises."""

    def __init__(self, **kwargs):
        super().__init__(loss_weights={"falling": 0.5, "dip": 0.0}, **kwargs)
        self.w = self.add_weight(shape=(), initializer="zeros")

    def call(self, x):
        return x * self.w

    def compute_losses(self, data, training):
        epoch = ops.cast(self.epoch, "float32")
        zero = 0.0 * ops.mean(self(data[0]))  # a gradient path to the variable
        return {"rising": epoch + zero, "falling": -epoch + zero, "dip": (epoch - 1.0) ** 2 + zero}


def _fit_trends(callback, epochs=5, learning_rate=0.1):
    model = Trends()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    history = model.fit(
        X, Y, batch_size=8, epochs=epochs, verbose=0, validation_data=(X, Y), callbacks=[callback]
    ).history
    return model, history


@pytest.mark.parametrize("monitor", ["rising", "val_rising", "loss", "val_loss", "falling"])
def test_early_stopping_infers_lower_is_better_for_every_term(monitor):
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=1)
    _, history = _fit_trends(stop)
    # A rising value never improves after epoch 0: stop at epoch 1 (0-based).
    # A falling one improves every epoch: all 5 epochs run.
    assert len(history["loss"]) == (5 if monitor == "falling" else 2)
    assert stop.stopped_epoch == (0 if monitor == "falling" else 1)


@pytest.mark.parametrize("monitor, reductions", [("val_rising", 3), ("falling", 0)])
def test_reduce_lr_on_plateau_infers_lower_is_better(monitor, reductions):
    reduce = keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=1, factor=0.5)
    model, _ = _fit_trends(reduce, epochs=4)
    # Rising: no improvement at epochs 1, 2, 3: the rate halves each time.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1 * 0.5**reductions)


@pytest.mark.parametrize(
    "checkpoint_class", [keras.callbacks.ModelCheckpoint, AtomicModelCheckpoint]
)
def test_model_checkpoint_saves_the_lowest_term(tmp_path, checkpoint_class):
    pattern = str(tmp_path / "best-{epoch:02d}.weights.h5")
    checkpoint = checkpoint_class(
        pattern, monitor="val_dip", save_best_only=True, save_weights_only=True
    )
    _fit_trends(checkpoint, epochs=4)
    # dip = 1, 0, 1, 4 at epochs 0..3 (files 01..04): best at 01, then 02.
    saved = sorted(name for name in os.listdir(tmp_path) if not name.endswith(".sha256"))
    assert saved == ["best-01.weights.h5", "best-02.weights.h5"]
    assert checkpoint.best == 0.0


def test_variational_model_terms_are_monitorable():
    ids = keras.Input((3,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(vtrain.layers.VariationalEmbedding(10, 2)(ids))
    model = vtrain.VariationalModel(ids, keras.layers.Dense(2)(h), weight_decay=1e-3)
    model.compile(optimizer=vtrain.optimizers.LazyAdam(0.01))
    x, y = np.arange(24).reshape(8, 3) % 10, np.arange(8) % 2
    callbacks_ = [
        keras.callbacks.EarlyStopping(monitor=f"val_{term}", patience=100)
        for term in ("cross_entropy", "kl", "loss")
    ]
    history = model.fit(
        x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=callbacks_
    ).history
    assert len(history["loss"]) == 2
    assert all(c.monitor_op is ops.less for c in callbacks_)
