"""`python -m vtrain.sweep`: trials are ordinary runs; parallel and killed workers, pruning,
bad sweep sections, the report and its reproduce command."""

import json
import shlex
import signal
import subprocess
import sys
import time

import ml_collections
import optuna
import pytest
from absl import flags
from ml_collections import config_flags
from optuna.trial import TrialState

from tests import runs
from tests.tagging import tiny_tags
from vtrain.tagging import sweep, sweep_config, sweep_report, train
from vtrain.tagging.train import ConfigError

# A config file with a sweep section, as a user writes one.
TEMPLATE = '''"""configs/tiny.py on a tiny data file, with a sweep section (tests/tagging/test_sweep.py)."""

import ml_collections

from tests.tagging import tiny_tags


def get_config():
    config = tiny_tags.keras_config({data!r}, num_epochs={epochs})
    config.data.max_train_examples = 0
    config.sweep = ml_collections.ConfigDict({sweep!r})
    return config
'''
PARAMETERS = {
    "train": {
        "learning_rate": "log_uniform(1e-3, 0.1)",
        "learning_rate_multipliers": {"log_alpha": "log_uniform(1, 10)"},
    }
}


def write_config(directory, examples=600, epochs=2, **sweep_fields):
    """A config file on `examples` tiny examples; returns its path."""
    data = tiny_tags.write(directory / "tags.jsonl", count=examples)
    section = {"parameters": PARAMETERS, "columns": ("sparsity",), **sweep_fields}
    path = directory / "sweep_config.py"
    path.write_text(TEMPLATE.format(data=str(data), epochs=epochs, sweep=section))
    return path


def load(path):
    return runs.load_module(path).get_config()


def sweep_argv(config, workdir, *args):
    return [
        sys.executable,
        "-m",
        "vtrain.sweep",
        f"--config={config}",
        f"--workdir={workdir}",
        *args,
    ]


def start_worker(config, workdir, log, *args):
    return subprocess.Popen(
        sweep_argv(config, workdir, *args),
        cwd=runs.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=runs.environment(PYTHONUNBUFFERED="1"),
    )


def run_worker(config, workdir, *args, timeout=240):
    return subprocess.run(
        sweep_argv(config, workdir, *args),
        cwd=runs.ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=runs.environment(),
    )


def load_trials(workdir):
    storage = f"sqlite:///{workdir / sweep.STUDY_FILE}"
    study = optuna.load_study(study_name=workdir.name, storage=storage)
    return study, study.get_trials()


def parse_command(command):
    """The config that `python -m vtrain.main ARGS` would train, parsed like the launcher."""
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "vtrain.main"]
    argv = ["vtrain.main", *(w for w in words[3:] if not w.startswith("--workdir="))]
    flag_values = flags.FlagValues()
    config_file = argv[1].split("=", 1)[1]
    config_flags.DEFINE_config_file(
        "config", config_file, flag_values=flag_values, lock_config=True, sys_argv=argv
    )
    flag_values(argv)
    return flag_values.config


# --- Bad sweep sections: every message, and nothing runs -------------------


def config_with(tmp_path, **changes):
    """The test config with `changes` ({dotted sweep field: value}) applied."""
    config = load(write_config(tmp_path, examples=40))
    config.unlock()
    for dotted, value in changes.items():
        *sections, field = dotted.split(".")
        node = config
        for section in sections:
            if section not in node:
                node[section] = ml_collections.ConfigDict()
            node = node[section]
        node[field] = value
    return config


