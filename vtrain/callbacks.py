"""Callbacks: the epoch scheduler that `vtrain.Model.fit` adds itself, the
NaN guard, and checkpoint callbacks that write atomically."""

import json
import os
import warnings

import keras
import numpy as np
from keras import ops

from vtrain import _keras_compat
from vtrain import io as vtrain_io


class EpochScheduler(keras.callbacks.Callback):
    """Sets `model.epoch`, scheduled loss weights and the learning rate.

    At every epoch start it calls `model.set_epoch(epoch)` with `fit`'s
    epoch index (right after a resume too); at every epoch end it adds the
    values in force (`<term>_weight`, `learning_rate`) to the epoch logs, so
    they reach the progress bar, `History` and TensorBoard. `vtrain.Model.fit`
    puts one first in the callback list when the user did not.

    Example:
    >>> import numpy as np, keras, vtrain
    >>> class M(vtrain.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(1)
    ...     def compute_losses(self, data, training):
    ...         return {"square": keras.ops.mean(self.dense(data) ** 2)}
    >>> model = M(learning_rate=lambda epoch: 0.1 / (epoch + 1))
    >>> model.compile(optimizer="sgd")
    >>> logs = model.fit(np.ones((4, 2)), epochs=2, verbose=0,
    ...                  callbacks=[EpochScheduler()]).history
    >>> [round(v, 3) for v in logs["learning_rate"]]
    [0.1, 0.05]
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._values = self.model.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs.update(getattr(self, "_values", {}))
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))


class NonFiniteLossError(RuntimeError):
    """A loss term or the total became NaN or infinite during training.

    Raised by `NaNGuard`; a launcher catches it to exit non-zero. Attributes:
    `term` (the log name, e.g. `"kl"` or `"val_loss"`), `value`, `epoch`
    and `batch` (0-based, as `fit` counts them; `batch` is None for a
    validation value) and `step` (optimizer steps taken, the bad one
    included).
    """

    def __init__(self, message, term, value, epoch, batch, step):
        super().__init__(message)
        self.term, self.value = term, value
        self.epoch, self.batch, self.step = epoch, batch, step


class NaNGuard(keras.callbacks.Callback):
    """Stops `fit` with `NonFiniteLossError` when a term or the total is not finite.

    After every training batch it checks the logged terms and `loss` (the
    running epoch means, which stay non-finite from the batch where a value
    first was), and at every epoch end their `val_*` values. The error
    names the term, the epoch and the batch. It is raised, not a graceful
    stop: no later callback runs, so no checkpoint of the bad state is
    written and `BackupAndRestore` keeps its last good backup. Put it
    before any checkpoint callback in the list (`AtomicModelCheckpoint`
    refuses to save a non-finite state anyway).

    Args:
        terms: log names to check; default `loss` and, on a
            `vtrain.Model`, every term of `compute_losses`.

    Example:
    >>> import numpy as np, keras, vtrain
    >>> class Log(vtrain.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(1)
    ...     def compute_losses(self, data, training):
    ...         return {"log": keras.ops.mean(keras.ops.log(self.dense(data)))}
    >>> model = Log()
    >>> model.compile(optimizer="sgd")
    >>> model.dense.build((None, 1))  # log of a negative output: NaN
    >>> model.dense.set_weights([np.array([[-1.0]]), np.zeros(1)])
    >>> model.fit(np.ones((4, 1)), epochs=2, batch_size=2, verbose=0,
    ...           callbacks=[NaNGuard()])
    Traceback (most recent call last):
    ...
    vtrain.callbacks.NonFiniteLossError: Training stopped: the loss term 'log' is nan at epoch 0, batch 0 (0-based; optimizer step 1). Logs at that batch (epoch means so far): log=nan, loss=nan. ...
    """

    def __init__(self, terms=None):
        super().__init__()
        self.terms = None if terms is None else list(terms)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, self._names(), batch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, [f"val_{name}" for name in self._names()], None)

    def _names(self):
        return self.terms if self.terms is not None else monitored_terms(self.model)

    def _check(self, logs, names, batch):
        bad = first_non_finite(logs, names)
        if bad is None:
            return
        term, value = bad
        step = _optimizer_step(self.model)
        where = (
            f"at epoch {self._epoch}, batch {batch} (0-based; optimizer step {step})"
            if batch is not None
            else f"in validation after epoch {self._epoch} (0-based)"
        )
        shown = ", ".join(f"{name}={_scalar(logs[name]):.6g}" for name in names if name in logs)
        what = "the total" if term in ("loss", "val_loss") else "the loss term"
        raise NonFiniteLossError(
            f"Training stopped: {what} {term!r} is {value} {where}. "
            f"Logs at that {'batch' if batch is not None else 'point'} "
            f"(epoch means so far): {shown}. vtrain's checkpoint callbacks "
            "never save a non-finite state: the last good checkpoint stays. "
            "Look for: a learning rate too high "
            "(lower it or clip gradients, e.g. global_clipnorm=1.0), a log or "
            "division of zero in compute_losses, bad input values (NaN/inf in "
            "the data).",
            term,
            value,
            self._epoch,
            batch,
            step,
        )


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that writes atomically, finite states only.

    Same arguments and file names as Keras's. Each file is written to a
    temporary file and renamed over the target (`vtrain.io.atomic_path`),
    so a kill mid-save leaves the previous checkpoint intact. A save is
    skipped, with a warning, when the logs show a non-finite term or loss.

    Example:
    >>> import numpy as np, keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> directory = tempfile.TemporaryDirectory()
    >>> path = os.path.join(directory.name, "model.keras")
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), epochs=2, verbose=0,
    ...               callbacks=[AtomicModelCheckpoint(path)])
    >>> os.listdir(directory.name)
    ['model.keras']
    >>> directory.cleanup()
    """

    def _save_model(self, epoch, batch, logs):
        bad = first_non_finite(logs, monitored_terms(self.model, validation=True))
        if bad is not None:
            warnings.warn(
                f"AtomicModelCheckpoint: not saving epoch {epoch} "
                f"(0-based): {bad[0]} is {bad[1]}. The last checkpoint is kept.",
                stacklevel=2,
            )
            return
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            vtrain_io.save_weights(self.model, filepath)
        else:
            vtrain_io.save_model(self.model, filepath)
        if self.verbose > 0:
            _keras_compat.print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup a kill cannot corrupt.

    Keras's version writes `latest.weights.h5` in place, then a separate
    `training_metadata.json`: a kill during the first leaves a truncated
    file, and a kill between the two pairs new weights with the old epoch
    (the resumed run repeats an epoch on top of it). Here each backup is a
    new weights file, `backup-<n>.weights.h5`, written atomically; then
    `training_metadata.json`, written atomically, names it together with
    the epoch: that rename is the single commit point. Older weights files
    are removed after it. A non-finite state is never backed up.

    The backup also holds the state of every `keras.random.SeedGenerator`
    of the model (dropout, embedding noise), which Keras's weights files
    leave out: a resumed run draws the same noise as an uninterrupted one.

    Same arguments as Keras's, except `double_checkpoint` (unneeded: the
    previous backup stays valid until the next commit). As in Keras, the
    backup is taken at epoch ends (or every `save_freq` batches, in which
    case a resumed run repeats that epoch from its first batch).

    Example:
    >>> import numpy as np, keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> directory = tempfile.TemporaryDirectory()
    >>> backup = AtomicBackupAndRestore(directory.name, delete_checkpoint=False)
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), epochs=2, verbose=0,
    ...               callbacks=[backup])
    >>> sorted(os.listdir(directory.name))
    ['backup-2.weights.h5', 'training_metadata.json']
    >>> history = model.fit(np.ones((4, 2)), np.ones(4), epochs=3, verbose=0,
    ...                     callbacks=[backup])
    >>> len(history.history["loss"])  # epochs 0 and 1 were restored
    1
    >>> directory.cleanup()
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        metadata = self._read_metadata()
        if metadata is None:
            return
        if not self.model.built:
            raise ValueError(
                f"AtomicBackupAndRestore found a backup in {self.backup_dir!r} "
                f"but the model {self.model.name!r} is not built, so its "
                "weights cannot be restored. Build it first, e.g. by calling "
                "it on a batch of data, before fit()."
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        set_seed_states(self.model, metadata.get("seed_states", []))
        _keras_compat.set_initial_epoch(self.model, metadata["epoch"])

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path) as f:
            text = f.read()
        try:
            metadata = json.loads(text)
            if not isinstance(metadata.get("epoch"), int) or not isinstance(
                metadata.get("weights"), str
            ):
                raise ValueError("missing 'epoch' (int) or 'weights' (str)")
        except ValueError as error:
            raise ValueError(
                f"Cannot resume from {self._training_metadata_path!r}: {error}. "
                f"Received {text[:200]!r}; expected JSON like "
                '{"epoch": 3, "batch": 0, "weights": "backup-3.weights.h5"} '
                "as AtomicBackupAndRestore writes it (a Keras BackupAndRestore "
                "backup has no 'weights' entry). Remove the directory to start "
                "afresh."
            ) from None
        return metadata

    def _save_model(self):
        bad = first_non_finite(getattr(self, "_last_logs", None), monitored_terms(self.model))
        if bad is not None:
            warnings.warn(
                f"AtomicBackupAndRestore: not backing up: {bad[0]} is "
                f"{bad[1]}. The last backup is kept.",
                stacklevel=2,
            )
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        previous = self._read_metadata()
        number = 1 if previous is None else _backup_number(previous["weights"]) + 1
        weights = f"backup-{number}.weights.h5"
        vtrain_io.save_weights(self.model, os.path.join(self.backup_dir, weights))
        vtrain_io.atomic_write_json(
            self._training_metadata_path,
            {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights": weights,
                "seed_states": seed_states(self.model),
            },
        )
        for name in os.listdir(self.backup_dir):
            if name.startswith("backup-") and name.endswith(".weights.h5") and name != weights:
                os.remove(os.path.join(self.backup_dir, name))

    def on_epoch_end(self, epoch, logs=None):
        self._last_logs = logs
        super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._last_logs = logs
        super().on_train_batch_end(batch, logs)


