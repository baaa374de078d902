"""A built wheel, installed without the checkout, runs the main job's launcher.

Builds the wheel of this checkout, installs it (no dependencies: they are
this environment's) into a temporary folder, and runs `python -m
vtrain.main --config=tiny` from another working directory with only that
folder on the path: the configs and the bundled data must be inside the
wheel.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import runs


def _run(command, cwd, **env):
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600, env=runs.environment(**env)
    )


@pytest.mark.slow
def test_installed_wheel_runs_a_shipped_config_from_any_directory(tmp_path):
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(runs.ROOT),
        ],
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("vtrain-*.whl")
    site = tmp_path / "site"
    install = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [sys.executable, "-c", "import vtrain.tagging.configs as c; print(c.DIRECTORY)"],
        cwd=elsewhere,
        PYTHONPATH=str(site),
    )
    assert where.stdout.strip() == str(site / "vtrain" / "tagging" / "configs"), where.stderr
    run = _run(
        [sys.executable, "-m", "vtrain.main", "--config=tiny", "--workdir=run"],
        cwd=elsewhere,
        PYTHONPATH=str(site),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((elsewhere / "run" / "results.json").read_text())
    assert results["num_train"] == 2000 and 0.0 < results["test"]["f1@3"] < 1.0
    config = json.loads((elsewhere / "run" / "config.json").read_text())
    assert config["data"]["max_train_examples"] == 2000  # tiny's, from the wheel
    assert not os.path.exists(runs.ROOT / "run")
