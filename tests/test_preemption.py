"""SIGTERM / SIGINT during fit: a backup at the next batch end, `Preempted`, and an exact resume.

In-process: a callback sends the signal to this process at a chosen batch,
as a scheduler would; the Python handler runs at once, between bytecodes.
The launcher's exit status and message are tested in
tests/tagging/test_preemption_launcher.py.
"""

import json
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import vtrain
from vtrain import preemption
from vtrain.callbacks import AtomicBackupAndRestore

X = np.linspace(-1, 1, 8 * 7 * 3).reshape(-1, 3).astype("float32")  # 56 rows
Y = np.sin(X.sum(axis=1, keepdims=True))
BATCH, EPOCHS = 8, 3  # 7 batches an epoch


class Noisy(vtrain.Model):
    """Dropout (a SeedGenerator) and Adam (optimizer state): both must resume."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.dropout = keras.layers.Dropout(0.3, seed=5)
        self.out = keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.out(self.dropout(self.hidden(x), training=training))

    def compute_losses(self, data, training):
        x, y = data
        return {"mse": keras.ops.mean((self(x, training=training) - y) ** 2)}


def dataset():
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH)


@pytest.fixture(autouse=True)
def default_handlers():
    """Python's own SIGTERM / SIGINT handlers in each test, whatever ran before."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def initial_weights():
    model = build()
    return model.get_weights()


def build(weights=None):
    model = Noisy()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model(X[:1])
    if weights is not None:
        model.set_weights(weights)
    return model


class SendSignal(keras.callbacks.Callback):
    """Sends `signum` to this process at the end of (epoch, batch), or in validation."""

    def __init__(self, signum, epoch, batch=None):
        super().__init__()
        self.signum, self.at_epoch, self.at_batch = signum, epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (self.at_epoch, self.at_batch):
            os.kill(os.getpid(), self.signum)

    def on_test_begin(self, logs=None):
        if self.at_batch is None and self.epoch == self.at_epoch:
            os.kill(os.getpid(), self.signum)


def train(weights, backup_dir, *extra, signals=(signal.SIGTERM, signal.SIGINT)):
    """fit() from `weights` with a backup (before `extra`); returns (model, epoch logs)."""
    model = build(weights)
    backup = AtomicBackupAndRestore(backup_dir, save_on_signals=signals)
    history = model.fit(
        backup.resumable(dataset()),
        validation_data=dataset(),
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[*extra, backup],
    )
    return model, history.history


def manifest(backup_dir):
    return json.loads((backup_dir / "training_metadata.json").read_text())


def assert_same(a, b):
    for got, want in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_sigterm_mid_epoch_saves_stops_and_resumes_exactly(initial_weights, tmp_path, capsys):
    before = signal.getsignal(signal.SIGTERM)
    whole, whole_logs = train(initial_weights, tmp_path / "whole")

    backup_dir = tmp_path / "backup"
    with pytest.raises(preemption.Preempted) as stopped:
        train(initial_weights, backup_dir, SendSignal(signal.SIGTERM, epoch=1, batch=3))
    assert stopped.value.code == 143 and stopped.value.signal == signal.SIGTERM
    assert (stopped.value.epoch, stopped.value.batches_done) == (1, 4)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message == str(stopped.value)
    assert message.startswith(
        "Preempted: received SIGTERM; the training state (after batch 4 of epoch 2) "
        f"is saved in {str(backup_dir)!r} ("
    )
    assert message.endswith(
        " s). Run the same training again to resume from there (exit status 143)."
    )
    saved = manifest(backup_dir)
    assert (saved["epoch"], saved["batches_done"]) == (1, 4)
    assert [path for path, _ in saved["metrics"]] == [
        v.path for v in whole.metrics_variables
    ]  # the running epoch means
    assert signal.getsignal(signal.SIGTERM) == before  # handlers put back

    resumed, resumed_logs = train(initial_weights, backup_dir)
    assert_same(resumed, whole)
    # Epochs 2 and 3 were run after the resume; their means cover whole epochs.
    for name, values in whole_logs.items():
        assert resumed_logs[name] == values[1:], name


