"""--config.strategy: validated, and `mirrored` (2 logical CPUs) trains like `none`."""

import json

import pytest
import tensorflow as tf

from tests import runs
from vtrain import train


def test_unknown_strategy_names_the_choices():
    with pytest.raises(train.ConfigError) as error:
        train.make_strategy("mirored")
    assert str(error.value) == (
        "Invalid value for --config.strategy: received 'mirored'. Expected one of "
        "none, mirrored, multi_worker. Did you mean 'mirrored'?")


def test_mirrored_after_tensorflow_started_says_to_start_it_first():
    tf.constant(1.0) + 1.0  # TensorFlow now has its devices: 1 CPU
    with pytest.raises(train.ConfigError, match=r"--config.strategy=mirrored: Cannot "
                       r"split the CPU into 2 logical devices: TensorFlow is already "
                       r"initialised with 1\. Call vtrain.distribute.split_cpu\(\) at "
                       r"program start"):
        train.make_strategy("mirrored")


def test_multi_worker_without_tf_config_shows_its_shape(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(train.ConfigError, match=r"--config.strategy=multi_worker: "
                       r"strategy 'multi_worker' needs the TF_CONFIG environment "
                       r'variable, but it is not set\. Expected JSON of the form '
                       r'\{"cluster"'):
        train.make_strategy("multi_worker")


@pytest.mark.slow
def test_mirrored_run_equals_the_single_device_run(tmp_path):
    # Without noise (plain embedding, no dropout): two replicas draw other
    # noise than one device (docs/reliability.md), so a noisy run is another
    # sample of the training, not the same numbers. Noise-free, the
    # only difference is float32 summation order (two half-batch gradients
    # summed): 4.8e-7 measured on the weights, 0 on the test metrics; 1e-5
    # is the bound of the equality tests. P@1 moves by 1/2,935 test
    # examples ~ 3.4e-4 if one near-tie flips: bound 1e-3 (three flips).
    results, weights = {}, {}
    for strategy in ("none", "mirrored"):
        workdir = tmp_path / strategy
        process = runs.launch(f"--config={runs.TINY}", f"--config.strategy={strategy}",
                              "--config.model.variational=False",
                              "--config.model.dropout=0.0", f"--workdir={workdir}")
        assert process.returncode == 0, process.stderr[-3000:]
        results[strategy] = json.loads((workdir / "results.json").read_text())
        weights[strategy] = runs.keras_weights(workdir / "checkpoints" / "best.keras")
    assert "num_devices = 2" in process.stderr  # the mirrored run had 2 replicas
    assert sorted(weights["none"]) == sorted(weights["mirrored"])
    for name, value in weights["none"].items():
        assert abs(value - weights["mirrored"][name]).max() <= 1e-5, name
    for metric, value in results["none"]["test"].items():
        assert results["mirrored"]["test"][metric] == pytest.approx(value, abs=1e-3)
    assert results["none"]["best_epoch"] == results["mirrored"]["best_epoch"]