FIELD = "Invalid value for --config.sweep.parameters.train."
BAD_SECTIONS = {
    "unknown field": (
        {"sweep.parameters.train.weight_decay_scal": "log_uniform(1, 10)"},
        f"{FIELD}weight_decay_scal: received 'log_uniform(1, 10)'. Expected a distribution "
        "of an existing config field, but the config has no field "
        "train.weight_decay_scal. Did you mean sweep.parameters.train.weight_decay_scale?",
    ),
    "a section, not a field": (
        {"sweep.parameters": {"train": {"learning_rate_multipliers": "log_uniform(1, 10)"}}},
        f"{FIELD}learning_rate_multipliers: received 'log_uniform(1, 10)'. Expected a "
        "field of the config, but train.learning_rate_multipliers is a section. Name one "
        "of its fields: train.learning_rate_multipliers.log_alpha.",
    ),
    "misspelt distribution": (
        {"sweep.parameters.train.learning_rate": "log_uniforn(1e-3, 0.1)"},
        f"{FIELD}learning_rate: received 'log_uniforn(1e-3, 0.1)'. Expected a "
        "distribution: log_uniform(low, high), uniform(low, high[, step=]), integer(low, "
        "high[, step=][, log=True]), choice(value, ...), with literal values. But "
        "'log_uniforn' is no distribution (did you mean 'log_uniform'?).",
    ),
    "not a call": (
        {"sweep.parameters.train.learning_rate": "log_uniform(1e-3, 0.1"},
        "But it is not a call such as name(1, 2).",
    ),
    "one bound": (
        {"sweep.parameters.train.learning_rate": "log_uniform(1e-3)"},
        "But expected log_uniform(low, high).",
    ),
    "non-literal": (
        {"sweep.parameters.train.learning_rate": "uniform(1e-3, high)"},
        "But its arguments must be literals (numbers, strings, True/False/None, tuples).",
    ),
    "log of zero": (
        {"sweep.parameters.train.learning_rate": "log_uniform(0, 0.1)"},
        "But `low > 0` must hold for `log=True`, but got (low=0, high=0.1).",
    ),
    "low above high": (
        {"sweep.parameters.train.learning_rate": "uniform(0.1, 0.01)"},
        "But `low <= high` must hold, but got (low=0.1, high=0.01).",
    ),
    "float for an int field": (
        {"sweep.parameters.train.num_epochs": "uniform(1, 3)"},
        f"{FIELD}num_epochs: received 'uniform(1, 3)'. Expected values of the field's "
        "type, int (the config sets 2). But ml_collections says: Could not override field "
        "'num_epochs'",
    ),
    "a value the run refuses": (
        {"sweep.parameters.train.learning_rate": "uniform(0, 0.1)"},
        f"{FIELD}learning_rate: received 'uniform(0, 0.1)'. Expected values the run "
        "accepts. But 0.0 is refused: Invalid value for --config.train.learning_rate: "
        "received 0.0. Expected a positive finite number. Narrow the distribution.",
    ),
    "choice of a list": (
        {"sweep.parameters.model.pooling": "choice(['mean'], 'mean_max')"},
        "But choice values must be numbers, strings, True/False or None.",
    ),
    "test metric": (
        {"sweep.metric": "test.f1@3"},
        "Invalid value for --config.sweep.metric: received 'test.f1@3'. Expected "
        "validation.NAME, an entry of results.json's validation section (e.g. "
        "validation.f1@3). Choosing on the test split would leak it: sweep a validation "
        "metric.",
    ),
    "misspelt metric": (
        {"sweep.metric": "validation.f1@30"},
        "Did you mean 'validation.f1@3'?",
    ),
    "misspelt pruner": (
        {"sweep.pruner": "MedianPrunner()"},
        "Invalid value for --config.sweep.pruner: received 'MedianPrunner()'. Expected an "
        "optuna.pruners class with literal arguments, e.g. MedianPruner(); one of ",
    ),
    "pruner argument": (
        {"sweep.pruner": "MedianPruner(n_startup=3)"},
        "MedianPruner says: ",
    ),
    "direction": (
        {"sweep.direction": "max"},
        "Invalid value for --config.sweep.direction: received 'max'. Expected maximize or "
        "minimize.",
    ),
    "unknown sweep field": (
        {"sweep.metrc": "validation.f1@3"},
        "Invalid value for --config.sweep.metrc: received 'validation.f1@3'. Expected a "
        "field of the sweep section: one of columns, direction, metric, monitor, "
        "parameters, pruner, sampler. Did you mean 'metric'?",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SECTIONS))
def test_a_bad_sweep_section_fails_before_anything_runs(tmp_path, case):
    changes, message = BAD_SECTIONS[case]
    config = config_with(tmp_path, **changes)
    with pytest.raises(ConfigError) as raised:
        sweep.run_sweep(config, tmp_path / "sweep", 2)
    assert message in str(raised.value)
    if message.startswith("Invalid"):
        assert str(raised.value).startswith(message)
    assert not (tmp_path / "sweep").exists()


def test_no_sweep_section_or_no_trial_to_run_is_refused(tmp_path):
    config = load(write_config(tmp_path, examples=40))
    config.unlock()
    del config["sweep"]
    with pytest.raises(ConfigError, match="Add config.sweep to the config file"):
        sweep.run_sweep(config, tmp_path / "sweep", 2)
    with pytest.raises(ConfigError, match="Expected an integer >= 1"):
        sweep.run_sweep(load(tmp_path / "sweep_config.py"), tmp_path / "sweep", 0)
    assert not (tmp_path / "sweep").exists()


