"""The `sweep` section of a config: its distributions, pruner, sampler and checks.

`sweep.parameters` mirrors the config: a string leaf at
`sweep.parameters.train.weight_decay_scale` is the distribution of the
field `train.weight_decay_scale` (configs/vocabulary.py)::

    config.sweep.metric = "validation.f1@3"       # results.json entry to optimise
    config.sweep.direction = "maximize"           # or "minimize"
    config.sweep.monitor = "val_f1_at_3"          # epoch log the pruner sees
    config.sweep.pruner = "MedianPruner(n_startup_trials=5, n_warmup_steps=4)"
    config.sweep.sampler = "TPESampler(constant_liar=True)"
    config.sweep.columns = ("sparsity",)          # results.json entries shown in sweep.md
    config.sweep.parameters.train.weight_decay_scale = "log_uniform(10, 1000)"

Only `parameters` is required; the others default to `DEFAULTS`.
Distributions: `log_uniform(low, high)`, `uniform(low, high)` (optional
`step=`), `integer(low, high)` (optional `step=` or `log=True`) and
`choice(value, ...)`, with literal values. The pruner and the sampler are
`optuna.pruners` / `optuna.samplers` classes with literal arguments.

`vtrain.tagging.train` ignores the section: a config with one trains as
usual with `python -m vtrain.main`.
"""

import ast
import contextlib
import dataclasses
import difflib
import os
import warnings

import ml_collections
import optuna
from optuna.trial import TrialState

from vtrain.tagging import baseline, evaluate, train
from vtrain.tagging.models import model_class
from vtrain.tagging.train import ConfigError, did_you_mean

# Each trial's run folder is WORKDIR/trials/<number>.
TRIALS_FOLDER = "trials"
# The trials `num_trials` counts.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULTS = {
    "metric": "validation.f1@3",
    "direction": "maximize",
    "monitor": "val_f1_at_3",
    "pruner": "MedianPruner()",
    "sampler": "TPESampler()",
    "columns": (),
}
DIRECTIONS = ("maximize", "minimize")
DISTRIBUTIONS = {
    "log_uniform": "log_uniform(low, high)",
    "uniform": "uniform(low, high[, step=])",
    "integer": "integer(low, high[, step=][, log=True])",
    "choice": "choice(value, ...)",
}
_DISTRIBUTION_HELP = f"a distribution: {', '.join(DISTRIBUTIONS.values())}, with literal values"
# What results.json's validation section holds for a model ranked by
# vtrain.tagging.evaluate (every model without its own evaluate_split).
RANKING_METRICS = tuple(
    f"{name}@{k}" for name in ("precision", "recall", "f1", "ndcg") for k in evaluate.KS
) + tuple(f"{name}@threshold" for name in ("precision", "recall", "f1", "tags"))


@dataclasses.dataclass
class Sweep:
    """A config's `sweep` section, checked: what `vtrain.tagging.sweep.run_sweep` needs.

    Attributes:
        metric: the `results.json` entry optimised, `"validation.NAME"`.
        direction: `"maximize"` or `"minimize"`.
        monitor: the epoch log reported to the pruner after every epoch.
        pruner: an `optuna.pruners.BasePruner`.
        sampler: an `optuna.samplers.BaseSampler`.
        columns: `results.json` entries (dotted) shown in `sweep.md`.
        parameters: `{dotted config field: optuna distribution}`.

    Example:
    >>> from vtrain.tagging import configs
    >>> sweep = read_sweep(configs.base("vocabulary"))
    >>> sweep.metric, sweep.direction, type(sweep.pruner).__name__
    ('validation.f1@3', 'maximize', 'MedianPruner')
    """

    metric: str
    direction: str
    monitor: str
    pruner: optuna.pruners.BasePruner
    sampler: optuna.samplers.BaseSampler
    columns: tuple
    parameters: dict


