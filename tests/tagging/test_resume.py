"""Kill and resume: a run SIGKILLed mid-epoch and restarted ends exactly like an uninterrupted one."""

import json
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from tests import runs

# Tiny, grown so that an epoch is 500 steps (seconds, not milliseconds: the
# kill lands inside epoch 2, not between epochs) and the best epoch is the
# last (so the compared best.keras holds the weights trained after the resume).
ARGS = (
    f"--config={runs.TINY}",
    "--deterministic",
    "--config.train.num_epochs=3",
    "--config.data.max_train_examples=8000",
    "--config.data.batch_size=16",
    "--config.train.learning_rate_decay=1.0",
)
# Which results.json entries must match; the rest are times and the workdir.
COMPARED = ("test", "validation", "best_epoch", "kept_vocabulary", "sparsity")


def start(workdir, log):
    return subprocess.Popen(
        [sys.executable, "-m", "vtrain.main", *ARGS, f"--workdir={workdir}"],
        cwd=runs.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=runs.environment(PYTHONUNBUFFERED="1"),
    )


def wait_for_second_epoch(process, workdir, log_path, timeout=240):
    """Waits until epoch 2 (1-based) has begun: epoch 1's backup is committed."""
    metadata = workdir / "backup" / "training_metadata.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        if metadata.exists() and "Epoch 2/3" in log_path.read_text():
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"epoch 2 did not start within {timeout} s: {log_path.read_text()[-3000:]}")


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_equals_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    process = runs.launch(*ARGS, f"--workdir={whole}")
    assert process.returncode == 0, process.stderr[-3000:]

    resumed, log_path = tmp_path / "resumed", tmp_path / "first.log"
    with open(log_path, "w") as log:
        process = start(resumed, log)
        wait_for_second_epoch(process, resumed, log_path)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    backup = json.loads((resumed / "backup" / "training_metadata.json").read_text())
    assert (backup["epoch"], backup["batches_done"]) == (1, 0)  # killed before epoch 2 ended
    assert not (resumed / "results.json").exists()
    runs.assert_every_file_loads(resumed)

    process = runs.launch(*ARGS, f"--workdir={resumed}")
    assert process.returncode == 0, process.stderr[-3000:]
    results = [json.loads((run / "results.json").read_text()) for run in (whole, resumed)]
    assert results[1]["epochs_run_in_last_session"] == 2  # epochs 2 and 3 again
    assert results[0]["best_epoch"] == 3  # weights trained after the resume
    for key in COMPARED:
        assert results[1][key] == results[0][key], key
    weights = [runs.keras_weights(run / "checkpoints" / "best.keras") for run in (whole, resumed)]
    assert sorted(weights[0]) == sorted(weights[1])
    for name, value in weights[0].items():
        assert (weights[1][name] == value).all(), name
    assert not [name for name in runs.files_under(resumed) if ".tmp-" in name]
    runs.assert_every_file_loads(resumed)


def test_a_truncated_keras_file_is_what_the_load_check_catches(tmp_path):
    # The check above must be able to fail: a torn .keras file does not load.
    path = tmp_path / "torn.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(OSError):
        runs.keras_weights(path)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(zipfile.BadZipFile):
        runs.keras_weights(path)