def test_a_bad_storage_fails_without_showing_its_password_or_leaving_a_folder(tmp_path):
    config = load(write_config(tmp_path, examples=40))
    with pytest.raises(ConfigError) as raised:
        sweep.run_sweep(config, tmp_path / "sweep", 2, storage="nosuchdb://me:secret@host/db")
    message = str(raised.value)
    assert message.startswith(
        "Invalid value for --storage: received 'nosuchdb://me:***@host/db'. Expected a "
        "database URL that Optuna's RDBStorage opens (sqlite:///PATH, "
    )
    assert message.endswith(". Fix the URL, or install the database's driver.")
    assert "secret" not in message
    assert not (tmp_path / "sweep").exists()


def test_the_command_reports_a_bad_section_without_a_traceback(tmp_path):
    config = write_config(tmp_path, examples=40)
    config.write_text(
        config.read_text().replace("'log_uniform(1e-3, 0.1)'", "'log_uniform(1e-3, 0.1, 7)'")
    )
    result = run_worker(config, tmp_path / "sweep", "--num_trials=2")
    assert result.returncode == 1
    assert (
        "Error: Invalid value for --config.sweep.parameters.train.learning_rate: received "
        "'log_uniform(1e-3, 0.1, 7)'. Expected a distribution: "
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_the_vocabulary_sweep_is_well_formed_and_passes_the_config_check():
    # The launcher's config check passes a config with a sweep section, and
    # the shipped vocabulary config's section is well formed.
    from vtrain.tagging import configs

    config = configs.base("vocabulary")
    train.check_config(config)
    space = sweep_config.read_sweep(config)
    assert sorted(space.parameters) == [
        "model.dropout",
        "train.learning_rate",
        "train.learning_rate_multipliers.log_alpha",
        "train.weight_decay_scale",
    ]
    assert space.parameters["train.weight_decay_scale"].log
    assert (space.metric, space.direction, space.monitor) == (
        "validation.f1@3",
        "maximize",
        "val_f1_at_3",
    )


def test_overrides_change_the_search_and_every_worker_needs_the_study_s_config(tmp_path):
    path = write_config(tmp_path, examples=40)
    override = "--config.sweep.parameters.train.learning_rate=uniform(0.01, 0.02)"
    config = parse_command(f"python -m vtrain.main --config={path} {shlex.quote(override)}")
    space = sweep_config.read_sweep(config)
    assert space.parameters["train.learning_rate"] == optuna.distributions.FloatDistribution(
        0.01, 0.02
    )
    workdir = tmp_path / "sweep"
    sweep.open_study(config, workdir)
    with pytest.raises(ConfigError) as raised:
        sweep.open_study(load(path), workdir)
    assert str(raised.value) == (
        "Invalid value for --config.sweep.parameters.train.learning_rate: received "
        "'log_uniform(1e-3, 0.1)'. Expected 'uniform(0.01, 0.02)', the value study 'sweep' "
        "was started with. Every worker of a study runs the same config; start a new "
        "--workdir (or --study_name) for another one."
    )


# --- The report: rows best first, plots, the reproduce command --------------


def add_trial(study, learning_rate, value, state=TrialState.COMPLETE, **extra):
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=value,
            params={"train.learning_rate": learning_rate, LOG_ALPHA: 2.0},
            distributions={
                "train.learning_rate": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
                LOG_ALPHA: optuna.distributions.FloatDistribution(1, 10, log=True),
            },
            **extra,
        )
    )


LOG_ALPHA = "train.learning_rate_multipliers.log_alpha"


def test_report_rows_best_first_and_the_command_reproduces_the_best_trial(tmp_path):
    path = write_config(tmp_path, examples=40)
    config = load(path)
    config.train.num_epochs = 3  # as a --config.train.num_epochs=3 override would
    space = sweep_config.read_sweep(config)
    study = optuna.create_study(direction="maximize", study_name="tiny")
    add_trial(study, 0.01, 0.5)
    add_trial(study, 0.004, 0.7, user_attrs={"sparsity": 0.25})
    add_trial(study, 0.05, None, TrialState.PRUNED, intermediate_values={0: 0.2, 1: 0.3})
    add_trial(study, 0.02, 0.6)
    add_trial(study, 0.04, None, TrialState.FAIL)

    text = sweep_report.write_report(study, str(tmp_path), config, space, 5, str(path))
    assert text == (tmp_path / "sweep.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == (
        f"| trial | state | train.learning_rate | {LOG_ALPHA} | validation.f1@3 | sparsity "
        "| seconds |"
    )
    assert [row.split(" | ")[0] for row in table[1:]] == ["| 1", "| 3", "| 0", "| 2", "| 4"]
    assert table[1].startswith("| 1 | COMPLETE | 0.004 | 2 | 0.7000 | 0.25 |")
    assert table[4].startswith("| 2 | PRUNED | 0.05 | 2 | 0.3000 (val_f1_at_3, epoch 2) |  |")
    assert table[5].startswith("| 4 | FAIL | 0.04 | 2 |  |  |")
    assert "4 of 5 trials finished: 3 complete, 1 pruned; 1 failed" in text
    assert "## Best: trial 1, validation.f1@3 = 0.7000" in text

    command = text.split("```bash\n")[1].split("\n```")[0]
    assert command == (
        f"python -m vtrain.main --config={path} --config.train.learning_rate=0.004 "
        f"--config.{LOG_ALPHA}=2.0 --config.train.num_epochs=3 --workdir={tmp_path / 'best'}"
    )
    expected = sweep_config.apply(config, {"train.learning_rate": 0.004, LOG_ALPHA: 2.0})
    assert parse_command(command).to_dict() == expected.to_dict()

    png = (tmp_path / "sweep_history.png").read_bytes()
    assert png.startswith(b"\x89PNG") and (tmp_path / "sweep_epochs.png").exists()
    assert "parameter importances: needs 5 complete trials, the study has 3." in text
    assert not (tmp_path / "sweep_importance.png").exists()


