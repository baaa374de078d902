"""Helpers for tests that run the launcher as a subprocess and read its files."""

import importlib.util
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np

from vtrain import checksums

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.py"
CLUSTER_TIMEOUT = 300  # seconds for two workers together (~30 s on 2 idle cores)


def environment(**extra):
    """The test process's environment, TensorFlow quiet, plus `extra`."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def load_module(path):
    """The Python file at `path` (e.g. a config), imported as a module."""
    spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch(*argv, timeout=300, cwd=ROOT, **extra_env):
    """Runs `python -m vtrain.main ARGV` in `cwd` to the end; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "vtrain.main", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(**extra_env),
    )


def keras_weights(path):
    """{variable path: array} of every weight in a `.keras` file (optimizer included)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    weights = {}
    with h5py.File(io.BytesIO(data), "r") as file:
        file.visititems(
            lambda name, item: (
                weights.__setitem__(name, np.array(item))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return weights


def files_under(directory):
    """Every file path under `directory`, relative to it, sorted."""
    directory = pathlib.Path(directory)
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def free_ports(count):
    """Ports free on 127.0.0.1 now (held open together, so all distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_cluster(directory, command, count=2, log_name="worker{}.log"):
    """Starts `command(i)` (an argv list) as worker i of a loopback cluster; returns the Popens.

    Worker i gets `TF_CONFIG` for task i (fresh free ports) and writes its
    output to `directory/log_name.format(i)`. The caller must reap them.
    """
    ports = free_ports(count)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(count):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps(tf_config),
        }
        with open(directory / log_name.format(index), "w") as log:
            workers.append(
                subprocess.Popen(
                    command(index), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    return workers


def run_cluster(directory, command, count=2, timeout=CLUSTER_TIMEOUT, log_name="worker{}.log"):
    """Runs `command(i)` (an argv list) as worker i of a loopback cluster, to the end.

    Worker i gets `TF_CONFIG` for task i; its output goes to
    `directory/worker{i}.log`. Workers still running after `timeout` seconds
    (or when anything fails) are killed and reaped; any worker that did not
    exit with 0 fails the test with the end of its log.
    """
    workers = []
    try:
        workers = start_cluster(directory, command, count, log_name)
        deadline = time.monotonic() + timeout
        # Stop at the first failure: its peer would wait in a collective
        # until the deadline.
        while time.monotonic() < deadline:
            codes = [worker.poll() for worker in workers]
            if None not in codes or any(code not in (None, 0) for code in codes):
                break
            time.sleep(0.2)
    finally:
        killed = [i for i, worker in enumerate(workers) if worker.poll() is None]
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    for index, worker in enumerate(workers):
        text = (directory / log_name.format(index)).read_text()[-4000:]
        state = (
            "was killed (running at the deadline, or after a peer failed)"
            if index in killed
            else f"exited with {worker.returncode}"
        )
        assert worker.returncode == 0, f"worker {index} {state}:\n{text}"


def assert_every_file_loads(workdir):
    """Each file a kill can leave under its real name parses (temporaries aside).

    A `.sha256` sidecar must match the file it names.
    """
    workdir = pathlib.Path(workdir)
    for name in files_under(workdir):
        path = workdir / name
        if os.path.basename(name).startswith(".tmp-") or "tensorboard" in name:
            continue
        if name.startswith("serving/"):  # the SavedModel, loaded whole below
            continue
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".sha256"):  # the file it names is as written
            target = workdir / name[: -len(".sha256")]
            assert checksums.verify(target) == checksums.sha256_of(target), name
        elif name.endswith(".keras"):
            assert keras_weights(path)
        elif name.endswith(".h5"):
            with h5py.File(path, "r") as file:
                assert list(file.keys())
        elif name.endswith(".md"):
            assert path.read_text(encoding="utf-8")
        elif name.endswith(".png"):  # complete: signature first, IEND chunk last
            data = path.read_bytes()
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-4] == b"\0\0\0\0IEND"
        else:
            raise AssertionError(f"unexpected file {name}")
    if (workdir / "serving").is_dir():
        import tensorflow as tf

        assert "serve" in tf.saved_model.load(str(workdir / "serving")).signatures
