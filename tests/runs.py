"""Helpers for tests that run the launcher as a subprocess and read its files."""

import importlib.util
import io
import os
import pathlib
import subprocess
import sys
import zipfile

import h5py
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.py"


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
    return subprocess.run([sys.executable, "-m", "vtrain.main", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=environment(**extra_env))


def keras_weights(path):
    """{variable path: array} of every weight in a `.keras` file (optimizer included)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    weights = {}
    with h5py.File(io.BytesIO(data), "r") as file:
        file.visititems(lambda name, item: weights.__setitem__(name, np.array(item))
                        if isinstance(item, h5py.Dataset) else None)
    return weights


def files_under(directory):
    """Every file path under `directory`, relative to it, sorted."""
    directory = pathlib.Path(directory)
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