def parse_call(text):
    """`(name, args, kwargs)` of a call written with literal arguments.

    Raises `ValueError` saying what is wrong.

    Example:
    >>> parse_call("integer(16, 256, log=True)")
    ('integer', [16, 256], {'log': True})
    >>> parse_call("uniform(0, x)")
    Traceback (most recent call last):
    ...
    ValueError: its arguments must be literals (numbers, strings, True/False/None, tuples)
    """
    try:
        node = ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        raise ValueError("it is not a call such as name(1, 2)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError("it is not a call such as name(1, 2)")
    try:
        args = [ast.literal_eval(arg) for arg in node.args]
        kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    except ValueError:
        raise ValueError(
            "its arguments must be literals (numbers, strings, True/False/None, tuples)"
        ) from None
    if None in kwargs:
        raise ValueError("**arguments are not allowed")
    return node.func.id, args, kwargs


def distribution(text):
    """The Optuna distribution that `text` (e.g. `"log_uniform(10, 1000)"`) writes.

    Raises `ValueError` saying what is wrong.

    Example:
    >>> distribution("log_uniform(10, 1000)")
    FloatDistribution(high=1000.0, log=True, low=10.0, step=None)
    >>> distribution("integer(2, 8, step=2)")
    IntDistribution(high=8, log=False, low=2, step=2)
    >>> distribution("choice('mean', 'mean_max')")
    CategoricalDistribution(choices=('mean', 'mean_max'))
    >>> distribution("log_uniform(0, 1)")
    Traceback (most recent call last):
    ...
    ValueError: `low > 0` must hold for `log=True`, but got (low=0, high=1).
    """
    name, args, kwargs = parse_call(text)
    if name not in DISTRIBUTIONS:
        close = difflib.get_close_matches(name, DISTRIBUTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{name!r} is no distribution{hint}")
    if name == "choice":
        if kwargs or not args:
            raise ValueError("choice takes one or more values and no keywords")
        if any(
            value is not None and not isinstance(value, (bool, int, float, str)) for value in args
        ):
            raise ValueError("choice values must be numbers, strings, True/False or None")
        return optuna.distributions.CategoricalDistribution(args)
    allowed = {"log_uniform": (), "uniform": ("step",), "integer": ("step", "log")}[name]
    if len(args) != 2 or set(kwargs) - set(allowed):
        raise ValueError(f"expected {DISTRIBUTIONS[name]}")
    low, high = args
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high)):
        raise ValueError("low and high must be numbers")
    if name == "integer":
        if not all(isinstance(v, int) for v in (low, high)):
            raise ValueError("integer takes integer bounds; use uniform for a float field")
        return optuna.distributions.IntDistribution(low, high, **kwargs)
    return optuna.distributions.FloatDistribution(low, high, log=name == "log_uniform", **kwargs)


