"""Two `multi_worker` launcher processes: one SIGKILLed in mid-epoch, both restarted, same result.

An uninterrupted two-worker run is the reference. A second cluster is
started into another workdir; once both workers have committed their
epoch-2 backups (the chief in WORKDIR/backup, worker 1 in
WORKDIR/worker-1/backup) and begun epoch 3, worker 1 is SIGKILLed. The
chief, left waiting in a collective, is killed too (a scheduler restarts
the whole job). The chief's backup folder is then put back to how it was
before its epoch-2 commit, as when a kill lands between the two workers'
commits: the workers' newest backups now differ by an epoch. Both are
restarted with the same command (new ports: the cluster spec is how the
run executes, not what it computes); worker 1 learns (a collective at the
restore) that the chief is at epoch 1 and resumes from its own previous
backup, so both train epochs 2 and 3 again.

Tolerance: none (`==`). With --deterministic each worker's ops are
deterministic, both see the same global batches, and the all-reduce of two
gradients is one float addition, which is commutative: the resumed run is
the same computation as the uninterrupted one, bit for bit.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests import runs
from tests.tagging import tiny_tags
from vtrain import backup_files

TIMEOUT = 300


@pytest.fixture(scope="module")
def command(tmp_path_factory):
    data = tiny_tags.write_noisy(tmp_path_factory.mktemp("data") / "noisy.jsonl", count=1200)

    def argv(workdir):
        return lambda index: [
            sys.executable,
            "-m",
            "vtrain.main",
            f"--config={runs.TINY}",
            "--deterministic",
            "--config.strategy=multi_worker",
            f"--config.data.path={data}",
            "--config.data.min_tag_train_uses=2",
            "--config.data.min_word_count=1",
            "--config.data.max_train_examples=0",
            "--config.data.batch_size=16",
            "--config.train.num_epochs=3",
            "--config.train.learning_rate=1e-3",
            "--config.train.learning_rate_decay=1.0",
            f"--workdir={workdir}",
        ]

    return argv


def backup_epoch(directory):
    path = directory / "backup" / "training_metadata.json"
    return json.loads(path.read_text())["epoch"] if path.exists() else None


def kill_worker_1_in_epoch_3(tmp_path, command, workdir):
    """Starts the cluster, SIGKILLs worker 1 in mid-epoch 3; returns the chief's fate."""
    workers = runs.start_cluster(tmp_path, command(workdir), log_name="killed{}.log")
    try:
        deadline = time.monotonic() + TIMEOUT
        logs = [tmp_path / f"killed{i}.log" for i in range(2)]
        while not (
            backup_epoch(workdir) == 2
            and backup_epoch(workdir / "worker-1") == 2
            and all("Epoch 3/3" in log.read_text() for log in logs)
        ):
            assert all(w.poll() is None for w in workers), logs[0].read_text()[-3000:]
            assert time.monotonic() < deadline, "epoch 3 did not start"
            time.sleep(0.05)
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(timeout=60)
        try:  # the chief waits for its peer in the next collective
            fate = f"exited with {workers[0].wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            fate = "still waiting after 5 s"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    return fate


def uncommit_newest_backup(directory):
    """The folder as it was before its newest commit: the previous manifest is the newest."""
    newest = directory / backup_files.METADATA
    (directory / json.loads(newest.read_text())["weights"]).unlink()
    (directory / backup_files.PREVIOUS).replace(newest)


@pytest.mark.slow
def test_a_killed_worker_and_its_restarted_cluster_end_like_an_uninterrupted_run(tmp_path, command):
    whole = tmp_path / "whole"
    runs.run_cluster(tmp_path, command(whole), log_name="whole{}.log")

    resumed = tmp_path / "resumed"
    fate = kill_worker_1_in_epoch_3(tmp_path, command, resumed)
    print(f"the chief after worker 1 was killed: {fate}")
    assert backup_epoch(resumed) == backup_epoch(resumed / "worker-1") == 2
    assert not (resumed / "results.json").exists()
    runs.assert_every_file_loads(resumed)
    uncommit_newest_backup(resumed / "backup")
    assert backup_epoch(resumed) == 1

    runs.run_cluster(tmp_path, command(resumed), log_name="resumed{}.log")
    assert "another worker's newest backup is older than this one's (at the end of epoch 2)" in (
        (tmp_path / "resumed1.log").read_text()
    )
    results = [json.loads((run / "results.json").read_text()) for run in (whole, resumed)]
    assert results[1]["epochs_run_in_last_session"] == 2  # epochs 2 and 3, on both
    assert results[0]["best_epoch"] == 3  # the compared weights were trained after the kill
    for key in ("test", "validation", "best_epoch", "threshold", "kept_vocabulary", "sparsity"):
        assert results[1][key] == results[0][key], key
    for worker in ("", "worker-1"):
        weights = [
            runs.keras_weights(run / worker / "checkpoints" / "best.keras")
            for run in (whole, resumed)
        ]
        assert sorted(weights[0]) == sorted(weights[1])
        for name, value in weights[0].items():
            assert (weights[1][name] == value).all(), (worker, name)
