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
from vtrain.tagging import configs, train
from vtrain.tagging.data.loaders import DataError


def _unknown_field(error, argv=None):
    """A short message for ml_collections' AttributeError(KeyError(message)).

    A misspelt section (`--config.dta.path`) comes as the bare KeyError.
    """
    cause = error if isinstance(error, KeyError) else (error.args[0] if error.args else error)
    message = cause.args[0] if isinstance(cause, KeyError) and cause.args else cause
    overrides = _overrides(sys.argv if argv is None else argv)
    message = str(message).replace("\n", ". ")
    return (
        f"Error: unknown config field in {' or '.join(overrides) or 'an override'}: "
        f"{message} Configs are locked: an override cannot add a field; "
        "fix its name."
    )


def _overrides(argv):
    """The `--config.x.y` / `--baseline.x.y` flag names in `argv`."""
    return [arg.split("=")[0] for arg in argv if arg.startswith(("--config.", "--baseline."))]


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
    sys.exit(_unknown_field(_error))

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


def shipped_configs(argv):
    """`argv` with `--config=NAME` / `--baseline=NAME` resolved to a shipped config.

    A value that is no existing file but names a config shipped with the
    package (`tiny`, `default.py`, ...) becomes that file's path, so an
    installed wheel runs its configs from any directory.

    Example:
    >>> shipped_configs(["main", "--config=tiny"])[1].endswith("configs/tiny.py")
    True
    >>> shipped_configs(["main", "--config=my/own.py"])
    ['main', '--config=my/own.py']
    """
    resolved = []
    for arg in argv:
        flag, _, value = arg.partition("=")
        if (
            flag in ("--config", "--baseline")
            and value
            and not os.path.exists(value)
            and os.sep not in value
            and os.path.isfile(configs.path(value))
        ):
            arg = f"{flag}={configs.path(value)}"
        resolved.append(arg)
    return resolved


def parse_flags(argv, flag_values=None):
    """absl's flag parsing, with a short message for a config field that does not exist.

    Every problem exits (`SystemExit`) with a one-line message: `Error: unknown
    config field in ...`, `Error: invalid config field name in ...`, `Error:
    invalid value for ...`, or absl's own `FATAL Flags parsing error: ...`. `flag_values` defaults to absl's
    global `flags.FLAGS` (tests pass their own).
    """
    flag_values = flags.FLAGS if flag_values is None else flag_values
    argv = shipped_configs(argv)
    try:
        return flag_values(argv)
    except (AttributeError, KeyError) as error:
        sys.exit(_unknown_field(error, argv))
    except flags.IllegalFlagValueError as error:
        sys.exit(_bad_value(error, argv, flag_values))
    except ValueError:  # ml_collections cannot read the field path
        sys.exit(_bad_field_name(argv))
    except flags.Error as error:  # absl's own message
        sys.exit(
            f"FATAL Flags parsing error: {error}\n"
            "Pass --helpshort or --helpfull to see help on flags."
        )


def _bad_field_name(argv):
    """received / expected / fix for `--config.train.num-epochs=3` (not a Python name)."""
    names = _overrides(argv)
    bad = [
        (name, part)
        for name in names
        for part in name.split(".")[1:]
        if not part.split("[")[0].isidentifier()
    ]
    flag, part = bad[0] if bad else (" or ".join(names), "")
    received = f"{part!r} is not a Python name" if part else "it is not a dotted path"
    return (
        f"Error: invalid config field name in {flag}: {received}. Expected a dotted path "
        "of the config's field names (letters, digits and _), e.g. "
        "--config.train.num_epochs=3."
    )


def _bad_value(error, argv, flag_values):
    """received / expected / fix for an override of the wrong type (e.g. `epochs=three`)."""
    flag = next(
        (
            arg
            for arg in reversed(argv)
            if arg.startswith("--") and "=" in arg and arg.split("=")[0] in str(error)
        ),
        None,
    )
    if flag is None:
        return f"Error: {error}"
    name, value = flag[2:].split("=", 1)
    default = flag_values[name.split(".")[0]].value
    for key in name.split(".")[1:]:
        default = getattr(default, key, None)
    reason = str(error).split(": ", 1)[-1]
    return (
        f"Error: invalid value for --{name}: received {value!r} ({reason}). "
        f"Expected {type(default).__name__}, the type of the field (the config "
        f"file sets {default!r}). Fix the value, e.g. --{name}={default}."
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