def seed_states(model):
    """`[[path, [int, ...]], ...]`: the state of each `SeedGenerator` of `model`.

    They are the model's `variables` that are not `weights`; JSON-ready.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=7)])
    >>> [state for path, state in seed_states(model)]
    [[7, 0]]
    """
    return [[v.path, np.asarray(v).tolist()] for v in _seed_variables(model)]


def set_seed_states(model, states):
    """Restores `seed_states(model)`'s output into `model` (same layers, same order).

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=7)])
    >>> (path, state), = seed_states(model)
    >>> set_seed_states(model, [[path, [7, 3]]])
    >>> seed_states(model)[0][1]
    [7, 3]
    """
    current = seed_states(model)
    if [path for path, _ in current] != [path for path, _ in states]:
        raise ValueError(
            "Cannot restore the random seed states: received states for "
            f"{[path for path, _ in states]}, expected {[path for path, _ in current]} "
            "(the model's SeedGenerators, in order). The backup is of another "
            "model: remove it to start afresh."
        )
    for variable, (_, value) in zip(_seed_variables(model), states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _seed_variables(model):
    """The model's `variables` that are not `weights`: its SeedGenerators' states."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def monitored_terms(model, validation=False):
    """The log names `NaNGuard` checks: each term of a `vtrain.Model`, then `loss`.

    Example:
    >>> import keras
    >>> monitored_terms(keras.Sequential(), validation=True)
    ['loss', 'val_loss']
    """
    trackers = getattr(model, "_trackers", None)
    names = [*getattr(trackers, "by_name", {}), "loss"]
    return names + [f"val_{n}" for n in names] if validation else names


def first_non_finite(logs, names):
    """`(name, value)` of the first of `names` in `logs` that is NaN or inf.

    Example:
    >>> first_non_finite({"kl": 1.0, "loss": float("inf")}, ["kl", "loss"])
    ('loss', inf)
    >>> first_non_finite({"kl": 1.0}, ["kl", "loss"]) is None
    True
    """
    for name in names:
        if logs and name in logs:
            value = np.asarray(logs[name], dtype="float64")
            if not np.all(np.isfinite(value)):
                return name, _scalar(value)
    return None


def _scalar(value):
    value = np.asarray(value, dtype="float64")
    return float(value.reshape(-1)[0]) if value.size else float("nan")


def _optimizer_step(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    return int(ops.convert_to_numpy(optimizer.iterations))


def _backup_number(name):
    try:
        return int(name[len("backup-") : -len(".weights.h5")])
    except ValueError:
        return 0
