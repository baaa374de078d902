"""The best-model checkpoint of a run, which survives restarts and is checked on resume.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "best.json")
>>> vtrain_io.atomic_write_json(path, {"best": 0.5})
>>> read_json(path)
{'best': 0.5}
"""

import json
import os

from vtrain import callbacks, checksums
from vtrain import io as vtrain_io


def read_json(path, fix="Restore it from a copy, or train into a new --workdir."):
    """The JSON value in `path`, or None if the file does not exist.

    Raises:
        vtrain.checksums.CorruptFileError: the file is not valid UTF-8
            JSON (vtrain writes its files atomically, so it was changed
            afterwards); the message ends with `fix`.

    Example:
    >>> read_json("no/such/file.json") is None
    True
    """
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise checksums.CorruptFileError(
            path,
            f"it is not valid JSON ({error}; it starts with {data[:60]!r}), though "
            "it was written whole",
            fix,
        ) from None


class BestCheckpoint(callbacks.AtomicModelCheckpoint):
    """A best-only, atomic `ModelCheckpoint` that remembers its best across restarts.

    Keras's `ModelCheckpoint` starts every `fit` with no best value, so
    after a resume the first epoch would overwrite a better checkpoint.
    This one writes `{"monitor", "best", "epoch", "finished"}` to
    `state_path` whenever it saves, and starts from it when the file
    exists, after checking the checkpoint against its `.sha256`
    (`vtrain.checksums.CorruptFileError` if it is missing or damaged). `finished` becomes True when `fit` returns normally, so a
    caller can tell a finished training from an interrupted one (put this
    callback before `BackupAndRestore`, which deletes its backup then).

    Args:
        filepath: the `.keras` file of the best model.
        monitor: the epoch-log value to maximise (or minimise, see `mode`).
        state_path: where the best value is kept; default `filepath` with
            `.json` instead of `.keras`.
        mode: `"max"` or `"min"`.

    Example:
    >>> import os, tempfile
    >>> import keras
    >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> vtrain_io.save_model(model, path, checksum=True)  # as a run saved its best
    >>> vtrain_io.atomic_write_json(path[:-6] + ".json",
    ...                             {"monitor": "val_f1_at_3", "best": 0.5, "epoch": 3})
    >>> checkpoint = BestCheckpoint(path, monitor="val_f1_at_3")
    >>> checkpoint.best, checkpoint.best_epoch, checkpoint.finished
    (0.5, 3, False)
    """

    def __init__(self, filepath, monitor, state_path=None, mode="max", verbose=0):
        self.state_path = state_path or os.path.splitext(filepath)[0] + ".json"
        lost = (
            f"No intact copy of the best model is left. To continue without it, remove "
            f"{filepath!r}, its .sha256 and {self.state_path!r} (training resumes from "
            "its backup, and the best is chosen among the epochs still to train), or "
            "restore them from a copy, or train again into a new workdir."
        )
        state = read_json(self.state_path, fix=lost)
        if state is not None and state.get("best") is not None:
            verify_best(filepath, fix=lost)
        if state is not None and state.get("monitor") != monitor:
            raise ValueError(
                f"The checkpoint state {self.state_path!r} tracks "
                f"{state.get('monitor')!r}, but this run monitors {monitor!r}. "
                "Expected the same metric when resuming: use a new workdir."
            )
        super().__init__(
            filepath,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            verbose=verbose,
            initial_value_threshold=None if state is None else state["best"],
        )
        self.best_epoch = None if state is None else state["epoch"]
        self.finished = bool(state and state.get("finished"))

    def on_epoch_end(self, epoch, logs=None):
        previous = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != previous:
            self.best_epoch = epoch
            self._write_state()

    def on_train_end(self, logs=None):
        self.finished = True
        self._write_state()

    def _write_state(self):
        vtrain_io.atomic_write_json(
            self.state_path,
            {
                "monitor": self.monitor,
                "best": None if self.best is None else float(self.best),
                "epoch": self.best_epoch,
                "finished": self.finished,
            },
        )


def verify_best(path, fix=""):
    """Checks the best checkpoint at `path` against its recorded sha256 before it is loaded.

    Raises:
        vtrain.checksums.CorruptFileError: it is missing, or truncated or
            altered since it was written (the message ends with `fix`).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
    >>> verify_best(path)
    Traceback (most recent call last):
    ...
    vtrain.checksums.CorruptFileError: Corrupt state on disk: '...best.keras': it is missing, but the run recorded a best checkpoint.
    """
    if not os.path.isfile(path):
        raise checksums.CorruptFileError(
            path, "it is missing, but the run recorded a best checkpoint", fix
        )
    try:
        checksums.verify(path)
    except checksums.CorruptFileError as error:
        raise checksums.CorruptFileError(path, error.reason, fix) from None
