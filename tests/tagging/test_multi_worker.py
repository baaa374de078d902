"""MultiWorkerMirroredStrategy on one machine: two worker processes on
127.0.0.1 train the same model as one process, on the same global batches.

Each worker is a subprocess with its own `TF_CONFIG`, started by the test and
killed if it outlives its time budget or the test fails; only loopback
addresses are used. Plain Keras 3.15 `fit` fails under multi-worker
(keras-team/keras#20585); `vtrain.Model` works around it, which this tests.
"""

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests import runs
from tests.test_distribute import compare, train
from vtrain import distribute

TIMEOUT = 300  # seconds for both workers together (~30 s on 2 idle cores)

_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from vtrain import distribute
    # First TensorFlow call of the process: the strategy sets up collectives.
    strategy = distribute.get_strategy("multi_worker")
    from tests.test_distribute import train

    def dump(result):
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)

    weights, history = train(strategy, "multi_worker")
    dump({"replicas": strategy.num_replicas_in_sync, "weights": weights,
          "history": history})
    """
)


def run_workers(directory, script, count=2, timeout=TIMEOUT):
    """Runs `script` in `count` worker processes; returns their JSON outputs.

    Worker i gets the path of its output file as `sys.argv[1]` (see
    `run_cluster` for the rest).
    """
    outputs = [directory / f"worker{index}.json" for index in range(count)]
    runs.run_cluster(
        directory,
        lambda index: [sys.executable, "-c", script, str(outputs[index])],
        count=count,
        timeout=timeout,
    )
    return [json.loads(path.read_text()) for path in outputs]


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    return run_workers(tmp_path_factory.mktemp("workers"), _WORKER_SCRIPT)


@pytest.mark.slow
def test_two_workers_match_each_other_and_one_process(worker_results):
    first, second = worker_results
    assert first["replicas"] == second["replicas"] == 2
    # Every step ends with the same all-reduced update on both: bit for bit.
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    # And the same as one process on the same global batches (19 examples in
    # batches of 8: the last batch of 3 splits 2 + 1 between the workers).
    one = train(distribute.get_strategy("none"), "helper_uneven_weighted")
    diff = compare((first["weights"], first["history"]), one)
    assert diff["weights"] < 1e-5, diff
    assert max(diff["logs"].values()) < 1e-5, diff


@pytest.mark.parametrize(
    "script, timeout",
    [
        ("import time; time.sleep(600)", 2),
        # Worker 1 fails at once: worker 0 is killed without waiting 60 s.
        (
            "import os, sys, time\nif os.environ['TF_CONFIG'].endswith('1}}'):"
            " sys.exit(3)\ntime.sleep(600)",
            60,
        ),
    ],
    ids=["hung", "one_fails"],
)
def test_workers_are_killed_and_reaped(tmp_path, monkeypatch, script, timeout):
    started = []

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", popen)
    begin = time.monotonic()
    with pytest.raises(AssertionError, match="worker 0 was killed"):
        run_workers(tmp_path, script, timeout=timeout)
    assert time.monotonic() - begin < 30
    assert len(started) == 2 and all(p.returncode is not None for p in started)


def test_free_ports_are_distinct_loopback_ports():
    ports = runs.free_ports(3)
    assert len(set(ports)) == 3 and all(1024 <= p < 65536 for p in ports)
