"""Train and evaluate a tag recommender from a config file.

    python -m vtrain.main                                   # configs/default.py
    python -m vtrain.main --config=configs/tiny.py --workdir=runs/tiny
    python -m vtrain.main --config.train.num_epochs=5       # override a field

With no --workdir the run goes to a new folder runs/YYYYmmdd-HHMMSS under the
current directory. Re-running into a workdir resumes it (see vtrain.train).
"""

import datetime
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_REPOSITORY, "configs", "default.py"),
    "Config file (a Python file with get_config()); override its fields with "
    "--config.section.field=value.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None,
    "Folder for checkpoints, TensorBoard logs and results.json; default: a new "
    "runs/<timestamp> folder. An existing workdir is resumed.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    # Imported here so that --help and flag errors do not wait for TensorFlow.
    from vtrain import train
    from vtrain.data.loaders import DataError

    workdir = _WORKDIR.value or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    try:
        train.train_and_evaluate(_CONFIG.value, workdir)
    except (train.ConfigError, DataError) as error:
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    app.run(main)
