"""Sweep a config's hyper-parameters with Optuna (`vtrain.tagging.sweep.run_sweep`).

    python -m vtrain.sweep --config=configs/vocabulary.py --workdir=runs/sweep --num_trials=30
        # run it again (or in a second shell, or after a crash): same study, same count
    python -m vtrain.sweep --config=configs/vocabulary.py --workdir=runs/sweep --num_trials=30 \
        --storage=postgresql://USER:PASSWORD@HOST/DATABASE --study_name=vocabulary
        # one such worker per machine, all on one database

The search space, metric, pruner and sampler are the config's `sweep`
section (`vtrain.tagging.sweep_config`); `--config.sweep.*` overrides
them like any field. Each trial is a run in WORKDIR/trials/<number>/; the
report is WORKDIR/sweep.md.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from vtrain.tagging import flag_parsing, sweep
from vtrain.tagging.data.loaders import DataError
from vtrain.tagging.flag_parsing import parse_flags  # noqa: F401  (vtrain.sweep's name)
from vtrain.tagging.train import ConfigError

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file with a sweep section (e.g. configs/vocabulary.py, or a shipped "
    "config's name); override its fields with --config.section.field=value.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "The sweep's folder: study.db (the default storage), trials/<number>/, sweep.md. "
    "Workers with the same --workdir share the study; rerunning continues it.",
)
_NUM_TRIALS = flags.DEFINE_integer(
    "num_trials",
    None,
    "Finished (complete or pruned) trials the study should reach, over all workers.",
    lower_bound=1,
)
_STORAGE = flags.DEFINE_string(
    "storage",
    None,
    "A database URL Optuna accepts (sqlite:///PATH, postgresql://..., mysql+pymysql://...) "
    "for workers on many machines; default: sqlite in WORKDIR/study.db.",
)
_STUDY_NAME = flags.DEFINE_string(
    "study_name", None, "The study's name in the storage; default: the --workdir folder's name."
)
_HEARTBEAT_SECONDS = flags.DEFINE_integer(
    "heartbeat_seconds",
    60,
    "Each running trial records a heartbeat this often; a trial silent for twice as "
    "long (its worker was killed) is marked FAIL and retried.",
    lower_bound=1,
)
flags.mark_flags_as_required(["config", "workdir", "num_trials"])


def _config_argument(argv):
    """The --config value as the user wrote it (a shipped config's name stays a name)."""
    for index, arg in enumerate(argv):
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        elif arg == "--config" and index + 1 < len(argv):
            value = argv[index + 1]
        else:
            continue
        return value
    return config_flags.get_config_filename(flags.FLAGS["config"])


def main(argv):
    """Runs `sweep.run_sweep`; a config, data or storage error exits 1 with its message."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        sweep.run_sweep(
            _CONFIG.value,
            _WORKDIR.value,
            _NUM_TRIALS.value,
            config_file=_config_argument(sys.argv),
            storage=_STORAGE.value,
            study_name=_STUDY_NAME.value,
            heartbeat_seconds=_HEARTBEAT_SECONDS.value,
        )
    except (ConfigError, DataError) as error:
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    app.run(main, flags_parser=flag_parsing.parse_flags)