def test_importances_need_enough_complete_trials(tmp_path):
    path = write_config(tmp_path, examples=40)
    config = load(path)
    space = sweep_config.read_sweep(config)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial):
        rate = trial.suggest_float("train.learning_rate", 1e-3, 0.1, log=True)
        trial.suggest_float("train.learning_rate_multipliers.log_alpha", 1, 10, log=True)
        return -abs(rate - 0.01)  # only the learning rate matters

    study.optimize(objective, n_trials=sweep_report.MIN_IMPORTANCE_TRIALS - 1)
    text = sweep_report.write_report(study, str(tmp_path), config, space, 10, str(path))
    assert "parameter importances: needs 5 complete trials, the study has 4." in text
    assert not (tmp_path / "sweep_importance.png").exists()
    study.optimize(objective, n_trials=11)
    text = sweep_report.write_report(study, str(tmp_path), config, space, 10, str(path))
    assert "![parameter importances](sweep_importance.png)" in text
    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    assert list(importances)[0] == "train.learning_rate"
    assert f"train.learning_rate {importances['train.learning_rate']:.2f}" in text


# --- Pruning, in this process ----------------------------------------------


def test_a_clearly_worse_trial_is_pruned_at_its_first_epoch(tmp_path):
    path = write_config(
        tmp_path,
        examples=600,
        pruner="MedianPruner(n_startup_trials=1, n_warmup_steps=0)",
        parameters={"train": {"learning_rate": "log_uniform(1e-7, 0.1)"}},
    )
    config = load(path)
    workdir = tmp_path / "sweep"
    study = sweep.open_study(config, workdir)
    study.enqueue_trial({"train.learning_rate": 0.05})  # learns in one epoch
    study.enqueue_trial({"train.learning_rate": 1e-7})  # learns nothing

    sweep.run_sweep(config, workdir, 2, config_file=str(path))

    study, trials = load_trials(workdir)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    good, bad = trials
    assert sorted(good.intermediate_values) == [0, 1]
    assert list(bad.intermediate_values) == [0]  # stopped at the end of epoch 1 of 2
    assert bad.intermediate_values[0] < good.intermediate_values[0] - 0.1
    assert bad.value == bad.intermediate_values[0]  # Optuna's value of a pruned trial
    results = json.loads((workdir / "trials" / "0" / "results.json").read_text())
    assert good.value == results["validation"]["f1@3"]
    assert good.user_attrs == {"sparsity": results["sparsity"]}
    pruned_run = workdir / "trials" / "1"
    assert json.loads((pruned_run / "config.json").read_text())["train"]["learning_rate"] == 1e-7
    assert not (pruned_run / "results.json").exists()
    text = (workdir / "sweep.md").read_text()
    assert "| 1 | PRUNED | 1e-07 | " in text
    assert "2 of 2 trials finished: 1 complete, 1 pruned" in text


