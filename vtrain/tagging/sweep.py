"""Hyper-parameter sweeps on Optuna: `run_sweep(config, workdir, num_trials)`.

The search space, metric, pruner and sampler live in the config's `sweep`
section (`vtrain.tagging.sweep_config`; configs/vocabulary.py has one).
Each trial is an ordinary run of `train.train_and_evaluate` in
`WORKDIR/trials/<number>/` (config.json, results.json, TensorBoard,
checkpoints), fed a `PruningCallback`. The study is stored in
`WORKDIR/study.db` (SQLite) unless `storage` names a database URL; trials
send heartbeats, so a killed worker's trial is marked FAIL and retried, in a
new trial that resumes the killed one's run folder. Workers of one study run
until it holds `num_trials` finished (complete or pruned) trials. The report
(`sweep.md`, plots) is `vtrain.tagging.sweep_report`.

Why SQLite and not `optuna.storages.JournalStorage`: in Optuna 5.0 only
`RDBStorage` implements heartbeats (`BaseHeartbeat`), which is what tells a
killed worker's trial from a running one; SQLite is safe for workers on one
machine, and any database URL Optuna accepts serves many machines.
"""

import json
import os
import shutil

import keras
import optuna
import sqlalchemy  # Optuna's dependency
from optuna.trial import TrialState

from vtrain.callbacks import NonFiniteLossError
from vtrain.tagging import sweep_report, train
from vtrain.tagging.sweep_config import (
    FINISHED,
    TRIALS_FOLDER,
    apply,
    count,
    fields,
    quiet_experimental,
    read_sweep,
    trial_workdir,
)
from vtrain.tagging.train import ConfigError

STUDY_FILE = "study.db"
# A trial killed this many times in a row is not retried again.
MAX_RETRIES = 3
# Seconds a worker waits for SQLite's write lock before failing.
SQLITE_TIMEOUT_SECONDS = 60


class PruningCallback(keras.callbacks.Callback):
    """Reports `monitor` to an Optuna trial at each epoch end; raises `TrialPruned` on a prune.

    Put it after the callbacks that add `monitor` to the logs (the
    validation callback): `train_and_evaluate(..., callbacks=[...])` runs
    extra callbacks after its own.

    Example:
    >>> study = optuna.create_study(
    ...     direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    >>> callback = PruningCallback(study.ask(), "val_f1_at_3")
    >>> callback.on_epoch_end(0, {"val_f1_at_3": 0.6})
    >>> callback.on_epoch_end(1, {"val_f1_at_3": 0.4})
    Traceback (most recent call last):
    ...
    optuna.exceptions.TrialPruned: val_f1_at_3 0.4000 at epoch 2: pruned by ThresholdPruner.
    """

    def __init__(self, trial, monitor):
        super().__init__()
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError.invalid(
                "sweep.monitor",
                self.monitor,
                f"one of this model's epoch logs: {', '.join(sorted(logs))}",
                "Set it to the epoch log of the swept metric.",
            )
        value = float(logs[self.monitor])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            pruner = type(self.trial.study.pruner).__name__
            raise optuna.TrialPruned(
                f"{self.monitor} {value:.4f} at epoch {epoch + 1}: pruned by {pruner}."
            )


def open_storage(url, heartbeat_seconds=60):
    """An `optuna.storages.RDBStorage` on `url` with heartbeats and retries of killed trials.

    A trial whose heartbeat (every `heartbeat_seconds`) stops for twice
    that is marked FAIL by the next worker to start a trial, and retried
    (`RetryHeartbeatStaleTrialCallback`, at most `MAX_RETRIES` times in a
    row, with the killed trial's intermediate values).

    Example:
    >>> open_storage("sqlite:///:memory:").heartbeat_interval
    60
    >>> open_storage("nosuchdb://x")
    Traceback (most recent call last):
    ...
    vtrain.tagging.train.ConfigError: Invalid value for --storage: received 'nosuchdb://x'. \
Expected a database URL that Optuna's RDBStorage opens ... Fix the URL, or install the \
database's driver.
    """
    if (
        isinstance(heartbeat_seconds, bool)
        or not isinstance(heartbeat_seconds, int)
        or heartbeat_seconds < 1
    ):
        raise ConfigError(
            f"Invalid value for --heartbeat_seconds: received {heartbeat_seconds!r}. "
            "Expected an integer >= 1."
        )
    engine_kwargs = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}
    try:
        with quiet_experimental():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES, inherit_intermediate_values=True
                ),
            )
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = str(error).splitlines()[0].rstrip(".") if str(error) else type(error).__name__
        raise ConfigError(
            f"Invalid value for --storage: received {shown_url(url)!r}. Expected a database "
            "URL that Optuna's RDBStorage opens (sqlite:///PATH, "
            "postgresql://USER:PASSWORD@HOST/DATABASE, mysql+pymysql://...), but: "
            f"{reason}. Fix the URL, or install the database's driver."
        ) from None


