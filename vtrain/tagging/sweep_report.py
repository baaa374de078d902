"""What a sweep's user looks at: `WORKDIR/sweep.md`, its plots and the progress lines.

`write_report` (called by `vtrain.tagging.sweep.run_sweep` after every
trial, by whichever worker finished it) writes, atomically:

    WORKDIR/sweep.md                  one row per trial, best first; the best
                                      trial's command for `python -m vtrain.main`
    WORKDIR/sweep_history.png         the metric of every complete trial
    WORKDIR/sweep_epochs.png          the monitored epoch log of every trial
    WORKDIR/sweep_importance.png      parameter importances (optuna.importance),
                                      from MIN_IMPORTANCE_TRIALS complete trials
"""

import datetime
import os
import runpy
import shlex

import optuna
from optuna.trial import TrialState

from vtrain import io as vtrain_io
from vtrain.tagging import flag_parsing, sweep_config

REPORT_FILE = "sweep.md"
# Below this many complete trials importances are noise: no plot.
MIN_IMPORTANCE_TRIALS = 5
# Rows of sweep.md: finished trials (best first), then the others.
_STATE_ORDER = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.RUNNING,
    TrialState.WAITING,
    TrialState.FAIL,
)


def lookup(results, dotted):
    """The entry `dotted` (e.g. `"validation.f1@3"`) of a results dict, or None.

    Example:
    >>> lookup({"validation": {"f1@3": 0.5}, "sparsity": 0.9}, "validation.f1@3")
    0.5
    >>> lookup({"validation": {}}, "validation.f1@30") is None
    True
    """
    value = results
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def flag_value(value):
    """`value` as `--config.field=` parses it back into the field's type.

    Example:
    >>> [flag_value(v) for v in (0.1 + 0.2, 3, True, "mean", (2, 3))]
    ['0.30000000000000004', '3', 'True', 'mean', '(2, 3)']
    """
    if isinstance(value, list):
        value = tuple(value)
    return value if isinstance(value, str) else repr(value)


def reproduce_command(config_file, config, params, workdir):
    """The `python -m vtrain.main` command that trains `config` with `params` again.

    Its overrides are every field where the trial's config differs from
    `config_file`'s own `get_config()`: the sweep's `--config.*` overrides
    and the trial's parameters.

    Example:
    >>> from vtrain.tagging import configs
    >>> reproduce_command("vocabulary", configs.base("vocabulary"),
    ...                   {"train.weight_decay_scale": 123.5}, "runs/sweep/best")
    'python -m vtrain.main --config=vocabulary --config.train.weight_decay_scale=123.5 \
--workdir=runs/sweep/best'
    """
    path = flag_parsing.shipped_configs([f"--config={config_file}"])[0].split("=", 1)[1]
    base = sweep_config.fields(runpy.run_path(path)["get_config"]())
    trial = sweep_config.fields(sweep_config.apply(config, params))
    overrides = [
        f"--config.{name}={flag_value(value)}"
        for name, value in trial.items()
        if name not in base or _normal(base[name]) != _normal(value)
    ]
    words = ["python", "-m", "vtrain.main", f"--config={config_file}", *overrides]
    return " ".join(shlex.quote(word) for word in [*words, f"--workdir={workdir}"])


def _normal(value):
    return tuple(value) if isinstance(value, list) else value


def _seconds(trial):
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now()
    return (end - trial.datetime_start).total_seconds()


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metric_text(trial, sweep):
    """The metric cell of `trial`: its value, or a pruned trial's last epoch log.

    Example:
    >>> from vtrain.tagging import configs
    >>> sweep = sweep_config.read_sweep(configs.base("vocabulary"))
    >>> trial = optuna.trial.create_trial(
    ...     state=TrialState.PRUNED, intermediate_values={0: 0.3, 1: 0.25})
    >>> metric_text(trial, sweep)
    '0.2500 (val_f1_at_3, epoch 2)'
    """
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        step = trial.last_step
        return f"{trial.intermediate_values[step]:.4f} ({sweep.monitor}, epoch {step + 1})"
    return f"{trial.value:.4f}" if trial.value is not None else ""


