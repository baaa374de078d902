"""Callbacks: the epoch scheduler that `vtrain.Model.fit` adds itself, the
NaN guard, and checkpoint callbacks that write atomically, checksum what
they write, and stop gracefully on a signal."""

import os
import sys
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vtrain import _keras_compat, backup_files, checksums, distribute, preemption, training_state
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
    so a kill mid-save leaves the previous checkpoint intact, and its
    sha256 is recorded next to it (`<file>.sha256`; check it with
    `vtrain.checksums.verify` before loading). A save is skipped, with a
    warning, when the logs show a non-finite term or loss.

    Example:
    >>> import numpy as np, keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> directory = tempfile.TemporaryDirectory()
    >>> path = os.path.join(directory.name, "model.keras")
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), epochs=2, verbose=0,
    ...               callbacks=[AtomicModelCheckpoint(path)])
    >>> sorted(os.listdir(directory.name))
    ['model.keras', 'model.keras.sha256']
    >>> checksums.verify(path) == checksums.sha256_of(path)
    True
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
            vtrain_io.save_weights(self.model, filepath, checksum=True)
        else:
            vtrain_io.save_model(self.model, filepath, checksum=True)
        if self.verbose > 0:
            _keras_compat.print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that a kill cannot corrupt, resumed exactly.

    Keras's version writes `latest.weights.h5` in place, then a separate
    `training_metadata.json`: a kill during the first leaves a truncated
    file, and a kill between the two pairs new weights with the old epoch.
    Here each backup is a new weights file, `backup-<n>.weights.h5`, written
    atomically; then a manifest, `training_metadata.json`, written
    atomically, names it with its sha256 and the position: that rename is
    the single commit point (`vtrain.backup_files`). The backup before it
    is kept (`training_metadata.previous.json`): a resume checks the
    newest backup's checksums and, if its files were truncated or altered
    on disk, says so and resumes from the previous one. A non-finite state
    is never backed up.

    The backup also holds what Keras's weights files leave out
    (`vtrain.training_state`): the state of every `keras.random.SeedGenerator`
    (dropout, embedding noise) and, for a backup taken mid-epoch, the
    metric variables, so a resumed run draws the same noise and logs the
    same epoch means as an uninterrupted one.

    Mid-epoch backups (`save_freq=<batches>`, or on a signal) resume at the
    next batch when the training data is `resumable(dataset)`: the resumed
    epoch trains only its remaining batches, in the same order, and ends
    where the uninterrupted epoch would. (Without it, as in Keras, the
    epoch is trained again from its first batch, with a warning.)

    Args:
        backup_dir: the backup folder (created; removed when `fit` ends if
            `delete_checkpoint`).
        save_freq: `"epoch"`, or a number of batches between backups.
        delete_checkpoint: remove `backup_dir` when `fit` returns.
        save_on_signals: signal numbers (e.g. `signal.SIGTERM,
            signal.SIGINT`) that stop training gracefully: the step in
            progress finishes, a backup is written (at the epoch end if the
            signal came in the epoch's last batch or its validation) and
            `vtrain.preemption.Preempted` is raised, after printing one line
            to stderr; uncaught, the process exits with 128 + the signal
            number (143 for SIGTERM, 130 for SIGINT). A second signal acts
            at once. Ignored, with a warning, outside the main thread and
            under a multi-worker strategy (a worker cannot save alone: see
            docs/reliability.md).

    Example:
    >>> import numpy as np, keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> directory = tempfile.TemporaryDirectory()
    >>> backup = AtomicBackupAndRestore(directory.name, delete_checkpoint=False)
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), epochs=2, verbose=0,
    ...               callbacks=[backup])
    >>> sorted(os.listdir(directory.name))  # doctest: +NORMALIZE_WHITESPACE
    ['backup-1.weights.h5', 'backup-2.weights.h5', 'training_metadata.json',
     'training_metadata.previous.json']
    >>> history = model.fit(np.ones((4, 2)), np.ones(4), epochs=3, verbose=0,
    ...                     callbacks=[backup])
    >>> len(history.history["loss"])  # epochs 0 and 1 were restored
    1
    >>> directory.cleanup()
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, save_on_signals=()):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self.save_on_signals = tuple(save_on_signals)
        self._signals = preemption.SignalFlag(self.save_on_signals)
        self._skip = None  # tf.Variable of `resumable` datasets: batches to skip
        self._manifest = None  # the newest intact backup: restored or written
        self._resume = None  # (epoch, batches_done) of a mid-epoch restore
        self._epoch, self._offset, self._stopped_early = 0, 0, False

    def resumable(self, dataset):
        """`dataset` (a `tf.data.Dataset` of batches) able to resume in mid-epoch.

        Each pass yields the same batches as `dataset`, except the first
        pass after a restore of a mid-epoch backup, which starts at the
        batch after the backup's (then wraps around: `fit` is stopped
        before it reaches those). The dataset's number of batches must be
        known, and a pass must give the same batches whenever it is made
        (a function of the epoch, not of how many passes came before, e.g.
        no `shuffle(reshuffle_each_iteration=True)`), or the resumed epoch
        is another one.

        Example:
        >>> import tensorflow as tf
        >>> backup = AtomicBackupAndRestore("unused")
        >>> data = backup.resumable(tf.data.Dataset.range(5).batch(2))
        >>> [batch.tolist() for batch in data.as_numpy_iterator()]
        [[0, 1], [2, 3], [4]]
        >>> _ = backup._skip.assign(1)  # as after a backup of batch 1
        >>> [batch.tolist() for batch in data.as_numpy_iterator()]
        [[2, 3], [4], [0, 1]]
        """
        batches = int(dataset.cardinality())
        if batches < 1:
            length = {-2: "unknown", -1: "infinite"}.get(batches, "no")
            raise ValueError(
                f"Cannot make the dataset resumable: received a dataset of {length} "
                "length. Expected a finite number of batches that tf.data knows "
                "(e.g. from_tensor_slices(...).batch(n)); apply "
                "tf.data.experimental.assert_cardinality(n) if you know it."
            )
        if self._skip is None:
            self._skip = tf.Variable(0, dtype=tf.int64, trainable=False)
        skip = self._skip

        def one_pass(_):
            return dataset.repeat(2).skip(skip).take(batches)

        return (
            tf.data.Dataset.from_tensors(0)
            .flat_map(one_pass)
            .apply(tf.data.experimental.assert_cardinality(batches))
        )

    def on_train_begin(self, logs=None):
        self._load_model()
        self._stopped_early = False
        if not self.save_on_signals:
            return
        if _keras_compat.in_multi_worker_mode(self.model.distribute_strategy):
            warnings.warn(
                "AtomicBackupAndRestore: save_on_signals is ignored under a multi-worker "
                "strategy: a worker cannot save alone while the others wait in the next "
                "step. A killed worker resumes from the last epoch-end backup.",
                stacklevel=2,
            )
        elif not self._signals.install():
            warnings.warn(
                "AtomicBackupAndRestore: save_on_signals is ignored: signal handlers "
                "can only be installed in the main thread. Call fit in the main thread.",
                stacklevel=2,
            )

    def _load_model(self):
        manifest, problems = backup_files.newest_intact(self.backup_dir)
        if _keras_compat.in_multi_worker_mode(self.model.distribute_strategy):
            manifest = self._agree_across_workers(manifest)
        self._manifest, self._resume = manifest, None
        if manifest is None:
            if problems:
                raise checksums.CorruptFileError(
                    self.backup_dir,
                    "no intact backup is left to resume from",
                    " ".join(str(problem) for problem in problems)
                    + " Remove the folder to train again from the first epoch, or "
                    "restore its files from a copy.",
                )
            self._set_skip(0)
            return
        for problem in problems:
            warnings.warn(
                f"AtomicBackupAndRestore: {problem} Resuming from the backup before it, "
                f"{manifest['weights']} ({_position(manifest)}).",
                stacklevel=2,
            )
        if not self.model.built:
            raise ValueError(
                f"AtomicBackupAndRestore found a backup in {os.fspath(self.backup_dir)!r} "
                f"but the model {self.model.name!r} is not built, so its "
                "weights cannot be restored. Build it first, e.g. by calling "
                "it on a batch of data, before fit()."
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, manifest["weights"]))
        training_state.set_seed_states(self.model, manifest.get("seed_states", []))
        _keras_compat.set_initial_epoch(self.model, manifest["epoch"])
        batches_done = manifest.get("batches_done", 0)
        if batches_done and self._skip is None:
            warnings.warn(
                f"AtomicBackupAndRestore: the backup in {os.fspath(self.backup_dir)!r} was taken "
                f"{_position(manifest)}, but the training data is not "
                "backup.resumable(dataset): that epoch is trained again from its first "
                "batch, on weights that already saw some of it. Pass "
                "backup.resumable(dataset) to fit to resume at the next batch.",
                stacklevel=2,
            )
        elif batches_done:
            self._resume = (manifest["epoch"], batches_done)
        self._set_skip(batches_done if self._resume else 0)

    def _agree_across_workers(self, manifest):
        """The backup every worker has at the earliest of their newest positions.

        Each worker backs up into its own folder; a kill between two
        workers' commits leaves one a backup ahead, and a cluster whose
        workers resume at different epochs trains on mismatched batches.
        The one ahead resumes from its previous backup instead.
        """
        codes = distribute.gather_integers(
            self.model.distribute_strategy, _position_code(backup_files.position(manifest))
        )
        target = min(codes)
        if _position_code(backup_files.position(manifest)) == target:
            return manifest
        if target == 0:
            return None  # a worker has no backup: all start afresh
        for candidate in backup_files.all_intact(self.backup_dir)[0]:
            if _position_code(backup_files.position(candidate)) == target:
                warnings.warn(
                    f"AtomicBackupAndRestore: another worker's newest backup is older "
                    f"than this one's ({_position(manifest)}); resuming with it from "
                    f"{candidate['weights']} ({_position(candidate)}).",
                    stacklevel=2,
                )
                return candidate
        raise checksums.CorruptFileError(
            self.backup_dir,
            f"the workers' newest backups are at different positions "
            f"({sorted({_decode(code) for code in codes})} as (epoch, batches done)) and "
            f"this worker has no backup at the earliest, {_decode(target)}",
            "Remove every worker's backup folder to train again from the first epoch.",
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._offset = epoch, 0
        if self._resume is not None and self._resume[0] == epoch:
            self._offset = self._resume[1]
            training_state.set_metric_states(self.model, self._manifest.get("metrics", []))
        else:
            self._set_skip(0)
        self._resume = None

    def on_train_batch_end(self, batch, logs=None):
        self._last_logs = logs
        done = self._offset + batch + 1
        steps = (self.params or {}).get("steps")
        # The epoch's last batch: its end-of-epoch backup follows.
        last = steps is not None and done >= steps
        periodic = self._should_save_on_batch(batch)
        signalled = self._signals.received is not None
        if (periodic or signalled) and not last:
            start = time.monotonic()
            saved = self._save(self._epoch, done)
            if signalled:
                self._preempt(self._epoch, done, saved, time.monotonic() - start)
        if self._offset and last:
            # A resumed epoch ends after its remaining batches; `resumable`
            # data would wrap around to its first ones.
            self.model.stop_training = True
            self._stopped_early = True

    def on_test_begin(self, logs=None):
        self._continue_after_resumed_epoch()

    def on_epoch_end(self, epoch, logs=None):
        self._continue_after_resumed_epoch()
        self._last_logs = logs
        self._current_epoch, self._last_batch_seen = epoch + 1, 0
        start, saved = time.monotonic(), False
        signalled = self._signals.received is not None
        if self.save_freq == "epoch" or signalled:
            saved = self._save(epoch + 1, 0)
        if signalled:
            self._preempt(epoch + 1, 0, saved, time.monotonic() - start)

    def on_train_end(self, logs=None):
        self.release_signals()
        super().on_train_end(logs)

    def release_signals(self):
        """Puts back the signal handlers `save_on_signals` replaced.

        `fit` calls it at its end. Call it in a `finally` around `fit` too:
        when `fit` stops on an exception (a non-finite loss, a full disk),
        Keras skips `on_train_end`, and the process would go on recording
        SIGTERM and Ctrl-C instead of acting on them. A signal recorded and
        not acted on is delivered to the restored handlers. A no-op when
        nothing is installed.

        Example:
        >>> import signal
        >>> backup = AtomicBackupAndRestore("/tmp/unused", save_on_signals=[signal.SIGTERM])
        >>> backup.release_signals()
        >>> signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        True
        """
        self._signals.uninstall()

    def _continue_after_resumed_epoch(self):
        if self._stopped_early:
            self.model.stop_training = self._stopped_early = False

    def _set_skip(self, batches):
        if self._skip is not None:
            self._skip.assign(batches)

    def _save(self, epoch, batches_done):
        """Commits a backup at (epoch, batches_done); False if the state is not finite."""
        bad = first_non_finite(getattr(self, "_last_logs", None), monitored_terms(self.model))
        if bad is not None:
            warnings.warn(
                f"AtomicBackupAndRestore: not backing up: {bad[0]} is "
                f"{bad[1]}. The last backup is kept.",
                stacklevel=2,
            )
            return False
        state = {
            "epoch": epoch,
            "batches_done": batches_done,
            "seed_states": training_state.seed_states(self.model),
        }
        if batches_done:
            state["metrics"] = training_state.metric_states(self.model)
        self._manifest = backup_files.commit(
            self.backup_dir,
            state,
            lambda path, size_hint: vtrain_io.save_weights(self.model, path, size_hint=size_hint),
            previous=self._manifest,
        )
        return True

    def _preempt(self, epoch, batches_done, saved, seconds):
        signum = self._signals.received
        self._signals.uninstall(redeliver=False)
        where = {"epoch": epoch, "batches_done": batches_done}
        kept = (
            f"the training state ({_position(where)}) is saved in {os.fspath(self.backup_dir)!r} "
            f"({seconds:.2f} s)"
            if saved
            else f"the last backup in {os.fspath(self.backup_dir)!r} is kept (this state is not finite)"
        )
        message = (
            f"Preempted: received {preemption.signal_name(signum)}; {kept}. Run the "
            f"same training again to resume from there (exit status "
            f"{preemption.exit_code(signum)})."
        )
        print(message, file=sys.stderr, flush=True)
        raise preemption.Preempted(signum, message, epoch=epoch, batches_done=batches_done)


def _position_code(position):
    """`(epoch, batches_done)` as one integer that sorts the same way."""
    return position[0] * 2**32 + position[1]


def _decode(code):
    return (code // 2**32, code % 2**32)


def _position(manifest):
    """'after batch 3 of epoch 2' / 'at the end of epoch 1' (1-based)."""
    epoch, done = manifest["epoch"], manifest.get("batches_done", 0)
    if done:
        return f"after batch {done} of epoch {epoch + 1}"
    return f"at the end of epoch {epoch}" if epoch else "before the first epoch"


seed_states = training_state.seed_states
set_seed_states = training_state.set_seed_states


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
