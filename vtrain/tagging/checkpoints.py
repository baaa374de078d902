"""The best-model checkpoint of a run, which survives restarts.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "best.json")
>>> vtrain_io.atomic_write_json(path, {"best": 0.5})
>>> read_json(path)
{'best': 0.5}
"""

import json
import os

from vtrain import callbacks
from vtrain import io as vtrain_io


def read_json(path):
    """The JSON value in `path`, or None if the file does not exist.

    Example:
    >>> read_json("no/such/file.json") is None
    True
    """
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class BestCheckpoint(callbacks.AtomicModelCheckpoint):
    """A best-only, atomic `ModelCheckpoint` that remembers its best across restarts.

    Keras's `ModelCheckpoint` starts every `fit` with no best value, so
    after a resume the first epoch would overwrite a better checkpoint.
    This one writes `{"monitor", "best", "epoch", "finished"}` to
    `state_path` whenever it saves, and starts from it when the file
    exists. `finished` becomes True when `fit` returns normally, so a
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
    >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
    >>> vtrain_io.atomic_write_json(path[:-6] + ".json",
    ...                             {"monitor": "val_f1_at_3", "best": 0.5, "epoch": 3})
    >>> checkpoint = BestCheckpoint(path, monitor="val_f1_at_3")
    >>> checkpoint.best, checkpoint.best_epoch, checkpoint.finished
    (0.5, 3, False)
    """

    def __init__(self, filepath, monitor, state_path=None, mode="max", verbose=0):
        self.state_path = state_path or os.path.splitext(filepath)[0] + ".json"
        state = read_json(self.state_path)
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