# --- Workers in processes: parallel, and killed ----------------------------


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path):
    config = write_config(tmp_path, examples=160)
    workdir = tmp_path / "sweep"
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    files = [open(log, "w") for log in logs]
    try:
        workers = [start_worker(config, workdir, f, "--num_trials=4") for f in files]
        for worker in workers:
            worker.wait(timeout=300)
    finally:
        for worker, f in zip(workers, files):
            if worker.poll() is None:
                worker.kill()
            f.close()
    outputs = [log.read_text() for log in logs]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]

    study, trials = load_trials(workdir)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in sweep_config.FINISHED for t in trials)
    ran = [
        {int(line.split()[1]) for line in output.splitlines() if line.startswith("trial ")}
        for output in outputs
    ]
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both worked, never on one trial
    assert ran[0] | ran[1] == {0, 1, 2, 3}
    for trial in trials:
        run = workdir / "trials" / str(trial.number)
        saved = json.loads((run / "config.json").read_text())
        assert saved["train"]["learning_rate"] == trial.params["train.learning_rate"]
        alpha = saved["train"]["learning_rate_multipliers"]["log_alpha"]
        assert alpha == trial.params["train.learning_rate_multipliers.log_alpha"]
        if trial.state == TrialState.COMPLETE:
            results = json.loads((run / "results.json").read_text())
            assert trial.value == results["validation"]["f1@3"]
            assert (run / "tensorboard").is_dir() and (run / "checkpoints" / "best.keras").exists()

    text = (workdir / "sweep.md").read_text()
    assert "4 of 4 trials finished" in text
    assert "sweep: 4 of 4 trials finished" in outputs[0] + outputs[1]

    # The best trial's command, parsed as the launcher parses it and trained
    # (with its sweep section) into the folder it names: the same run again.
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert f"## Best: trial {best.number}, validation.f1@3 = {best.value:.4f}" in text
    command = text.split("```bash\n")[1].split("\n```")[0]
    assert command.endswith(f"--workdir={workdir / 'best'}")
    results = train.train_and_evaluate(parse_command(command), workdir / "best")
    saved = json.loads((workdir / "trials" / str(best.number) / "config.json").read_text())
    assert json.loads((workdir / "best" / "config.json").read_text()) == saved
    # Equal up to CPU nondeterminism (one of 16 validation examples).
    assert results["validation"]["f1@3"] == pytest.approx(best.value, abs=0.05)


def wait_for_first_epoch(process, workdir, log_path, timeout=240):
    """Waits until trial 0 has finished epoch 1: its backup is committed and the
    study holds the epoch's value."""
    metadata = workdir / "trials" / "0" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + timeout
    study = None
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        if metadata.exists():
            study = study or load_trials(workdir)[0]  # opened once: it takes a while
            if study.get_trials(deepcopy=False)[0].intermediate_values:
                return
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"epoch 1 did not end within {timeout} s: {log_path.read_text()[-3000:]}")


@pytest.mark.slow
def test_a_killed_worker_s_trial_fails_and_is_retried_by_the_rerun(tmp_path):
    # 3,200 training examples in batches of 16: epochs of seconds, so the
    # kill lands inside trial 0, after its first epoch.
    config = write_config(tmp_path, examples=4000, epochs=3)
    workdir = tmp_path / "sweep"
    # One trial: the killed one started it, none finished it.
    args = ("--num_trials=1", "--heartbeat_seconds=1")
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        process = start_worker(config, workdir, log, *args)
        wait_for_first_epoch(process, workdir, log_path)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    backup = json.loads(
        (workdir / "trials" / "0" / "backup" / "training_metadata.json").read_text()
    )
    _, trials = load_trials(workdir)
    assert [t.state for t in trials] == [TrialState.RUNNING]  # until its heartbeat is stale

    result = run_worker(config, workdir, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    study, trials = load_trials(workdir)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    killed, retry = trials
    assert retry.params == killed.params
    assert retry.system_attrs["retry_history"] == [0]
    # The retry resumed the killed trial's run after its last finished epoch
    # (the backup's "epoch" counts the finished ones).
    resumed = json.loads((workdir / "trials" / "1" / "results.json").read_text())
    assert 1 <= backup["epoch"] < 3
    assert resumed["epochs_run_in_last_session"] == 3 - backup["epoch"]
    # It inherits the killed trial's epoch values and adds those it ran (a kill
    # between an epoch's backup and its report loses that epoch's value).
    assert killed.intermediate_values
    for epoch, value in killed.intermediate_values.items():
        assert retry.intermediate_values[epoch] == value
    ran = set(range(backup["epoch"], 3))
    assert set(retry.intermediate_values) == set(killed.intermediate_values) | ran
    assert "trial 1 retries killed trial 0: resuming its run" in result.stdout
    text = (workdir / "sweep.md").read_text()
    assert "| 0 | FAIL (retried as 1) |" in text
    assert "1 of 1 trials finished: 1 complete, 0 pruned; 1 failed" in text

    # Once finished, running the sweep again starts no trial.
    sweep.run_sweep(load(config), workdir, 1, config_file=str(config))
    assert len(load_trials(workdir)[1]) == 2
