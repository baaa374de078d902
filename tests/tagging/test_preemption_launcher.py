"""SIGTERM, then Ctrl-C, during `python -m vtrain.main`: exit 143 / 130, one line, an exact resume.

The run is stopped in mid-epoch 1 (SIGTERM) and, resumed, in mid-epoch 2
(SIGINT), and finished by a third launch of the same command; `results.json` and every weight and optimizer variable of the
best checkpoint must equal (`==`) those of an uninterrupted run. The time
from the signal to the process's exit is measured (docs/reliability.md).
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests import runs
from tests.tagging import tiny_tags

STEPS = 394  # batches an epoch: 3,149 training examples in batches of 8


@pytest.fixture(scope="module")
def arguments(tmp_path_factory):
    data = tiny_tags.write_noisy(tmp_path_factory.mktemp("data") / "noisy.jsonl", count=4000)
    return (
        f"--config={runs.TINY}",
        "--deterministic",
        f"--config.data.path={data}",
        "--config.data.min_tag_train_uses=2",
        "--config.data.min_word_count=1",
        "--config.data.max_train_examples=0",
        "--config.data.batch_size=8",
        "--config.train.num_epochs=2",
        "--config.train.learning_rate=3e-4",
        "--config.train.learning_rate_decay=1.0",
    )


def stop(arguments, workdir, signum, epoch, log_path):
    """Starts the launcher, sends `signum` once epoch `epoch` (1-based) has begun.

    Returns (exit code, seconds from the signal to the exit, stderr's last line).
    """
    with open(log_path, "w") as log, open(f"{log_path}.err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vtrain.main", *arguments, f"--workdir={workdir}"],
            cwd=runs.ROOT,
            stdout=log,
            stderr=err,
            env=runs.environment(PYTHONUNBUFFERED="1"),
        )
        try:
            deadline = time.monotonic() + 240
            while f"Epoch {epoch}/2" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the epoch did not start"
                time.sleep(0.02)
            sent = time.monotonic()
            process.send_signal(signum)
            code = process.wait(timeout=60)
            seconds = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = open(f"{log_path}.err").read().strip().splitlines()
    return code, seconds, lines[-1] if lines else ""


def backup_position(workdir):
    metadata = json.loads((workdir / "backup" / "training_metadata.json").read_text())
    return metadata["epoch"], metadata["batches_done"]


@pytest.mark.slow
def test_sigterm_then_sigint_then_resume_equals_an_uninterrupted_run(arguments, tmp_path):
    whole = tmp_path / "whole"
    process = runs.launch(*arguments, f"--workdir={whole}")
    assert process.returncode == 0, process.stderr[-3000:]

    resumed = tmp_path / "resumed"
    seconds = {}
    for signum, epoch, code in [(signal.SIGTERM, 1, 143), (signal.SIGINT, 2, 130)]:
        name = signal.Signals(signum).name
        returned, seconds[name], line = stop(
            arguments, resumed, signum, epoch, tmp_path / f"{name}.log"
        )
        assert returned == code, line
        saved_epoch, done = backup_position(resumed)
        assert saved_epoch == epoch - 1 and 0 < done < STEPS  # in mid-epoch
        assert line.startswith(
            f"Preempted: received {name}; the training state (after batch {done} of "
            f"epoch {epoch}) is saved in '{resumed / 'backup'}' ("
        ), line
        assert line.endswith(
            f" s). Run the same training again to resume from there (exit status {code})."
        ), line
        assert not (resumed / "results.json").exists()
        runs.assert_every_file_loads(resumed)
    print(f"signal to exit: {seconds}")
    assert max(seconds.values()) < 30

    process = runs.launch(*arguments, f"--workdir={resumed}")
    assert process.returncode == 0, process.stderr[-3000:]
    results = [json.loads((run / "results.json").read_text()) for run in (whole, resumed)]
    assert results[1]["epochs_run_in_last_session"] == 1  # the rest of epoch 2
    assert results[0]["best_epoch"] == 2  # its weights were trained across both stops
    for key in ("test", "validation", "best_epoch", "threshold", "kept_vocabulary", "sparsity"):
        assert results[1][key] == results[0][key], key
    weights = [runs.keras_weights(run / "checkpoints" / "best.keras") for run in (whole, resumed)]
    assert sorted(weights[0]) == sorted(weights[1])
    for name, value in weights[0].items():
        assert (weights[1][name] == value).all(), name
    runs.assert_every_file_loads(resumed)