def rows(study, sweep):
    """`study`'s trials, best first: complete by value, pruned by value, then the others."""
    sign = -1 if sweep.direction == "maximize" else 1

    def key(trial):
        value = (
            trial.value if trial.state in sweep_config.FINISHED and trial.value is not None else 0
        )
        return (_STATE_ORDER.index(trial.state), sign * value, trial.number)

    return sorted((t for t in study.get_trials(deepcopy=False) if t.state in _STATE_ORDER), key=key)


def _retries(trials):
    """{failed trial number: the number of the trial that retried it}."""
    retried = {}
    for trial in trials:
        with sweep_config.quiet_experimental():
            history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)
        if history:
            retried[history[-1]] = trial.number
    return retried


def _state(trial, retried):
    if trial.number in retried:
        return f"{trial.state.name} (retried as {retried[trial.number]})"
    return trial.state.name


def best_trial(study):
    """The best complete trial, or None before the first one."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def markdown(study, config, sweep, num_trials, config_file, workdir, plots, storage=None):
    """The text of `sweep.md` (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    section = config.sweep
    lines = [
        f"# Sweep `{study.study_name}`",
        "",
        f"Config `{config_file}`; metric `{sweep.metric}` ({sweep.direction}); pruner "
        f"`{section.get('pruner', sweep_config.DEFAULTS['pruner'])}` on `{sweep.monitor}`; "
        f"sampler `{section.get('sampler', sweep_config.DEFAULTS['sampler'])}`"
        + (f"; storage `{storage}`." if storage else "."),
        "",
        f"{finished} of {num_trials} trials finished: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned; {counts[TrialState.FAIL]} failed, "
        f"{counts[TrialState.RUNNING]} running, {counts[TrialState.WAITING]} waiting."
        + ("" if finished >= num_trials else " Rerun the sweep's command to continue."),
        "",
    ]
    best = best_trial(study)
    if best is None:
        lines += ["No complete trial yet.", ""]
    else:
        lines += [
            f"## Best: trial {best.number}, {sweep.metric} = {best.value:.4f}",
            "",
            f"Its run: `{os.path.join(sweep_config.TRIALS_FOLDER, str(best.number))}/` "
            "(config.json, results.json, TensorBoard logs, checkpoints).",
            "",
        ]
        if config_file is None:  # run_sweep was not told the config's file
            overrides = " ".join(f"{n}={flag_value(v)}" for n, v in best.params.items())
            lines += [f"Its parameters: {overrides}.", ""]
        else:
            command = reproduce_command(
                config_file, config, best.params, os.path.join(workdir, "best")
            )
            lines += [
                "To train it again, from the folder the sweep ran in:",
                "",
                "```bash",
                command,
                "```",
                "",
            ]
    names = list(sweep.parameters)
    header = ["trial", "state", *names, sweep.metric, *sweep.columns, "seconds"]
    lines += [
        "## Trials, best first",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if h != "state" else "---" for h in header) + "|",
    ]
    retried = _retries(trials)
    for trial in rows(study, sweep):
        seconds = _seconds(trial)
        cells = [
            str(trial.number),
            _state(trial, retried),
            *(_number(trial.params[n]) if n in trial.params else "" for n in names),
            metric_text(trial, sweep),
            *(_number(trial.user_attrs[c]) if c in trial.user_attrs else "" for c in sweep.columns),
            f"{seconds:.0f}" if seconds is not None else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""]
    for file_name, (title, reason) in plots.items():
        lines.append(f"![{title}]({file_name})" if reason is None else f"{title}: {reason}.")
        lines.append("")
    importances = _importances(study, sweep)
    if importances:
        lines += [
            "Parameter importances (optuna.importance, PED-ANOVA): "
            + ", ".join(f"{name} {value:.2f}" for name, value in importances.items())
            + ".",
            "",
        ]
    return "\n".join(lines)


