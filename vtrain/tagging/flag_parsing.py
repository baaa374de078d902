"""Flag parsing shared by the launchers (`vtrain.main`, `vtrain.sweep`).

Defines no flag itself: each launcher defines its own and parses them with
`parse_flags`, which turns absl's and ml_collections' errors into one line
saying what was received, what was expected and the fix.
"""

import os
import sys

from absl import flags

from vtrain.tagging import configs

# Flags holding a config file, whose fields `--NAME.section.field=` overrides.
CONFIG_FLAGS = ("--config", "--baseline")


def unknown_field(error, argv=None):
    """A short message for ml_collections' AttributeError(KeyError(message)).

    A misspelt section (`--config.dta.path`) comes as the bare KeyError.

    Example:
    >>> print(unknown_field(AttributeError(KeyError("'num_epoch'. Did you mean 'num_epochs'?")),
    ...                     ["main", "--config.train.num_epoch=3"]))
    Error: unknown config field in --config.train.num_epoch: 'num_epoch'. Did you mean \
'num_epochs'? Configs are locked: an override cannot add a field; fix its name.
    """
    cause = error if isinstance(error, KeyError) else (error.args[0] if error.args else error)
    message = cause.args[0] if isinstance(cause, KeyError) and cause.args else cause
    names = overrides(sys.argv if argv is None else argv)
    message = str(message).replace("\n", ". ")
    return (
        f"Error: unknown config field in {' or '.join(names) or 'an override'}: "
        f"{message} Configs are locked: an override cannot add a field; "
        "fix its name."
    )


def overrides(argv):
    """The `--config.x.y` / `--baseline.x.y` flag names in `argv`.

    Example:
    >>> overrides(["main", "--config.train.num_epochs=3", "--workdir=w"])
    ['--config.train.num_epochs']
    """
    prefixes = tuple(f"{flag}." for flag in CONFIG_FLAGS)
    return [arg.split("=")[0] for arg in argv if arg.startswith(prefixes)]


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
            flag in CONFIG_FLAGS
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
    invalid value for ...`, or absl's own `FATAL Flags parsing error: ...`.
    `flag_values` defaults to absl's global `flags.FLAGS` (tests pass their own).
    """
    flag_values = flags.FLAGS if flag_values is None else flag_values
    argv = shipped_configs(argv)
    try:
        return flag_values(argv)
    except (AttributeError, KeyError) as error:
        sys.exit(unknown_field(error, argv))
    except flags.IllegalFlagValueError as error:
        sys.exit(bad_value(error, argv, flag_values))
    except ValueError:  # ml_collections cannot read the field path
        sys.exit(bad_field_name(argv))
    except flags.Error as error:  # absl's own message
        sys.exit(
            f"FATAL Flags parsing error: {error}\n"
            "Pass --helpshort or --helpfull to see help on flags."
        )


def bad_field_name(argv):
    """received / expected / fix for `--config.train.num-epochs=3` (not a Python name).

    Example:
    >>> bad_field_name(["main", "--config.train.num-epochs=3"])[:68]
    "Error: invalid config field name in --config.train.num-epochs: 'num-"
    """
    names = overrides(argv)
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


def bad_value(error, argv, flag_values=None):
    """received / expected / fix for an override of the wrong type (e.g. `epochs=three`)."""
    flag = next(
        (
            arg
            for arg in reversed(argv)
            if arg.startswith("--") and "=" in arg and arg.split("=")[0] in str(error)
        ),
        None,
    )
    if flag is None or not flag.startswith(tuple(f"{name}." for name in CONFIG_FLAGS)):
        return f"Error: {error}"
    name, value = flag[2:].split("=", 1)
    flag_values = flags.FLAGS if flag_values is None else flag_values
    default = flag_values[name.split(".")[0]].value
    for key in name.split(".")[1:]:
        default = getattr(default, key, None)
    reason = str(error).split(": ", 1)[-1]
    return (
        f"Error: invalid value for --{name}: received {value!r} ({reason}). "
        f"Expected {type(default).__name__}, the type of the field (the config "
        f"file sets {default!r}). Fix the value, e.g. --{name}={default}."
    )