def fields(tree, prefix=""):
    """`{dotted name: value}` of every leaf of a (nested) dict or ConfigDict.

    Example:
    >>> fields({"train": {"epochs": 3, "multipliers": {"log_alpha": 5.0}}, "seed": 0})
    {'train.epochs': 3, 'train.multipliers.log_alpha': 5.0, 'seed': 0}
    """
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, (dict, ml_collections.ConfigDict)):
            leaves.update(fields(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def apply(config, params):
    """A copy of `config` with each `{dotted field: value}` of `params` set.

    Raises `TypeError` (from ml_collections) for a value of the wrong type.

    Example:
    >>> from vtrain.tagging import configs
    >>> config = apply(configs.base("vocabulary"), {"train.learning_rate_multipliers.log_alpha": 8.0})
    >>> config.train.learning_rate_multipliers.log_alpha
    8.0
    """
    config = config.copy_and_resolve_references()
    for name, value in params.items():
        *sections, field = name.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = value
    return config


def read_sweep(config):
    """The checked `Sweep` of `config.sweep`; raises `ConfigError` before anything runs.

    Checks that every sweep field is known, the metric is a validation
    entry, the pruner and sampler build, and that every parameter names an
    existing field and holds a well-formed distribution whose bounds (or
    choices) the field accepts (type, and `train.check_config`'s ranges).

    Example:
    >>> from vtrain.tagging import configs
    >>> read_sweep(configs.base("vocabulary")).parameters["train.weight_decay_scale"]
    FloatDistribution(high=1000.0, log=True, low=10.0, step=None)
    >>> config = configs.base("vocabulary")
    >>> config.sweep.parameters.train.weight_decay_scale = "log_uniform(-1, 10)"
    >>> read_sweep(config)
    Traceback (most recent call last):
    ...
    vtrain.tagging.train.ConfigError: Invalid value for \
--config.sweep.parameters.train.weight_decay_scale: received 'log_uniform(-1, 10)'. \
Expected a distribution: ... `low > 0` must hold for `log=True`, but got (low=-1, high=10).
    """
    train.check_config(config)
    section = config.get("sweep")
    if not isinstance(section, ml_collections.ConfigDict):
        raise ConfigError.invalid(
            "sweep",
            section,
            "a sweep section: parameters (and optionally metric, direction, monitor, "
            "pruner, sampler, columns)",
            "Add config.sweep to the config file; configs/vocabulary.py has one.",
        )
    known = {*DEFAULTS, "parameters"}
    for name in sorted(set(section) - known):
        raise ConfigError.invalid(
            f"sweep.{name}",
            section[name],
            f"a field of the sweep section: one of {', '.join(sorted(known))}",
            did_you_mean(name, known, "Remove it from the sweep section."),
        )
    values = {**DEFAULTS, **{name: section[name] for name in DEFAULTS if name in section}}
    _check_metric(config, values["metric"])
    if values["direction"] not in DIRECTIONS:
        raise ConfigError.invalid("sweep.direction", values["direction"], "maximize or minimize")
    if not isinstance(values["monitor"], str) or not values["monitor"]:
        raise ConfigError.invalid(
            "sweep.monitor", values["monitor"], "the name of an epoch log, e.g. val_f1_at_3"
        )
    columns = values["columns"]
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ConfigError.invalid(
            "sweep.columns", columns, "a tuple of results.json entries, e.g. ('sparsity',)"
        )
    return Sweep(
        metric=values["metric"],
        direction=values["direction"],
        monitor=values["monitor"],
        pruner=_construct("pruner", values["pruner"], optuna.pruners, "MedianPruner()"),
        sampler=_construct("sampler", values["sampler"], optuna.samplers, "TPESampler()"),
        columns=tuple(columns),
        parameters=_read_parameters(config, section.get("parameters")),
    )


def _sentence(error):
    """`error`'s message ending with exactly one period."""
    return str(error).rstrip(".") + "."


def _check_metric(config, metric):
    section, _, name = str(metric).partition(".")
    if section != "validation" or not name:
        raise ConfigError.invalid(
            "sweep.metric",
            metric,
            "validation.NAME, an entry of results.json's validation section (e.g. validation.f1@3)",
            "Choosing on the test split would leak it: sweep a validation metric.",
        )
    if config.model.name != baseline.NAME and hasattr(
        model_class(config.model.name), "evaluate_split"
    ):
        return  # the model measures its own validation metrics
    if name not in RANKING_METRICS:
        close = difflib.get_close_matches(name, RANKING_METRICS, n=1)
        raise ConfigError.invalid(
            "sweep.metric",
            metric,
            f"validation.NAME with NAME one of {', '.join(RANKING_METRICS)}",
            f"Did you mean 'validation.{close[0]}'?" if close else "",
        )


def _construct(field, text, module, example):
    """The `module` class instance that `text` (e.g. "MedianPruner()") writes."""
    base = optuna.pruners.BasePruner if module is optuna.pruners else optuna.samplers.BaseSampler
    names = sorted(
        name
        for name in dir(module)
        if isinstance(getattr(module, name), type)
        and issubclass(getattr(module, name), base)
        and not name.startswith("Base")
    )
    expected = f"an {module.__name__} class with literal arguments, e.g. {example}"
    try:
        name, args, kwargs = parse_call(text)
    except ValueError as error:
        raise ConfigError.invalid(
            f"sweep.{field}", text, expected, f"But {_sentence(error)}"
        ) from None
    if name not in names:
        raise ConfigError.invalid(
            f"sweep.{field}",
            text,
            f"{expected}; one of {', '.join(names)}",
            did_you_mean(name, names),
        )
    try:
        with quiet_experimental():
            return getattr(module, name)(*args, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError.invalid(
            f"sweep.{field}", text, expected, f"{name} says: {_sentence(error)}"
        ) from None


def _read_parameters(config, parameters):
    if not isinstance(parameters, ml_collections.ConfigDict) or not fields(parameters):
        raise ConfigError.invalid(
            "sweep.parameters",
            parameters,
            "the fields to search, mirroring the config: e.g. "
            'config.sweep.parameters.train.weight_decay_scale = "log_uniform(10, 1000)"',
            "Add at least one parameter.",
        )
    searchable = {
        name: value for name, value in fields(config).items() if not name.startswith("sweep.")
    }
    result = {}
    for name, text in fields(parameters).items():
        flag = f"sweep.parameters.{name}"
        if name not in searchable:
            _unknown_parameter(config, flag, name, text, searchable)
        if not isinstance(text, str):
            raise ConfigError.invalid(
                flag, text, _DISTRIBUTION_HELP, 'E.g. "log_uniform(10, 1000)".'
            )
        try:
            result[name] = distribution(text)
        except ValueError as error:
            raise ConfigError.invalid(
                flag, text, _DISTRIBUTION_HELP, f"But {_sentence(error)}"
            ) from None
        _check_values(config, flag, name, text, result[name])
    return result


def _unknown_parameter(config, flag, name, text, searchable):
    node = config
    for key in name.split("."):
        node = node.get(key) if isinstance(node, ml_collections.ConfigDict) else None
    if isinstance(node, ml_collections.ConfigDict):
        inside = sorted(n for n in searchable if n.startswith(f"{name}."))
        raise ConfigError.invalid(
            flag,
            text,
            f"a field of the config, but {name} is a section",
            f"Name one of its fields: {', '.join(inside) or '(it has none)'}.",
        )
    close = difflib.get_close_matches(name, sorted(searchable), n=1)
    raise ConfigError.invalid(
        flag,
        text,
        f"a distribution of an existing config field, but the config has no field {name}",
        f"Did you mean sweep.parameters.{close[0]}?"
        if close
        else "Fix the name; sweep.parameters mirrors the config's sections.",
    )


def _check_values(config, flag, name, text, distribution):
    """Every extreme value of `distribution` fits the field and passes check_config."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        values = distribution.choices
    else:
        values = (distribution.low, distribution.high)
    for value in values:
        try:
            train.check_config(apply(config, {name: value}))
        except TypeError as error:
            current = fields(config)[name]
            raise ConfigError.invalid(
                flag,
                text,
                f"values of the field's type, {type(current).__name__} (the config sets "
                f"{current!r})",
                f"But ml_collections says: {_sentence(error)}",
            ) from None
        except ConfigError as error:
            raise ConfigError.invalid(
                flag,
                text,
                "values the run accepts",
                f"But {value!r} is refused: {error} Narrow the distribution.",
            ) from None


@contextlib.contextmanager
def quiet_experimental():
    """A block where Optuna's ExperimentalWarning is not shown.

    Heartbeats, the retry callback, the plots and some sampler options are
    experimental in Optuna 5.0 and used on purpose: the warning would only
    repeat that at every trial.

    Example:
    >>> with quiet_experimental():
    ...     storage = optuna.storages.RDBStorage("sqlite:///:memory:", heartbeat_interval=1)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def count(study, states):
    """The number of `study`'s trials in `states`.

    Example:
    >>> study = optuna.create_study()
    >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    >>> count(study, FINISHED)
    2
    """
    return len(study.get_trials(deepcopy=False, states=states))


def trial_workdir(workdir, number):
    """`workdir/trials/<number>`: trial `number`'s run folder.

    Example:
    >>> trial_workdir("/runs/sweep", 7)
    '/runs/sweep/trials/7'
    """
    return os.path.join(workdir, TRIALS_FOLDER, str(number))