def test_stopped_three_times_then_resumed_equals_an_uninterrupted_run(initial_weights, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    whole, _ = train(initial_weights, tmp_path / "whole")
    backup_dir = tmp_path / "backup"
    # Ctrl-C after batch 2 of epoch 1; again in that resumed epoch (Keras
    # numbers its batches from 0 again: batch 2 is the epoch's 5th); then a
    # SIGTERM in the last epoch's validation: backed up at the epoch end.
    for signum, epoch, batch, position in [
        (signal.SIGINT, 0, 1, (0, 2)),
        (signal.SIGINT, 0, 2, (0, 5)),
        (signal.SIGTERM, 2, None, (3, 0)),
    ]:
        with pytest.raises(preemption.Preempted) as stopped:
            train(initial_weights, backup_dir, SendSignal(signum, epoch, batch))
        assert stopped.value.code == 128 + signum
        assert (manifest(backup_dir)["epoch"], manifest(backup_dir)["batches_done"]) == position
    assert signal.getsignal(signal.SIGINT) is before
    # Every epoch ran before the last stop: nothing is left to train.
    resumed, logs = train(initial_weights, backup_dir)
    assert logs == {}
    assert_same(resumed, whole)


def test_without_resumable_data_the_epoch_restarts_with_a_warning(initial_weights, tmp_path):
    backup_dir = tmp_path / "backup"
    with pytest.raises(preemption.Preempted):
        train(initial_weights, backup_dir, SendSignal(signal.SIGTERM, epoch=1, batch=3))
    model = build(initial_weights)
    with pytest.warns(UserWarning, match=r"after batch 4 of epoch 2, but the training data"):
        history = model.fit(
            dataset(),
            epochs=EPOCHS,
            shuffle=False,
            verbose=0,
            callbacks=[AtomicBackupAndRestore(backup_dir)],
        )
    assert len(history.history["loss"]) == 2  # Keras's behaviour: epoch 2 from its start


def test_a_second_signal_acts_at_once():
    before = signal.getsignal(signal.SIGINT)
    flag = preemption.SignalFlag([signal.SIGINT])
    assert flag.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        flag.uninstall(redeliver=False)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_recorded_as_training_ends_is_delivered():
    flag = preemption.SignalFlag([signal.SIGINT])
    flag.install()
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        flag.uninstall()


def test_unknown_length_data_cannot_be_resumable():
    endless = tf.data.Dataset.from_tensor_slices(X).repeat()
    with pytest.raises(ValueError, match=r"received a dataset of infinite length\. Expected"):
        AtomicBackupAndRestore("unused").resumable(endless)
    filtered = tf.data.Dataset.from_tensor_slices(X).filter(lambda x: x[0] > 0)
    with pytest.raises(ValueError, match=r"unknown length.*assert_cardinality"):
        AtomicBackupAndRestore("unused").resumable(filtered)


class _Fails(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise RuntimeError("disk gone")


def test_handlers_come_back_after_fit_raises_only_through_release_signals(
    initial_weights, tmp_path
):
    before = signal.getsignal(signal.SIGTERM)
    model = build(initial_weights)
    backup = AtomicBackupAndRestore(tmp_path / "backup", save_on_signals=[signal.SIGTERM])
    with pytest.raises(RuntimeError, match="disk gone"):
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[backup, _Fails()])
    # Keras skipped on_train_end: the recording handler is still in place.
    assert signal.getsignal(signal.SIGTERM) != before
    backup.release_signals()
    assert signal.getsignal(signal.SIGTERM) == before
    backup.release_signals()  # a second call changes nothing
    assert signal.getsignal(signal.SIGTERM) == before