def _importance_reason(study, sweep):
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if len(sweep.parameters) < 2:
        return "one parameter, nothing to compare it with"
    if complete < MIN_IMPORTANCE_TRIALS:
        return f"needs {MIN_IMPORTANCE_TRIALS} complete trials, the study has {complete}"
    return None


def _evaluator():
    # Named, not Optuna's default: it changed in 5.0 (from fANOVA, which
    # needs scikit-learn) and the report says which one it used.
    return optuna.importance.PedAnovaImportanceEvaluator()


def _importances(study, sweep):
    if _importance_reason(study, sweep) is not None:
        return {}
    return optuna.importance.get_param_importances(study, evaluator=_evaluator())


def _labelled(axes, monitor):
    axes.set_xlabel("epoch (0 = the first)")
    axes.set_ylabel(monitor)
    return axes


def write_plots(study, workdir, sweep):
    """Draws the PNGs into `workdir`; returns `{file name: (title, None or why not drawn)}`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    specs = {
        "sweep_history.png": (
            f"{sweep.metric} by trial",
            None if complete else "no complete trial yet",
            lambda: plots.plot_optimization_history(study, target_name=sweep.metric),
        ),
        "sweep_epochs.png": (
            f"{sweep.monitor} at each epoch end, pruned trials included",
            None if reported else "no trial has finished an epoch yet",
            lambda: _labelled(plots.plot_intermediate_values(study), sweep.monitor),
        ),
        "sweep_importance.png": (
            "parameter importances",
            _importance_reason(study, sweep),
            lambda: plots.plot_param_importances(
                study, evaluator=_evaluator(), target_name=sweep.metric
            ),
        ),
    }
    drawn = {}
    for file_name, (title, reason, draw) in specs.items():
        if reason is None:
            with sweep_config.quiet_experimental():
                axes = draw()
            figure = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            with vtrain_io.atomic_path(os.path.join(workdir, file_name)) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            pyplot.close(figure)
        drawn[file_name] = (title, reason)
    return drawn


def write_report(study, workdir, config, sweep, num_trials, config_file, storage=None):
    """Writes `sweep.md` and the plots into `workdir` (atomically); returns the markdown."""
    text = markdown(
        study,
        config,
        sweep,
        num_trials,
        config_file,
        workdir,
        write_plots(study, workdir, sweep),
        storage,
    )
    vtrain_io.atomic_write_text(os.path.join(workdir, REPORT_FILE), text)
    return text


def progress_line(study, trial, sweep, num_trials):
    """One line for a trial that just ended: state, time, metric, best, count, parameters."""
    finished = sweep_config.count(study, sweep_config.FINISHED)
    seconds = _seconds(trial)
    best = best_trial(study)
    parts = [
        f"trial {trial.number} {trial.state.name} in {seconds or 0:.0f} s",
        f"{sweep.metric} {metric_text(trial, sweep) or '-'}",
        f"best {best.value:.4f} (trial {best.number})" if best else "no complete trial yet",
        f"{finished} of {num_trials} finished",
        " ".join(f"{name}={_number(value)}" for name, value in trial.params.items()),
    ]
    return "; ".join(parts)


def summary_line(study, sweep, num_trials, workdir):
    """The sweep's last line: how many trials finished, the best, where the report is."""
    finished = sweep_config.count(study, sweep_config.FINISHED)
    best = best_trial(study)
    line = f"sweep: {finished} of {num_trials} trials finished"
    if best is not None:
        line += f"; best trial {best.number}, {sweep.metric} {best.value:.4f}"
    line += f"; report {os.path.join(workdir, REPORT_FILE)}"
    if finished < num_trials:
        line += "; rerun the same command to continue"
    return line
