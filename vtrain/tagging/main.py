"""Train and evaluate a tag recommender from a config file.

    python -m vtrain.main                                   # configs/default.py
    python -m vtrain.main --config=configs/tiny.py --workdir=runs/tiny
    python -m vtrain.main --config.train.num_epochs=5       # override a field
    python -m vtrain.main --config=configs/triplet.py --baseline=configs/default.py
        # also trains the baseline into WORKDIR/baseline; prints both side by side
    python -m vtrain.main --config.strategy=mirrored    # 2 replicas (CPU split in 2)
    python -m vtrain.main --deterministic               # bit-identical re-runs
    python -m vtrain.main --config=tiny                 # a config shipped in the package, from any folder

With no --workdir the run goes to a new folder runs/YYYYmmdd-HHMMSS under the
current directory. Re-running into a workdir resumes it (see vtrain.tagging.train).
"""

import datetime
import os
import sys

import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from vtrain.callbacks import NonFiniteLossError
from vtrain.checksums import CorruptFileError
from vtrain.io import DiskFullError
from vtrain.preemption import Preempted
from vtrain.tagging import configs, flag_parsing, train
from vtrain.tagging.data.loaders import DataError
from vtrain.tagging.flag_parsing import parse_flags, shipped_configs  # noqa: F401  (vtrain.main's names)

try:
    _CONFIG = config_flags.DEFINE_config_file(
        "config",
        configs.path("default"),
        "Config file (a Python file with get_config()); override its fields with "
        "--config.section.field=value.",
        lock_config=True,
    )
except AttributeError as _error:
    # Without --config the default is loaded here, overrides included.
    sys.exit(flag_parsing.unknown_field(_error))

_BASELINE = config_flags.DEFINE_config_file(
    "baseline",
    None,
    "Optional config of a baseline, trained into WORKDIR/baseline on the same test "
    "split; both runs' test metrics are printed side by side and written to "
    "WORKDIR/comparison.json. Override its fields with --baseline.section.field=value.",
    lock_config=True,
)

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Folder for checkpoints, TensorBoard logs and results.json; default: a new "
    "runs/<timestamp> folder. An existing workdir is resumed.",
)


_DETERMINISTIC = flags.DEFINE_bool(
    "deterministic",
    False,
    "Turn on TensorFlow's op determinism (tf.config.experimental."
    "enable_op_determinism): the same config gives bit-identical weights, also "
    "across a kill and resume; some ops get slower.",
)


def _new_workdir():
    """runs/<timestamp>, with -2, -3, ... if a run started in the same second."""
    base = os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    workdir, number = base, 1
    while os.path.exists(workdir):
        number += 1
        workdir = f"{base}-{number}"
    return workdir


def main(argv):
    """Runs `train.train_and_evaluate(--config, --workdir)` (or `train_and_compare`).

    A config error, a malformed data file, a non-finite loss, a full disk
    or a corrupt state file exits 1 with its message (no traceback).
    SIGTERM or Ctrl-C during training backs up the state at the next batch
    end and exits 128 + the signal's number (143, 130) after one line
    saying where; the same command resumes it.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    workdir = _WORKDIR.value or _new_workdir()
    if _DETERMINISTIC.value:
        tf.config.experimental.enable_op_determinism()
    try:
        if _BASELINE.value is None:
            train.train_and_evaluate(_CONFIG.value, workdir)
        else:
            train.train_and_compare(_CONFIG.value, _BASELINE.value, workdir)
    except Preempted as preempted:  # its one line is printed already
        sys.exit(preempted.code)
    except (
        train.ConfigError,
        DataError,
        NonFiniteLossError,
        DiskFullError,
        CorruptFileError,
    ) as error:
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