def shown_url(url):
    """`url` with its password hidden, to print or write.

    Example:
    >>> shown_url("postgresql://me:secret@db.example.org/sweeps")
    'postgresql://me:***@db.example.org/sweeps'
    >>> shown_url("not a url")
    'not a url'
    """
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_study(config, workdir, storage=None, study_name=None, heartbeat_seconds=60):
    """The study of `workdir`, created or loaded; raises `ConfigError` on another config.

    Args:
        config: a config with a `sweep` section.
        workdir: the sweep's folder (created): `study.db` (the default
            storage), `trials/`, the report.
        storage: None (SQLite in `workdir/study.db`) or a database URL,
            e.g. `postgresql://...` for workers on many machines.
        study_name: the study's name in the storage; default: the
            workdir's folder name.
        heartbeat_seconds: see `open_storage`.

    The first worker records `config` in the study (user attribute
    `config`); a worker started with another config stops, naming the
    first field that differs.
    """
    sweep = read_sweep(config)
    workdir = os.path.abspath(workdir)
    created = not os.path.exists(workdir)
    os.makedirs(workdir, exist_ok=True)
    url = storage or f"sqlite:///{os.path.join(workdir, STUDY_FILE)}"
    name = study_name or os.path.basename(workdir)
    # Workers started together would race to create the tables and the study.
    lock = optuna.storages.journal.JournalFileOpenLock(os.path.join(workdir, STUDY_FILE))
    lock.acquire()
    try:
        with quiet_experimental():
            study = optuna.create_study(
                storage=open_storage(url, heartbeat_seconds),
                study_name=name,
                direction=sweep.direction,
                sampler=sweep.sampler,
                pruner=sweep.pruner,
                load_if_exists=True,
            )
        current = json.loads(json.dumps(config.to_dict()))
        saved = study.user_attrs.get("config")
        if saved is None:
            study.set_user_attr("config", current)
    except ConfigError:
        lock.release()
        if created:  # a bad --storage leaves nothing behind
            os.rmdir(workdir)
        raise
    lock.release()
    if saved is not None:
        saved, current = fields(saved), fields(current)
        differences = sorted(n for n in {*saved, *current} if saved.get(n) != current.get(n))
        if differences:
            field = differences[0]
            raise ConfigError.invalid(
                field,
                current.get(field),
                f"{saved.get(field)!r}, the value study {name!r} was started with",
                "Every worker of a study runs the same config; start a new --workdir "
                "(or --study_name) for another one.",
            )
    return study


def _suggest(trial, name, distribution):
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    suggest = (
        trial.suggest_int
        if isinstance(distribution, optuna.distributions.IntDistribution)
        else trial.suggest_float
    )
    return suggest(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def _resume_killed_trial(study, trial, workdir):
    """A retried trial starts from the folder of the killed one it retries (if it is here)."""
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    with quiet_experimental():
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    target = trial_workdir(workdir, trial.number)
    source = trial_workdir(workdir, history[-1]) if history else None
    if source and os.path.isdir(source) and not os.path.exists(target):
        partial = os.path.join(workdir, TRIALS_FOLDER, f".tmp-{trial.number}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        os.replace(partial, target)
        print(
            f"trial {trial.number} retries killed trial {history[-1]}: resuming its run", flush=True
        )


def _enough(study, num_trials):
    """Whether finished and running trials reach `num_trials` (no new trial needed)."""
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial is not running
    return count(study, (*FINISHED, TrialState.RUNNING)) >= num_trials


def run_sweep(
    config,
    workdir,
    num_trials,
    config_file=None,
    storage=None,
    study_name=None,
    heartbeat_seconds=60,
):
    """Runs trials of `config`'s sweep until `num_trials` are finished; returns the study.

    Every check (the sweep section, `train.check_config`, the workdir, the
    storage) runs before the first trial. This worker then runs trials
    (at most `num_trials` itself) until the study holds `num_trials`
    finished (complete or pruned) trials, counting those other workers are
    running. After each of its trials it prints a progress line and
    rewrites the report (`sweep_report.write_report`). A trial whose loss
    becomes non-finite is recorded as FAIL and the sweep goes on; any other
    error stops this worker.

    Args:
        config: a config with a `sweep` section (see the module docstring).
        workdir, storage, study_name, heartbeat_seconds: see `open_study`.
        num_trials: finished trials the study should reach.
        config_file: the `--config` the sweep was started with, for the
            reproduce command in `sweep.md`.

    Returns:
        The `optuna.Study`.
    """
    sweep = read_sweep(config)
    if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
        raise ConfigError(
            f"Invalid value for --num_trials: received {num_trials!r}. Expected an integer >= 1: "
            "the number of finished (complete or pruned) trials the study should reach."
        )
    workdir = os.path.abspath(workdir)
    train.check_workdir(workdir)
    study = open_study(config, workdir, storage, study_name, heartbeat_seconds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress line says it

    shown = STUDY_FILE if storage is None else shown_url(storage)  # in sweep.md

    def report():
        sweep_report.write_report(study, workdir, config, sweep, num_trials, config_file, shown)

    def objective(trial):
        keras.utils.clear_session()
        params = {name: _suggest(trial, name, d) for name, d in sweep.parameters.items()}
        _resume_killed_trial(study, trial, workdir)
        results = train.train_and_evaluate(
            apply(config, params),
            trial_workdir(workdir, trial.number),
            callbacks=[PruningCallback(trial, sweep.monitor)],
        )
        for column in sweep.columns:
            trial.set_user_attr(column, sweep_report.lookup(results, column))
        value = sweep_report.lookup(results, sweep.metric)
        if value is None:
            raise ConfigError.invalid(
                "sweep.metric",
                sweep.metric,
                f"an entry of results.json; its validation section has {', '.join(results['validation'])}",
            )
        return value

    def after_trial(study, trial):
        print(sweep_report.progress_line(study, trial, sweep, num_trials), flush=True)
        report()
        # Last, so that no other worker starts a trial between this count
        # and this worker's next one (the study would overshoot).
        if _enough(study, num_trials):
            study.stop()

    if not _enough(study, num_trials):
        study.optimize(
            objective,
            n_trials=num_trials,
            catch=(NonFiniteLossError,),
            callbacks=[after_trial],
            gc_after_trial=True,
        )
    report()
    print(sweep_report.summary_line(study, sweep, num_trials, workdir), flush=True)
    return study
